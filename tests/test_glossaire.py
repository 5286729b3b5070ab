"""The notebooks use the glossary's French term wherever its English term appears in brackets."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
GLOSSARY = ROOT / "GLOSSAIRE.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# "(*english*)" or "(*english*, abbreviation)"
BRACKETED_ENGLISH = re.compile(r"\(\*([^*()]+)\*[),]")


def read_glossary() -> list[tuple[str, str, str]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("français", "") and not set(cells[0]) <= {"-"}:
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def plain_markdown(notebook: Path) -> str:
    cells = nbformat.read(notebook, as_version=4).cells
    text = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    return text.replace("**", "").replace("’", "'")


def french_regex(term: str) -> str:
    """Return a regex for lower-case ``term`` with each word optionally in the plural (s or x)."""
    words = [re.escape(word) + "[sx]?" for word in term.lower().split()]
    return r"\s+".join(words)


GLOSSARY_ROWS = read_glossary()
ENGLISH_TO_FRENCH = {english.lower(): french for french, english, _ in GLOSSARY_ROWS}


def test_glossary_has_rows():
    assert len(GLOSSARY_ROWS) >= 40


def test_glossary_english_terms_unique():
    english = [row[1].lower() for row in GLOSSARY_ROWS]
    assert len(english) == len(set(english))


def test_glossary_french_terms_unique():
    french = [row[0].lower() for row in GLOSSARY_ROWS]
    assert len(french) == len(set(french))


@pytest.mark.parametrize("french, english, notebook", GLOSSARY_ROWS, ids=[row[1] for row in GLOSSARY_ROWS])
def test_term_appears_in_its_notebook(french, english, notebook):
    path = ROOT / "notebooks" / f"{notebook}.ipynb"
    assert path.is_file(), f"notebook inconnu : {notebook}"
    text = plain_markdown(path).lower()
    assert re.search(french_regex(french), text), (french, notebook)
    assert re.search(rf"\(\*{re.escape(english.lower())}\*[),]", text), (english, notebook)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_bracketed_terms_follow_glossary(notebook):
    text = plain_markdown(notebook)
    mismatches = []
    for match in BRACKETED_ENGLISH.finditer(text):
        english = match.group(1).strip().lower()
        if english not in ENGLISH_TO_FRENCH:
            continue
        before = text[max(0, match.start() - 80):match.start()].lower()
        before = before.replace("*", "").replace("« ", "").replace(" »", "")
        if not re.search(french_regex(ENGLISH_TO_FRENCH[english]) + r"\s*$", before):
            mismatches.append(f"« …{before[-40:]} (*{english}*) » : terme attendu « {ENGLISH_TO_FRENCH[english]} »")
    assert not mismatches, "\n".join(mismatches)
