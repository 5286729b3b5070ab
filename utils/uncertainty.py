"""Incertitude des prédictions : échantillonnage, mesures, calibration, prédiction conforme.

Ce module ne dépend d'aucun modèle ni d'aucun jeu de données :

- échantillonnage : *Monte-Carlo dropout* (seules les couches de dropout
  tirent au sort, la normalisation reste en mode évaluation), augmentation au
  moment du test (*test-time augmentation*) avec transformations inversées ;
- mesures sur T tirages : entropie prédictive, entropie attendue (part
  aléatoire), information mutuelle (part épistémique), variance ;
- calibration : tableau de fiabilité, ECE, mise à l'échelle de température
  (*temperature scaling*) ;
- apprentissage évidentiel : perte de Sensoy et al. (2018) et masses de
  croyance d'une loi de Dirichlet ;
- prédiction conforme séparée (*split conformal*), scores LAC et APS ;
- exploitation : courbes de renvoi à un expert (*referral curves*), AUROC de
  détection d'erreurs, agrégation par composante connexe, intervalles de
  confiance par bootstrap.

Conventions : des tirages ont la forme ``(T, N, K, ...)`` (T tirages, N
exemples, K classes, puis éventuellement les axes spatiaux) ; des
probabilités ``(N, K, ...)``. Une sortie sigmoïde à un canal (K = 1) est lue
comme la probabilité de la classe 1 d'un problème à deux classes. Les mesures
travaillent en numpy et acceptent aussi des tenseurs CPU. Les logarithmes sont
naturels : les entropies sont en nats, au plus ``log K``.
"""

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)
EPSILON = 1e-12


# ---------------------------------------------------------------------------
# Échantillonnage


@contextmanager
def mc_dropout(model: nn.Module):
    """Put ``model`` in evaluation mode except its dropout layers, inside the block.

    Batch, instance and layer normalisation keep their running statistics
    and are never updated, so only dropout makes repeated passes differ. The
    previous mode of every module is restored on exit. Raises ``ValueError``
    when the model has no dropout layer, because MC dropout would then return
    T identical copies. Dropout applied through ``torch.nn.functional`` inside
    a ``forward`` is not a module and is not switched on.
    """
    dropouts = [module for module in model.modules() if isinstance(module, DROPOUT_TYPES)]
    if not dropouts:
        raise ValueError(
            f"Le modèle {type(model).__name__} n'a aucune couche de dropout : le MC dropout "
            "rendrait T prédictions identiques. Construisez-le avec dropout > 0."
        )
    previous = {module: module.training for module in model.modules()}
    model.eval()
    for module in dropouts:
        module.train()
    try:
        yield model
    finally:
        for module, training in previous.items():
            module.train(training)


