"""Diaporamas reveal.js tirés des notebooks, pour présenter en cours.

    python -m utils.slides 02              # outputs/diaporamas/02_segmentation_busi.slides.html
    python -m utils.slides                 # tous les notebooks
    python -m utils.slides --mark          # recalcule les découpages dans les notebooks

Les découpages vivent dans les métadonnées des cellules
(``metadata.slideshow.slide_type``), le format que lisent nbconvert et
l'extension JupyterLab RISE. Chaque titre ``##`` ouvre une diapositive. Une
sous-diapositive (*subslide*) s'ouvre dès que la hauteur estimée du contenu
dépasserait celle d'une diapositive. ``--mark`` recalcule ces découpages
après une modification du notebook.

À l'export, une copie de présentation coupe en plusieurs sous-diapositives ce
qu'une seule cellule ne ferait pas tenir : un long code, un long texte, une
sortie haute. Le notebook lui-même ne change pas. Les figures viennent de la
copie exécutée par ``python -m utils.run_notebooks`` (``outputs/executed/``)
quand son code est celui du notebook actuel ; sinon le diaporama n'a que les
sorties gardées dans le notebook, et la commande le signale.

La hauteur est une estimation en lignes de texte (:data:`SLIDE_LINES`), faite
pour le gabarit reveal de nbconvert 7 (diapositive 960 × 700 px, texte à 20 px,
code à 19 px). Une feuille de style limite en plus la hauteur des images et
fait défiler une sortie trop haute à l'intérieur de son cadre.
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import sys
from pathlib import Path

from .exercises import SOLUTION_TAG
from .paths import PROJECT_ROOT, display_path

SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}
# NOTE: estimation tirée des tailles du gabarit ; aucun rendu n'a été mesuré dans un navigateur.
SLIDE_LINES = 22  # hauteur utile d'une diapositive, en lignes de texte à 20 px
TEXT_WIDTH = 80  # caractères par ligne de texte Markdown
IMAGE_LINES = 12  # une image, que STYLE borne à 320 px de haut
OUTPUT_MAX_LINES = 12  # au-delà de 330 px, STYLE fait défiler la sortie dans son cadre
HIDE_INPUT_TAG = "diapo-sans-code"
DEFAULT_DEST = PROJECT_ROOT / "outputs" / "diaporamas"
EXECUTED_DIR = PROJECT_ROOT / "outputs" / "executed"

STYLE = """<style>
/* Ajouté par utils.slides : aucune sortie ne dépasse de sa diapositive. */
.reveal .jp-OutputArea-output img { max-height: 320px; width: auto; }
.reveal .jp-OutputArea-output { max-height: 330px; overflow-y: auto; }
</style>
"""


def slide_type(cell) -> str:
    """Return the cell's ``slideshow.slide_type``, ``"-"`` when it has none."""
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def _text_lines(text: str, width: int) -> float:
    """Estimate the rendered height of wrapped text, in lines."""
    return sum(max(1, math.ceil(len(line) / width)) for line in text.splitlines() if line.strip())


def markdown_height(source: str) -> float:
    """Estimate the height of a Markdown cell, in lines of 20 px text.

    Titles are scaled by their font size, each table row counts as its
    cells' text spread over the slide's width, and a blank line as half a
    line.
    """
    height = 0.0
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped:
            height += 0.5
        elif stripped.startswith("#"):
            # Title fonts are larger: about 2, 1.6 and 1.3 times the text size for #, ## and ###.
            level = min(len(stripped) - len(stripped.lstrip("#")), 3)
            scale = {1: 2.0, 2: 1.6, 3: 1.3}[level]
            height += 0.5 + scale * math.ceil(len(stripped) * scale / TEXT_WIDTH)
        elif stripped.startswith("|"):
            if set(stripped) <= set("|-: "):
                continue
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            widest = max(len(cell) for cell in cells)
            height += max(1.2, 1.2 * math.ceil(widest * len(cells) / TEXT_WIDTH))
        else:
            height += math.ceil(len(stripped) / TEXT_WIDTH)
    return height


def output_height(output) -> float:
    """Estimate the height of one output, capped where the style sheet caps it."""
    if output.get("output_type") == "stream":
        height = _text_lines(output.get("text", ""), 100) * 0.8
    else:
        data = output.get("data", {})
        if "image/png" in data or "image/jpeg" in data or "image/svg+xml" in data:
            height = IMAGE_LINES
        elif "text/html" in data:
            html = data["text/html"]
            height = 1.2 * max(1, "".join(html).count("<tr"))
        elif "text/plain" in data:
            height = _text_lines("".join(data["text/plain"]), 100) * 0.8
        else:
            height = 1.0
    return min(height, OUTPUT_MAX_LINES)


