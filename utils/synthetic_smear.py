"""Frottis sanguins synthétiques et déterministes, écrits dans la disposition de BCCD.

Quand BCCD est absent, le notebook de détection entraîne et évalue ses modèles
sur ces images. Elles sont écrites comme le dépôt publié (``BCCD/JPEGImages``,
``BCCD/Annotations`` en Pascal VOC, ``BCCD/ImageSets/Main``), si bien que le
même chargeur (``utils.bccd``) les lit.

Chaque image de 640×480 pixels montre, sur un fond de plasma rosé :

- des globules rouges (RBC) : disques rose-rouge d'environ 95 pixels, plus
  clairs au centre (la pâleur centrale), qui se touchent ou se chevauchent ;
- le plus souvent un globule blanc (WBC) : cellule d'environ 180 pixels au
  cytoplasme pâle et au noyau violet formé de plusieurs lobes ;
- quelques plaquettes : petits amas violets de 20 à 50 pixels.

Les tailles suivent celles des boîtes de BCCD. Comme dans BCCD, les cellules
coupées par le bord sont annotées avec leur partie visible.

Le split d'entraînement reçoit volontairement quatre défauts d'annotation. Deux
viennent de BCCD : une boîte de taille nulle et un doublon décalé de 2 pixels.
Deux autres sont des cas que le contrôle doit aussi traiter : une boîte qui
dépasse du cadre et un nom de classe en minuscules. Leur liste est écrite dans
``defects.json``.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from .cache import cache_key
from .paths import cache_dir

WIDTH, HEIGHT = 640, 480
GENERATOR_VERSION = 3
SPLIT_FRACTIONS = {"train": 0.56, "val": 0.24, "test": 0.20}  # as in BCCD: 205 / 87 / 72 images

PLASMA_RGB = np.array([0.86, 0.87, 0.89])
RBC_RGB = np.array([0.76, 0.58, 0.66])
PALLOR_RGB = np.array([0.90, 0.84, 0.87])
WBC_CYTOPLASM_RGB = np.array([0.83, 0.79, 0.89])
NUCLEUS_RGB = np.array([0.42, 0.30, 0.72])
PLATELET_RGB = np.array([0.52, 0.38, 0.74])


def _paint(canvas: np.ndarray, centre, radii, angle: float, colour_fn) -> tuple[float, float, float, float] | None:
    """Blend one anti-aliased ellipse into ``canvas`` and return its visible box.

    ``colour_fn(r)`` gives the RGB colour (H, W, 3) from the normalised
    elliptical radius ``r`` (0 at the centre, 1 on the edge). Returns None
    when no pixel of the ellipse is inside the canvas.
    """
    height, width, _ = canvas.shape
    reach = max(radii) + 2
    x0, x1 = int(max(0, np.floor(centre[0] - reach))), int(min(width, np.ceil(centre[0] + reach)))
    y0, y1 = int(max(0, np.floor(centre[1] - reach))), int(min(height, np.ceil(centre[1] + reach)))
    if x1 <= x0 or y1 <= y0:
        return None

    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xs + 0.5 - centre[0], ys + 0.5 - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (dx * cos + dy * sin) / radii[0], (-dx * sin + dy * cos) / radii[1]
    r = np.hypot(u, v)
    # Coverage falls from 1 to 0 over about one pixel across the edge.
    coverage = np.clip((1.0 - r) * min(radii) + 0.5, 0.0, 1.0)
    if not (coverage > 0.5).any():
        return None

    alpha = coverage[..., None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - alpha) + colour_fn(r) * alpha
    rows, cols = np.nonzero(coverage > 0.5)
    return float(x0 + cols.min()), float(y0 + rows.min()), float(x0 + cols.max() + 1), float(y0 + rows.max() + 1)


def _far_enough(centre, radius, placed, overlap: float) -> bool:
    """Return whether a cell at ``centre`` overlaps each placed cell by less than ``overlap`` of the radii."""
    return all(np.hypot(centre[0] - x, centre[1] - y) >= (1 - overlap) * (radius + r) for x, y, r in placed)


def render_smear(rng: np.random.Generator, width: int = WIDTH, height: int = HEIGHT):
    """Draw one smear and return ``(image uint8 (H, W, 3), objects)``.

    ``objects`` lists ``(label, xmin, ymin, xmax, ymax)`` in pixels for the
    visible part of every cell.
    """
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    shading = 1 + 0.04 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 1.5) + rng.uniform()))
    canvas = PLASMA_RGB * shading[..., None]
    objects: list[tuple[str, float, float, float, float]] = []
    placed: list[tuple[float, float, float]] = []

    n_wbc = rng.choice([0, 1, 2], p=[0.05, 0.85, 0.10])
    wbc_cells = []
    for _ in range(n_wbc):
        for _attempt in range(30):
            radius = rng.uniform(80, 115)
            centre = (rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height)
            if _far_enough(centre, radius, placed, 0.0):
                placed.append((*centre, radius))
                wbc_cells.append((centre, radius))
                break

    for _ in range(rng.integers(10, 22)):
        for _attempt in range(30):
            radius = rng.uniform(45, 60)
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            if _far_enough(centre, radius, placed, 0.3):
                placed.append((*centre, radius))
                stretch = rng.uniform(0.88, 1.0)
                tint = RBC_RGB + rng.normal(0, 0.02, 3)

                def rbc_colour(r, tint=tint):
                    # Biconcave disc: darker rim, pale centre.
                    pallor = 0.85 * np.exp(-((r / 0.5) ** 4))
                    rim = 0.12 * np.clip((r - 0.7) / 0.3, 0, 1)
                    return tint * (1 - rim[..., None]) + pallor[..., None] * (PALLOR_RGB - tint)

                box = _paint(canvas, centre, (radius, radius * stretch), rng.uniform(0, np.pi), rbc_colour)
                if box is not None:
                    objects.append(("RBC", *box))
                break

    for centre, radius in wbc_cells:
        box = _paint(canvas, centre, (radius, radius * rng.uniform(0.85, 1.0)), rng.uniform(0, np.pi),
                     lambda r: np.broadcast_to(WBC_CYTOPLASM_RGB, (*r.shape, 3)))
        n_lobes = rng.integers(2, 5)
        start = rng.uniform(0, 2 * np.pi)
        for k in range(n_lobes):
            angle = start + 2 * np.pi * k / n_lobes
            offset = 0.30 * radius
            lobe_centre = (centre[0] + offset * np.cos(angle), centre[1] + offset * np.sin(angle))
            lobe_radius = radius * rng.uniform(0.30, 0.42)
            _paint(canvas, lobe_centre, (lobe_radius, lobe_radius * rng.uniform(0.7, 1.0)), rng.uniform(0, np.pi),
                   lambda r: NUCLEUS_RGB * (1 + 0.08 * r[..., None]))
        if box is not None:
            objects.append(("WBC", *box))

    for _ in range(rng.choice([1, 2, 2, 3, 3])):
        centre = (rng.uniform(20, width - 20), rng.uniform(20, height - 20))
        radius = rng.uniform(11, 18)
        boxes = [_paint(canvas, centre, (radius, radius * rng.uniform(0.6, 1.0)), rng.uniform(0, np.pi),
                        lambda r: np.broadcast_to(PLATELET_RGB, (*r.shape, 3)))]
        for _bud in range(rng.integers(0, 3)):
            bud_centre = (centre[0] + rng.normal(0, radius * 0.6), centre[1] + rng.normal(0, radius * 0.6))
            bud_radius = radius * rng.uniform(0.4, 0.7)
            boxes.append(_paint(canvas, bud_centre, (bud_radius, bud_radius), 0.0,
                                lambda r: np.broadcast_to(PLATELET_RGB * 0.95, (*r.shape, 3))))
        boxes = [b for b in boxes if b is not None]
        if boxes:
            objects.append(("Platelets", min(b[0] for b in boxes), min(b[1] for b in boxes),
                            max(b[2] for b in boxes), max(b[3] for b in boxes)))

    canvas = gaussian_filter(canvas, sigma=(1.0, 1.0, 0))
    canvas = canvas + rng.normal(0, 0.015, canvas.shape)
    image = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    return image, objects


def voc_xml(filename: str, width: int, height: int, objects) -> str:
    """Return a Pascal VOC annotation in the layout of BCCD's files."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for label, xmin, ymin, xmax, ymax in objects:
        element = ET.SubElement(root, "object")
        ET.SubElement(element, "name").text = label
        ET.SubElement(element, "pose").text = "Unspecified"
        truncated = xmin <= 0 or ymin <= 0 or xmax >= width or ymax >= height
        ET.SubElement(element, "truncated").text = str(int(truncated))
        ET.SubElement(element, "difficult").text = "0"
        bndbox = ET.SubElement(element, "bndbox")
        for key, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            ET.SubElement(bndbox, key).text = str(int(round(value)))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _inject_defect(objects: list, kind: str, width: int, height: int) -> tuple[list, int] | None:
    """Return ``objects`` with one deliberate defect of ``kind`` and the number of boxes it touches.

    Returns None when the image has no box the defect can be applied to.
    """
    inner = [o for o in objects if o[0] == "RBC" and min(o[1], o[2], width - o[3], height - o[4]) >= 2]
    if kind == "degenerate" and inner:  # as BloodImage_00338: xmin = xmax and ymin = ymax
        _, xmin, ymin, _, _ = inner[0]
        return objects + [("RBC", xmin, ymin, xmin, ymin)], 1
    if kind == "duplicate" and inner:  # as BloodImage_00020: the same cell again, 2 pixels away
        _, xmin, ymin, xmax, ymax = inner[0]
        return objects + [("RBC", xmin - 2, ymin - 2, xmax - 2, ymax - 2)], 1
    if kind == "clipped_to_image":
        # A cell cut by the right edge, annotated 6 pixels past it: clipping restores the true box.
        for index, (label, xmin, ymin, xmax, ymax) in enumerate(objects):
            if xmax >= width and xmax - xmin > 20:
                return objects[:index] + [(label, xmin, ymin, width + 6, ymax)] + objects[index + 1:], 1
        return None
    if kind == "class_name_normalised":
        renamed = [("rbc" if o[0] == "RBC" else o[0], *o[1:]) for o in objects]
        return renamed, sum(1 for o in objects if o[0] == "RBC")
    return None