def _activate(logits: torch.Tensor, activation: str | None) -> torch.Tensor:
    """Apply ``"softmax"`` over channels, ``"sigmoid"``, or nothing to ``logits``."""
    if activation == "softmax":
        return torch.softmax(logits, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if activation is None:
        return logits
    raise ValueError(f"Activation inconnue : {activation!r}. Valeurs possibles : 'softmax', 'sigmoid', None.")


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    inputs: torch.Tensor,
    activation: str | None = "softmax",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Run ``model`` on ``inputs`` by batches in its current mode; return outputs on the CPU."""
    model.to(device)
    outputs = []
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start : start + batch_size].to(device)).float()
        outputs.append(_activate(logits, activation).cpu())
    return torch.cat(outputs)


def mc_dropout_predict(
    model: nn.Module,
    inputs: torch.Tensor,
    num_samples: int,
    activation: str | None = "softmax",
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Draw ``num_samples`` Monte-Carlo dropout predictions; return ``(T, N, ...)`` on the CPU.

    Each pass runs inside ``mc_dropout``: dropout samples a new mask, the
    normalisation layers use their stored statistics. ``activation`` turns
    logits into probabilities (``"softmax"`` over channels, ``"sigmoid"``, or
    None to keep logits). The draws use torch's global random generator, so
    seeding torch makes them reproducible on one device.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples doit valoir au moins 1, reçu {num_samples}.")
    passes = range(num_samples)
    if progress:
        from tqdm.auto import tqdm

        passes = tqdm(passes, desc="MC dropout", leave=False)
    samples = []
    with mc_dropout(model):
        for _ in passes:
            samples.append(predict_batches(model, inputs, activation, batch_size, device))
    return torch.stack(samples)


def flip_rotation_transforms(angles: Sequence[float] = (-10.0, 10.0)) -> list[tuple[str, Callable, Callable]]:
    """Return test-time transforms ``(name, forward, inverse)`` for image batches ``(N, C, H, W)``.

    The identity, the horizontal flip and one rotation per angle (degrees,
    bilinear, zeros outside the image). Each ``inverse`` maps an output map
    back onto the original grid. A rotation followed by its inverse loses the
    corners, where the inverted map is zero.
    """
    from torchvision.transforms.v2 import functional as F

    transforms = [
        ("identité", lambda x: x, lambda y: y),
        ("miroir horizontal", lambda x: torch.flip(x, dims=[-1]), lambda y: torch.flip(y, dims=[-1])),
    ]
    for angle in angles:
        transforms.append(
            (
                f"rotation {angle:+g}°",
                lambda x, a=angle: F.rotate(x, a, interpolation=F.InterpolationMode.BILINEAR),
                lambda y, a=angle: F.rotate(y, -a, interpolation=F.InterpolationMode.BILINEAR),
            )
        )
    return transforms


def tta_predict(
    predict: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    transforms: Sequence[tuple[str, Callable, Callable | None]],
) -> torch.Tensor:
    """Predict each transformed copy of ``inputs``, map it back, and stack them as ``(T, N, ...)``.

    ``predict`` maps a batch to probabilities. ``inverse`` may be None when
    the output does not live on the image grid (a class probability vector).
    """
    samples = []
    for _, forward, inverse in transforms:
        output = predict(forward(inputs))
        samples.append(output if inverse is None else inverse(output))
    return torch.stack(samples)


# ---------------------------------------------------------------------------
# Mesures d'incertitude


def as_class_probabilities(probabilities, class_axis: int = 1) -> np.ndarray:
    """Return probabilities with an explicit class axis, turning a one-channel sigmoid into two classes."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[class_axis] == 1:
        foreground = probabilities
        probabilities = np.concatenate([1.0 - foreground, foreground], axis=class_axis)
    return probabilities


def entropy(probabilities, class_axis: int = 1) -> np.ndarray:
    """Return the Shannon entropy in nats over ``class_axis`` (0 for a one-hot, log K for uniform)."""
    probabilities = as_class_probabilities(probabilities, class_axis)
    return -(probabilities * np.log(np.clip(probabilities, EPSILON, 1.0))).sum(axis=class_axis)


def uncertainty_measures(samples) -> dict[str, np.ndarray]:
    """Return the mean prediction and four uncertainty measures from samples ``(T, N, K, ...)``.

    - ``mean``: mean probabilities ``(N, K, ...)``;
    - ``predictive_entropy``: entropy of the mean, total uncertainty;
    - ``expected_entropy``: mean entropy of the samples, the aleatoric part;
    - ``mutual_information``: their difference, the epistemic part (how much
      the samples disagree), clipped at 0 against rounding;
    - ``variance``: variance of the probabilities across samples, averaged
      over classes (for two classes, the variance of the foreground probability).

    Every map except ``mean`` has shape ``(N, ...)``.
    """
    samples = as_class_probabilities(samples, class_axis=2)
    if samples.shape[0] < 1:
        raise ValueError("Aucun tirage : samples doit avoir la forme (T, N, K, ...) avec T ≥ 1.")
    mean = samples.mean(axis=0)
    predictive = entropy(mean, class_axis=1)
    expected = entropy(samples, class_axis=2).mean(axis=0)
    return {
        "mean": mean,
        "predictive_entropy": predictive,
        "expected_entropy": expected,
        "mutual_information": np.maximum(predictive - expected, 0.0),
        "variance": samples.var(axis=0).mean(axis=1),
    }


def error_detection_auroc(uncertainty, error) -> float:
    """Return the ROC AUC of ``uncertainty`` for finding the positions where ``error`` is true.

    0.5 is chance, 1 means every error is more uncertain than every correct
    position. Returns NaN when ``error`` is all true or all false.
    """
    from sklearn.metrics import roc_auc_score

    error = np.asarray(error, dtype=bool).ravel()
    if error.all() or not error.any():
        return float("nan")
    return float(roc_auc_score(error, np.asarray(uncertainty, dtype=np.float64).ravel()))


# ---------------------------------------------------------------------------
# Calibration


def reliability_table(confidences, correct, n_bins: int = 15) -> pd.DataFrame:
    """Group predictions into ``n_bins`` equal-width confidence bins and return one row per bin.

    Bin b contains the confidences in ``(b/n, (b+1)/n]``, and the first bin
    also contains 0. Columns: ``lower``, ``upper``, ``count``, ``confidence`` (mean),
    ``accuracy`` (fraction correct); empty bins have NaN means.
    """
    confidences = np.asarray(confidences, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=np.float64).ravel()
    if confidences.shape != correct.shape:
        raise ValueError(f"Tailles différentes : {confidences.shape} confiances, {correct.shape} résultats.")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidences, n_bins) / counts
        accuracy = np.bincount(bins, correct, n_bins) / counts
    return pd.DataFrame(
        {"lower": edges[:-1], "upper": edges[1:], "count": counts, "confidence": mean_confidence, "accuracy": accuracy}
    )


