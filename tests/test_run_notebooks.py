import nbformat

from utils.run_notebooks import find_notebooks, strip_for_commit, summarise_metrics


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
    strip_for_commit(nb)
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
