"""Tests of utils.uncertainty."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from utils.uncertainty import (
    component_uncertainty,
    conformal_threshold,
    conformity_scores,
    correlation_with_ci,
    dirichlet_alpha,
    dirichlet_summary,
    entropy,
    error_detection_auroc,
    evidential_loss,
    expected_calibration_error,
    fit_temperature,
    flip_rotation_transforms,
    mc_dropout,
    mc_dropout_predict,
    negative_log_likelihood,
    random_referral_curve,
    referral_curve,
    reliability_table,
    set_coverage,
    softmax,
    split_conformal,
    tta_predict,
    uncertainty_measures,
)


def small_network(dropout: float = 0.5) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Conv2d(4, 2, 1),
    )


def trained_statistics_network() -> nn.Module:
    """Return the small network after a few training-mode passes, so its running statistics are not the defaults."""
    torch.manual_seed(0)
    network = small_network()
    network.train()
    with torch.no_grad():
        for _ in range(3):
            network(torch.randn(8, 1, 6, 6) * 3 + 2)
    return network


# ---------------------------------------------------------------------------
# MC dropout


def test_mc_dropout_samples_differ():
    network = trained_statistics_network()
    samples = mc_dropout_predict(network, torch.randn(3, 1, 6, 6), num_samples=4)
    assert samples.shape == (4, 3, 2, 6, 6)
    assert not torch.allclose(samples[0], samples[1])


def test_mc_dropout_keeps_batchnorm_statistics():
    network = trained_statistics_network()
    norm = network[1]
    mean, var, batches = norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone()
    mc_dropout_predict(network, torch.randn(5, 1, 6, 6) * 10 - 4, num_samples=3)
    assert torch.equal(norm.running_mean, mean)
    assert torch.equal(norm.running_var, var)
    assert torch.equal(norm.num_batches_tracked, batches)


def test_mc_dropout_only_dropout_trains():
    network = trained_statistics_network()
    network.train()
    with mc_dropout(network):
        modes = {type(module).__name__: module.training for module in network}
    assert modes == {"Conv2d": False, "BatchNorm2d": False, "ReLU": False, "Dropout": True}


def test_mc_dropout_restores_modes():
    network = trained_statistics_network()
    network.train()
    with mc_dropout(network):
        pass
    assert all(module.training for module in network.modules())


def test_mc_dropout_without_dropout_rejected():
    with pytest.raises(ValueError, match="aucune couche de dropout"):
        with mc_dropout(nn.Sequential(nn.Linear(2, 2))):
            pass


def test_mc_dropout_zero_rate_identical():
    network = small_network(dropout=0.0).eval()
    samples = mc_dropout_predict(network, torch.randn(2, 1, 6, 6), num_samples=3)
    assert torch.allclose(samples[0], samples[2])


def test_mc_dropout_probabilities_sum_to_one():
    samples = mc_dropout_predict(trained_statistics_network(), torch.randn(2, 1, 6, 6), num_samples=2)
    assert torch.allclose(samples.sum(dim=2), torch.ones(2, 2, 6, 6), atol=1e-6)


# ---------------------------------------------------------------------------
# Test-time augmentation


def test_tta_inverse_restores_grid():
    image = torch.zeros(1, 1, 32, 32)
    image[..., 12:20, 4:10] = 1.0
    samples = tta_predict(lambda x: x, image, flip_rotation_transforms(angles=(-8.0,)))
    assert samples.shape == (3, 1, 1, 32, 32)
    assert torch.equal(samples[1], image)
    centre = (slice(None), slice(None), slice(8, 24), slice(8, 24))
    assert (samples[2][centre] - image[centre]).abs().mean() < 0.05


def test_tta_without_inverse_keeps_output():
    samples = tta_predict(lambda x: x.mean(dim=(2, 3)), torch.rand(2, 3, 8, 8), [("id", lambda x: x, None)] * 2)
    assert samples.shape == (2, 2, 3)


# ---------------------------------------------------------------------------
# Uncertainty measures on hand cases


def test_entropy_one_hot_zero():
    assert entropy(np.array([[0.0, 1.0, 0.0]]))[0] == pytest.approx(0.0)


def test_entropy_uniform_log_k():
    assert entropy(np.full((1, 4), 0.25))[0] == pytest.approx(math.log(4))


def test_entropy_sigmoid_channel_two_classes():
    assert entropy(np.array([[0.5]]))[0] == pytest.approx(math.log(2))


def test_measures_confident_disagreement():
    # Two confident samples that disagree: no aleatoric part, all epistemic.
    samples = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    measures = uncertainty_measures(samples)
    assert measures["predictive_entropy"][0] == pytest.approx(math.log(2))
    assert measures["expected_entropy"][0] == pytest.approx(0.0, abs=1e-9)
    assert measures["mutual_information"][0] == pytest.approx(math.log(2))
    assert measures["variance"][0] == pytest.approx(0.25)


def test_measures_agreeing_uncertain_samples():
    # Two samples that agree on 50/50: all aleatoric, no epistemic part.
    samples = np.full((2, 1, 2), 0.5)
    measures = uncertainty_measures(samples)
    assert measures["expected_entropy"][0] == pytest.approx(math.log(2))
    assert measures["mutual_information"][0] == pytest.approx(0.0, abs=1e-12)
    assert measures["variance"][0] == pytest.approx(0.0)


def test_measures_keep_spatial_axes():
    samples = np.random.default_rng(0).random((5, 3, 1, 4, 4))
    measures = uncertainty_measures(samples)
    assert measures["mean"].shape == (3, 2, 4, 4)
    assert measures["mutual_information"].shape == (3, 4, 4)
    assert (measures["mutual_information"] >= 0).all()


def test_error_detection_auroc_perfect():
    assert error_detection_auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0


def test_error_detection_auroc_single_class_nan():
    assert math.isnan(error_detection_auroc([0.1, 0.2], [False, False]))


# ---------------------------------------------------------------------------
# Calibration


def calibrated_toy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return binary probabilities whose labels are drawn from those probabilities."""
    rng = np.random.default_rng(seed)
    positive = rng.uniform(0, 1, n)
    labels = (rng.uniform(0, 1, n) < positive).astype(int)
    return np.stack([1 - positive, positive], axis=1), labels


