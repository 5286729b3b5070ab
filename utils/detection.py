"""Détection d'objets : boîtes et masques, score mAP commun, matrice de confusion, dessin.

Format commun des prédictions et des vérités, celui de torchvision et de
torchmetrics : un dictionnaire par image avec ``boxes`` (N, 4) en pixels
``(xmin, ymin, xmax, ymax)``, ``labels`` (N,) entiers à partir de 0 et, pour
les prédictions, ``scores`` (N,).

Le mAP vient de ``torchmetrics.detection.MeanAveragePrecision`` (évaluation
COCO de pycocotools) : le même code note un détecteur (YOLO) et une
segmentation dont les régions sont converties en boîtes (U-Net).
"""

from __future__ import annotations

import numpy as np
import torch

MAX_DETECTIONS = 300


def boxes_to_label_map(boxes, labels, shape: tuple[int, int], shrink: float = 0.8) -> np.ndarray:
    """Draw a label map where each box becomes the ellipse inscribed in it, shrunk by ``shrink``.

    Pixel value 0 is background and ``label + 1`` marks an object of class
    ``label``. Shrinking leaves a gap between touching objects, so that
    connected components can tell them apart again. Larger boxes are drawn
    first, so a small object lying on a large one stays visible.
    """
    from skimage.draw import ellipse

    label_map = np.zeros(shape, dtype=np.uint8)
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for index in np.argsort(-areas, kind="stable"):
        xmin, ymin, xmax, ymax = boxes[index]
        # Pixel (row, col) covers [col, col + 1): its centre is at col + 0.5.
        rows, cols = ellipse(
            (ymin + ymax) / 2 - 0.5,
            (xmin + xmax) / 2 - 0.5,
            max(shrink * (ymax - ymin) / 2, 0.5),
            max(shrink * (xmax - xmin) / 2, 0.5),
            shape=shape,
        )
        label_map[rows, cols] = labels[index] + 1
    return label_map


def label_map_to_boxes(probabilities, shrink: float = 0.8, min_pixels: int = 4) -> dict[str, np.ndarray]:
    """Turn class probabilities ``(K + 1, H, W)`` (channel 0 = background) into scored boxes.

    Each connected component (8-connectivity, scikit-image) of the pixels
    whose most probable class is ``k >= 1`` becomes one box of label
    ``k - 1``. The component's bounding box is grown by ``1 / shrink``
    around its centre, undoing the shrink of ``boxes_to_label_map``, and
    clipped to the image. Its score is the mean probability of class ``k``
    over the component. Components under ``min_pixels`` pixels are dropped.
    """
    from skimage.measure import label as connected_components
    from skimage.measure import regionprops

    probabilities = np.asarray(probabilities, dtype=np.float32)
    _, height, width = probabilities.shape
    winners = probabilities.argmax(axis=0)
    boxes, scores, labels = [], [], []
    for k in range(1, probabilities.shape[0]):
        components = connected_components(winners == k, connectivity=2)
        for region in regionprops(components, intensity_image=probabilities[k]):
            if region.area < min_pixels:
                continue
            row0, col0, row1, col1 = region.bbox
            centre_x, centre_y = (col0 + col1) / 2, (row0 + row1) / 2
            half_w, half_h = (col1 - col0) / 2 / shrink, (row1 - row0) / 2 / shrink
            boxes.append([
                max(centre_x - half_w, 0.0), max(centre_y - half_h, 0.0),
                min(centre_x + half_w, float(width)), min(centre_y + half_h, float(height)),
            ])
            scores.append(float(region.intensity_mean))
            labels.append(k - 1)
    return {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "scores": np.asarray(scores, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.int64),
    }


def _as_tensors(items: list[dict], keys) -> list[dict[str, torch.Tensor]]:
    converted = []
    for item in items:
        entry = {}
        for key in keys:
            dtype = torch.int64 if key == "labels" else torch.float32
            entry[key] = torch.as_tensor(np.asarray(item[key]), dtype=dtype)
        entry["boxes"] = entry["boxes"].reshape(-1, 4)
        converted.append(entry)
    return converted


