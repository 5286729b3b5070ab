"""Cache des modèles entraînés, partagé entre notebooks.

Un fichier de cache est nommé d'après une empreinte de tout ce qui a façonné le
modèle (profil, source des données, réglages). Un notebook qui ne trouve pas
l'entrée qu'il attend entraîne le modèle lui-même puis l'enregistre.
"""

import hashlib
import json
from pathlib import Path

from .paths import cache_dir


def cache_key(**settings) -> str:
    """Return a 12-character hash of ``settings`` (JSON-serialisable values)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(name: str, suffix: str = ".pt", **settings) -> Path:
    """Return ``outputs/cache/<name>-<hash><suffix>`` and record its settings.

    The settings are written beside the file as JSON, so that a reader can
    tell what a cached model was trained with.
    """
    key = cache_key(**settings)
    path = cache_dir() / f"{name}-{key}{suffix}"
    description = path.with_suffix(".json")
    if not description.exists():
        description.write_text(json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n")
    return path
