"""Jeu BCCD (frottis sanguins, boîtes Pascal VOC) : lecture, contrôle, conversion YOLO.

Le chargeur lit la disposition publiée sur GitHub (Shenggan/BCCD_Dataset) ::

    BCCD_Dataset/BCCD/JPEGImages/BloodImage_00000.jpg
    BCCD_Dataset/BCCD/Annotations/BloodImage_00000.xml
    BCCD_Dataset/BCCD/ImageSets/Main/{train,val,test}.txt

Chaque boîte est confrontée à son image. Une boîte est corrigée quand la
correction ne change pas ce qu'elle désigne (coins inversés, débord du cadre,
casse du nom de classe) ; sinon elle est supprimée (classe inconnue, boîte
dégénérée ou presque entièrement hors de l'image, doublon). Une image dont
l'annotation est illisible, vide ou sans boîte valide est écartée. Tout est
compté dans un ``CheckReport``.

La version publique contient deux boîtes de taille nulle
(``BloodImage_00338`` et ``BloodImage_00343``) et sept globules rouges
annotés deux fois, à 2 pixels près : le contrôle les retire.

La conversion au format YOLO écrit une copie dans ``outputs/cache/`` (la
racine des données reste en lecture seule), nommée d'après une empreinte
des annotations corrigées, et ne la refait que si elles changent.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .cache import cache_key
from .paths import cache_dir

CLASSES = ("RBC", "WBC", "Platelets")
CLASS_NAMES_FR = {"RBC": "globule rouge", "WBC": "globule blanc", "Platelets": "plaquette"}
SPLITS = ("train", "val", "test")

# A box narrower or lower than this (in pixels) marks no cell: the smallest
# platelets of BCCD are about 20 pixels wide.
MIN_BOX_SIDE_PX = 2.0
# A clipped box is kept only if at least this fraction of its area lies inside
# the image. A box further out is too far off to trust.
MIN_INSIDE_FRACTION = 0.5
# Two boxes of one class overlapping this much mark the same cell twice.
DUPLICATE_IOU = 0.9
_DUPLICATE_IOU_FR = f"{DUPLICATE_IOU:g}".replace(".", ",")

# Problem code -> (level, French description, action taken).
PROBLEMS = {
    "class_name_normalised": ("boîte", "nom de classe écrit autrement (casse, espaces)", "corrigée"),
    "swapped_corners": ("boîte", "coins inversés (xmin > xmax ou ymin > ymax)", "corrigée"),
    "clipped_to_image": ("boîte", "boîte qui dépasse du cadre de l'image", "rognée au cadre"),
    "unknown_class": ("boîte", "nom de classe inconnu", "supprimée"),
    "unreadable_coordinates": ("boîte", "coordonnées absentes ou non numériques", "supprimée"),
    "degenerate": ("boîte", f"largeur ou hauteur < {MIN_BOX_SIDE_PX:g} px", "supprimée"),
    "mostly_outside": ("boîte", "moins de la moitié de la boîte dans l'image", "supprimée"),
    "duplicate": ("boîte", f"doublon d'une boîte de même classe (IoU > {_DUPLICATE_IOU_FR})", "supprimée"),
    "size_missing": ("image", "taille absente du XML", "taille lue dans l'image"),
    "size_mismatch": ("image", "taille du XML différente de celle de l'image", "image écartée"),
    "empty_annotation_file": ("image", "fichier d'annotation vide", "image écartée"),
    "invalid_xml": ("image", "fichier d'annotation illisible (XML invalide)", "image écartée"),
    "missing_annotation": ("image", "fichier d'annotation absent", "image écartée"),
    "missing_image": ("image", "image absente ou illisible", "image écartée"),
    "no_valid_box": ("image", "aucune boîte valide après contrôle", "image écartée"),
    "listed_twice": ("image", "identifiant listé deux fois dans les fichiers de split", "gardé une fois"),
}


class AnnotationError(ValueError):
    """An annotation file that cannot be used; ``code`` is a key of ``PROBLEMS``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Box:
    """One checked box in pixel corner coordinates of its image."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    @property
    def class_id(self) -> int:
        """Index of the label in ``CLASSES``."""
        return CLASSES.index(self.label)

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin


@dataclass
class ImageRecord:
    """One image kept after the checks, with its split and its boxes."""

    image_id: str
    split: str
    image_path: Path
    width: int
    height: int
    boxes: list[Box]


@dataclass
class CheckReport:
    """Counts of every problem found and what was done, with the first examples."""

    counts: Counter = field(default_factory=Counter)
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    max_examples: int = 50

    def add(self, code: str, image_id: str, detail: str = "") -> None:
        """Count one occurrence of problem ``code`` in ``image_id``."""
        if code not in PROBLEMS:
            raise KeyError(f"Code de problème inconnu : {code}")
        self.counts[code] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((image_id, code, detail))

    def table(self):
        """Return a French pandas table of every problem kind, its action and count."""
        import pandas as pd

        rows = [
            {"niveau": level, "problème": text, "action": action, "nombre": self.counts.get(code, 0)}
            for code, (level, text, action) in PROBLEMS.items()
        ]
        return pd.DataFrame(rows)

    def examples_table(self):
        """Return the recorded examples as a French pandas table."""
        import pandas as pd

        rows = [
            {"image": image_id, "problème": PROBLEMS[code][1], "détail": detail}
            for image_id, code, detail in self.examples
        ]
        return pd.DataFrame(rows, columns=["image", "problème", "détail"])


@dataclass
class BCCDData:
    """The checked images of each split and the report of the checks."""

    root: Path
    records: dict[str, list[ImageRecord]]
    report: CheckReport

    def boxes_table(self):
        """Return one row per kept box: split, image, class, size and centre in pixels."""
        import pandas as pd

        rows = []
        for split, records in self.records.items():
            for record in records:
                for box in record.boxes:
                    rows.append(
                        {
                            "split": split,
                            "image": record.image_id,
                            "classe": box.label,
                            "largeur": box.width,
                            "hauteur": box.height,
                            "x_centre": (box.xmin + box.xmax) / 2,
                            "y_centre": (box.ymin + box.ymax) / 2,
                        }
                    )
        return pd.DataFrame(rows, columns=["split", "image", "classe", "largeur", "hauteur", "x_centre", "y_centre"])


def voc_folder(root: Path) -> Path:
    """Return the folder holding ``JPEGImages``, ``Annotations`` and ``ImageSets``.

    ``root`` may be the cloned repository (``BCCD_Dataset``) or its ``BCCD``
    subfolder. Raises a French ``FileNotFoundError`` naming what is missing.
    """
    root = Path(root)
    for candidate in (root / "BCCD", root):
        if (candidate / "Annotations").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    raise FileNotFoundError(
        f"Disposition BCCD introuvable sous {root} : il faut les dossiers "
        "BCCD/JPEGImages et BCCD/Annotations (dépôt GitHub Shenggan/BCCD_Dataset)."
    )


def read_splits(folder: Path, report: CheckReport, splits=SPLITS) -> dict[str, list[str]]:
    """Read the official image lists ``ImageSets/Main/<split>.txt``.

    An identifier listed twice, in one list or in two, is kept once: in the
    test list first, then validation, then training, so that no test image
    can leak into training.
    """
    lists = {}
    for split in splits:
        path = folder / "ImageSets" / "Main" / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(
                f"Liste officielle du split « {split} » introuvable : {path}. "
                "Le dépôt BCCD_Dataset la fournit dans BCCD/ImageSets/Main/."
            )
        lists[split] = [line.strip() for line in path.read_text().splitlines() if line.strip()]

    priority = sorted(lists, key=lambda split: {"test": 0, "val": 1}.get(split, 2))
    seen = set()
    kept = {}
    for split in priority:
        kept[split] = []
        for image_id in lists[split]:
            if image_id in seen:
                report.add("listed_twice", image_id, split)
                continue
            seen.add(image_id)
            kept[split].append(image_id)
    return {split: kept[split] for split in splits}


def parse_annotation(path: Path) -> tuple[tuple[int, int] | None, list[dict]]:
    """Read a Pascal VOC file and return ``(width, height)`` or None, and its objects.

    Each object is a dict with the raw ``name`` and the four raw coordinate
    strings. Raises ``AnnotationError`` for an empty or invalid file.
    """
    if path.stat().st_size == 0:
        raise AnnotationError("empty_annotation_file", f"{path.name} est vide")
    try:
        tree = ET.parse(path)
    except ET.ParseError as error:
        raise AnnotationError("invalid_xml", f"{path.name} : {error}") from error

    root = tree.getroot()
    size = None
    try:
        width = int(float(root.findtext("size/width", "")))
        height = int(float(root.findtext("size/height", "")))
        if width > 0 and height > 0:
            size = (width, height)
    except ValueError:
        pass

    objects = []
    for element in root.iter("object"):
        bndbox = element.find("bndbox")
        coords = {key: (bndbox.findtext(key) if bndbox is not None else None) for key in ("xmin", "ymin", "xmax", "ymax")}
        objects.append({"name": element.findtext("name") or "", **coords})
    return size, objects


def _iou(a: Box, b: Box) -> float:
    inter_w = max(0.0, min(a.xmax, b.xmax) - max(a.xmin, b.xmin))
    inter_h = max(0.0, min(a.ymax, b.ymax) - max(a.ymin, b.ymin))
    inter = inter_w * inter_h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def check_objects(objects: list[dict], width: int, height: int, image_id: str, report: CheckReport) -> list[Box]:
    """Check raw VOC objects against a ``width`` x ``height`` image and return the kept boxes.

    Coordinates are read as pixel corners, without the 1-pixel shift some
    converters apply to VOC's 1-based indices: the shift is smaller than the
    annotation noise of BCCD. Every fix and every drop is counted in ``report``.
    """
    canonical = {name.casefold(): name for name in CLASSES}
    kept: list[Box] = []
    for obj in objects:
        raw_name = obj["name"]
        label = canonical.get(raw_name.strip().casefold())
        if label is None:
            report.add("unknown_class", image_id, repr(raw_name))
            continue
        if label != raw_name:
            report.add("class_name_normalised", image_id, f"{raw_name!r} -> {label!r}")

        try:
            xmin, ymin, xmax, ymax = (float(obj[key]) for key in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            report.add("unreadable_coordinates", image_id, f"{label} {[obj[k] for k in ('xmin', 'ymin', 'xmax', 'ymax')]}")
            continue
        if xmin > xmax or ymin > ymax:
            report.add("swapped_corners", image_id, f"{label} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
            xmin, xmax = sorted((xmin, xmax))
            ymin, ymax = sorted((ymin, ymax))

        area = (xmax - xmin) * (ymax - ymin)
        clipped = (max(xmin, 0.0), max(ymin, 0.0), min(xmax, float(width)), min(ymax, float(height)))
        if min(xmax - xmin, ymax - ymin) < MIN_BOX_SIDE_PX:
            report.add("degenerate", image_id, f"{label} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
            continue
        if clipped != (xmin, ymin, xmax, ymax):
            inside = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
            if inside < MIN_INSIDE_FRACTION * area or min(clipped[2] - clipped[0], clipped[3] - clipped[1]) < MIN_BOX_SIDE_PX:
                report.add("mostly_outside", image_id, f"{label} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
                continue
            report.add("clipped_to_image", image_id, f"{label} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")

        box = Box(label, *clipped)
        twin = next((other for other in kept if other.label == label and _iou(other, box) > DUPLICATE_IOU), None)
        if twin is not None:
            report.add("duplicate", image_id, f"{label} ({box.xmin:g}, {box.ymin:g}, {box.xmax:g}, {box.ymax:g})")
            continue
        kept.append(box)
    return kept


def load_record(folder: Path, image_id: str, split: str, report: CheckReport) -> ImageRecord | None:
    """Read and check one image and its annotation; return None when it is set aside."""
    image_path = folder / "JPEGImages" / f"{image_id}.jpg"
    xml_path = folder / "Annotations" / f"{image_id}.xml"
    try:
        with Image.open(image_path) as image:
            image_size = image.size
    except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
        report.add("missing_image", image_id, f"{image_path.name} : {type(error).__name__}")
        return None
    if not xml_path.is_file():
        report.add("missing_annotation", image_id, xml_path.name)
        return None
    try:
        xml_size, objects = parse_annotation(xml_path)
    except AnnotationError as error:
        report.add(error.code, image_id, str(error))
        return None

    if xml_size is None:
        report.add("size_missing", image_id, f"image {image_size[0]}×{image_size[1]}")
    elif xml_size != image_size:
        report.add("size_mismatch", image_id, f"XML {xml_size[0]}×{xml_size[1]}, image {image_size[0]}×{image_size[1]}")
        return None

    boxes = check_objects(objects, *image_size, image_id, report)
    if not boxes:
        report.add("no_valid_box", image_id, f"{len(objects)} objet(s) dans le XML")
        return None
    return ImageRecord(image_id, split, image_path, image_size[0], image_size[1], boxes)


def load_bccd(root: Path, splits=SPLITS) -> BCCDData:
    """Load and check every image of the official ``splits`` of BCCD found at ``root``."""
    folder = voc_folder(root)
    report = CheckReport()
    ids = read_splits(folder, report, splits)
    records = {}
    for split in splits:
        loaded = (load_record(folder, image_id, split, report) for image_id in ids[split])
        records[split] = [record for record in loaded if record is not None]
    return BCCDData(folder, records, report)


def yolo_label_lines(record: ImageRecord) -> list[str]:
    """Return the YOLO label lines ``class x_centre y_centre width height`` (normalised)."""
    lines = []
    for box in record.boxes:
        x_centre = (box.xmin + box.xmax) / 2 / record.width
        y_centre = (box.ymin + box.ymax) / 2 / record.height
        lines.append(
            f"{box.class_id} {x_centre:.6f} {y_centre:.6f} "
            f"{box.width / record.width:.6f} {box.height / record.height:.6f}"
        )
    return lines


def export_yolo(data: BCCDData, folder: Path) -> Path:
    """Write ``images/<split>/`` and ``labels/<split>/`` in the YOLO layout under ``folder``.

    The tree is built in a temporary folder and renamed at the end, so an
    interrupted export never looks complete. Returns ``folder``.
    """
    folder = Path(folder)
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for split, records in data.records.items():
        (staging / "images" / split).mkdir(parents=True)
        (staging / "labels" / split).mkdir(parents=True)
        for record in records:
            shutil.copyfile(record.image_path, staging / "images" / split / record.image_path.name)
            label_path = staging / "labels" / split / f"{record.image_id}.txt"
            label_path.write_text("\n".join(yolo_label_lines(record)) + "\n")
    (staging / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (staging / "check_report.json").write_text(
        json.dumps({code: data.report.counts.get(code, 0) for code in PROBLEMS}, indent=2) + "\n"
    )
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    return folder


def records_fingerprint(data: BCCDData) -> str:
    """Return a hash of the kept boxes and image files, which names the YOLO cache."""
    content = {
        split: [
            [record.image_id, record.image_path.stat().st_size, record.image_path.stat().st_mtime_ns,
             [[box.label, box.xmin, box.ymin, box.xmax, box.ymax] for box in record.boxes]]
            for record in records
        ]
        for split, records in data.records.items()
    }
    return cache_key(classes=CLASSES, root=str(data.root), records=content)


def prepare_yolo_dataset(data: BCCDData, name: str = "bccd_yolo") -> Path:
    """Return the YOLO copy of ``data`` under ``outputs/cache/``, writing it if needed."""
    folder = cache_dir() / f"{name}-{records_fingerprint(data)}"
    if (folder / "classes.txt").is_file():
        return folder
    return export_yolo(data, folder)
