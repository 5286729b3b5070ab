"""Shared fixtures: an isolated data root and a clean environment."""

import pytest


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """Point MEDIMG_DATA at an empty temporary folder."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("MEDIMG_DATA", str(root))
    return root


@pytest.fixture
def no_kaggle_credentials(tmp_path, monkeypatch):
    """Remove every source of Kaggle credentials: empty HOME, no variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home