DEFECTS = ("degenerate", "duplicate", "clipped_to_image", "class_name_normalised")


def split_ids(ids: list[str]) -> dict[str, list[str]]:
    """Cut ``ids`` in order into the train, val and test lists of ``SPLIT_FRACTIONS``."""
    n_train = round(SPLIT_FRACTIONS["train"] * len(ids))
    n_val = round(SPLIT_FRACTIONS["val"] * len(ids))
    return {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}


def write_synthetic_bccd(folder: Path, n_images: int, seed: int = 0) -> Path:
    """Write ``n_images`` smears under ``folder/BCCD/`` in the BCCD layout and return ``folder``.

    Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so the
    files are identical for the same arguments.
    """
    if n_images < 5:
        raise ValueError(f"Il faut au moins 5 images synthétiques pour remplir les trois splits (reçu {n_images}).")
    folder = Path(folder)
    voc = folder / "BCCD"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)

    ids = [f"SyntheticSmear_{i:05d}" for i in range(n_images)]
    splits = split_ids(ids)
    train_ids = set(splits["train"])
    pending = list(DEFECTS)
    injected = {}
    for i, image_id in enumerate(ids):
        image, objects = render_smear(np.random.default_rng([seed, i]))
        if image_id in train_ids and pending:
            result = _inject_defect(objects, pending[0], WIDTH, HEIGHT)
            if result is not None:
                objects, count = result
                injected[image_id] = {"defect": pending.pop(0), "count": count}
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=92)
        (voc / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.jpg", WIDTH, HEIGHT, objects))

    for split, members in {**splits, "trainval": splits["train"] + splits["val"]}.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{m}\n" for m in members))
    (folder / "defects.json").write_text(json.dumps(injected, indent=2) + "\n")
    return folder


def synthetic_bccd(n_images: int, seed: int = 0) -> Path:
    """Return a cached folder of ``n_images`` synthetic smears, writing it if needed."""
    key = cache_key(n_images=n_images, seed=seed, version=GENERATOR_VERSION)
    folder = cache_dir() / f"synthetic_bccd-{key}"
    if (folder / "defects.json").is_file():
        return folder
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    write_synthetic_bccd(staging, n_images, seed)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def injected_defect_counts(folder: Path) -> dict[str, int]:
    """Return how many boxes of each defect kind the generator injected in ``folder``."""
    counts: dict[str, int] = {}
    for entry in json.loads((Path(folder) / "defects.json").read_text()).values():
        counts[entry["defect"]] = counts.get(entry["defect"], 0) + entry["count"]
    return counts