def mean_average_precision(predictions: list[dict], targets: list[dict], class_names) -> dict:
    """Score detections with torchmetrics' COCO evaluation and return per-class results.

    Returns a dict with ``table`` (pandas: AP50 and AP50-95 for each class
    and their mean over classes, the mAP), ``recall_points`` (101 recall
    levels) and ``precision_curves`` (class name -> interpolated precision at
    those recall levels, IoU 0.5, NaN where the class has no object).
    At most ``MAX_DETECTIONS`` detections per image are scored, the
    highest-scored ones: 300, as ultralytics' validator, where the COCO
    protocol keeps 100.
    """
    import pandas as pd
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(
        box_format="xyxy", iou_type="bbox", class_metrics=True, extended_summary=True, backend="pycocotools",
        max_detection_thresholds=[1, 10, MAX_DETECTIONS],
    )
    metric.update(_as_tensors(predictions, ("boxes", "scores", "labels")), _as_tensors(targets, ("boxes", "labels")))
    result = metric.compute()

    # precision[t, r, k, a, m]: IoU threshold t (0 is 0.5), recall level r,
    # class k, area range a (0 is all), detection limit m (-1 is MAX_DETECTIONS);
    # -1 marks a class without any true box. torchmetrics' own "map" reads
    # the column for 100 detections only, so the means are taken here.
    precision = result["precision"].numpy()[:, :, :, 0, -1]
    present = [int(c) for c in result["classes"].reshape(-1).tolist()]
    rows, curves = [], {}
    for index, name in enumerate(class_names):
        values = precision[:, :, present.index(index)] if index in present else np.full(precision.shape[:2], -1.0)
        valid = values > -1
        ap50 = float(values[0][valid[0]].mean()) if valid[0].any() else float("nan")
        ap = float(values[valid].mean()) if valid.any() else float("nan")
        curves[name] = np.where(valid[0], values[0], np.nan)
        rows.append({"classe": name, "AP50": ap50, "AP50-95": ap})
    table = pd.DataFrame(rows).set_index("classe")
    table.loc["moyenne (mAP)"] = table.mean(skipna=True)
    return {"table": table, "recall_points": np.linspace(0, 1, precision.shape[1]), "precision_curves": curves}


def confusion_matrix(predictions: list[dict], targets: list[dict], num_classes: int,
                     score_threshold: float = 0.25, iou_threshold: float = 0.5) -> np.ndarray:
    """Count matches between detections above ``score_threshold`` and true boxes, across classes.

    Returns a ``(K + 1, K + 1)`` matrix, rows = predicted class, columns =
    true class, with the last row and column for "background": a missed
    object adds to the last row, a detection that matches nothing to the last
    column. Matching ignores the class and is greedy and one-to-one: detections
    in descending score order each take the unmatched true box of highest IoU
    above ``iou_threshold``.
    """
    from torchvision.ops import box_iou

    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for prediction, target in zip(_as_tensors(predictions, ("boxes", "scores", "labels")),
                                  _as_tensors(targets, ("boxes", "labels"))):
        keep = prediction["scores"] >= score_threshold
        order = torch.argsort(prediction["scores"][keep], descending=True)
        boxes, labels = prediction["boxes"][keep][order], prediction["labels"][keep][order]
        matched = torch.zeros(len(target["labels"]), dtype=torch.bool)
        iou = box_iou(boxes, target["boxes"]) if len(boxes) and len(target["boxes"]) else None
        for i, label in enumerate(labels.tolist()):
            if iou is None:
                matrix[label, num_classes] += 1
                continue
            candidates = iou[i].masked_fill(matched, -1.0)
            j = int(candidates.argmax())
            if candidates[j] >= iou_threshold:
                matched[j] = True
                matrix[label, int(target["labels"][j])] += 1
            else:
                matrix[label, num_classes] += 1
        for j in torch.nonzero(~matched).reshape(-1).tolist():
            matrix[num_classes, int(target["labels"][j])] += 1
    return matrix


def precision_recall_from_confusion(matrix: np.ndarray, class_names):
    """Return a pandas table of per-class precision and recall read from ``confusion_matrix``."""
    import pandas as pd

    k = len(class_names)
    true_positives = np.diag(matrix)[:k].astype(float)
    predicted = matrix[:k, :].sum(axis=1)
    actual = matrix[:, :k].sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, true_positives / predicted, np.nan)
        recall = np.where(actual > 0, true_positives / actual, np.nan)
    return pd.DataFrame({"précision": precision, "rappel": recall}, index=pd.Index(list(class_names), name="classe"))


def draw_boxes(axis, boxes, labels, colours, scores=None, linewidth: float = 1.5, linestyle: str = "-") -> None:
    """Draw boxes on a matplotlib axis, coloured by label, with the score when given."""
    from matplotlib.patches import Rectangle

    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    labels = np.asarray(labels, dtype=int).reshape(-1)
    for index, ((xmin, ymin, xmax, ymax), label) in enumerate(zip(boxes, labels)):
        colour = colours[label]
        axis.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False,
                                 edgecolor=colour, linewidth=linewidth, linestyle=linestyle))
        if scores is not None:
            axis.text(xmin, ymin, f"{float(scores[index]):.2f}", color="white", fontsize=6,
                      bbox={"facecolor": colour, "alpha": 0.7, "pad": 0.5, "linewidth": 0})
