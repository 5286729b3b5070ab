"""Ultralytics YOLO hors ligne : réglages, jeu de données au format YOLO, entraînement.

``configure_ultralytics()`` doit être appelée avant le premier
``import ultralytics`` : elle fixe ``YOLO_CONFIG_DIR`` (réglages sous
``outputs/cache/ultralytics/`` et non dans le dossier personnel) et
``YOLO_OFFLINE=1`` (aucun test de connexion). Elle place aussi dans ce
dossier la police DejaVu Sans de matplotlib sous les noms qu'ultralytics
cherche (``Arial.ttf``, ``Arial.Unicode.ttf``), sinon ultralytics tente de
les télécharger. Tous les chemins sont absolus : le code marche depuis
n'importe quel dossier courant.

Sans poids préentraînés, le modèle est construit depuis son fichier de
définition (``yolo26n-seg.yaml`` par exemple) avec des poids aléatoires.
"""

import os
import shutil
from pathlib import Path

import numpy as np

from .paths import cache_dir, output_dir

# Names ultralytics looks up with check_font() before drawing labels.
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def ultralytics_dir() -> Path:
    """Create and return ``outputs/cache/ultralytics/``, the home of ultralytics files."""
    folder = cache_dir() / "ultralytics"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def configure_ultralytics(verbose: bool = False) -> Path:
    """Make ultralytics work offline with its files under ``outputs/`` and return that folder.

    ``verbose`` sets ``YOLO_VERBOSE``, read once when ultralytics is imported:
    without it, training logs only warnings and errors.

    Sets the environment variables, installs the fonts and, once ultralytics
    is imported, points its settings (datasets, weights, runs) at this folder
    and turns off hub synchronisation and every logging integration. Safe
    to call several times. Raises a French RuntimeError when ultralytics was
    imported before with another configuration folder.
    """
    import sys

    import matplotlib

    folder = ultralytics_dir()
    config_dir = folder / "config"
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", str(verbose))
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    if "ultralytics" in sys.modules:
        from ultralytics.utils import USER_CONFIG_DIR

        if Path(USER_CONFIG_DIR) != config_dir / "Ultralytics":
            raise RuntimeError(
                "ultralytics a été importé avant utils.yolo.configure_ultralytics() et "
                f"range ses réglages dans {USER_CONFIG_DIR}. Redémarrez le noyau et "
                "appelez configure_ultralytics() avant tout import d'ultralytics."
            )

    # ultralytics stores its settings in YOLO_CONFIG_DIR/Ultralytics/.
    user_dir = config_dir / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in _FONT_NAMES:
        if not (user_dir / name).is_file():
            shutil.copyfile(font, user_dir / name)

    import torch

    threads = torch.get_num_threads()
    from ultralytics import settings

    # Importing ultralytics sets OMP_NUM_THREADS=1 when it is unset; torch is already running.
    torch.set_num_threads(threads)
    settings.update(
        {
            "datasets_dir": str(folder / "datasets"),
            "weights_dir": str(folder / "weights"),
            "runs_dir": str(folder / "runs"),
            "sync": False,
            "clearml": False,
            "comet": False,
            "dvc": False,
            "mlflow": False,
            "raytune": False,
            "tensorboard": False,
            "wandb": False,
        }
    )
    return folder


def build_yolo(definition: str = "yolo26n-seg.yaml", weights: str | Path | None = None):
    """Return an ultralytics ``YOLO`` model, pretrained when ``weights`` is an existing file.

    Otherwise the model is built from ``definition`` (a YAML shipped with
    ultralytics, its scale given by the letter after the version, ``n`` for
    nano) with random weights, and nothing is downloaded.
    """
    configure_ultralytics()
    from ultralytics import YOLO

    if weights is not None and Path(weights).is_file():
        return YOLO(str(weights))
    return YOLO(definition)


