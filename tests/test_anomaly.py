"""Unit tests of utils.anomaly: MONAI autoencoders, VAE loss, training and anomaly scores."""

import numpy as np
import pytest
import torch

from utils.anomaly import (
    anomaly_scores,
    autoencoder_loss,
    build_autoencoder,
    changed_region,
    kl_divergence,
    pixel_auroc,
    reconstruction_maps,
    train_autoencoder,
)

CHANNELS = (4, 8, 8)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_reconstruction_shapes_and_range(kind):
    torch.manual_seed(0)
    model = build_autoencoder(kind, 32, CHANNELS, latent_size=4)
    images = np.random.default_rng(0).random((5, 32, 32)).astype(np.float32)
    reconstructions, errors = reconstruction_maps(model, images, "cpu")
    assert reconstructions.shape == (5, 32, 32)
    assert errors.shape == (5, 32, 32)
    assert reconstructions.min() >= 0
    assert reconstructions.max() <= 1
    np.testing.assert_allclose(errors, (reconstructions - images) ** 2, rtol=1e-6)


def test_vae_latent_size_is_used():
    model = build_autoencoder("vae", 32, CHANNELS, latent_size=6)
    model.train()
    _, mu, logvar, _ = model(torch.rand(3, 1, 32, 32))
    assert mu.shape == (3, 6)
    assert logvar.shape == (3, 6)


def test_vae_is_deterministic_in_eval():
    torch.manual_seed(0)
    model = build_autoencoder("vae", 32, CHANNELS, latent_size=4)
    images = np.random.default_rng(1).random((4, 32, 32)).astype(np.float32)
    first, _ = reconstruction_maps(model, images, "cpu")
    second, _ = reconstruction_maps(model, images, "cpu")
    np.testing.assert_array_equal(first, second)


def test_kl_is_zero_for_standard_normal():
    mu = torch.zeros(3, 5)
    logvar = torch.zeros(3, 5)
    assert float(kl_divergence(mu, logvar)) == pytest.approx(0.0, abs=1e-7)


def test_kl_matches_closed_form():
    # KL(N(1, 1) ‖ N(0, 1)) = 0.5 per dimension, summed over 4 dimensions.
    mu = torch.ones(2, 4)
    logvar = torch.zeros(2, 4)
    assert float(kl_divergence(mu, logvar)) == pytest.approx(2.0)


def test_vae_loss_adds_kl_term():
    torch.manual_seed(0)
    model = build_autoencoder("vae", 32, CHANNELS, latent_size=4).eval()
    batch = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        reconstruction_only = autoencoder_loss(model, batch, beta=0.0)
        with_kl = autoencoder_loss(model, batch, beta=1.0)
        _, mu, logvar, _ = model(batch)
    assert float(with_kl - reconstruction_only) == pytest.approx(float(kl_divergence(mu, logvar)), abs=1e-4)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_training_lowers_loss(kind):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # Des disques clairs de position variable sur fond sombre : facile à apprendre.
    y, x = np.mgrid[:32, :32]
    images = np.stack([
        0.2 + 0.6 * (((x - cx) ** 2 + (y - cy) ** 2) < 36) for cx, cy in rng.integers(8, 24, (64, 2))
    ]).astype(np.float32)
    model = build_autoencoder(kind, 32, CHANNELS, latent_size=4)
    history = train_autoencoder(model, images, epochs=15, batch_size=16, learning_rate=3e-3, device="cpu", seed=0)
    assert len(history) == 15
    assert history[-1] < 0.5 * history[0]
    assert not model.training


def test_training_is_seeded():
    images = np.random.default_rng(0).random((20, 32, 32)).astype(np.float32)
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_autoencoder("ae", 32, CHANNELS, latent_size=4)
        histories.append(train_autoencoder(model, images, epochs=2, batch_size=8, learning_rate=1e-3, device="cpu", seed=3))
    assert histories[0] == histories[1]


def test_bad_kind_rejected():
    with pytest.raises(ValueError, match="inconnu"):
        build_autoencoder("gan", 32, CHANNELS, latent_size=4)


def test_image_size_must_divide():
    with pytest.raises(ValueError, match="divisible"):
        build_autoencoder("ae", 36, CHANNELS, latent_size=4)


def test_anomaly_scores_with_region():
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0] = 8.0
    region = np.zeros((4, 4), dtype=bool)
    region[:2, :2] = True
    np.testing.assert_allclose(anomaly_scores(maps), [0.5, 0.0])
    np.testing.assert_allclose(anomaly_scores(maps, region), [2.0, 0.0])


def test_anomaly_scores_region_shape_checked():
    with pytest.raises(ValueError, match="tailles différentes"):
        anomaly_scores(np.zeros((2, 4, 4)), np.ones((3, 3), dtype=bool))


def test_changed_region_marks_modified_pixels():
    original = np.zeros((2, 5, 5), dtype=np.uint8)
    modified = original.copy()
    modified[1, 2, 3] = 7
    region = changed_region(original, modified)
    assert region.dtype == bool
    assert region.sum() == 1
    assert region[1, 2, 3]
    with pytest.raises(ValueError, match="formes différentes"):
        changed_region(original, modified[:1])


def test_pixel_auroc_perfect_and_inverted():
    regions = np.zeros((1, 4, 4), dtype=bool)
    regions[0, 1:3, 1:3] = True
    maps = regions.astype(float)
    assert pixel_auroc(maps, regions) == pytest.approx(1.0)
    assert pixel_auroc(-maps, regions) == pytest.approx(0.0)


def test_pixel_auroc_rejects_empty_region():
    with pytest.raises(ValueError, match="pixels anormaux"):
        pixel_auroc(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), dtype=bool))
