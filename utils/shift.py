"""Décalage de domaine (domain shift) sur des radiographies thoraciques.

Ce module fournit de quoi évaluer un classifieur hors de son domaine :

- des dégradations à la manière de CheXphoto (Phillips et al. 2020), à
  sévérité graduée de 0 (identité) à 5 : artefacts de photographie d'écran
  (reflet, moiré, inclinaison et perspective, flou, bougé) et transformations
  numériques (luminosité, contraste, rotation, translation, compression
  JPEG). Chacune est déterministe pour une graine, garde la forme et la plage
  des valeurs de l'image ;
- les chargeurs de deux sites externes dans leur disposition publiée :
  CheXphoto (``CheXphoto-v1.0/{train.csv,valid.csv}``) et Hannover COVID-19
  CXR (``data.csv`` et ``png/<image_id>.png``) ;
- un « second hôpital » synthétique : les radiographies de
  ``utils.synthetic_cxr`` passées par une autre chaîne d'acquisition ;
- les mesures de l'évaluation : seuils de décision fixés sur la validation
  de la source, AUC et F1 par anomalie, distances de Mahalanobis et du
  k-ième plus proche voisin dans l'espace des caractéristiques ;
- des maladies jamais vues : les anomalies que NIH ou CheXpert annotent en
  dehors des cinq de la compétition, ou trois anomalies dessinées sur les
  radiographies synthétiques (nodule, masse, pneumothorax).
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .chest import FINDINGS, ChestXrayDataset, _check_policy, chexpert_style_patients_and_labels, read_chexpert_style_csv
from .chest import BLANK_POLICIES, UNCERTAIN_POLICIES
from .datasets import get_dataset

# ---------------------------------------------------------------------------
# Dégradations à la manière de CheXphoto

PHOTOGRAPHIC = ("glare", "moire", "perspective", "blur", "motion")
DIGITAL = ("brightness", "contrast", "rotation", "translation", "jpeg")
DEGRADATIONS = PHOTOGRAPHIC + DIGITAL
MAX_SEVERITY = 5

DEGRADATION_LABELS = {
    "glare": "reflet",
    "moire": "moiré",
    "perspective": "perspective",
    "blur": "flou",
    "motion": "bougé",
    "brightness": "luminosité",
    "contrast": "contraste",
    "rotation": "rotation",
    "translation": "translation",
    "jpeg": "JPEG",
}

# Intensité de chaque dégradation aux sévérités 0 à 5. Les longueurs sont des
# fractions du côté de l'image, si bien qu'une sévérité donne le même effet
# visuel à 64 ou à 320 pixels.
LEVELS = {
    # part du chemin restant vers le blanc ajoutée au centre du reflet
    "glare": (0.0, 0.25, 0.4, 0.55, 0.7, 0.85),
    # amplitude des franges, en fraction de la plage des niveaux de gris
    "moire": (0.0, 0.03, 0.06, 0.09, 0.13, 0.18),
    # déplacement des coins du bord qui s'éloigne, en fraction du côté
    "perspective": (0.0, 0.04, 0.08, 0.12, 0.17, 0.23),
    # écart type du flou gaussien, en fraction du côté
    "blur": (0.0, 0.008, 0.016, 0.024, 0.034, 0.048),
    # longueur du trait de bougé, en fraction du côté
    "motion": (0.0, 0.04, 0.07, 0.1, 0.14, 0.2),
    # écart relatif du facteur de luminosité (plus clair ou plus sombre)
    "brightness": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    # réduction relative du contraste autour du niveau moyen
    "contrast": (0.0, 0.15, 0.3, 0.45, 0.6, 0.75),
    # angle en degrés
    "rotation": (0.0, 5.0, 10.0, 15.0, 20.0, 30.0),
    # décalage en fraction du côté
    "translation": (0.0, 0.04, 0.08, 0.12, 0.16, 0.22),
    # qualité JPEG (100 à la sévérité 0 n'est jamais appliquée : identité)
    "jpeg": (100, 60, 35, 20, 10, 5),
}


def _check_degradation(name: str, severity: int) -> None:
    """Raise a French ValueError for an unknown degradation or severity."""
    if name not in DEGRADATIONS:
        raise ValueError(f"Dégradation inconnue : {name!r}. Valeurs possibles : {', '.join(DEGRADATIONS)}.")
    if not isinstance(severity, (int, np.integer)) or not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"Sévérité invalide : {severity!r} (entier de 0 à {MAX_SEVERITY} attendu).")


def _as_float_batch(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return images as float64 ``(N, H, W)`` in [0, 1] and whether the input was one image."""
    images = np.asarray(images)
    if images.ndim not in (2, 3):
        raise ValueError(f"Images attendues de forme (H, W) ou (N, H, W), reçu {images.shape}.")
    single = images.ndim == 2
    batch = images[None] if single else images
    if batch.dtype == np.uint8:
        return batch.astype(np.float64) / 255.0, single
    if not np.issubdtype(batch.dtype, np.floating):
        raise ValueError(f"Type d'image non pris en charge : {batch.dtype} (uint8 ou flottant dans [0, 1] attendu).")
    if batch.size and (batch.min() < 0 or batch.max() > 1):
        raise ValueError(
            f"Images flottantes hors de [0, 1] (min {batch.min():.3g}, max {batch.max():.3g}) : "
            "normalisez-les dans [0, 1] avant de les dégrader."
        )
    return batch.astype(np.float64), single