def write_dataset_yaml(
    root: Path, names: list[str], train: str = "images/train", val: str = "images/val", test: str | None = None
) -> Path:
    """Write ``root/dataset.yaml`` for an ultralytics dataset and return its path.

    ``root`` contains ``images/<split>/`` and ``labels/<split>/`` as ultralytics
    expects; the YAML stores the absolute root so that training works from
    any current directory. With ``test``, ``model.val(split="test")`` scores
    that folder.
    """
    import yaml

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    description = {
        "path": str(root),
        "train": train,
        "val": val,
        **({"test": test} if test else {}),
        "names": dict(enumerate(names)),
    }
    path = root / "dataset.yaml"
    path.write_text(yaml.safe_dump(description, allow_unicode=True, sort_keys=False))
    return path


def mask_to_polygon_lines(mask: np.ndarray, class_id: int = 0, min_area: float = 4.0) -> list[str]:
    """Convert a binary mask into YOLO segmentation label lines, one per region.

    Each line is ``class x1 y1 x2 y2 ...`` with coordinates normalised to
    [0, 1]. Contours come from OpenCV (``RETR_EXTERNAL``), so holes are
    filled; regions under ``min_area`` pixels are dropped.
    """
    import cv2

    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    height, width = mask.shape
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    lines = []
    for contour in contours:
        if cv2.contourArea(contour) < min_area or len(contour) < 3:
            continue
        points = contour[:, 0, :].astype(float) / (width, height)
        coordinates = " ".join(f"{value:.6f}" for value in points.clip(0, 1).ravel())
        lines.append(f"{class_id} {coordinates}")
    return lines


def train_yolo(model, data_yaml: Path, name: str, notebook: str, **arguments):
    """Train an ultralytics model offline and return ultralytics' trainer metrics.

    Runs go to ``outputs/<notebook>/yolo/<name>/``, overwritten by the next run of that name.
    Defaults: no plots, no AMP check (it would download a model), no
    hub, ``workers=0``, ``deterministic=True``, ``seed=0``. ``arguments``
    (``epochs``, ``imgsz``, ``batch``, ``device``...) are passed to
    ``model.train``. The caller's number of torch threads is kept during
    and after training, because ultralytics lowers it on CPU.
    """
    import torch

    configure_ultralytics()
    project = output_dir(notebook) / "yolo"
    options = {
        "data": str(Path(data_yaml).resolve()),
        "project": str(project),
        "name": name,
        "exist_ok": True,
        "plots": False,
        "amp": False,
        "workers": 0,
        "seed": 0,
        "deterministic": True,
        "verbose": False,
    }
    options.update(arguments)
    threads = torch.get_num_threads()
    # On CPU the trainer sets min(8, os.cpu_count() - 1) torch threads, a
    # single one on a 2-core laptop; this keeps the caller's count while training.
    model.add_callback("on_train_start", lambda trainer: torch.set_num_threads(threads))
    try:
        return model.train(**options)
    finally:
        torch.set_num_threads(threads)


def predicted_mask(result, min_confidence: float = 0.0, max_instances: int | None = None) -> np.ndarray:
    """Return the union of the instance masks of one ultralytics result as a boolean image.

    Only detections whose confidence is at least ``min_confidence`` count,
    so that one prediction at a low ``conf`` can be thresholded several
    times. With ``max_instances``, only the most confident detections
    are kept (for instance one lesion per image). The polygons ``result.masks.xy`` are already in the coordinates
    of the original image, letterbox padding removed; they are filled with
    OpenCV at ``result.orig_shape``. No detection gives an empty mask.
    """
    import cv2

    height, width = result.orig_shape[:2]
    mask = np.zeros((height, width), dtype=np.uint8)
    if result.masks is None:
        return mask.astype(bool)
    confidences = result.boxes.conf.cpu().numpy()
    order = np.argsort(-confidences, kind="stable")[:max_instances]
    for index in order:
        polygon = result.masks.xy[index]
        if confidences[index] >= min_confidence and len(polygon) >= 3:
            cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)
