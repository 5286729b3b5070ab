"""Slides: every cell has a boundary, no slide overflows, the deck exports."""

import base64

import nbformat
import pytest

from utils.run_notebooks import find_notebooks
from utils.slides import (
    HIDE_INPUT_TAG,
    SLIDE_LINES,
    SLIDE_TYPES,
    export,
    mark,
    markdown_height,
    notebook_to_present,
    presentation_copy,
    slide_heights,
    slide_type,
)

NOTEBOOKS = find_notebooks([])
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()


def figure_output():
    return nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_cells_have_slide_types(path):
    nb = nbformat.read(path, as_version=4)
    missing = [index for index, cell in enumerate(nb.cells) if "slide_type" not in cell.metadata.get("slideshow", {})]
    assert not missing, f"{path.name} : cellules {missing} sans découpage ; lancez python -m utils.slides --mark"
    assert {slide_type(cell) for cell in nb.cells} <= SLIDE_TYPES
    assert slide_type(nb.cells[0]) == "slide"
    assert nb.metadata.get("rise", {}).get("scroll") is True, "RISE must scroll a slide taller than the screen"
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            assert slide_type(cell) == "slide", cell.source.splitlines()[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_slides_fit(path):
    nb = nbformat.read(path, as_version=4)
    heights = slide_heights(presentation_copy(nb))
    assert max(heights) <= SLIDE_LINES


def test_figures_added_after_marking_still_fit():
    cells = [nbformat.v4.new_markdown_cell("## Titre"), nbformat.v4.new_markdown_cell("Un paragraphe.")]
    for _ in range(3):
        code = nbformat.v4.new_code_cell("plt.imshow(image)\nplt.show()")
        cells.append(code)
    nb = nbformat.v4.new_notebook(cells=cells)
    mark(nb)
    assert slide_heights(nb) == [pytest.approx(markdown_height("## Titre") + 1 + 3 * 3)]
    for cell in nb.cells[2:]:
        cell.outputs = [figure_output()]
    presented = presentation_copy(nb)
    assert max(slide_heights(presented)) <= SLIDE_LINES
    assert len(slide_heights(presented)) == 3, "one figure per slide: title, text and 15, then 15 and 15"
    assert slide_type(nb.cells[3]) == "-", "the notebook itself must stay untouched"


def test_oversized_cells_are_cut():
    long_code = nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(50)))
    long_code.outputs = [figure_output(), figure_output(), nbformat.v4.new_output("stream", text="ok\n" * 200)]
    table = "| a | b |\n|---|---|\n" + "\n".join(f"| {i} | {i * i} |" for i in range(40))
    long_list = "\n".join(f"- point {i} : " + "mot " * 30 for i in range(20))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(table + "\n\n" + long_list), long_code])
    mark(nb)
    presented = presentation_copy(nb)
    heights = slide_heights(presented)
    assert max(heights) <= SLIDE_LINES
    code_sources = "\n".join(cell.source for cell in presented.cells if cell.cell_type == "code" and cell.source)
    assert code_sources == long_code.source, "no line of code may be lost or repeated"
    tables = [cell.source for cell in presented.cells if cell.cell_type == "markdown" and "| a | b |" in cell.source]
    assert len(tables) >= 2, "a long table is cut with its header repeated"
    assert sum(source.count("\n- point") + source.startswith("- point") for source in
               (cell.source for cell in presented.cells if cell.cell_type == "markdown")) == 20
    outputs = [output for cell in presented.cells for output in cell.get("outputs", [])]
    assert len(outputs) == 3
    assert any(HIDE_INPUT_TAG in cell.metadata.get("tags", []) for cell in presented.cells)


def test_title_height_grows_with_font_and_length():
    assert markdown_height("# Titre") > markdown_height("## Titre") > markdown_height("### Titre")
    assert markdown_height("# " + "mot " * 30) > markdown_height("# Titre")


def test_export_writes_one_section_per_slide(tmp_path):
    path = NOTEBOOKS[0]
    target, _ = export(path, tmp_path, reveal_prefix="reveal.js")
    html = target.read_text(encoding="utf-8")
    presented, _ = notebook_to_present(path)
    expected = len(slide_heights(presentation_copy(presented)))
    slides = sum(1 for cell in presented.cells if slide_type(cell) == "slide")
    # A slide with subslides is one <section> holding one <section> per subslide.
    assert html.count("<section") in {expected, expected + slides}
    assert 'src="reveal.js/dist/reveal.js"' in html or "reveal.js/dist/reveal" in html
    assert "max-height: 320px" in html
    assert "Démarrage" in html
    assert '<html lang="fr">' in html


def test_executed_copy_used_only_when_code_matches(tmp_path, monkeypatch):
    from utils import slides

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("plot()")])
    mark(notebook)
    path = tmp_path / "99_essai.ipynb"
    nbformat.write(notebook, path)
    executed_dir = tmp_path / "executed"
    executed_dir.mkdir()
    monkeypatch.setattr(slides, "EXECUTED_DIR", executed_dir)

    presented, executed = slides.notebook_to_present(path)
    assert not executed

    run = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("plot()")])
    run.cells[1].outputs = [figure_output()]
    nbformat.write(run, executed_dir / path.name)
    presented, executed = slides.notebook_to_present(path)
    assert executed
    assert presented.cells[1].outputs
    assert slide_type(presented.cells[0]) == "slide", "boundaries come from the notebook"

    run.cells[1].source = "plot(autre_version)"
    nbformat.write(run, executed_dir / path.name)
    presented, executed = slides.notebook_to_present(path)
    assert not executed
    assert not presented.cells[1].outputs
