"""Performances par sous-groupe avec des intervalles de confiance par patient.

Un taux mesuré sur un sous-groupe de quelques dizaines de patients est
bruité, et les clichés d'un même patient ne sont pas indépendants. Les
intervalles de ce module rééchantillonnent donc des patients entiers
(bootstrap par patient), comme ``utils.classification.bootstrap_auc`` : chaque
réplique tire les patients avec remise et donne à chaque cliché le nombre de
tirages de son patient comme poids.
"""

import numpy as np
import pandas as pd

from .classification import _bootstrap_weights, weighted_auc

RATES = ("tpr", "fnr", "fpr")


def patient_bootstrap_weights(patient_ids, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Return bootstrap weights of shape ``(n_boot, n_images)`` that resample whole patients.

    The weight of an image in a replicate is the number of times its patient
    was drawn, so all images of one patient always share the same weight.
    """
    if n_boot < 1:
        raise ValueError(f"Nombre de répliques bootstrap invalide : {n_boot} (il en faut au moins 1).")
    _, weights = _bootstrap_weights(np.asarray(patient_ids), len(patient_ids), n_boot, seed)
    return weights


def weighted_rate(labels, decisions, weights, rate: str) -> np.ndarray:
    """Return the true-positive, false-negative or false-positive rate for each row of ``weights``.

    ``labels`` and ``decisions`` are 0/1 arrays of length n and ``weights``
    has shape ``(B, n)``. The rate is NaN for a row without positive cases
    (``tpr``, ``fnr``) or negative cases (``fpr``).
    """
    if rate not in RATES:
        raise ValueError(f"Taux inconnu : {rate!r}. Valeurs possibles : {', '.join(RATES)}.")
    labels = np.asarray(labels, dtype=bool)
    decisions = np.asarray(decisions, dtype=bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    condition = ~labels if rate == "fpr" else labels
    event = decisions if rate in ("tpr", "fpr") else ~decisions
    cases = weights @ condition
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cases > 0, (weights @ (condition & event)) / cases, np.nan)


def _interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Return the percentile interval of ``replicates``, leaving NaN replicates out."""
    if np.isnan(replicates).all():
        return np.nan, np.nan
    low, high = np.nanquantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def subgroup_metrics(
    labels,
    scores,
    decisions,
    groups,
    patient_ids,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    min_positive_patients: int = 5,
) -> pd.DataFrame:
    """Return AUC, TPR, FNR and FPR per subgroup with patient-level bootstrap intervals.

    ``groups`` gives the subgroup of every image; images whose group is
    missing are left out. Rows follow the categories of a categorical
    ``groups`` (as ``age_bands`` returns), else the sorted group names. All subgroups are measured on the same bootstrap
    replicates. A subgroup whose positive or negative cases come from fewer
    than ``min_positive_patients`` patients gets NaN for the AUC and the
    rates of that class. Columns: ``images``, ``patients``, ``positifs``,
    ``prévalence``, then ``<metric>``, ``<metric> bas`` and ``<metric> haut``
    for AUC, TPR, FNR and FPR.
    """
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    decisions = np.asarray(decisions, dtype=bool)
    groups = pd.Series(groups).reset_index(drop=True)
    patient_ids = np.asarray(patient_ids)
    if not len(labels) == len(scores) == len(decisions) == len(groups) == len(patient_ids):
        raise ValueError(
            f"Tableaux de longueurs différentes : étiquettes {len(labels)}, scores {len(scores)}, "
            f"décisions {len(decisions)}, groupes {len(groups)}, patients {len(patient_ids)}."
        )
    weights = patient_bootstrap_weights(patient_ids, n_boot, seed)
    ones = np.ones((1, len(labels)))
    rows = {}
    if isinstance(groups.dtype, pd.CategoricalDtype):
        present = set(groups.dropna())
        order = [group for group in groups.cat.categories if group in present]
    else:
        order = sorted(groups.dropna().unique(), key=str)
    for group in order:
        mask = (groups == group).to_numpy()
        positive = labels[mask] == 1
        positive_patients = len(np.unique(patient_ids[mask][positive]))
        negative_patients = len(np.unique(patient_ids[mask][~positive]))
        row = {
            "images": int(mask.sum()),
            "patients": len(np.unique(patient_ids[mask])),
            "positifs": int(positive.sum()),
            "prévalence": float(positive.mean()),
        }
        enough = {"auc": min(positive_patients, negative_patients), "tpr": positive_patients, "fnr": positive_patients, "fpr": negative_patients}
        for metric in ("auc", *RATES):
            name = metric.upper()
            if enough[metric] < min_positive_patients:
                row.update({name: np.nan, f"{name} bas": np.nan, f"{name} haut": np.nan})
                continue
            if metric == "auc":
                point = weighted_auc(scores[mask], positive, ones[:, mask])[0]
                replicates = weighted_auc(scores[mask], positive, weights[:, mask])
            else:
                point = weighted_rate(positive, decisions[mask], ones[:, mask], metric)[0]
                replicates = weighted_rate(positive, decisions[mask], weights[:, mask], metric)
            row.update({name: float(point), **dict(zip((f"{name} bas", f"{name} haut"), _interval(replicates, level)))})
        rows[group] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def rate_difference(
    labels,
    decisions,
    groups,
    patient_ids,
    group_a,
    group_b,
    rate: str = "fnr",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Return ``rate(group_a) - rate(group_b)`` and its paired patient-level bootstrap interval.

    Both groups are measured on the same replicates, so that a patient with
    images in both groups (for example one AP and one PA radiograph) counts
    once in each replicate. An interval that excludes 0 indicates a gap
    larger than the sampling noise at ``level``.
    """
    groups = np.asarray(groups, dtype=object)
    for group in (group_a, group_b):
        if not (groups == group).any():
            raise ValueError(f"Sous-groupe absent des données : {group!r}.")
    weights = patient_bootstrap_weights(patient_ids, n_boot, seed)
    ones = np.ones((1, len(groups)))
    in_a = groups == group_a
    in_b = groups == group_b
    point = weighted_rate(labels, decisions, ones * in_a, rate)[0] - weighted_rate(labels, decisions, ones * in_b, rate)[0]
    replicates = weighted_rate(labels, decisions, weights * in_a, rate) - weighted_rate(labels, decisions, weights * in_b, rate)
    return (float(point), *_interval(replicates, level))


def age_bands(ages, edges=(0, 40, 60, 80, 121)) -> pd.Series:
    """Return the age band of each age as an ordered categorical such as ``"40–59"``; missing ages stay missing.

    ``edges`` are the band limits in years: a band contains ``[edges[i],
    edges[i + 1])``; the first and last bands read ``< edges[1]`` and
    ``≥ edges[-2]`` (``< 40`` and ``≥ 80`` by default).
    """
    edges = list(edges)
    if len(edges) < 3 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"Limites de tranches d'âge invalides : {edges} (au moins trois valeurs croissantes).")
    labels = [f"< {edges[1]}"]
    labels += [f"{low}–{high - 1}" for low, high in zip(edges[1:-2], edges[2:-1])]
    labels += [f"≥ {edges[-2]}"]
    return pd.cut(pd.Series(ages, dtype=float), bins=edges, right=False, labels=labels)