def test_ece_calibrated_toy_small():
    probabilities, labels = calibrated_toy(20000)
    assert expected_calibration_error(probabilities, labels) < 0.02


def test_ece_overconfident_toy_large():
    # Always 99 % sure, right half of the time: ECE = 0.99 − 0.5.
    probabilities = np.tile([0.99, 0.01], (1000, 1))
    labels = np.tile([0, 1], 500)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.49)


def test_ece_matches_torchmetrics():
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(1)
    probabilities = softmax(rng.normal(size=(500, 3)) * 3)
    labels = rng.integers(0, 3, 500)
    reference = multiclass_calibration_error(
        torch.tensor(probabilities), torch.tensor(labels), num_classes=3, n_bins=15, norm="l1"
    )
    assert expected_calibration_error(probabilities, labels, n_bins=15) == pytest.approx(float(reference), abs=1e-6)


def test_reliability_table_counts_all():
    table = reliability_table([0.0, 0.05, 0.5, 1.0], [1, 0, 1, 1], n_bins=10)
    assert table["count"].sum() == 4
    assert table["count"].iloc[0] == 2
    assert table["count"].iloc[-1] == 1


def test_temperature_recovers_sharpening():
    # Labels drawn from softmax(z); the model reports 3·z, so the best T is near 3.
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4000, 3)) * 2
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits)])
    temperature = fit_temperature(logits * 3, labels)
    assert temperature == pytest.approx(3.0, rel=0.15)


def test_temperature_lowers_nll_and_ece():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3000, 3)) * 2
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits)])
    sharp = logits * 4
    temperature = fit_temperature(sharp[:1500], labels[:1500])
    test_logits, test_labels = sharp[1500:], labels[1500:]
    assert negative_log_likelihood(test_logits, test_labels, temperature) < negative_log_likelihood(test_logits, test_labels)
    assert expected_calibration_error(softmax(test_logits, temperature), test_labels) < expected_calibration_error(
        softmax(test_logits), test_labels
    )


def test_temperature_keeps_predicted_class():
    logits = np.random.default_rng(4).normal(size=(50, 4))
    assert (softmax(logits, 2.7).argmax(1) == softmax(logits).argmax(1)).all()


# ---------------------------------------------------------------------------
# Evidential learning


def test_dirichlet_masses_sum_to_one():
    summary = dirichlet_summary(dirichlet_alpha(torch.tensor([[3.0, -2.0, 0.5], [-5.0, -5.0, -5.0]])))
    totals = summary["belief"].sum(axis=1) + summary["uncertainty"]
    assert np.allclose(totals, 1.0)


def test_dirichlet_no_evidence_full_uncertainty():
    summary = dirichlet_summary(np.ones((1, 3)))
    assert summary["uncertainty"][0] == pytest.approx(1.0)


def test_evidential_loss_prefers_right_evidence():
    labels = torch.tensor([0])
    right = evidential_loss(torch.tensor([[10.0, -10.0, -10.0]]), labels, kl_weight=1.0)
    wrong = evidential_loss(torch.tensor([[-10.0, 10.0, -10.0]]), labels, kl_weight=1.0)
    assert right < wrong


def test_evidential_kl_penalises_wrong_evidence():
    outputs = torch.tensor([[0.0, 5.0, 5.0]])
    labels = torch.tensor([0])
    assert evidential_loss(outputs, labels, kl_weight=1.0) > evidential_loss(outputs, labels, kl_weight=0.0)


def test_evidential_loss_has_gradient():
    outputs = torch.zeros(4, 3, requires_grad=True)
    evidential_loss(outputs, torch.tensor([0, 1, 2, 0]), kl_weight=0.5).backward()
    assert outputs.grad is not None
    assert outputs.grad.abs().sum() > 0


