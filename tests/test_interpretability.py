import numpy as np
import pytest
import torch
from torch import nn

from utils.interpretability import (
    METHODS,
    attribution_maps,
    border_mask,
    fill_region,
    positive_fraction_inside,
    randomized_copy,
    rank_correlation,
    superpixels,
)


class QuadrantModel(nn.Module):
    """Class 0 is the mean of the top-left quadrant, class 1 the mean of the bottom-right one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()

    def forward(self, images):
        maps = torch.relu(self.conv(images))
        half = images.shape[-1] // 2
        return torch.stack([maps[:, 0, :half, :half].mean((1, 2)), maps[:, 1, half:, half:].mean((1, 2))], 1)


def textured_images(count=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 0.8, (count, size, size)).astype(np.float32)
    images[:, :size // 2, :] += 0.2
    return np.clip(images, 0, 1)


def method_options(method, model, images):
    return {
        "gradcam": {"layer": model.conv},
        "integrated_gradients": {"steps": 8},
        "occlusion": {"window": 4, "stride": 4},
        "lime": {"samples": 40, "segments": 8},
        "shap": {"samples": 20, "background": torch.as_tensor(images)},
    }[method]


@pytest.mark.parametrize("method", METHODS)
def test_maps_shape_and_finite(method):
    model = QuadrantModel().eval()
    images = textured_images()
    maps = attribution_maps(method, model, images, [0, 1], **method_options(method, model, images))
    assert maps.shape == images.shape
    assert np.isfinite(maps).all()


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_maps_follow_target_quadrant(method):
    model = QuadrantModel().eval()
    images = textured_images(1)
    top_left = np.zeros((16, 16), bool)
    top_left[:8, :8] = True
    bottom_right = np.zeros((16, 16), bool)
    bottom_right[8:, 8:] = True
    class_0 = attribution_maps(method, model, images, 0, **method_options(method, model, images))
    class_1 = attribution_maps(method, model, images, 1, **method_options(method, model, images))
    assert positive_fraction_inside(class_0, top_left[None])[0] > 0.95
    assert positive_fraction_inside(class_1, bottom_right[None])[0] > 0.95


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match="inconnue"):
        attribution_maps("saliency", QuadrantModel(), textured_images(), 0)


def test_target_count_must_match():
    model = QuadrantModel()
    with pytest.raises(ValueError, match="classes cibles"):
        attribution_maps("integrated_gradients", model, textured_images(3), [0, 1], steps=4)


def test_superpixels_cover_image():
    labels = superpixels(textured_images(1)[0], 8)
    assert labels.shape == (16, 16)
    assert labels.min() == 0


def test_positive_fraction_inside_values():
    maps = np.array([[[1.0, -5.0], [3.0, 0.0]], [[-1.0, -1.0], [-1.0, -1.0]]])
    masks = np.array([[[True, True], [False, False]], [[True, False], [False, False]]])
    shares = positive_fraction_inside(maps, masks)
    assert shares[0] == pytest.approx(0.25)
    assert np.isnan(shares[1])


def test_positive_fraction_inside_shape_mismatch():
    with pytest.raises(ValueError, match="formes différentes"):
        positive_fraction_inside(np.zeros((1, 2, 2)), np.zeros((1, 3, 3), bool))


def test_rank_correlation_identity_and_sign():
    maps = np.random.default_rng(0).normal(size=(3, 8, 8))
    assert np.allclose(rank_correlation(maps, maps), 1.0)
    assert np.allclose(rank_correlation(maps, -maps), 1.0)
    assert np.allclose(rank_correlation(maps, -maps, absolute=False), -1.0)


def test_rank_correlation_constant_map_is_nan():
    maps = np.random.default_rng(0).normal(size=(1, 4, 4))
    assert np.isnan(rank_correlation(maps, np.zeros_like(maps))[0])


def test_randomized_copy_changes_only_named_modules():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    randomized = randomized_copy(model, ["2"], seed=1)
    assert torch.equal(randomized[0].weight, model[0].weight)
    assert not torch.equal(randomized[2].weight, model[2].weight)
    assert randomized is not model


def test_randomized_copy_rejects_module_without_weights():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(ValueError, match="aucun poids"):
        randomized_copy(model, ["1"])


def test_border_mask_area():
    mask = border_mask(20, 0.1)
    assert mask[0].all()
    assert not mask[10, 10]
    assert mask.sum() == 20 * 20 - 16 * 16


def test_border_mask_rejects_fraction():
    with pytest.raises(ValueError, match="bande"):
        border_mask(20, 0.5)


def test_fill_region_uses_each_image_mean():
    images = np.stack([np.arange(4, dtype=np.float32).reshape(2, 2), np.full((2, 2), 7, np.float32)])
    region = np.array([[True, False], [False, False]])
    filled = fill_region(images, region)
    assert filled[0, 0, 0] == pytest.approx(1.5)
    assert filled[1, 0, 0] == pytest.approx(7.0)
    assert filled[0, 1, 1] == 3.0
    assert images[0, 0, 0] == 0.0


def test_fill_region_inpaint_uses_surroundings():
    images = np.full((1, 12, 12), 0.3, np.float32)
    images[0, 4:8, 4:8] = 1.0
    region = np.zeros((12, 12), bool)
    region[4:8, 4:8] = True
    filled = fill_region(images, region, method="inpaint")
    assert np.allclose(filled[0, 4:8, 4:8], 0.3, atol=1e-3)
    assert filled[0, 0, 0] == pytest.approx(0.3)


def test_fill_region_rejects_method():
    with pytest.raises(ValueError, match="effacement"):
        fill_region(np.zeros((1, 2, 2)), np.ones((2, 2), bool), method="blur")
