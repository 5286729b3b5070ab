from utils.datasets import REGISTRY, dataset_status, get_dataset, locate_dataset, print_dataset_status
from utils.paths import PROJECT_ROOT, data_root

import pytest


def test_registry_entries_complete():
    for key, info in REGISTRY.items():
        assert info.key == key
        for field in ("title", "source", "licence", "citation", "layout", "size"):
            assert getattr(info, field), f"{key}.{field} is empty"
        assert info.kaggle_slug or info.get_command, f"{key} has no way to be fetched"


def test_course_datasets_registered():
    assert {"busi", "bccd", "chexpert", "nih_chestxray14", "chexphoto"} <= set(REGISTRY)


def test_relative_data_root_resolved_from_project(monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA", "some/folder")
    assert data_root() == (PROJECT_ROOT / "some/folder").resolve()


def test_default_data_root(monkeypatch):
    monkeypatch.delenv("MEDIMG_DATA", raising=False)
    assert data_root() == PROJECT_ROOT / "data"


def test_status_empty_root_lists_commands(data_dir, capsys):
    print_dataset_status()
    output = capsys.readouterr().out
    assert "busi" in output and "python -m utils.download busi" in output
    assert f'git clone --depth 1 https://github.com/Shenggan/BCCD_Dataset.git "{data_dir}/BCCD_Dataset"' in output
    assert (dataset_status()["présent"] == "non").all()


def test_busi_found_with_published_layout(data_dir):
    for name in ("benign", "malignant", "normal"):
        (data_dir / "Dataset_BUSI_with_GT" / name).mkdir(parents=True)
    assert locate_dataset("busi", announce=False) == data_dir / "Dataset_BUSI_with_GT"
    assert dataset_status().loc["busi", "présent"] == "oui"


def test_partial_layout_not_found(data_dir, capsys):
    (data_dir / "Dataset_BUSI_with_GT" / "benign").mkdir(parents=True)
    assert locate_dataset("busi") is None
    assert "Jeu de données absent" in capsys.readouterr().out


def test_nih_sample_folder_accepted(data_dir):
    folder = data_dir / "NIH_ChestXray14_sample64"
    (folder / "images").mkdir(parents=True)
    (folder / "Data_Entry_2017.csv").write_text("Image Index\n")
    assert get_dataset("nih_chestxray14").locate() == folder


def test_unknown_dataset_rejected():
    with pytest.raises(KeyError, match="Jeu de données inconnu"):
        get_dataset("mnist")


def test_data_root_file_rejected(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("")
    monkeypatch.setenv("MEDIMG_DATA", str(not_a_folder))
    with pytest.raises(NotADirectoryError, match="fichier et non un dossier"):
        data_root()
