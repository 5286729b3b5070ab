"""Subgroup metrics with patient-level bootstrap intervals, checked against fairlearn and by hand."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_negative_rate, false_positive_rate, true_positive_rate
from sklearn.metrics import roc_auc_score

from utils.fairness import age_bands, patient_bootstrap_weights, rate_difference, subgroup_metrics, weighted_rate


def cohort(n_patients=60, images_per_patient=3, seed=0):
    """Return labels, scores, decisions, groups and patient ids of a random cohort."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), images_per_patient)
    groups = np.where(patients % 2 == 0, "A", "B")
    labels = rng.integers(0, 2, len(patients)).astype(float)
    scores = labels * 0.4 + rng.random(len(patients))
    decisions = scores > 0.7
    return labels, scores, decisions, groups, patients


def test_bootstrap_weights_share_patient():
    patients = np.array(["p1", "p1", "p2", "p3", "p3", "p3"])
    weights = patient_bootstrap_weights(patients, n_boot=50, seed=1)
    assert weights.shape == (50, 6)
    assert np.array_equal(weights[:, 0], weights[:, 1])
    assert np.array_equal(weights[:, 3], weights[:, 5])
    # Chaque réplique tire autant de patients qu'il y en a (3).
    assert np.allclose(weights[:, [0, 2, 3]].sum(axis=1), 3)


def test_bootstrap_weights_invalid_count():
    with pytest.raises(ValueError, match="répliques"):
        patient_bootstrap_weights(["a", "b"], n_boot=0)


def test_weighted_rate_by_hand():
    labels = np.array([1, 1, 1, 0, 0])
    decisions = np.array([1, 0, 0, 1, 0])
    ones = np.ones((1, 5))
    assert weighted_rate(labels, decisions, ones, "tpr")[0] == pytest.approx(1 / 3)
    assert weighted_rate(labels, decisions, ones, "fnr")[0] == pytest.approx(2 / 3)
    assert weighted_rate(labels, decisions, ones, "fpr")[0] == pytest.approx(1 / 2)
    doubled = np.array([[2, 1, 1, 1, 1]])
    assert weighted_rate(labels, decisions, doubled, "tpr")[0] == pytest.approx(2 / 4)


def test_weighted_rate_without_positives_is_nan():
    assert np.isnan(weighted_rate([0, 0], [1, 0], np.ones((1, 2)), "tpr")[0])


def test_weighted_rate_unknown_name():
    with pytest.raises(ValueError, match="Taux inconnu"):
        weighted_rate([1], [1], np.ones((1, 1)), "ppv")


def test_subgroup_points_match_fairlearn():
    labels, scores, decisions, groups, patients = cohort()
    table = subgroup_metrics(labels, scores, decisions, groups, patients, n_boot=20, min_positive_patients=1)
    frame = MetricFrame(
        metrics={"TPR": true_positive_rate, "FNR": false_negative_rate, "FPR": false_positive_rate},
        y_true=labels, y_pred=decisions, sensitive_features=groups,
    )
    for metric in ("TPR", "FNR", "FPR"):
        assert table[metric].to_numpy() == pytest.approx(frame.by_group[metric].to_numpy())
    mask = groups == "A"
    assert table.loc["A", "AUC"] == pytest.approx(roc_auc_score(labels[mask], scores[mask]))
    assert table.loc["A", "patients"] == 30
    assert table.loc["A", "images"] == 90


def test_subgroup_intervals_contain_points():
    labels, scores, decisions, groups, patients = cohort()
    table = subgroup_metrics(labels, scores, decisions, groups, patients, n_boot=200, min_positive_patients=1)
    for metric in ("AUC", "TPR", "FNR", "FPR"):
        assert (table[f"{metric} bas"] <= table[metric]).all()
        assert (table[metric] <= table[f"{metric} haut"]).all()
        assert (table[f"{metric} haut"] - table[f"{metric} bas"] > 0).all()


def test_subgroup_too_few_patients_is_nan():
    labels, scores, decisions, groups, patients = cohort(n_patients=8)
    table = subgroup_metrics(labels, scores, decisions, groups, patients, n_boot=20, min_positive_patients=10)
    assert table["AUC"].isna().all()
    assert table["FNR"].isna().all()
    assert (table["images"] > 0).all()


def test_subgroup_missing_group_left_out():
    labels, scores, decisions, groups, patients = cohort()
    groups = groups.astype(object)
    groups[:6] = None
    table = subgroup_metrics(labels, scores, decisions, groups, patients, n_boot=20, min_positive_patients=1)
    assert list(table.index) == ["A", "B"]
    assert table["images"].sum() == len(labels) - 6


def test_subgroup_length_mismatch():
    labels, scores, decisions, groups, patients = cohort()
    with pytest.raises(ValueError, match="longueurs différentes"):
        subgroup_metrics(labels, scores[:-1], decisions, groups, patients)


def test_rate_difference_detects_gap():
    rng = np.random.default_rng(3)
    patients = np.repeat(np.arange(200), 2)
    groups = np.where(patients < 100, "A", "B")
    labels = np.ones(len(patients))
    # Le groupe A manque 40 % des positifs, le groupe B 10 %.
    decisions = rng.random(len(patients)) > np.where(groups == "A", 0.4, 0.1)
    gap, low, high = rate_difference(labels, decisions, groups, patients, "A", "B", "fnr", n_boot=300)
    assert gap == pytest.approx((~decisions[groups == "A"]).mean() - (~decisions[groups == "B"]).mean())
    assert 0 < low < gap < high


def test_rate_difference_same_group_is_zero():
    labels, _, decisions, groups, patients = cohort()
    assert rate_difference(labels, decisions, groups, patients, "A", "A", n_boot=20) == (0.0, 0.0, 0.0)


def test_rate_difference_unknown_group():
    labels, _, decisions, groups, patients = cohort()
    with pytest.raises(ValueError, match="absent"):
        rate_difference(labels, decisions, groups, patients, "A", "C")


def test_age_bands_labels():
    bands = age_bands([25, 40, 59.5, 60, 95, np.nan])
    assert bands.iloc[:5].tolist() == ["< 40", "40–59", "40–59", "60–79", "≥ 80"]
    assert pd.isna(bands.iloc[5])


def test_subgroup_rows_follow_categories():
    labels, scores, decisions, _, patients = cohort()
    ages = np.where(patients % 3 == 0, 85, np.where(patients % 3 == 1, 30, 50))
    table = subgroup_metrics(labels, scores, decisions, age_bands(ages), patients, n_boot=20, min_positive_patients=1)
    assert list(table.index) == ["< 40", "40–59", "≥ 80"]


def test_age_bands_invalid_edges():
    with pytest.raises(ValueError, match="tranches d'âge"):
        age_bands([30], edges=(0, 60, 40))
