import json
import socket
import sys
from pathlib import Path

import pytest

from utils import download
from utils.download import (
    DownloadError, MissingCredentialsError, NetworkError, RejectedCredentialsError,
    RulesNotAcceptedError, download_dataset, has_kaggle_credentials,
)


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a socket."""
    def reject_connection(*args, **kwargs):
        raise AssertionError("a network connection was attempted")
    monkeypatch.setattr(socket.socket, "connect", reject_connection)
    monkeypatch.setattr(socket, "create_connection", reject_connection)


class FakeApi:
    """Stand-in for kaggle.api that raises a chosen error or writes the layout."""

    def __init__(self, error=None):
        self.error = error
        self.calls = []

    def dataset_download_files(self, slug, path, unzip, quiet):
        self.calls.append(slug)
        if self.error is not None:
            raise self.error
        for name in ("benign", "malignant", "normal"):
            (Path(path) / "Dataset_BUSI_with_GT" / name).mkdir(parents=True)


class HttpError(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.status = status


def test_missing_credentials_message(data_dir, no_kaggle_credentials, no_network):
    with pytest.raises(MissingCredentialsError) as caught:
        download_dataset("busi")
    message = str(caught.value)
    assert "Aucun identifiant Kaggle" in message
    assert "kaggle.json" in message
    assert "KAGGLE_USERNAME" in message


def test_missing_credentials_skips_kaggle_import(data_dir, no_kaggle_credentials, no_network, monkeypatch):
    monkeypatch.delitem(sys.modules, "kaggle", raising=False)
    with pytest.raises(MissingCredentialsError):
        download_dataset("busi")
    assert "kaggle" not in sys.modules


def test_credentials_from_file(no_kaggle_credentials):
    folder = no_kaggle_credentials / ".kaggle"
    folder.mkdir()
    (folder / "kaggle.json").write_text(json.dumps({"username": "u", "key": "k"}))
    assert has_kaggle_credentials()


def test_credentials_from_variables(no_kaggle_credentials, monkeypatch):
    assert not has_kaggle_credentials()
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert has_kaggle_credentials()


def test_malformed_kaggle_json_ignored(no_kaggle_credentials):
    folder = no_kaggle_credentials / ".kaggle"
    folder.mkdir()
    (folder / "kaggle.json").write_text("{not json")
    assert not has_kaggle_credentials()


@pytest.mark.parametrize(
    ("error", "expected", "words"),
    [
        (HttpError(401), RejectedCredentialsError, "refusé vos identifiants"),
        (HttpError(403), RulesNotAcceptedError, "acceptez ses règles"),
        (ConnectionError("no route"), NetworkError, "injoignable"),
        (SystemExit(1), RejectedCredentialsError, "refusé vos identifiants"),
    ],
)
def test_kaggle_errors_translated(data_dir, no_network, error, expected, words):
    with pytest.raises(expected, match=words):
        download_dataset("busi", api=FakeApi(error))


def test_wrapped_connection_error_is_network(data_dir, no_network):
    class ApiException(Exception):
        pass
    try:
        raise ApiException("failed") from TimeoutError("timed out")
    except ApiException as error:
        wrapped = error
    with pytest.raises(NetworkError):
        download_dataset("busi", api=FakeApi(wrapped))


def test_present_dataset_not_downloaded(data_dir, no_network):
    for name in ("benign", "malignant", "normal"):
        (data_dir / "Dataset_BUSI_with_GT" / name).mkdir(parents=True)
    api = FakeApi(AssertionError("should not be called"))
    assert download_dataset("busi", api=api) == data_dir / "Dataset_BUSI_with_GT"
    assert api.calls == []


def test_successful_download_located(data_dir, no_network):
    api = FakeApi()
    assert download_dataset("busi", api=api) == data_dir / "Dataset_BUSI_with_GT"
    assert api.calls == ["aryashah2k/breast-ultrasound-images-dataset"]


def test_non_kaggle_dataset_gives_command(data_dir, no_network):
    with pytest.raises(DownloadError, match="git clone"):
        download_dataset("bccd", api=FakeApi())


def test_read_only_root_rejected(tmp_path, monkeypatch, no_network):
    root = tmp_path / "readonly"
    root.mkdir()
    root.chmod(0o500)
    monkeypatch.setattr(download.os, "access", lambda path, mode: False)
    with pytest.raises(DownloadError, match="lecture seule"):
        download_dataset("busi", root=root, api=FakeApi())


def test_cli_reports_error(data_dir, no_kaggle_credentials, no_network, capsys):
    assert download.main(["busi"]) == 1
    assert "Erreur : Aucun identifiant Kaggle" in capsys.readouterr().err
