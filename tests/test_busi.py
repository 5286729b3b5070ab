"""Tests of utils.busi on fabricated trees in the Kaggle layout, and on the real sample."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.busi import index_busi, load_busi, read_mask
from utils.datasets import get_dataset


def write_image(path: Path, width: int, height: int, value: int = 120, colour_mark: bool = False) -> None:
    array = np.full((height, width, 3), value, dtype=np.uint8)
    if colour_mark:
        array[0, 0] = (255, 0, 0)
    Image.fromarray(array, mode="RGB").save(path)


def write_mask(path: Path, width: int, height: int, box: tuple[int, int, int, int] | None, mode: str) -> None:
    mask = np.zeros((height, width), dtype=bool)
    if box is not None:
        top, left, bottom, right = box
        mask[top:bottom, left:right] = True
    if mode == "1":
        Image.fromarray(mask).convert("1").save(path)
    elif mode == "L01":
        Image.fromarray(mask.astype(np.uint8), mode="L").save(path)
    elif mode == "RGB":
        Image.fromarray(np.repeat(mask[..., None] * 255, 3, axis=2).astype(np.uint8), mode="RGB").save(path)
    elif mode == "RGBA":
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[..., :3] = mask[..., None] * 255
        rgba[..., 3] = 255
        Image.fromarray(rgba, mode="RGBA").save(path)


@pytest.fixture
def busi_tree(tmp_path) -> Path:
    """Build a tree with the irregularities of the published files."""
    root = tmp_path / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        (root / label).mkdir(parents=True)
        (root / label / "test.txt").write_text("\n")

    benign = root / "benign"
    write_image(benign / "benign (1).png", 40, 30)
    write_mask(benign / "benign (1)_mask.png", 40, 30, (5, 5, 10, 10), "1")
    # Two lesions: the second mask in _mask_1, stored as RGBA.
    write_image(benign / "benign (2).png", 40, 30, colour_mark=True)
    write_mask(benign / "benign (2)_mask.png", 40, 30, (2, 2, 6, 6), "RGB")
    write_mask(benign / "benign (2)_mask_1.png", 40, 30, (20, 30, 25, 36), "RGBA")
    # Numbers sort numerically, not as text.
    write_image(benign / "benign (10).png", 32, 32)
    write_mask(benign / "benign (10)_mask.png", 32, 32, (0, 0, 32, 16), "L01")
    # An image whose mask is missing, and a mask whose image is missing.
    write_image(benign / "benign (3).png", 20, 20)
    write_mask(benign / "benign (4)_mask.png", 20, 20, None, "1")

    write_image(root / "malignant" / "malignant (1).png", 50, 40)
    write_mask(root / "malignant" / "malignant (1)_mask.png", 50, 40, (10, 10, 30, 20), "1")
    # A file of another class in this folder.
    write_image(root / "malignant" / "benign (7).png", 10, 10)

    write_image(root / "normal" / "normal (1).png", 36, 28)
    write_mask(root / "normal" / "normal (1)_mask.png", 36, 28, None, "RGB")
    return root


def test_index_rows_and_order(busi_tree):
    table = index_busi(busi_tree).table
    assert list(table["name"]) == [
        "benign (1)",
        "benign (2)",
        "benign (10)",
        "malignant (1)",
        "normal (1)",
    ]


def test_index_collects_extra_masks(busi_tree):
    table = index_busi(busi_tree).table.set_index("name")
    assert table.loc["benign (2)", "mask_count"] == 2
    assert [path.name for path in table.loc["benign (2)", "masks"]] == [
        "benign (2)_mask.png",
        "benign (2)_mask_1.png",
    ]


def test_index_reports_skipped(busi_tree):
    index = index_busi(busi_tree)
    reasons = dict(index.skipped)
    assert reasons["benign/test.txt"] == "nom hors du format publié"
    assert reasons["benign/benign (3).png"] == "image sans masque"
    assert reasons["benign/benign (4)_mask.png"] == "masque sans image"
    assert reasons["malignant/benign (7).png"] == "classe du nom différente de celle du dossier"
    assert len(index.skipped) == 6
    assert index.skipped_summary().startswith("6 fichier(s) écarté(s)")


def test_index_missing_class_folder(tmp_path):
    (tmp_path / "benign").mkdir()
    with pytest.raises(FileNotFoundError, match="Dossier de classe manquant"):
        index_busi(tmp_path)


@pytest.mark.parametrize("mode", ["1", "L01", "RGB", "RGBA"])
def test_read_mask_every_mode(tmp_path, mode):
    path = tmp_path / "mask.png"
    write_mask(path, 12, 10, (2, 3, 5, 8), mode)
    mask = read_mask(path)
    assert mask.shape == (10, 12)
    assert mask.dtype == bool
    assert mask.sum() == 3 * 5


def test_load_union_and_sizes(busi_tree):
    data = load_busi(busi_tree, size=20)
    names = list(data["names"])
    assert data["images"].shape == (5, 20, 20)
    assert data["images"].dtype == np.float32
    assert data["masks"].dtype == bool
    assert tuple(data["original_shapes"][names.index("benign (2)")]) == (30, 40)
    two_lesions = data["masks"][names.index("benign (2)")]
    # Union of both lesions: pixels near the top-left corner and the right side.
    assert two_lesions[:5, :5].any()
    assert two_lesions[12:18, 15:].any()
    assert not data["masks"][names.index("normal (1)")].any()
    assert list(data["mask_counts"]) == [1, 2, 1, 1, 1]


def test_load_grey_in_unit_range(busi_tree):
    data = load_busi(busi_tree, size=16)
    assert data["images"].min() >= 0.0
    assert data["images"].max() <= 1.0
    assert data["images"][0].mean() == pytest.approx(120 / 255, abs=1e-3)


def test_load_max_per_class(busi_tree):
    data = load_busi(busi_tree, size=16, max_per_class=1)
    assert list(data["names"]) == ["benign (1)", "malignant (1)", "normal (1)"]


def test_load_mismatched_mask_names_file(busi_tree):
    write_mask(busi_tree / "benign" / "benign (1)_mask_1.png", 41, 30, (1, 1, 3, 3), "1")
    with pytest.raises(ValueError, match=r"benign \(1\)_mask_1\.png"):
        load_busi(busi_tree, size=16)


def test_real_sample_loads():
    folder = get_dataset("busi").locate()
    if folder is None:
        pytest.skip("BUSI absent de MEDIMG_DATA")
    data = load_busi(folder, size=32)
    index = data["index"]
    assert len(data["names"]) == len(index.table)
    assert set(data["labels"]) == {"benign", "malignant", "normal"}
    assert data["masks"][data["labels"] == "normal"].sum() == 0
    assert data["masks"][data["labels"] != "normal"].reshape(-1, 32 * 32).any(axis=1).all()