def cell_height(cell) -> float:
    """Estimate the height of a cell with its outputs, in lines."""
    if cell.cell_type == "markdown":
        return markdown_height(cell.source)
    hidden = HIDE_INPUT_TAG in cell.metadata.get("tags", [])
    source = 0.0 if hidden or not cell.source.strip() else len(cell.source.splitlines()) + 1.0
    outputs = sum(output_height(output) for output in cell.get("outputs", []))
    return source + outputs


def mark(nb) -> None:
    """Set ``slideshow.slide_type`` on every cell of ``nb`` and RISE's ``scroll`` option, in place.

    The first cell and every ``##`` title open a slide, a ``###`` title or a
    solution opens a subslide, and a cell that would push the current slide
    past :data:`SLIDE_LINES` opens a subslide too.
    """
    # RISE presents these boundaries live, without cutting tall cells: let such a slide scroll.
    nb.metadata.setdefault("rise", {})["scroll"] = True
    used = 0.0
    for index, cell in enumerate(nb.cells):
        height = cell_height(cell)
        first_line = cell.source.lstrip().split("\n", 1)[0] if cell.cell_type == "markdown" else ""
        if index == 0 or re.match(r"#{1,2} ", first_line):
            kind = "slide"
        elif re.match(r"#{3,} ", first_line) or SOLUTION_TAG in cell.metadata.get("tags", []):
            kind = "subslide"
        elif used + height > SLIDE_LINES:
            kind = "subslide"
        else:
            kind = "-"
        cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
        used = height if kind in {"slide", "subslide"} else used + height


def _chunks(items: list, height, limit: float) -> list[list]:
    """Group ``items`` in order so that each group's height stays within ``limit`` where it can."""
    groups, current, used = [], [], 0.0
    for item in items:
        item_height = height(item)
        if current and used + item_height > limit:
            groups.append(current)
            current, used = [], 0.0
        current.append(item)
        used += item_height
    if current:
        groups.append(current)
    return groups


def _list_items(lines: list[str]) -> list[str]:
    """Group the lines of a Markdown list into items, each with its continuation lines."""
    items: list[str] = []
    for line in lines:
        if re.match(r"\s{0,3}([-*+]|\d+[.)])\s", line) or not items:
            items.append(line)
        else:
            items[-1] += "\n" + line
    return items


def _markdown_blocks(source: str) -> list[str]:
    """Split Markdown into paragraphs, cutting long tables (header repeated) and long lists into pieces."""
    blocks = []
    for block in re.split(r"\n\s*\n", source.strip()):
        lines = block.splitlines()
        if markdown_height(block) <= SLIDE_LINES - 2:
            blocks.append(block)
        elif len(lines) > 2 and all(line.lstrip().startswith("|") for line in lines):
            header, rows = lines[:2], lines[2:]
            for group in _chunks(rows, markdown_height, SLIDE_LINES - 3):
                blocks.append("\n".join(header + group))
        else:
            for group in _chunks(_list_items(lines), markdown_height, SLIDE_LINES - 2):
                blocks.append("\n".join(group))
    return blocks


def _split_cell(cell) -> list:
    """Return ``cell`` cut into pieces that each fit one slide; outputs stay with the last piece."""
    import nbformat

    if cell_height(cell) <= SLIDE_LINES:
        return [cell]
    kind = slide_type(cell)
    pieces = []
    if cell.cell_type == "markdown":
        # Each block is followed by a blank line, counted as half a line.
        for group in _chunks(_markdown_blocks(cell.source), lambda block: markdown_height(block) + 0.5, SLIDE_LINES):
            piece = nbformat.v4.new_markdown_cell("\n\n".join(group))
            pieces.append(piece)
    else:
        lines = cell.source.splitlines()
        outputs = list(cell.get("outputs", []))
        for group in _chunks(lines, lambda line: 1.0, SLIDE_LINES - 2):
            pieces.append(nbformat.v4.new_code_cell("\n".join(group)))
        for group in _chunks(outputs, output_height, SLIDE_LINES):
            last = pieces[-1]
            if cell_height(last) + sum(output_height(output) for output in group) > SLIDE_LINES:
                last = nbformat.v4.new_code_cell("")
                last.metadata["tags"] = [HIDE_INPUT_TAG]
                pieces.append(last)
            last.outputs = last.get("outputs", []) + group
        pieces[-1].execution_count = cell.get("execution_count")
    for number, piece in enumerate(pieces):
        piece.metadata["slideshow"] = {"slide_type": kind if number == 0 else "subslide"}
    return pieces


