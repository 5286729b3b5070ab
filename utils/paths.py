"""Emplacements du projet : racine, données (``MEDIMG_DATA``) et sorties."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """Return the data root read from ``MEDIMG_DATA`` (default ``data/``).

    A relative value is resolved from the project root, not from the current
    directory, so that a notebook started from ``notebooks/`` and a command
    started from the root see the same folder.
    """
    value = os.environ.get("MEDIMG_DATA", "").strip()
    path = Path(value).expanduser() if value else Path("data")
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    path = path.resolve()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"MEDIMG_DATA désigne un fichier et non un dossier : {path}. "
            "Indiquez le dossier qui contient les jeux de données."
        )
    return path


def output_dir(notebook: str) -> Path:
    """Create and return ``outputs/<notebook>/`` under the project root."""
    folder = PROJECT_ROOT / "outputs" / notebook
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cache_dir() -> Path:
    """Create and return the cache folder ``outputs/cache/``."""
    folder = PROJECT_ROOT / "outputs" / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def display_path(path: Path) -> Path:
    """Return ``path`` relative to the project root when it lies inside, for messages."""
    try:
        return path.relative_to(PROJECT_ROOT)
    except ValueError:
        return path