def _coordinates(size_y: int, size_x: int) -> tuple[np.ndarray, np.ndarray]:
    """Return pixel-centre coordinates in units of the image side, in [0, 1]."""
    y = (np.arange(size_y) + 0.5) / size_y
    x = (np.arange(size_x) + 0.5) / size_x
    return np.meshgrid(y, x, indexing="ij")


def _glare(image, strength, rng):
    """Add a bright reflection: a blurred spot that washes the image out towards white."""
    y, x = _coordinates(*image.shape)
    cy, cx = rng.uniform(0.15, 0.85, 2)
    radius_y, radius_x = rng.uniform(0.18, 0.35, 2)
    spot = np.exp(-0.5 * (((y - cy) / radius_y) ** 2 + ((x - cx) / radius_x) ** 2))
    return image + strength * spot * (1.0 - image)


def _moire(image, amplitude, rng):
    """Add moiré fringes: curved bands from the beat between screen pixels and camera sensor."""
    y, x = _coordinates(*image.shape)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.05, 0.11)
    bend = rng.uniform(0.3, 1.0)
    along = x * np.cos(angle) + y * np.sin(angle)
    across = -x * np.sin(angle) + y * np.cos(angle)
    phase = along / period + bend * np.sin(2 * np.pi * across / rng.uniform(0.4, 0.9)) + rng.uniform(0, 1)
    return image + amplitude * np.sin(2 * np.pi * phase)


def _torch_single(image: np.ndarray):
    """Return a float image as a ``(1, H, W)`` tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]


def _perspective(image, displacement, rng):
    """Tilt the film plane: the corners of one edge move inwards, as when the phone is not parallel to the screen."""
    from torchvision.transforms.v2 import functional as F

    height, width = image.shape
    corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=float)
    moved = corners.copy()
    edge = int(rng.integers(4))  # haut, droite, bas, gauche
    first, second = edge, (edge + 1) % 4
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    side = np.array([width, height], dtype=float)
    for corner in (first, second):
        towards_centre = np.sign(centre - corners[corner])
        moved[corner] += towards_centre * displacement * side * rng.uniform(0.8, 1.2, 2)
    # Les deux autres coins bougent un peu : la photo n'est jamais tout à fait droite.
    for corner in set(range(4)) - {first, second}:
        moved[corner] += rng.uniform(-0.25, 0.25, 2) * displacement * side
    warped = F.perspective(
        _torch_single(image),
        startpoints=corners.round().astype(int).tolist(),
        endpoints=moved.round().astype(int).tolist(),
        interpolation=F.InterpolationMode.BILINEAR,
        fill=0.0,
    )
    return warped[0].numpy().astype(np.float64)


def _blur(image, sigma_fraction, rng):
    """Apply a Gaussian blur (out-of-focus photograph)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(image, sigma=sigma_fraction * max(image.shape), mode="nearest")


def _motion(image, length_fraction, rng):
    """Convolve with a straight line of random direction (camera shake)."""
    from scipy import ndimage

    length = max(1.0, length_fraction * max(image.shape))
    angle = rng.uniform(0, np.pi)
    half = int(np.ceil(length / 2))
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    for t in np.linspace(-length / 2, length / 2, 4 * half + 1):
        kernel[int(round(half + t * np.sin(angle))), int(round(half + t * np.cos(angle)))] = 1.0
    return ndimage.convolve(image, kernel / kernel.sum(), mode="nearest")


