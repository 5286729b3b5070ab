"""Sauvegarde des figures et des métriques d'un notebook sous ``outputs/<notebook>/``, et mise en forme des tableaux affichés."""

import json
import math
from pathlib import Path

import numpy as np

from .paths import output_dir


def _to_json(value):
    """Convert numpy scalars and arrays, paths and tuples to JSON types."""
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist())
    if isinstance(value, np.generic):
        return _to_json(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def save_metrics(notebook: str, metrics: dict) -> Path:
    """Write ``metrics`` to ``outputs/<notebook>/metrics.json`` and return the path.

    Non-finite floats become ``null`` so that the file stays valid JSON.
    """
    path = output_dir(notebook) / "metrics.json"
    path.write_text(json.dumps(_to_json(metrics), indent=2, ensure_ascii=False) + "\n")
    return path


def load_metrics(notebook: str) -> dict | None:
    """Return the metrics a notebook saved, or None when it has not run."""
    path = output_dir(notebook) / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def save_figure(fig, notebook: str, name: str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``outputs/<notebook>/<name>.png``."""
    path = output_dir(notebook) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


YES_NO = {True: "oui", False: "non"}


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not _is_bool(value)


def tidy_table(table, counts=(), digits: int = 3):
    """Return a copy of ``table`` for display: counts as whole numbers, booleans as oui/non, numbers rounded.

    pandas turns a count into a float (28.0) as soon as its column contains a
    NaN, and a transposed table (``pd.DataFrame(rows).T``) has object columns
    that ``round`` skips. ``counts`` names the count columns; a missing count
    shows as « — ».
    """
    import pandas as pd

    tidy = table.copy()
    for column in tidy.columns:
        values = tidy[column].dropna()
        if column in counts:
            tidy[column] = ["—" if pd.isna(value) else int(round(float(value))) for value in tidy[column]]
        elif len(values) and values.map(_is_bool).all():
            tidy[column] = tidy[column].map(lambda value: YES_NO.get(value, value))
        elif len(values) and values.map(_is_number).all():
            tidy[column] = pd.to_numeric(tidy[column]).round(digits)
    if tidy.index.dtype == bool:
        tidy.index = tidy.index.map(YES_NO)
    return tidy
