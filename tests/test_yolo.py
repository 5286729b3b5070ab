"""Tests of utils.yolo: label conversion, dataset YAML, offline training."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import yaml

from utils.paths import PROJECT_ROOT
from utils.yolo import mask_to_polygon_lines, write_dataset_yaml


def test_polygon_lines_normalised_per_region():
    mask = np.zeros((40, 80), dtype=bool)
    mask[10:20, 10:30] = True
    mask[25:35, 50:70] = True
    lines = mask_to_polygon_lines(mask, class_id=2)
    assert len(lines) == 2
    for line in lines:
        values = line.split()
        coordinates = np.array(values[1:], dtype=float)
        assert values[0] == "2"
        assert len(coordinates) % 2 == 0
        assert coordinates.min() >= 0
        assert coordinates.max() <= 1


def test_polygon_lines_drop_tiny_and_empty():
    mask = np.zeros((20, 20), dtype=bool)
    assert mask_to_polygon_lines(mask) == []
    mask[3, 3] = True
    assert mask_to_polygon_lines(mask) == []


def test_polygon_rasterises_back():
    import cv2

    mask = np.zeros((64, 64), dtype=np.uint8)
    cv2.ellipse(mask, (30, 28), (14, 9), 0, 0, 360, 1, -1)
    line = mask_to_polygon_lines(mask)[0]
    points = np.array(line.split()[1:], dtype=float).reshape(-1, 2) * 64
    back = np.zeros_like(mask)
    cv2.fillPoly(back, [np.round(points).astype(np.int32)], 1)
    overlap = (back & mask).sum() / (back | mask).sum()
    assert overlap > 0.9


def test_dataset_yaml_absolute(tmp_path):
    path = write_dataset_yaml(tmp_path / "set", ["lésion"])
    content = yaml.safe_load(path.read_text())
    assert os.path.isabs(content["path"])
    assert content["names"] == {0: "lésion"}
    assert content["train"] == "images/train"


def test_training_offline_from_other_cwd(tmp_path):
    """Train one epoch in a fresh process whose HOME and cwd are elsewhere."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        import numpy as np
        from PIL import Image
        from utils import yolo
        from utils.synthetic_ultrasound import synthetic_busi

        folder = yolo.configure_ultralytics()
        root = {str(tmp_path / "dataset")!r}
        data = synthetic_busi(2, size=64)
        from pathlib import Path
        for split in ("train", "val"):
            (Path(root) / "images" / split).mkdir(parents=True)
            (Path(root) / "labels" / split).mkdir(parents=True)
            for i, (image, mask) in enumerate(zip(data["images"], data["masks"])):
                Image.fromarray((image * 255).astype(np.uint8)).save(f"{{root}}/images/{{split}}/{{i}}.png")
                lines = yolo.mask_to_polygon_lines(mask)
                Path(f"{{root}}/labels/{{split}}/{{i}}.txt").write_text("\\n".join(lines))
        model = yolo.build_yolo("yolo26n-seg.yaml")
        yolo.train_yolo(model, yolo.write_dataset_yaml(root, ["lesion"]), name="test_offline",
                        notebook="tests", epochs=1, imgsz=64, batch=2, device="cpu")
        result = model.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, verbose=False)[0]
        print("MASK", yolo.predicted_mask(result).shape)
        from ultralytics.utils import USER_CONFIG_DIR
        print("CONFIG", USER_CONFIG_DIR)
        """
    )
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    environment = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    environment.pop("YOLO_CONFIG_DIR", None)
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "MASK (64, 64)" in completed.stdout
    assert f"CONFIG {PROJECT_ROOT / 'outputs'}" in completed.stdout
    assert list(home.rglob("*ltralytics*")) == []
    assert list(work.iterdir()) == []
    assert (PROJECT_ROOT / "outputs" / "tests" / "yolo" / "test_offline" / "weights" / "last.pt").is_file()


def test_predicted_mask_confidence_filter():
    import torch
    from types import SimpleNamespace

    from utils.yolo import predicted_mask

    square = np.array([[2, 2], [10, 2], [10, 10], [2, 10]], dtype=float)
    far_square = square + 20
    result = SimpleNamespace(
        orig_shape=(40, 50),
        masks=SimpleNamespace(xy=[square, far_square]),
        boxes=SimpleNamespace(conf=torch.tensor([0.9, 0.2])),
    )
    both = predicted_mask(result)
    confident = predicted_mask(result, min_confidence=0.5)
    assert both.shape == (40, 50)
    assert both[5, 5]
    assert both[25, 25]
    assert confident[5, 5]
    assert not confident[25, 25]
    top_instance = predicted_mask(result, max_instances=1)
    assert top_instance[5, 5]
    assert not top_instance[25, 25]


def test_predicted_mask_no_detection():
    from types import SimpleNamespace

    from utils.yolo import predicted_mask

    result = SimpleNamespace(orig_shape=(8, 6), masks=None, boxes=None)
    mask = predicted_mask(result)
    assert mask.shape == (8, 6)
    assert not mask.any()