def _brightness(image, level, rng):
    """Multiply the grey levels by 1 ± level (brighter or darker at random)."""
    factor = 1.0 + level if rng.random() < 0.5 else 1.0 - level
    return image * factor


def _contrast(image, level, rng):
    """Pull the grey levels towards their mean by a fraction ``level``."""
    return image.mean() + (1.0 - level) * (image - image.mean())


def _rotation(image, degrees, rng):
    """Rotate by ``degrees`` clockwise or counter-clockwise; the uncovered corners are black."""
    from torchvision.transforms.v2 import functional as F

    angle = degrees if rng.random() < 0.5 else -degrees
    rotated = F.rotate(_torch_single(image), angle, interpolation=F.InterpolationMode.BILINEAR, fill=0.0)
    return rotated[0].numpy().astype(np.float64)


def _translation(image, fraction, rng):
    """Shift by ``fraction`` of the side in a random direction; the uncovered band is black."""
    from torchvision.transforms.v2 import functional as F

    direction = rng.uniform(0, 2 * np.pi)
    height, width = image.shape
    shift = [int(round(fraction * width * np.cos(direction))), int(round(fraction * height * np.sin(direction)))]
    moved = F.affine(_torch_single(image), angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0], fill=0.0)
    return moved[0].numpy().astype(np.float64)


def _jpeg(image, quality, rng):
    """Encode and decode as JPEG at ``quality`` (blocks and ringing)."""
    import torch
    from torchvision.transforms.v2 import functional as F

    pixels = torch.from_numpy(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))[None]
    return F.jpeg(pixels, quality=int(quality))[0].numpy().astype(np.float64) / 255.0


_DEGRADATION_FUNCTIONS = {
    "glare": _glare,
    "moire": _moire,
    "perspective": _perspective,
    "blur": _blur,
    "motion": _motion,
    "brightness": _brightness,
    "contrast": _contrast,
    "rotation": _rotation,
    "translation": _translation,
    "jpeg": _jpeg,
}