def presentation_copy(nb):
    """Return a copy of ``nb`` cut so that every slide fits, for export only.

    The Colab block of the setup cell is left out, since it does nothing
    in class. Oversized cells are cut into several subslides, and a cell whose outputs
    (figures absent from the committed notebook) would push its slide past
    :data:`SLIDE_LINES` opens a subslide of its own. The boundaries stored in
    the notebook are all kept.
    """
    from .colab import strip_colab_block

    presented = copy.deepcopy(nb)
    for cell in presented.cells:
        if cell.cell_type == "code":
            cell.source = strip_colab_block(cell.source)
    presented.cells = [piece for cell in presented.cells for piece in _split_cell(cell)]
    used = 0.0
    for cell in presented.cells:
        kind, height = slide_type(cell), cell_height(cell)
        if kind in {"skip", "notes"}:
            continue
        if kind in {"-", "fragment"} and used + height > SLIDE_LINES:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = kind = "subslide"
        used = height if kind in {"slide", "subslide"} else used + height
    return presented


def slide_heights(nb) -> list[float]:
    """Return the estimated height of each slide and subslide of ``nb``, in order."""
    heights: list[float] = []
    for cell in nb.cells:
        kind = slide_type(cell)
        if kind in {"skip", "notes"}:
            continue
        if kind in {"slide", "subslide"} or not heights:
            heights.append(0.0)
        heights[-1] += cell_height(cell)
    return heights


def notebook_to_present(path: Path) -> tuple:
    """Return the notebook to present, and whether its outputs come from the executed copy.

    The executed copy written by ``utils.run_notebooks`` has every figure. It
    is used only when its cells have the same sources as the notebook, so that
    a deck does not show the outputs of another version of the code. The
    slide boundaries always come from the notebook itself.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    executed_path = EXECUTED_DIR / path.name
    if not executed_path.is_file():
        return nb, False
    executed = nbformat.read(executed_path, as_version=4)
    if [cell.source for cell in executed.cells] != [cell.source for cell in nb.cells]:
        return nb, False
    for cell, executed_cell in zip(nb.cells, executed.cells):
        executed_cell.metadata = cell.metadata
    return executed, True


def export(path: Path, dest: Path = DEFAULT_DEST, reveal_prefix: str | None = None) -> tuple[Path, bool]:
    """Write the reveal.js deck of the notebook at ``path``; return its path and whether it has every figure."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    presented, executed = notebook_to_present(path)
    nb = presentation_copy(presented)
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT_TAG}
    exporter = SlidesExporter(config=config)
    exporter.reveal_scroll = True
    if reveal_prefix:
        exporter.reveal_url_prefix = reveal_prefix
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    body = body.replace("</head>", STYLE + "</head>", 1).replace('<html lang="en">', '<html lang="fr">', 1)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{path.stem}.slides.html"
    target.write_text(body, encoding="utf-8")
    return target, executed


def main(argv: list[str] | None = None) -> int:
    import nbformat

    from .run_notebooks import find_notebooks

    parser = argparse.ArgumentParser(
        prog="python -m utils.slides",
        description="Exporte des notebooks en diaporamas reveal.js (fichiers HTML).",
    )
    parser.add_argument("notebooks", nargs="*", help="préfixes de noms, par exemple 02 05 (tous par défaut)")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="dossier des diaporamas")
    parser.add_argument(
        "--reveal-prefix",
        help=(
            "adresse ou dossier de reveal.js (relatif au dossier du diaporama) ; par défaut, le CDN de nbconvert. "
            "MathJax, jQuery et require.js viennent toujours d'un CDN : sans réseau, présentez depuis JupyterLab avec RISE."
        ),
    )
    parser.add_argument(
        "--mark",
        action="store_true",
        help="recalcule les découpages en diapositives dans les notebooks au lieu d'exporter",
    )
    arguments = parser.parse_args(argv)
    paths = find_notebooks(arguments.notebooks)
    for path in paths:
        if arguments.mark:
            nb = nbformat.read(path, as_version=4)
            mark(nb)
            nbformat.write(nb, path)
            print(f"Découpages recalculés : {display_path(path)} ({len(slide_heights(nb))} diapositives)")
            continue
        target, executed = export(path, arguments.dest.resolve(), arguments.reveal_prefix)
        print(f"Diaporama : {display_path(target)}")
        if not executed:
            print(
                f"  Sans les figures : lancez d'abord python -m utils.run_notebooks {path.stem[:2]} "
                "pour présenter la copie exécutée."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