# ---------------------------------------------------------------------------
# Conformal prediction


def synthetic_classifier(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return softmax scores of a noisy 4-class classifier and labels drawn from them."""
    rng = np.random.default_rng(seed)
    probabilities = softmax(rng.normal(size=(n, 4)) * 1.5)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])
    return probabilities, labels


@pytest.mark.parametrize("method", ["lac", "aps", "aps-randomised"])
@pytest.mark.parametrize("alpha", [0.1, 0.05])
def test_conformal_coverage_near_target(method, alpha):
    probabilities, labels = synthetic_classifier(6000, seed=5)
    rng = np.random.default_rng(0) if method == "aps-randomised" else None
    score = method.split("-")[0]
    sets, _ = split_conformal(probabilities[:3000], labels[:3000], probabilities[3000:], alpha, score, rng)
    coverage = set_coverage(sets, labels[3000:])
    # Binomial standard error at n = 3000 is about 0.005; allow three of them.
    assert coverage >= 1 - alpha - 0.015
    assert coverage <= 1 - alpha + 0.02


def test_conformal_smaller_alpha_larger_sets():
    probabilities, labels = synthetic_classifier(4000, seed=6)
    loose, _ = split_conformal(probabilities[:2000], labels[:2000], probabilities[2000:], 0.2)
    strict, _ = split_conformal(probabilities[:2000], labels[:2000], probabilities[2000:], 0.05)
    assert strict.sum(1).mean() > loose.sum(1).mean()


def test_conformal_threshold_rank():
    scores = np.arange(1, 10) / 10  # 0.1 … 0.9, n = 9
    assert conformal_threshold(scores, alpha=0.2) == pytest.approx(0.8)  # ⌈10 × 0.8⌉ = 8th


def test_conformal_threshold_too_few_infinite():
    assert conformal_threshold([0.2, 0.4], alpha=0.1) == math.inf


def test_aps_scores_cumulative():
    scores = conformity_scores(np.array([[0.2, 0.5, 0.3]]), method="aps")
    assert np.allclose(scores, [[1.0, 0.5, 0.8]])


def test_aps_randomised_below_cumulative():
    probabilities = np.array([[0.2, 0.5, 0.3]])
    randomised = conformity_scores(probabilities, method="aps", rng=np.random.default_rng(0))
    assert (randomised <= conformity_scores(probabilities, method="aps")).all()
    assert (randomised >= [[0.8, 0.0, 0.5]]).all()


def test_aps_randomised_smaller_sets():
    probabilities, labels = synthetic_classifier(4000, seed=10)
    fixed, _ = split_conformal(probabilities[:2000], labels[:2000], probabilities[2000:], 0.1, "aps")
    randomised, _ = split_conformal(
        probabilities[:2000], labels[:2000], probabilities[2000:], 0.1, "aps", np.random.default_rng(0)
    )
    assert randomised.sum(1).mean() < fixed.sum(1).mean()


def test_unknown_score_rejected():
    with pytest.raises(ValueError, match="Score conforme inconnu"):
        conformity_scores(np.ones((1, 2)) / 2, method="raps")


# ---------------------------------------------------------------------------
# Referral, aggregation, bootstrap


def test_referral_perfect_ranking_rises():
    quality = np.array([0.9, 0.2, 0.8, 0.1])
    curve = referral_curve(1 - quality, quality, [0.0, 0.5])
    assert curve[0] == pytest.approx(0.5)
    assert curve[1] == pytest.approx(0.85)


def test_referral_random_band_contains_mean():
    quality = np.random.default_rng(7).random(60)
    table = random_referral_curve(quality, [0.0, 0.3, 0.6], repeats=100)
    assert table["mean"].iloc[0] == pytest.approx(quality.mean())
    assert (table["low"] <= quality.mean() + 1e-12).all()
    assert (table["high"] >= quality.mean() - 1e-12).all()


def test_components_counted_and_matched():
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:3, 1:3] = True
    mask[6:9, 6:9] = True
    truth = np.zeros_like(mask)
    truth[6:9, 6:9] = True
    uncertainty = np.where(mask, 0.0, 1.0)
    uncertainty[1:3, 1:3] = 0.7
    table = component_uncertainty(mask, uncertainty, truth)
    assert len(table) == 2
    assert table["true_lesion"].tolist() == [False, True]
    assert table["mean_uncertainty"].tolist() == pytest.approx([0.7, 0.0])


def test_correlation_interval_contains_value():
    rng = np.random.default_rng(8)
    x = rng.random(80)
    y = x + rng.normal(scale=0.2, size=80)
    result = correlation_with_ci(x, y, "spearman", n_resamples=300)
    assert result["low"] <= result["r"] <= result["high"]
    assert result["low"] > 0.5


def test_correlation_unrelated_interval_spans_zero():
    rng = np.random.default_rng(9)
    result = correlation_with_ci(rng.random(60), rng.random(60), "pearson", n_resamples=300)
    assert result["low"] < 0 < result["high"]
