"""Versions « étudiant » des notebooks : les solutions retirées, une cellule vide à leur place.

    python -m utils.exercises            # tous les notebooks
    python -m utils.exercises 02 05      # préfixes de noms
    python -m utils.exercises --dest dossier

Chaque cellule marquée ``solution`` est remplacée par une cellule de code
vide, marquée ``reponse`` et titrée « Exercice n », où l'étudiant écrit sa
réponse ; les énoncés (cellules Markdown) restent en place. Le retrait lui-même est fait
par le ``TagRemovePreprocessor`` de nbconvert, les sorties par son
``ClearOutputPreprocessor``. Par défaut, les versions vont dans
``outputs/exercices/`` (dossier ignoré par git), à distribuer telles quelles.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .paths import PROJECT_ROOT, display_path

SOLUTION_TAG = "solution"
ANSWER_TAG = "reponse"
SOLUTION_TITLE = re.compile(r"#\s*Solution de l'exercice\s+(\w+)", re.IGNORECASE)
DEFAULT_DEST = PROJECT_ROOT / "outputs" / "exercices"


def answer_text(solution_source: str, ordinal: int) -> str:
    """Return the text of the empty answer cell that replaces one solution.

    The exercise number comes from the solution's first line (« # Solution de
    l'exercice 2 ») when it has one, otherwise from its rank in the notebook.
    """
    match = SOLUTION_TITLE.match(solution_source.lstrip())
    number = match.group(1) if match else str(ordinal)
    return f"# Exercice {number} : écrivez votre réponse ici.\n"


def solution_cells(nb) -> list[int]:
    """Return the indices of the cells tagged ``solution``."""
    return [index for index, cell in enumerate(nb.cells) if SOLUTION_TAG in cell.metadata.get("tags", [])]


def student_version(nb):
    """Return a copy of ``nb`` without solutions or outputs, an empty answer cell in place of each solution."""
    import copy

    import nbformat
    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

    student = copy.deepcopy(nb)
    cells, ordinal = [], 0
    for cell in student.cells:
        cells.append(cell)
        if SOLUTION_TAG in cell.metadata.get("tags", []):
            ordinal += 1
            answer = nbformat.v4.new_code_cell(answer_text(cell.source, ordinal))
            answer.metadata["tags"] = [ANSWER_TAG]
            cells.append(answer)
    student.cells = cells
    remover = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    student, _ = remover.preprocess(student, {})
    student, _ = ClearOutputPreprocessor().preprocess(student, {})
    return student


def build(paths: list[Path], dest: Path = DEFAULT_DEST) -> list[Path]:
    """Write the student version of each notebook in ``paths`` under ``dest``; return the written files."""
    import nbformat

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = dest / path.name
        nbformat.write(student_version(nb), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    from .run_notebooks import find_notebooks

    parser = argparse.ArgumentParser(
        prog="python -m utils.exercises",
        description="Écrit les versions étudiant des notebooks, sans les cellules de solution.",
    )
    parser.add_argument("notebooks", nargs="*", help="préfixes de noms, par exemple 02 05")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="dossier de destination")
    arguments = parser.parse_args(argv)
    paths = find_notebooks(arguments.notebooks)
    if not paths:
        print("Aucun notebook ne correspond à ces préfixes.", file=sys.stderr)
        return 2
    for path in build(paths, arguments.dest.resolve()):
        print(f"Version étudiant : {display_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