def degrade(images, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply the CheXphoto-style degradation ``name`` at ``severity`` (0 to 5) to grey images.

    ``images`` is one image ``(H, W)`` or a batch ``(N, H, W)``, either
    ``uint8`` or float in [0, 1]; the result has the same shape, type and
    range. Severity 0 returns an unchanged copy. The random parameters of
    image ``i`` (position of the glare, direction of the shake...) depend only
    on ``seed``, ``name`` and ``i``, and stay the same at every severity, so
    that a higher severity strengthens the same artefact.
    """
    _check_degradation(name, severity)
    original = np.asarray(images)
    if severity == 0:
        return original.copy()
    batch, single = _as_float_batch(original)
    function = _DEGRADATION_FUNCTIONS[name]
    level = LEVELS[name][severity]
    result = np.empty_like(batch)
    for i, image in enumerate(batch):
        rng = np.random.default_rng([seed, DEGRADATIONS.index(name), i])
        result[i] = np.clip(function(image, level, rng), 0.0, 1.0)
    if original.dtype == np.uint8:
        result = np.round(result * 255.0).astype(np.uint8)
    else:
        result = result.astype(original.dtype)
    return result[0] if single else result


# ---------------------------------------------------------------------------
# Un second hôpital synthétique

# Chaîne d'acquisition du second hôpital : autre exposition, autre courbe de
# contraste, moins de photons (plus de bruit), détecteur de plus basse
# résolution et marqueur de latéralité incrusté.
SECOND_HOSPITAL = {
    "exposure": (1.15, 1.35),
    "offset": (0.02, 0.08),
    "contrast_slope": (6.0, 8.0),
    "photons": (40.0, 80.0),
    "resolution": 0.6,
}


def second_hospital_acquisition(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pass ``uint8`` radiographs ``(N, H, W)`` through the acquisition chain of another hospital.

    Each image gets, in order, a higher exposure with a raised black level
    and a sigmoid contrast curve (another look-up table). Then come Poisson
    noise from fewer photons, a detector of lower resolution (down-sampled
    then up-sampled) and a burnt-in « L » marker in a top corner. Image ``i``
    depends only on ``seed`` and ``i``. Returns ``uint8`` images of the same
    shape.
    """
    from PIL import Image, ImageDraw

    batch, single = _as_float_batch(images)
    settings = SECOND_HOSPITAL
    result = np.empty_like(batch)
    height, width = batch.shape[1:]
    low = (max(8, round(width * settings["resolution"])), max(8, round(height * settings["resolution"])))
    for i, image in enumerate(batch):
        rng = np.random.default_rng([seed, 2, i])
        exposed = np.clip(image * rng.uniform(*settings["exposure"]) + rng.uniform(*settings["offset"]), 0, 1)
        slope = rng.uniform(*settings["contrast_slope"])
        curve = 1.0 / (1.0 + np.exp(-slope * (exposed - 0.5)))
        curve = (curve - 1.0 / (1.0 + np.exp(slope / 2))) / (1.0 - 2.0 / (1.0 + np.exp(slope / 2)))
        photons = rng.uniform(*settings["photons"])
        noisy = np.clip(rng.poisson(curve * photons) / photons, 0, 1)
        picture = Image.fromarray(np.round(noisy * 255).astype(np.uint8))
        picture = picture.resize(low, Image.Resampling.BILINEAR).resize((width, height), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(picture)
        corner_x = int(0.06 * width) if rng.random() < 0.5 else int(0.82 * width)
        draw.text((corner_x, int(0.04 * height)), "L", fill=255, font_size=max(8, height // 7))
        result[i] = np.asarray(picture, dtype=np.float64) / 255.0
    result = np.round(result * 255).astype(np.uint8)
    return result[0] if single else result


def make_second_hospital(count: int, size: int = 64, seed: int = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """Draw ``count`` synthetic radiographs of other patients, acquired by the second hospital.

    The anatomy and findings come from ``utils.synthetic_cxr`` with another
    seed (other patients, same label prevalences); the images then go through
    ``second_hospital_acquisition``. Returns ``(images, table)`` like
    ``make_synthetic_cxr``, with ``source`` = ``"synthetic_hospital_b"`` and
    patient ids prefixed with ``B``.
    """
    from .synthetic_cxr import make_synthetic_cxr

    images, table = make_synthetic_cxr(count, size, seed)
    table = table.assign(source="synthetic_hospital_b", patient_id="B" + table["patient_id"])
    return second_hospital_acquisition(images, seed), table


# ---------------------------------------------------------------------------
# Sites externes : CheXphoto et Hannover COVID-19 CXR


def read_chexphoto_table(
    folder,
    split: str = "valid",
    uncertain: str = "ones",
    blank: str = "zeros",
    frontal_only: bool = True,
) -> tuple[pd.DataFrame, int]:
    """Read ``train.csv`` or ``valid.csv`` of CheXphoto-v1.0 as a label table.

    The CSV has CheXpert's columns. Its ``Path`` reads
    ``CheXphoto-v1.0/<split>/<kind>/<variant>/patient<N>/study<M>/view<K>_<frontal|lateral>.jpg``.
    ``kind`` is ``natural`` for a smartphone photograph of the film on a
    screen (``variant`` names the phone) or ``synthetic`` for a computed
    transformation (``variant`` names its family). Returns ``(table,
    missing)``: the table has the columns of ``utils.chest`` plus ``kind``
    and ``variant``, and rows whose image file is absent are dropped and
    counted in ``missing``. Patients keep their CheXpert number
    (``chexpert-<N>``) because CheXphoto photographs CheXpert images, so
    check patient overlap with a CheXpert training set before evaluating.
    """
    _check_policy("pour les étiquettes incertaines", uncertain, UNCERTAIN_POLICIES)
    _check_policy("pour les cases vides", blank, BLANK_POLICIES)
    folder = Path(folder)
    if split not in ("train", "valid"):
        raise ValueError(f"Partie CheXphoto inconnue : {split!r}. Valeurs possibles : train, valid.")
    csv_path = folder / f"{split}.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"Fichier CheXphoto introuvable : {csv_path}. {get_dataset('chexphoto').fetch_command()}")
    raw = read_chexpert_style_csv(csv_path, "CheXphoto")
    parts = raw["Path"].str.split("/")
    # Le chemin publié commence par « CheXphoto-v1.0 » ; certaines copies l'omettent.
    parts = parts.map(lambda p: p[1:] if p and p[0].startswith("CheXphoto") else p)
    malformed = parts.map(len) < 4
    if malformed.any():
        example = raw.loc[malformed, "Path"].iloc[0]
        raise ValueError(
            f"Chemin CheXphoto inattendu : {example!r} "
            "(attendu <partie>/<natural|synthetic>/<variante>/patient<N>/.../view<K>_<incidence>.jpg)."
        )
    patients, labels = chexpert_style_patients_and_labels(raw, "CheXphoto", uncertain, blank)

    table = pd.DataFrame(
        {
            "path": [str(folder.joinpath(*p)) for p in parts],
            "patient_id": "chexpert-" + patients,
            "view": raw["Frontal/Lateral"].str.strip().str.lower(),
            "source": "chexphoto",
            "kind": parts.map(lambda p: p[1]),
            "variant": parts.map(lambda p: p[2]),
        }
    )
    table = pd.concat([table, labels], axis=1)
    if frontal_only:
        table = table[table["view"] == "frontal"]
    present = table["path"].map(lambda p: Path(p).is_file())
    return table[present].reset_index(drop=True), int((~present).sum())


def read_hannover_table(folder) -> tuple[pd.DataFrame, int]:
    """Read ``data.csv`` of the Hannover COVID-19 image repository as a table.

    Every patient of this repository has COVID-19 and the five findings are
    not annotated, so their columns are NaN: the site serves to watch how
    predictions and uncertainty move, never to compute an AUC. The table has
    the columns of ``utils.chest`` plus ``projection`` (``ap``, ``pa``) and
    ``modality``. Returns ``(table, missing)``: rows whose
    ``png/<image_id>.png`` is absent are dropped and counted.
    """
    folder = Path(folder)
    csv_path = folder / "data.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"Fichier Hannover introuvable : {csv_path}. {get_dataset('hannover_covid19').fetch_command()}"
        )
    raw = pd.read_csv(csv_path, dtype={"patient_id": str, "image_id": str})
    required = ["patient_id", "image_id", "projection"]
    missing_columns = [name for name in required if name not in raw.columns]
    if missing_columns:
        raise ValueError(
            f"Colonnes absentes de {csv_path.name} : {missing_columns}. "
            "Ce fichier n'a pas la disposition du dépôt de Hannover."
        )
    projection = raw["projection"].astype(str).str.strip().str.lower()
    table = pd.DataFrame(
        {
            "path": [str(folder / "png" / f"{image_id}.png") for image_id in raw["image_id"]],
            "patient_id": "hannover-" + raw["patient_id"],
            "view": np.where(projection.isin(["ap", "pa"]), "frontal", "lateral"),
            "source": "hannover_covid19",
            "projection": projection,
            "modality": raw.get("modality", pd.Series("", index=raw.index)).astype(str),
        }
    )
    for finding in FINDINGS:
        table[finding] = np.nan
    present = table["path"].map(lambda p: Path(p).is_file())
    return table[present].reset_index(drop=True), int((~present).sum())


def load_square_images(paths, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read images as ``uint8`` ``size`` × ``size`` grey squares cut from their centre.

    A non-square radiograph is cropped to its central square before resizing
    (as torchxrayvision's ``XRayCenterCrop`` does), so its anatomy is not
    stretched. Returns ``(images, readable)``; an unreadable file is skipped
    and marked False, so that the caller can count and report it.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    paths = list(paths)
    images = np.zeros((len(paths), size, size), dtype=np.uint8)
    readable = np.ones(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                images[i] = np.asarray(ImageOps.fit(image.convert("L"), (size, size), Image.Resampling.BILINEAR))
        except (OSError, UnidentifiedImageError):
            readable[i] = False
    return images, readable


def load_external_site(table: pd.DataFrame, image_size: int) -> tuple[ChestXrayDataset, int]:
    """Read the images of an external-site table; return the dataset and the number of unreadable files dropped."""
    images, readable = load_square_images(table["path"], image_size)
    kept = table[readable].reset_index(drop=True)
    return ChestXrayDataset(kept, image_size, images[readable]), int((~readable).sum())


# ---------------------------------------------------------------------------
# Seuils, AUC et F1 sous décalage


def fit_thresholds(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return the decision threshold of each finding that maximises F1 on these (validation) data.

    NaN labels are left out. A finding without positive or without negative
    example gets the threshold 0.5. The threshold is then applied unchanged
    to every other set: choosing it again on a shifted set would hide part of
    the drop.
    """
    from sklearn.metrics import precision_recall_curve

    thresholds = np.full(labels.shape[1], 0.5)
    for j in range(labels.shape[1]):
        known = ~np.isnan(labels[:, j])
        y = labels[known, j]
        if y.sum() == 0 or y.sum() == len(y):
            continue
        precision, recall, candidates = precision_recall_curve(y, scores[known, j])
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        thresholds[j] = candidates[int(np.argmax(f1[:-1]))]
    return thresholds


def f1_per_finding(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Return the F1 score of each finding with ``scores >= thresholds``; NaN when a finding has no positive."""
    from sklearn.metrics import f1_score

    values = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        known = ~np.isnan(labels[:, j])
        y = labels[known, j]
        if y.sum() > 0:
            values[j] = f1_score(y, scores[known, j] >= thresholds[j], zero_division=0.0)
    return values


def shift_scores(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, findings=FINDINGS, averaged=None) -> pd.DataFrame:
    """Return AUC and F1 per finding (rows) with the given thresholds, and their mean in the last row.

    ``averaged`` names the findings that enter the mean (by default every
    finding with a defined value), so that a finding judged not evaluable on
    the source stays out of every mean.
    """
    from .classification import auc_per_finding

    table = pd.DataFrame(
        {"AUC": auc_per_finding(scores, labels), "F1": f1_per_finding(scores, labels, thresholds)},
        index=list(findings),
    )
    rows = table if averaged is None else table.loc[list(averaged)]
    table.loc["moyenne"] = rows.mean(skipna=True)
    return table


def paired_auc_difference(
    scores: np.ndarray,
    reference_scores: np.ndarray,
    labels: np.ndarray,
    groups=None,
    columns=None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Return the mean AUC of ``scores`` minus that of ``reference_scores`` on the same images, with a bootstrap interval.

    Both score sets are resampled with the same draws (a paired bootstrap),
    which removes the variation shared by the two, such as which patients
    happen to be in the test set. With ``groups`` (patient ids) whole
    patients are drawn. ``columns`` lists the finding indices averaged (all
    by default). Returns ``(difference, low, high)``.
    """
    from .classification import weighted_auc

    rng = np.random.default_rng(seed)
    groups = np.arange(len(scores)) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_groups = groups.max() + 1
    weights = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)[:, groups].astype(float)
    columns = range(labels.shape[1]) if columns is None else columns
    points, replicates = [], []
    for j in columns:
        known = ~np.isnan(labels[:, j])
        positive = labels[known, j] == 1
        if positive.all() or not positive.any():
            continue
        full = np.ones((1, known.sum()))
        points.append(weighted_auc(scores[known, j], positive, full)[0] - weighted_auc(reference_scores[known, j], positive, full)[0])
        replicates.append(
            weighted_auc(scores[known, j], positive, weights[:, known])
            - weighted_auc(reference_scores[known, j], positive, weights[:, known])
        )
    if not points:
        return float("nan"), float("nan"), float("nan")
    with warnings.catch_warnings():
        # Un tirage sans positif ou sans négatif rend une AUC indéfinie (NaN) : il est écarté.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_replicates = np.nanmean(np.vstack(replicates), axis=0)
    low, high = np.nanquantile(mean_replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(np.mean(points)), float(low), float(high)


# ---------------------------------------------------------------------------
# Scores de détection hors distribution


def binary_uncertainty(samples) -> dict[str, np.ndarray]:
    """Return per-image uncertainty from Monte-Carlo sigmoid samples ``(T, N, K)`` (K findings).

    Each finding is a two-class problem: ``utils.uncertainty.uncertainty_measures``
    computes the predictive entropy and mutual information per image and
    finding, and this function also averages them over the findings.
    Keys: ``mean`` ``(N, K)``, ``predictive_entropy`` and ``mutual_information``
    ``(N, K)``, ``image_entropy`` and ``image_mutual_information`` ``(N,)``.
    """
    from .uncertainty import uncertainty_measures

    samples = np.asarray(samples, dtype=np.float64)
    measures = uncertainty_measures(samples[:, :, None, :])
    return {
        # Axe des classes : 0 pour « absente », 1 pour « présente ».
        "mean": measures["mean"][:, 1, :],
        "predictive_entropy": measures["predictive_entropy"],
        "mutual_information": measures["mutual_information"],
        "image_entropy": measures["predictive_entropy"].mean(axis=1),
        "image_mutual_information": measures["mutual_information"].mean(axis=1),
    }


def fit_mahalanobis(reference: np.ndarray):
    """Fit a Gaussian to ``reference`` features; return a function giving the Mahalanobis distance of new rows.

    The covariance is the Ledoit-Wolf shrinkage estimate, which stays
    invertible when the features outnumber the reference images (1,280
    MobileNetV2 features for a few hundred images, for example). Fitting
    inverts a features × features matrix, so fit once and reuse the function.
    """
    from sklearn.covariance import LedoitWolf

    model = LedoitWolf().fit(np.asarray(reference, dtype=np.float64))

    def distance(features: np.ndarray) -> np.ndarray:
        return np.sqrt(model.mahalanobis(np.asarray(features, dtype=np.float64)))

    return distance


def fit_knn(reference: np.ndarray, k: int = 5, exclude_self: bool = False):
    """Index ``reference`` features; return a function giving the cosine distance of new rows to their ``k``-th neighbour.

    Rows are L2-normalised first, as in deep nearest neighbours (Sun et al.
    2022). With ``exclude_self``, the function is meant for ``reference``
    itself and skips each row's own match.
    """
    from sklearn.neighbors import NearestNeighbors

    def normalise(matrix):
        matrix = np.asarray(matrix, dtype=np.float64)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    neighbours = k + 1 if exclude_self else k
    if neighbours > len(reference):
        raise ValueError(f"k = {k} voisins demandés pour seulement {len(reference)} images de référence.")
    index = NearestNeighbors(n_neighbors=neighbours).fit(normalise(reference))

    def distance(features: np.ndarray) -> np.ndarray:
        distances, _ = index.kneighbors(normalise(features))
        # Sur des vecteurs unitaires, distance euclidienne d et cosinus : 1 - cos = d² / 2.
        return distances[:, -1] ** 2 / 2

    return distance


def detection_auroc(in_distribution_scores, shifted_scores) -> float:
    """Return the AUROC of a score (higher means stranger) for telling shifted images from in-distribution ones."""
    from .uncertainty import error_detection_auroc

    scores = np.concatenate([np.asarray(in_distribution_scores, float), np.asarray(shifted_scores, float)])
    is_shifted = np.concatenate([np.zeros(len(in_distribution_scores), bool), np.ones(len(shifted_scores), bool)])
    return error_detection_auroc(scores, is_shifted)


# ---------------------------------------------------------------------------
# Anomalies vues et jamais vues


# Anomalies annotées par chaque jeu en dehors des cinq de la compétition
# CheXpert : un modèle entraîné sur les cinq ne les a jamais apprises.
NIH_UNSEEN = (
    "Infiltration",
    "Pneumothorax",
    "Nodule",
    "Mass",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Pneumonia",
    "Hernia",
)
CHEXPERT_UNSEEN = ("Lung Lesion", "Pneumothorax", "Pneumonia", "Pleural Other", "Fracture")
# Les radiographies synthétiques ne dessinent que les cinq anomalies :
# draw_unseen_findings y ajoute ces trois-là.
SYNTHETIC_UNSEEN = ("Nodule", "Mass", "Pneumothorax")


def read_other_findings(table: pd.DataFrame, source: str, folder) -> pd.Series:
    """Return, for each row of a NIH or CheXpert table, the findings it carries outside the five.

    Each value is a tuple of finding names, empty when the image has none.
    ``folder`` is the dataset folder the table was read from. NIH findings
    come from ``Finding Labels`` (``NIH_UNSEEN``); CheXpert findings from the
    columns of ``CHEXPERT_UNSEEN`` equal to 1 in ``train.csv`` or
    ``valid.csv`` (an uncertain -1 does not count as present).
    """
    folder = Path(folder)
    if source == "nih_chestxray14":
        raw = pd.read_csv(folder / "Data_Entry_2017.csv", usecols=["Image Index", "Finding Labels"])
        labels = raw.set_index("Image Index")["Finding Labels"].str.split("|")
        names = table["path"].map(lambda p: Path(p).name)
        return names.map(lambda name: tuple(f for f in labels.get(name, []) if f in NIH_UNSEEN))
    if source == "chexpert":
        from .chest import _resolve_chexpert_path

        present = {}
        for csv_name in ("train.csv", "valid.csv"):
            raw = pd.read_csv(folder / csv_name)
            columns = [name for name in CHEXPERT_UNSEEN if name in raw.columns]
            for relative, flags in zip(raw["Path"], (raw[columns] == 1).to_numpy()):
                present[str(_resolve_chexpert_path(folder, relative))] = tuple(np.asarray(columns)[flags])
        return table["path"].map(lambda p: present.get(p, ()))
    raise ValueError(f"Source sans anomalies supplémentaires : {source!r} (nih_chestxray14 ou chexpert attendu).")


def draw_unseen_findings(images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Draw on each synthetic radiograph one finding that ``utils.synthetic_cxr`` never draws.

    The finding of image ``i`` is a nodule (small round opacity), a mass
    (larger lobulated opacity) or a pneumothorax (an apical and lateral
    band of air without lung texture, bounded by the thin line of the
    collapsed lung), drawn in one lung at the place where the generator puts
    it. Returns ``(images, names)``: ``uint8`` images of the same shape and
    the name of each finding (from ``SYNTHETIC_UNSEEN``).
    """
    batch, single = _as_float_batch(images)
    size_y, size_x = batch.shape[1:]
    y, x = np.meshgrid((np.arange(size_y) + 0.5) / size_y * 2 - 1, (np.arange(size_x) + 0.5) / size_x * 2 - 1, indexing="ij")
    result, names = np.empty_like(batch), []
    for i, image in enumerate(batch):
        rng = np.random.default_rng([seed, 3, i])
        name = SYNTHETIC_UNSEEN[int(rng.integers(len(SYNTHETIC_UNSEEN)))]
        side = 1 if rng.random() < 0.5 else -1
        # Centre et demi-axes moyens d'un poumon dans utils.synthetic_cxr (coordonnées de -1 à 1).
        lung_x, lung_y, half_width, half_height = side * 0.385, -0.06, 0.29, 0.6
        if name == "Nodule":
            cx, cy = lung_x + rng.uniform(-0.1, 0.1), rng.uniform(-0.4, 0.2)
            radius = rng.uniform(0.04, 0.065)
            opacity = rng.uniform(0.22, 0.32) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
            drawn = image + opacity
        elif name == "Mass":
            opacity = np.zeros_like(image)
            cx, cy = lung_x + rng.uniform(-0.08, 0.08), rng.uniform(-0.35, 0.15)
            for _ in range(3):
                bx, by, radius = cx + rng.normal(0, 0.04), cy + rng.normal(0, 0.04), rng.uniform(0.07, 0.11)
                opacity = np.maximum(opacity, np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * radius**2)))
            drawn = image + rng.uniform(0.2, 0.3) * opacity
        else:
            level = np.sqrt(((x - lung_x) / half_width) ** 2 + ((y - lung_y) / half_height) ** 2)
            depth = rng.uniform(0.2, 0.35)
            upper_lateral = (y < lung_y + 0.25) & (side * (x - lung_x) > -0.15)
            band = (level > 1 - depth) & (level < 1.0) & upper_lateral
            air = image.copy()
            if band.any():
                air[band] = np.quantile(image[band], 0.2) + rng.normal(0, 0.015, band.sum())
            pleural_line = 0.12 * np.exp(-(((level - (1 - depth)) / 0.012) ** 2)) * upper_lateral
            drawn = air + pleural_line
        result[i] = np.clip(drawn, 0, 1)
        names.append(name)
    result = np.round(result * 255).astype(np.uint8)
    return (result[0] if single else result), names


def unseen_disease_masks(table: pd.DataFrame, other_findings) -> tuple[np.ndarray, np.ndarray]:
    """Return the in-distribution test rows and the unseen-disease rows of a split table.

    In-distribution rows are test rows without any finding outside the five.
    Unseen-disease rows are validation and test rows that carry a finding
    outside the five and none of the five, so the model never trained on
    their patients. ``other_findings`` comes from ``read_other_findings``.
    """
    other = np.array([len(names) > 0 for names in other_findings])
    seen = (table[list(FINDINGS)].to_numpy() == 1).any(axis=1)
    split = table["split"].to_numpy()
    in_distribution = (split == "test") & ~other
    unseen = np.isin(split, ["val", "test"]) & other & ~seen
    return in_distribution, unseen
