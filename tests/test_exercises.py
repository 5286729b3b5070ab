"""Student versions: every exercise has its solution, none leaks, the rest still runs."""

import nbformat
import pytest

from utils.exercises import ANSWER_TAG, SOLUTION_TAG, answer_text, build, solution_cells, student_version
from utils.run_notebooks import find_notebooks

CHAPTERS = [path for path in find_notebooks([]) if not path.stem.startswith("00_")]


def read(path):
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_exercise_section_has_solutions(path):
    nb = read(path)
    headings = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown" and "À vous de jouer" in cell.source]
    solutions = solution_cells(nb)
    assert headings, f"{path.name} : pas de section « À vous de jouer »"
    assert solutions, f"{path.name} : aucune cellule marquée {SOLUTION_TAG}"
    assert min(solutions) > headings[0]
    assert all(nb.cells[i].cell_type == "code" for i in solutions)


def test_student_version_on_a_small_notebook():
    statement = nbformat.v4.new_markdown_cell("**Exercice 1.** Calculez 2 + 2.")
    solution = nbformat.v4.new_code_cell("print(2 + 2)")
    solution.metadata["tags"] = [SOLUTION_TAG]
    solution.outputs = [nbformat.v4.new_output("stream", text="4\n")]
    after = nbformat.v4.new_code_cell("x = 1")
    nb = nbformat.v4.new_notebook(cells=[statement, solution, after])
    student = student_version(nb)
    assert [cell.cell_type for cell in student.cells] == ["markdown", "code", "code"]
    assert student.cells[0].source == statement.source
    assert student.cells[1].metadata["tags"] == [ANSWER_TAG]
    assert student.cells[1].source == "# Exercice 1 : écrivez votre réponse ici.\n"
    assert student.cells[2].source == "x = 1"
    assert nb.cells[1].source == "print(2 + 2)", "the original notebook must stay untouched"


def test_student_versions_hold_no_solution(tmp_path):
    written = build(CHAPTERS, tmp_path)
    assert [path.name for path in written] == [path.name for path in CHAPTERS]
    for original_path, student_path in zip(CHAPTERS, written):
        original, student = read(original_path), read(student_path)
        sources = "\n".join(cell.source for cell in student.cells)
        assert not solution_cells(student), student_path.name
        for index in solution_cells(original):
            assert original.cells[index].source not in sources, (student_path.name, index)
        answers = [cell for cell in student.cells if ANSWER_TAG in cell.metadata.get("tags", [])]
        assert len(answers) == len(solution_cells(original))
        markdown = [cell.source for cell in original.cells if cell.cell_type == "markdown"]
        assert markdown == [cell.source for cell in student.cells if cell.cell_type == "markdown"]
        assert all(not cell.get("outputs") for cell in student.cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda path: path.stem)
def test_student_version_runs(path, tmp_path, monkeypatch):
    """The student version runs from top to bottom (smoke profile, embedded data): no later cell needs a solution."""
    from nbclient import NotebookClient

    empty = tmp_path / "donnees"
    empty.mkdir()
    monkeypatch.setenv("MEDIMG_PROFILE", "smoke")
    monkeypatch.setenv("MEDIMG_DATA", str(empty))
    student = student_version(read(path))
    client = NotebookClient(student, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()


def test_answer_cells_are_numbered():
    assert answer_text("# Solution de l'exercice 3\nx = 1", 1) == "# Exercice 3 : écrivez votre réponse ici.\n"
    assert answer_text("x = 1", 4) == "# Exercice 4 : écrivez votre réponse ici.\n"
