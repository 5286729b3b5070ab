"""Boxes to masks and back, the shared mAP scorer and the detection confusion matrix."""

import numpy as np
import pytest

from utils.detection import (
    boxes_to_label_map,
    confusion_matrix,
    label_map_to_boxes,
    mean_average_precision,
    precision_recall_from_confusion,
)

NAMES = ["RBC", "WBC", "Platelets"]
BOXES = np.array([[10, 10, 50, 40], [52, 10, 90, 40], [100, 60, 112, 74]], dtype=np.float32)
LABELS = np.array([0, 0, 2])


def one_hot(label_map, classes=4):
    """Return (classes, H, W) probabilities that are 1 on each pixel's label."""
    return np.eye(classes, dtype=np.float32)[label_map].transpose(2, 0, 1)


def box_iou(a, b):
    """Return the IoU of two xyxy boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_label_map_keeps_touching_boxes_apart():
    label_map = boxes_to_label_map(BOXES, LABELS, (120, 160), shrink=0.8)
    assert set(np.unique(label_map)) == {0, 1, 3}
    assert (label_map[25, 48:54] == 0).any()


def test_label_map_small_box_drawn_on_top():
    boxes = np.array([[0, 0, 100, 100], [45, 45, 55, 55]], dtype=np.float32)
    label_map = boxes_to_label_map(boxes, [0, 2], (100, 100), shrink=0.8)
    assert label_map[50, 50] == 3


def test_mask_to_boxes_round_trip():
    label_map = boxes_to_label_map(BOXES, LABELS, (120, 160), shrink=0.8)
    detections = label_map_to_boxes(one_hot(label_map), shrink=0.8)
    assert len(detections["boxes"]) == 3
    assert sorted(detections["labels"].tolist()) == [0, 0, 2]
    for truth in BOXES:
        assert max(box_iou(truth, found) for found in detections["boxes"]) > 0.85


def test_mask_to_boxes_drops_tiny_regions():
    label_map = np.zeros((30, 30), dtype=np.uint8)
    label_map[5, 5] = 1
    label_map[10:20, 10:20] = 2
    detections = label_map_to_boxes(one_hot(label_map), shrink=1.0, min_pixels=4)
    assert detections["labels"].tolist() == [1]
    assert detections["boxes"].tolist() == [[10.0, 10.0, 20.0, 20.0]]


def test_mask_to_boxes_score_is_mean_probability():
    probabilities = np.zeros((4, 20, 20), dtype=np.float32)
    probabilities[0] = 1.0
    probabilities[:, 5:10, 5:10] = np.array([0.1, 0.6, 0.2, 0.1])[:, None, None]
    detections = label_map_to_boxes(probabilities, shrink=1.0)
    assert detections["scores"].tolist() == pytest.approx([0.6])


def test_map_perfect_predictions_is_one():
    truth = [{"boxes": BOXES, "labels": LABELS}]
    prediction = [{"boxes": BOXES, "labels": LABELS, "scores": np.array([0.9, 0.8, 0.7])}]
    table = mean_average_precision(prediction, truth, NAMES)["table"]
    assert table.loc["moyenne (mAP)", "AP50"] == pytest.approx(1.0)
    assert table.loc["moyenne (mAP)", "AP50-95"] == pytest.approx(1.0)
    assert np.isnan(table.loc["WBC", "AP50"])


def test_map_wrong_class_scores_zero():
    truth = [{"boxes": BOXES[:1], "labels": np.array([0])}]
    prediction = [{"boxes": BOXES[:1], "labels": np.array([1]), "scores": np.array([0.9])}]
    table = mean_average_precision(prediction, truth, NAMES)["table"]
    assert table.loc["RBC", "AP50"] == 0.0


def test_map_confident_false_positive_lowers_ap():
    truth = [{"boxes": BOXES[:1], "labels": np.array([0])}]
    clean = [{"boxes": BOXES[:1], "labels": np.array([0]), "scores": np.array([0.5])}]
    noisy = [{"boxes": np.vstack([[200, 200, 240, 240], BOXES[0]]), "labels": np.array([0, 0]),
              "scores": np.array([0.9, 0.5])}]
    clean_ap = mean_average_precision(clean, truth, NAMES)["table"].loc["RBC", "AP50"]
    noisy_ap = mean_average_precision(noisy, truth, NAMES)["table"].loc["RBC", "AP50"]
    assert clean_ap == pytest.approx(1.0)
    assert noisy_ap == pytest.approx(0.5, abs=0.01)


def test_map_counts_more_than_100_detections():
    truth = [{"boxes": np.array([[0, 0, 10, 10]], dtype=np.float32), "labels": np.array([0])}]
    decoys = np.array([[20 + i, 20, 30 + i, 30] for i in range(150)], dtype=np.float32)
    prediction = [{"boxes": np.vstack([decoys, truth[0]["boxes"]]), "labels": np.zeros(151, dtype=int),
                   "scores": np.r_[np.full(150, 0.9), 0.1]}]
    table = mean_average_precision(prediction, truth, NAMES)["table"]
    assert table.loc["RBC", "AP50"] > 0


def test_confusion_matrix_counts():
    truth = [{"boxes": BOXES, "labels": LABELS}]
    prediction = [{
        "boxes": np.vstack([BOXES[0], BOXES[1], [130, 0, 150, 20], BOXES[2]]),
        "labels": np.array([0, 1, 1, 2]),
        "scores": np.array([0.9, 0.8, 0.7, 0.1]),
    }]
    matrix = confusion_matrix(prediction, truth, 3, score_threshold=0.25)
    assert matrix[0, 0] == 1  # RBC found as RBC
    assert matrix[1, 0] == 1  # RBC found as WBC
    assert matrix[1, 3] == 1  # WBC where there is nothing
    assert matrix[3, 2] == 1  # platelet below the score threshold: missed
    assert matrix.sum() == 4


def test_precision_recall_from_confusion():
    matrix = np.array([[8, 0, 0, 2], [0, 1, 0, 0], [0, 0, 0, 0], [2, 0, 3, 0]])
    table = precision_recall_from_confusion(matrix, NAMES)
    assert table.loc["RBC", "précision"] == pytest.approx(0.8)
    assert table.loc["RBC", "rappel"] == pytest.approx(0.8)
    assert table.loc["Platelets", "rappel"] == 0.0
    assert np.isnan(table.loc["Platelets", "précision"])
