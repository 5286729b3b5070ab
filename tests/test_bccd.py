"""BCCD loader, box checks, YOLO export and synthetic smears, on fabricated VOC trees."""

import numpy as np
import pytest
from PIL import Image

from utils.bccd import CLASSES, export_yolo, load_bccd, voc_folder, yolo_label_lines
from utils.synthetic_smear import injected_defect_counts, voc_xml, write_synthetic_bccd

WIDTH, HEIGHT = 64, 48


def make_tree(root, annotations, splits=None):
    """Write a BCCD-like tree: one small JPEG per image and the given XML texts.

    ``annotations`` maps an image id to a list of objects for ``voc_xml`` or
    to a raw string written as is. Without ``splits``, every id goes to ``train``.
    """
    voc = root / "BCCD"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for image_id, content in annotations.items():
        Image.new("RGB", (WIDTH, HEIGHT), (200, 180, 190)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        text = content if isinstance(content, str) else voc_xml(f"{image_id}.jpg", WIDTH, HEIGHT, content)
        (voc / "Annotations" / f"{image_id}.xml").write_text(text)
    splits = splits or {"train": list(annotations), "val": [], "test": []}
    for split, ids in splits.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def load_one(tmp_path, objects):
    """Load a tree with one image holding ``objects``; return (data, report counts)."""
    data = load_bccd(make_tree(tmp_path, {"img": objects}))
    return data, data.report.counts


def test_clean_boxes_all_kept(tmp_path):
    objects = [("RBC", 2, 3, 20, 22), ("WBC", 30, 10, 60, 40), ("Platelets", 5, 30, 11, 36)]
    data, counts = load_one(tmp_path, objects)
    boxes = data.records["train"][0].boxes
    assert [(b.label, b.xmin, b.ymin, b.xmax, b.ymax) for b in boxes] == objects
    assert sum(counts.values()) == 0


def test_yolo_labels_normalised_and_in_range(tmp_path):
    objects = [("RBC", 0, 0, 64, 48), ("WBC", 30, 10, 60, 40), ("Platelets", 5, 30, 11, 36), ("RBC", 50, 2, 70, 20)]
    data, _ = load_one(tmp_path, objects)
    lines = yolo_label_lines(data.records["train"][0])
    assert len(lines) == 4
    for line in lines:
        class_id, *coords = line.split()
        assert int(class_id) in range(len(CLASSES))
        assert all(0.0 <= float(value) <= 1.0 for value in coords), line
        assert float(coords[2]) > 0, line
        assert float(coords[3]) > 0, line


def test_yolo_label_values(tmp_path):
    data, _ = load_one(tmp_path, [("WBC", 16, 12, 48, 36)])
    assert yolo_label_lines(data.records["train"][0]) == ["1 0.500000 0.500000 0.500000 0.500000"]


def test_box_past_edge_clipped(tmp_path):
    data, counts = load_one(tmp_path, [("RBC", 50, 2, 70, 20)])
    box = data.records["train"][0].boxes[0]
    assert (box.xmin, box.xmax) == (50, WIDTH)
    assert counts["clipped_to_image"] == 1


def test_box_mostly_outside_dropped(tmp_path):
    data, counts = load_one(tmp_path, [("RBC", 2, 2, 20, 20), ("RBC", 60, 2, 90, 20), ("WBC", 70, 5, 90, 20)])
    assert len(data.records["train"][0].boxes) == 1
    assert counts["mostly_outside"] == 2
    assert counts["clipped_to_image"] == 0


def test_unknown_class_dropped_and_counted(tmp_path):
    data, counts = load_one(tmp_path, [("RBC", 2, 2, 20, 20), ("Neutrophil", 30, 10, 60, 40)])
    assert [b.label for b in data.records["train"][0].boxes] == ["RBC"]
    assert counts["unknown_class"] == 1
    assert ("img", "unknown_class", "'Neutrophil'") in data.report.examples


def test_class_name_case_normalised(tmp_path):
    data, counts = load_one(tmp_path, [("rbc", 2, 2, 20, 20), (" Platelets ", 30, 10, 40, 20)])
    assert [b.label for b in data.records["train"][0].boxes] == ["RBC", "Platelets"]
    assert counts["class_name_normalised"] == 2


def test_swapped_corners_fixed(tmp_path):
    data, counts = load_one(tmp_path, [("RBC", 20, 22, 2, 3)])
    box = data.records["train"][0].boxes[0]
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == (2, 3, 20, 22)
    assert counts["swapped_corners"] == 1


def test_zero_size_box_dropped(tmp_path):
    # As in BloodImage_00338 of the published dataset: xmin = xmax, ymin = ymax.
    data, counts = load_one(tmp_path, [("RBC", 2, 2, 20, 20), ("RBC", 30, 30, 30, 30)])
    assert len(data.records["train"][0].boxes) == 1
    assert counts["degenerate"] == 1


def test_shifted_duplicate_dropped(tmp_path):
    data, counts = load_one(tmp_path, [("RBC", 2, 2, 40, 40), ("RBC", 3, 3, 41, 41), ("WBC", 3, 3, 41, 41)])
    assert [b.label for b in data.records["train"][0].boxes] == ["RBC", "WBC"]
    assert counts["duplicate"] == 1


def test_unreadable_coordinates_dropped(tmp_path):
    xml = voc_xml("img.jpg", WIDTH, HEIGHT, [("RBC", 2, 2, 20, 20), ("WBC", 30, 10, 60, 40)])
    xml = xml.replace("<xmin>30</xmin>", "<xmin>trente</xmin>")
    data = load_bccd(make_tree(tmp_path, {"img": xml}))
    assert [b.label for b in data.records["train"][0].boxes] == ["RBC"]
    assert data.report.counts["unreadable_coordinates"] == 1


def test_empty_file_skips_image(tmp_path):
    data = load_bccd(make_tree(tmp_path, {"good": [("RBC", 2, 2, 20, 20)], "empty": ""}))
    assert [r.image_id for r in data.records["train"]] == ["good"]
    assert data.report.counts["empty_annotation_file"] == 1


def test_invalid_xml_skips_image(tmp_path):
    data = load_bccd(make_tree(tmp_path, {"good": [("RBC", 2, 2, 20, 20)], "broken": "<annotation><object>"}))
    assert [r.image_id for r in data.records["train"]] == ["good"]
    assert data.report.counts["invalid_xml"] == 1


def test_image_without_valid_box_skipped(tmp_path):
    data = load_bccd(make_tree(tmp_path, {"good": [("RBC", 2, 2, 20, 20)], "none": [("Neutrophil", 2, 2, 20, 20)]}))
    assert [r.image_id for r in data.records["train"]] == ["good"]
    assert data.report.counts["no_valid_box"] == 1
    assert data.report.counts["unknown_class"] == 1


def test_size_mismatch_skips_image(tmp_path):
    xml = voc_xml("big.jpg", 640, 480, [("RBC", 2, 2, 20, 20)])
    data = load_bccd(make_tree(tmp_path, {"good": [("RBC", 2, 2, 20, 20)], "big": xml}))
    assert [r.image_id for r in data.records["train"]] == ["good"]
    assert data.report.counts["size_mismatch"] == 1


def test_missing_image_and_annotation_counted(tmp_path):
    root = make_tree(tmp_path, {"good": [("RBC", 2, 2, 20, 20)], "no_xml": [("RBC", 2, 2, 20, 20)]},
                     splits={"train": ["good", "no_xml", "ghost"], "val": [], "test": []})
    (root / "BCCD" / "Annotations" / "no_xml.xml").unlink()
    data = load_bccd(root)
    assert [r.image_id for r in data.records["train"]] == ["good"]
    assert data.report.counts["missing_annotation"] == 1
    assert data.report.counts["missing_image"] == 1


def test_id_in_two_splits_kept_in_test(tmp_path):
    annotations = {name: [("RBC", 2, 2, 20, 20)] for name in ("a", "b")}
    data = load_bccd(make_tree(tmp_path, annotations, splits={"train": ["a", "b"], "val": [], "test": ["b"]}))
    assert [r.image_id for r in data.records["train"]] == ["a"]
    assert [r.image_id for r in data.records["test"]] == ["b"]
    assert data.report.counts["listed_twice"] == 1


def test_missing_split_file_raises_french_error(tmp_path):
    root = make_tree(tmp_path, {"a": [("RBC", 2, 2, 20, 20)]})
    (root / "BCCD" / "ImageSets" / "Main" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Liste officielle du split « test »"):
        load_bccd(root)


def test_wrong_layout_raises_french_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Disposition BCCD introuvable"):
        voc_folder(tmp_path)


def test_export_yolo_layout(tmp_path):
    annotations = {"a": [("RBC", 2, 2, 20, 20)], "b": [("WBC", 30, 10, 60, 40)], "c": [("Platelets", 5, 30, 11, 36)]}
    data = load_bccd(make_tree(tmp_path / "src", annotations, splits={"train": ["a"], "val": ["b"], "test": ["c"]}))
    out = export_yolo(data, tmp_path / "yolo")
    for split, image_id, class_id in (("train", "a", "0"), ("val", "b", "1"), ("test", "c", "2")):
        assert (out / "images" / split / f"{image_id}.jpg").is_file()
        label = (out / "labels" / split / f"{image_id}.txt").read_text()
        assert label.split()[0] == class_id
    assert (out / "classes.txt").read_text().split() == list(CLASSES)
    assert not list(tmp_path.glob("yolo.tmp-*"))


def test_synthetic_same_seed_same_files(tmp_path):
    first = write_synthetic_bccd(tmp_path / "one", n_images=6, seed=3) / "BCCD"
    second = write_synthetic_bccd(tmp_path / "two", n_images=6, seed=3) / "BCCD"
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(names) == 6 * 2 + 4
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_synthetic_other_seed_differs(tmp_path):
    first = write_synthetic_bccd(tmp_path / "one", n_images=5, seed=0) / "BCCD"
    second = write_synthetic_bccd(tmp_path / "two", n_images=5, seed=1) / "BCCD"
    image = "JPEGImages/SyntheticSmear_00000.jpg"
    assert not np.array_equal(np.asarray(Image.open(first / image)), np.asarray(Image.open(second / image)))


def test_synthetic_read_by_loader_with_defects_found(tmp_path):
    folder = write_synthetic_bccd(tmp_path, n_images=20, seed=0)
    data = load_bccd(folder)
    assert [len(data.records[s]) for s in ("train", "val", "test")] == [11, 5, 4]
    injected = injected_defect_counts(folder)
    assert set(injected) == {"degenerate", "duplicate", "clipped_to_image", "class_name_normalised"}
    for code, count in injected.items():
        assert data.report.counts[code] == count, code
    labels = {b.label for split in data.records.values() for r in split for b in r.boxes}
    assert labels == set(CLASSES)
