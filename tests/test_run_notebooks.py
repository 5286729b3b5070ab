import json
import os

import nbformat
import pytest

from utils.run_notebooks import (
    KEY_RESULTS,
    data_sources,
    find_notebooks,
    fresh_metrics,
    key_results,
    strip_for_commit,
    summarise_metrics,
    write_results_board,
)


def make_cell(source, outputs):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.from_dict(output) for output in outputs]
    cell.execution_count = 3
    return cell


def test_strip_keeps_checked_stdout_only():
    checked = make_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", [
        {"output_type": "stream", "name": "stdout", "text": "1\n"},
        {"output_type": "stream", "name": "stderr", "text": "warning\n"},
    ])
    plain = make_cell("plot()", [{"output_type": "display_data", "data": {"image/png": "AAAA"}, "metadata": {}}])
    nb = nbformat.v4.new_notebook(cells=[checked, plain])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    strip_for_commit(nb)
    assert "widgets" not in nb.metadata
    assert [o.text for o in checked.outputs] == ["1\n"]
    assert plain.outputs == []
    assert checked.execution_count == 1
    assert plain.execution_count is None


def test_summarise_skips_text_and_flags():
    text = summarise_metrics({"profile": "quick", "ok": True, "dice": 0.81234, "n": 3})
    assert text == "dice=0.8123, n=3"
    assert summarise_metrics(None) == "—"


def test_notebooks_found_in_order():
    names = [path.stem for path in find_notebooks([])]
    assert names == sorted(names)
    assert names[:2] == ["00_demarrage", "01_modalites_et_bruit"]


def test_metrics_of_an_earlier_run_are_not_reported(tmp_path):
    metrics_file = tmp_path / "metrics.json"
    assert fresh_metrics(metrics_file, since=0) is None
    metrics_file.write_text(json.dumps({"dice": 0.5}))
    written = metrics_file.stat().st_mtime
    assert fresh_metrics(metrics_file, since=written - 1) == {"dice": 0.5}
    os.utime(metrics_file, (written - 100, written - 100))
    assert fresh_metrics(metrics_file, since=written) is None


def test_key_results_follow_nested_keys():
    metrics = {"models": {"U-Net": {"dice": 0.6149}, "Attention U-Net": {"dice": 0.6}}}
    text = key_results("02_segmentation_busi", metrics)
    assert text == "Dice U-Net : 0,6149 ; Dice Attention U-Net : 0,6"
    assert key_results("02_segmentation_busi", None) == "—"
    assert key_results("99_inconnu", {"dice": 0.5}) == "dice=0.5"


def test_every_chapter_notebook_has_key_results():
    chapters = [path.stem for path in find_notebooks([]) if not path.stem.startswith("00_")]
    assert sorted(KEY_RESULTS) == chapters


def test_data_sources_named():
    assert data_sources({"busi_source": "busi", "chest_source": "synthetic"}) == "busi, synthetic"
    assert data_sources({"data_source": "busi", "source": "busi"}) == "busi"
    assert data_sources({"dice": 0.5}) == "—"
    assert data_sources(None) == "—"


def test_results_board_written(tmp_path):
    rows = [
        {"notebook": "02_segmentation_busi", "status": "ok", "wall_s": 230.4, "peak_mib": 1300.0, "data": "busi",
         "key_results": "Dice U-Net : 0,615"},
        {"notebook": "03_detection_bccd", "status": "échec", "wall_s": 12.0, "peak_mib": 900.0, "key_results": "—"},
    ]
    markdown, figure = write_results_board(rows, "quick", tmp_path)
    text = markdown.read_text(encoding="utf-8")
    assert "| `02_segmentation_busi` | ok | 230 | 1300 | busi | Dice U-Net : 0,615 | U-Net et Attention U-Net ≈ 0,77" in text
    assert "| `03_detection_bccd` | échec | 12 | 900 | — | — |" in text
    assert figure.stat().st_size > 1000


@pytest.mark.parametrize("path", find_notebooks([]), ids=lambda path: path.stem)
def test_committed_notebook_has_no_widget_state(path):
    assert "widgets" not in nbformat.read(path, as_version=4).metadata
