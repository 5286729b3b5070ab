"""Chargeur de BUSI (Breast Ultrasound Images, Al-Dhabyani et al. 2020), disposition Kaggle.

Disposition publiée : ``Dataset_BUSI_with_GT/<classe>/<classe> (<n>).png`` et,
à côté, ``<classe> (<n>)_mask.png``, avec ``<classe>`` parmi ``benign``,
``malignant`` et ``normal``. Irrégularités des fichiers réels, toutes gérées :

- une image à plusieurs lésions a des masques supplémentaires
  ``_mask_1.png``, ``_mask_2.png`` : le masque de l'image est leur union ;
- les masques sont enregistrés en mode ``1`` (binaire), ``L``, ``RGB`` ou
  ``RGBA`` (canal alpha opaque, sans information) ;
- les images sont en RGB bien que l'échographie soit en niveaux de gris, et
  quelques-unes portent des annotations en couleur : elles sont converties en
  luminance ;
- les tailles varient d'une image à l'autre et les images ne sont pas carrées ;
- les images normales ont un masque entièrement noir ;
- chaque dossier de classe contient un fichier ``test.txt`` vide, ignoré.

Tout fichier hors de ce format, tout masque sans image ou image sans masque
est écarté, compté et rapporté. Un masque dont la taille diffère de celle de
son image lève une erreur qui nomme le fichier.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLASSES = ("benign", "malignant", "normal")

_NAME = re.compile(r"^(benign|malignant|normal) \((\d+)\)(_mask(?:_(\d+))?)?\.png$", re.IGNORECASE)


@dataclass
class BusiIndex:
    """Files of a BUSI folder: one row per image with its masks, and the skipped files."""

    root: Path
    table: "object"  # pandas DataFrame: name, label, number, image, masks, mask_count
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skipped_summary(self) -> str:
        """Return a French sentence that counts the skipped files by reason."""
        if not self.skipped:
            return "Aucun fichier écarté."
        reasons: dict[str, int] = {}
        for _, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        details = " ; ".join(f"{reason} : {count}" for reason, count in sorted(reasons.items()))
        return f"{len(self.skipped)} fichier(s) écarté(s) ({details})."


def index_busi(root: Path) -> BusiIndex:
    """List the images of ``root`` (the ``Dataset_BUSI_with_GT`` folder) with their mask files.

    Raises a French FileNotFoundError when a class folder is missing.
    """
    import pandas as pd

    root = Path(root)
    rows = []
    skipped: list[tuple[str, str]] = []
    for label in CLASSES:
        folder = root / label
        if not folder.is_dir():
            raise FileNotFoundError(
                f"Dossier de classe manquant : {folder}. BUSI attend les dossiers "
                f"{', '.join(CLASSES)} sous {root} (disposition Kaggle)."
            )
        images: dict[int, Path] = {}
        masks: dict[int, list[tuple[int, Path]]] = {}
        for path in sorted(folder.iterdir()):
            match = _NAME.match(path.name)
            if match is None or not path.is_file():
                skipped.append((f"{label}/{path.name}", "nom hors du format publié"))
                continue
            if match.group(1).lower() != label:
                skipped.append((f"{label}/{path.name}", "classe du nom différente de celle du dossier"))
                continue
            number = int(match.group(2))
            if match.group(3) is None:
                images[number] = path
            else:
                order = int(match.group(4)) if match.group(4) else 0
                masks.setdefault(number, []).append((order, path))

        for number in sorted(set(images) | set(masks)):
            if number not in images:
                for _, path in masks[number]:
                    skipped.append((f"{label}/{path.name}", "masque sans image"))
                continue
            if number not in masks:
                skipped.append((f"{label}/{images[number].name}", "image sans masque"))
                continue
            mask_paths = tuple(path for _, path in sorted(masks[number]))
            rows.append(
                {
                    "name": images[number].stem,
                    "label": label,
                    "number": number,
                    "image": images[number],
                    "masks": mask_paths,
                    "mask_count": len(mask_paths),
                }
            )
    table = pd.DataFrame(rows, columns=["name", "label", "number", "image", "masks", "mask_count"])
    return BusiIndex(root=root, table=table, skipped=skipped)


def read_mask(path: Path) -> np.ndarray:
    """Read one BUSI mask file as a boolean array, whatever its PNG mode.

    Colour masks use the maximum over their colour channels (alpha ignored).
    Masks stored as 0/1 and as 0/255 are both accepted.
    """
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image)
    if array.dtype == bool:
        return array
    if array.ndim == 3:
        array = array[..., :3].max(axis=2)
    if array.max() <= 1:
        return array > 0
    return array >= 128


def read_case(image_path: Path, mask_paths: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read one image as grey levels in [0, 1] and the union of its masks, at full size.

    Raises a French ValueError naming the mask file whose size differs from
    the image.
    """
    from PIL import Image

    with Image.open(image_path) as image:
        grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    union = np.zeros(grey.shape, dtype=bool)
    for path in mask_paths:
        mask = read_mask(path)
        if mask.shape != grey.shape:
            raise ValueError(
                f"Masque incompatible avec son image : {path} mesure "
                f"{mask.shape[1]}×{mask.shape[0]} pixels, l'image {Path(image_path).name} "
                f"{grey.shape[1]}×{grey.shape[0]}. Remplacez ce fichier par celui de la "
                "distribution Kaggle ou retirez l'image et ses masques."
            )
        union |= mask
    return grey, union


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2D float array to ``size``×``size`` with PIL's antialiased bilinear filter."""
    from PIL import Image

    image = Image.fromarray(array.astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def load_busi(root: Path, size: int, max_per_class: int | None = None) -> dict:
    """Load BUSI resized to ``size``×``size``, with one mask (union of lesions) per image.

    Non-square images are stretched to a square, as most BUSI benchmarks do.
    ``max_per_class`` keeps the first images of each class by number.
    Returns ``{"images": (N, size, size) float32 in [0, 1], "masks": (N, size,
    size) bool, "labels", "names", "mask_counts", "original_shapes": (N, 2),
    "index": BusiIndex}``.
    """
    index = index_busi(root)
    table = index.table
    if max_per_class is not None:
        table = table.groupby("label", sort=False).head(max_per_class)

    images, masks, shapes = [], [], []
    for row in table.itertuples():
        grey, mask = read_case(row.image, row.masks)
        shapes.append(grey.shape)
        images.append(np.clip(_resize(grey, size), 0.0, 1.0))
        masks.append(_resize(mask.astype(np.float32), size) >= 0.5)
    return {
        "images": np.stack(images).astype(np.float32) if images else np.zeros((0, size, size), np.float32),
        "masks": np.stack(masks) if masks else np.zeros((0, size, size), bool),
        "labels": table["label"].to_numpy(),
        "names": table["name"].to_numpy(),
        "mask_counts": table["mask_count"].to_numpy(),
        "original_shapes": np.array(shapes).reshape(-1, 2),
        "index": index,
    }


def near_duplicate_groups(images: np.ndarray, threshold: float = 0.97, thumbnail_size: int = 16) -> np.ndarray:
    """Return a group id per image, joining images whose thumbnails correlate above ``threshold``.

    BUSI holds several frames of the same lesion taken seconds apart. Each
    image ``(H, W)`` is average-pooled to ``thumbnail_size``², standardised,
    and compared with every other by Pearson correlation. Linked pairs are
    joined transitively (connected components), so that a split by group
    keeps every frame of a lesion on the same side.
    """
    import torch
    from scipy.sparse.csgraph import connected_components

    thumbnails = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(images)[:, None], thumbnail_size).flatten(1)
    thumbnails = (thumbnails - thumbnails.mean(1, keepdim=True)) / (thumbnails.std(1, keepdim=True) + 1e-6)
    similar = (thumbnails @ thumbnails.T / thumbnails.shape[1]).numpy() > threshold
    np.fill_diagonal(similar, False)
    _, groups = connected_components(similar, directed=False)
    return groups