def top_label(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    """Return the confidence of the predicted class and whether it is right, for ``(N, K)`` probabilities."""
    probabilities = as_class_probabilities(probabilities)
    labels = np.asarray(labels)
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == labels


def calibration_error(confidences, correct, n_bins: int = 15) -> float:
    """Return Σ_b (n_b / N) · |accuracy_b − confidence_b| over equal-width confidence bins.

    ``confidences`` are the probabilities the model gave to its predicted
    classes and ``correct`` tells whether each prediction was right.
    """
    table = reliability_table(confidences, correct, n_bins)
    filled = table["count"] > 0
    weights = table.loc[filled, "count"] / table["count"].sum()
    return float((weights * (table.loc[filled, "accuracy"] - table.loc[filled, "confidence"]).abs()).sum())


def expected_calibration_error(probabilities, labels, n_bins: int = 15) -> float:
    """Return the top-label expected calibration error (ECE) of ``(N, K)`` probabilities.

    The confidence is the probability of the predicted class (Naeini et al.
    2015, Guo et al. 2017). 0 means calibrated. The value depends on
    ``n_bins`` and is noisy on a few hundred examples.
    """
    return calibration_error(*top_label(probabilities, labels), n_bins)


def plot_reliability_diagram(ax, probabilities, labels, n_bins: int = 10, label: str | None = None, color=None) -> float:
    """Draw the reliability diagram of ``(N, K)`` probabilities on ``ax`` and return the ECE.

    Bars give the accuracy per confidence bin, the diagonal a calibrated
    model. Empty bins are not drawn.
    """
    confidences, correct = top_label(probabilities, labels)
    table = reliability_table(confidences, correct, n_bins).dropna()
    ece = expected_calibration_error(probabilities, labels, n_bins)
    width = 1.0 / n_bins
    text = f"{label} (ECE = {ece:.3f})" if label else f"ECE = {ece:.3f}"
    ax.bar(table["lower"], table["accuracy"], width=width, align="edge", alpha=0.45, edgecolor="black", color=color, label=text)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confiance (probabilité de la classe prédite)")
    ax.set_ylabel("exactitude observée")
    ax.legend(loc="upper left", fontsize=8)
    return ece


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Return the softmax of ``logits / temperature`` over the last axis."""
    from scipy.special import softmax as scipy_softmax

    return scipy_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Return the mean negative log-likelihood of integer ``labels`` under ``softmax(logits / T)``."""
    from scipy.special import log_softmax

    log_probabilities = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
    return float(-log_probabilities[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Fit the temperature T that minimises the negative log-likelihood of ``labels``.

    One scalar divides every logit (Guo et al. 2017), so the predicted class
    and the accuracy do not change, only the confidence. Fit it on a
    calibration split that the model was not trained on. The search is over
    log T within ``bounds``.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(f"Il faut autant de logits que d'étiquettes (au moins une) : {len(logits)} et {len(labels)}.")
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, np.exp(log_t)),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
    )
    return float(np.exp(result.x))


# ---------------------------------------------------------------------------
# Apprentissage évidentiel (Dirichlet)


def dirichlet_alpha(outputs: torch.Tensor) -> torch.Tensor:
    """Return Dirichlet parameters α = evidence + 1 with evidence = softplus(outputs) ≥ 0.

    Sensoy et al. (2018) use ReLU evidence; softplus keeps a gradient for
    negative outputs.
    """
    return nn.functional.softplus(outputs) + 1.0


def dirichlet_summary(alpha) -> dict[str, np.ndarray]:
    """Return expected probabilities, belief masses and the uncertainty mass of Dirichlet ``alpha`` ``(N, K)``.

    With S = Σ α_k: probability α_k / S, belief b_k = (α_k − 1) / S and
    uncertainty u = K / S, so that Σ b_k + u = 1 (subjective logic).
    """
    alpha = np.asarray(torch.as_tensor(alpha).detach().cpu(), dtype=np.float64)
    strength = alpha.sum(axis=1, keepdims=True)
    return {
        "probabilities": alpha / strength,
        "belief": (alpha - 1.0) / strength,
        "uncertainty": alpha.shape[1] / strength[:, 0],
    }


def evidential_loss(outputs: torch.Tensor, labels: torch.Tensor, kl_weight: float) -> torch.Tensor:
    """Return the evidential loss of Sensoy et al. (2018), averaged over the batch.

    The first term is the expected squared error under Dir(α):
    Σ_k (y_k − p_k)² + p_k (1 − p_k) / (S + 1) with p = α / S. The second
    term is the KL divergence from Dir(α̃) to the uniform Dir(1), where α̃
    keeps only the evidence given to wrong classes, so it pushes misleading
    evidence towards zero. ``kl_weight`` scales it and is usually annealed
    from 0 to 1 over the first epochs.
    """
    alpha = dirichlet_alpha(outputs)
    num_classes = alpha.shape[1]
    target = nn.functional.one_hot(labels.long(), num_classes).to(alpha.dtype)
    strength = alpha.sum(dim=1, keepdim=True)
    probabilities = alpha / strength
    risk = ((target - probabilities) ** 2 + probabilities * (1 - probabilities) / (strength + 1)).sum(dim=1)

    wrong_alpha = target + (1 - target) * alpha
    wrong_strength = wrong_alpha.sum(dim=1, keepdim=True)
    kl = (
        torch.lgamma(wrong_strength[:, 0])
        - torch.lgamma(torch.tensor(float(num_classes), dtype=alpha.dtype, device=alpha.device))
        - torch.lgamma(wrong_alpha).sum(dim=1)
        + ((wrong_alpha - 1) * (torch.digamma(wrong_alpha) - torch.digamma(wrong_strength))).sum(dim=1)
    )
    return (risk + kl_weight * kl).mean()


# ---------------------------------------------------------------------------
# Prédiction conforme séparée (split conformal)


def conformity_scores(probabilities, method: str = "lac", rng: np.random.Generator | None = None) -> np.ndarray:
    """Return the non-conformity score of every candidate class, shape ``(N, K)``.

    - ``"lac"``: 1 − p_k (least ambiguous set-valued classifier, Sadinle et
      al. 2019), which gives the smallest sets on average;
    - ``"aps"``: the probability mass of the classes more probable than k,
      plus U · p_k (adaptive prediction sets, Romano et al. 2020), which
      gives larger sets to ambiguous examples. With ``rng``, U is drawn
      uniformly in [0, 1] once per example, as in the paper. Without it,
      U = 1: the score of a confident right prediction is then close to 1 and
      the sets are larger than needed.

    A class enters the prediction set when its score is at most the
    calibrated threshold, so a larger score means a stranger label.
    """
    probabilities = as_class_probabilities(probabilities)
    if method == "lac":
        return 1.0 - probabilities
    if method == "aps":
        order = np.argsort(-probabilities, axis=1, kind="stable")
        sorted_probabilities = np.take_along_axis(probabilities, order, axis=1)
        cumulative = np.cumsum(sorted_probabilities, axis=1)
        scores = np.empty_like(probabilities)
        np.put_along_axis(scores, order, cumulative, axis=1)
        if rng is not None:
            scores -= (1.0 - rng.uniform(0.0, 1.0, (len(probabilities), 1))) * probabilities
        return scores
    raise ValueError(f"Score conforme inconnu : {method!r}. Valeurs possibles : 'lac', 'aps'.")


def conformal_threshold(calibration_scores, alpha: float) -> float:
    """Return the split-conformal threshold: the ⌈(n + 1)(1 − α)⌉-th smallest calibration score.

    With n exchangeable calibration examples, a new example's true-class
    score is at most this value with probability ≥ 1 − α (Vovk et al. 2005;
    Angelopoulos & Bates 2023). Returns +inf when n is too small for that
    level, so that every class enters the set.
    """
    scores = np.sort(np.asarray(calibration_scores, dtype=np.float64).ravel())
    if not 0 < alpha < 1:
        raise ValueError(f"alpha doit être dans ]0, 1[, reçu {alpha}.")
    rank = int(np.ceil((len(scores) + 1) * (1 - alpha)))
    if rank > len(scores):
        return float("inf")
    return float(scores[rank - 1])


def split_conformal(
    calibration_probabilities,
    calibration_labels,
    test_probabilities,
    alpha: float,
    method: str = "lac",
    rng: np.random.Generator | None = None,
):
    """Calibrate on one split and return ``(prediction_sets, threshold)`` for the test split.

    ``prediction_sets`` is a boolean array ``(N_test, K)``: True where the
    class belongs to the set. Coverage ≥ 1 − α holds on average over
    calibration draws, provided calibration and test examples are
    exchangeable (same distribution, no selection). ``rng`` randomises the
    APS score (see ``conformity_scores``), on both splits.
    """
    calibration_labels = np.asarray(calibration_labels)
    scores = conformity_scores(calibration_probabilities, method, rng)
    true_class_scores = scores[np.arange(len(calibration_labels)), calibration_labels]
    threshold = conformal_threshold(true_class_scores, alpha)
    return conformity_scores(test_probabilities, method, rng) <= threshold, threshold


def set_coverage(prediction_sets, labels) -> float:
    """Return the fraction of examples whose true class is in their prediction set."""
    prediction_sets = np.asarray(prediction_sets, dtype=bool)
    labels = np.asarray(labels)
    return float(prediction_sets[np.arange(len(labels)), labels].mean())


# ---------------------------------------------------------------------------
# Renvoi à un expert, agrégation, intervalles de confiance


def referral_curve(uncertainty, quality, fractions) -> np.ndarray:
    """Return the mean ``quality`` of the cases kept after referring the most uncertain ones.

    For each fraction f, the ⌊f·n⌋ cases with the highest ``uncertainty``
    go to an expert and the rest is averaged (ties keep their input order).
    Passing ``-quality`` as the uncertainty gives the oracle curve, and a
    method that sorts no better than chance stays near the mean.
    """
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    quality = np.asarray(quality, dtype=np.float64)
    order = np.argsort(-uncertainty, kind="stable")
    kept_quality = quality[order]
    means = []
    for fraction in fractions:
        referred = int(np.floor(fraction * len(quality)))
        means.append(kept_quality[referred:].mean() if referred < len(quality) else np.nan)
    return np.array(means)


def random_referral_curve(quality, fractions, repeats: int = 200, seed: int = 0) -> pd.DataFrame:
    """Return the mean and the 2.5–97.5 % band of ``referral_curve`` under random referral.

    Columns: ``fraction``, ``mean``, ``low``, ``high``.
    """
    rng = np.random.default_rng(seed)
    curves = np.array([referral_curve(rng.random(len(quality)), quality, fractions) for _ in range(repeats)])
    return pd.DataFrame(
        {
            "fraction": np.asarray(fractions, dtype=float),
            "mean": np.nanmean(curves, axis=0),
            "low": np.nanquantile(curves, 0.025, axis=0),
            "high": np.nanquantile(curves, 0.975, axis=0),
        }
    )


def component_uncertainty(mask, uncertainty, truth=None, min_overlap: float = 0.5) -> pd.DataFrame:
    """Return one row per connected component of a binary ``mask`` (8-connectivity).

    Columns: ``component`` (label from 1), ``pixels``, and the
    ``mean_uncertainty`` and ``max_uncertainty`` of ``uncertainty`` inside the
    component. With ``truth``, two more columns: ``overlap`` (fraction of the
    component inside the truth) and ``true_lesion`` (overlap ≥ ``min_overlap``).
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    if mask.shape != uncertainty.shape:
        raise ValueError(f"Formes différentes : masque {mask.shape}, carte d'incertitude {uncertainty.shape}.")
    labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim))
    columns = ["component", "pixels", "mean_uncertainty", "max_uncertainty"]
    if truth is not None:
        truth = np.asarray(truth, dtype=bool)
        columns += ["overlap", "true_lesion"]
    rows = []
    for component in range(1, count + 1):
        inside = labels == component
        row = [component, int(inside.sum()), float(uncertainty[inside].mean()), float(uncertainty[inside].max())]
        if truth is not None:
            overlap = float(truth[inside].mean())
            row += [overlap, overlap >= min_overlap]
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def bootstrap_ci(statistic: Callable, *samples, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Return ``(value, low, high)``: ``statistic(*samples)`` and its percentile bootstrap interval.

    Paired samples (the same cases in every array) are resampled together.
    Resamples where the statistic is undefined (NaN, for example a
    correlation on a constant resample) are left out of the quantiles.
    """
    arrays = [np.asarray(sample) for sample in samples]
    n = len(arrays[0])
    if any(len(array) != n for array in arrays):
        raise ValueError(f"Échantillons appariés de tailles différentes : {[len(array) for array in arrays]}.")
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_resamples)
    for b in range(n_resamples):
        index = rng.integers(0, n, n)
        replicates[b] = statistic(*(array[index] for array in arrays))
    low, high = np.nanquantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(statistic(*arrays)), float(low), float(high)


def correlation_with_ci(x, y, method: str = "spearman", **bootstrap_options) -> dict[str, float]:
    """Return a Spearman or Pearson correlation, its bootstrap interval and its p-value.

    Keys: ``r``, ``low``, ``high``, ``p_value``. Pairs where either value is
    not finite are dropped.
    """
    import warnings

    from scipy import stats

    functions = {"spearman": stats.spearmanr, "pearson": stats.pearsonr}
    if method not in functions:
        raise ValueError(f"Corrélation inconnue : {method!r}. Valeurs possibles : 'spearman', 'pearson'.")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]

    def statistic(a, b):
        with warnings.catch_warnings():
            # Constant resamples make the correlation undefined; bootstrap_ci drops the NaN.
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            return functions[method](a, b).statistic

    value, low, high = bootstrap_ci(statistic, x, y, **bootstrap_options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        p_value = float(functions[method](x, y).pvalue)
    return {"r": value, "low": low, "high": high, "p_value": p_value}
