"""Tests of utils.segmentation and utils.synthetic_ultrasound."""

import math

import numpy as np
import pytest
import torch

from utils.segmentation import (
    build_attention_unet,
    build_unet,
    predict_probabilities,
    probabilities_to_masks,
    segmentation_scores,
    train_or_load,
    train_segmentation,
)
from utils.synthetic_ultrasound import synthetic_busi, synthetic_ultrasound


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_scores_empty_truth_empty_prediction():
    empty = np.zeros((1, 16, 16), dtype=bool)
    row = segmentation_scores(empty, empty).iloc[0]
    assert row.dice == 1.0
    assert row.iou == 1.0
    assert row.hd95 == 0.0


def test_scores_empty_truth_false_positive():
    truth = np.zeros((1, 16, 16), dtype=bool)
    prediction = square(16, 2, 2, 3)[None]
    row = segmentation_scores(prediction, truth).iloc[0]
    assert row.dice == 0.0
    assert row.iou == 0.0
    assert row.hd95 == pytest.approx(math.hypot(16, 16))
    assert row.predicted_pixels == 9


def test_scores_missed_lesion():
    truth = square(16, 4, 4, 4)[None]
    prediction = np.zeros((1, 16, 16), dtype=bool)
    row = segmentation_scores(prediction, truth).iloc[0]
    assert row.dice == 0.0
    assert row.hd95 == pytest.approx(math.hypot(16, 16))


def test_scores_partial_overlap():
    # 5x5 truth, same square shifted 3 columns: overlap 5x2 = 10 pixels.
    truth = square(20, 5, 5, 5)[None]
    prediction = square(20, 5, 8, 5)[None]
    row = segmentation_scores(prediction, truth).iloc[0]
    assert row.dice == pytest.approx(2 * 10 / (25 + 25))
    assert row.iou == pytest.approx(10 / 40)
    assert row.hd95 == pytest.approx(3.0)


def test_scores_perfect_and_spacing():
    truth = square(20, 5, 5, 5)[None]
    shifted = square(20, 5, 8, 5)[None]
    assert segmentation_scores(truth, truth).iloc[0].dice == pytest.approx(1.0)
    assert segmentation_scores(shifted, truth, spacing=0.5).iloc[0].hd95 == pytest.approx(1.5)


def test_scores_accept_channel_axis():
    truth = square(12, 2, 2, 4)[None, None]
    table = segmentation_scores(torch.as_tensor(truth), torch.as_tensor(truth))
    assert len(table) == 1
    assert table.iloc[0].dice == pytest.approx(1.0)


def test_scores_shape_mismatch_raises():
    with pytest.raises(ValueError, match="incompatibles"):
        segmentation_scores(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))


@pytest.mark.parametrize("builder", [build_unet, build_attention_unet])
def test_builders_shapes_and_channels(builder):
    model = builder(in_channels=3, out_channels=2, channels=(4, 8, 16), dropout=0.1)
    output = model(torch.rand(2, 3, 32, 32))
    assert output.shape == (2, 2, 32, 32)


def test_probabilities_sigmoid_and_softmax():
    binary_model = build_unet(channels=(4, 8))
    two_class_model = build_unet(out_channels=2, channels=(4, 8))
    images = torch.rand(3, 1, 16, 16)
    single = predict_probabilities(binary_model, images, batch_size=2)
    pair = predict_probabilities(two_class_model, images)
    assert single.min() >= 0
    assert single.max() <= 1
    assert torch.allclose(pair.sum(dim=1), torch.ones(3, 16, 16))
    assert probabilities_to_masks(pair).sum(dim=1).eq(1).all()


def test_mc_dropout_varies_and_eval_does_not():
    torch.manual_seed(0)
    model = build_unet(channels=(4, 8), dropout=0.5)
    images = torch.rand(1, 1, 16, 16)
    first = predict_probabilities(model, images)
    second = predict_probabilities(model, images)
    assert torch.equal(first, second)
    sample_a = predict_probabilities(model, images, mc_dropout=True)
    sample_b = predict_probabilities(model, images, mc_dropout=True)
    assert not torch.equal(sample_a, sample_b)
    assert not model.training


def test_training_learns_synthetic_lesions():
    data = synthetic_busi(4, size=32, seed=1)
    images = torch.as_tensor(data["images"])[:, None]
    masks = torch.as_tensor(data["masks"])[:, None].float()
    loader = torch.utils.data.DataLoader(list(zip(images, masks)), batch_size=4, shuffle=True)
    torch.manual_seed(0)
    model = build_unet(channels=(8, 16, 32))
    history = train_segmentation(model, loader, epochs=15, learning_rate=1e-2, progress=False)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    assert not model.training


def test_train_or_load_round_trip(tmp_path):
    path = tmp_path / "model.pt"
    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(1.0)
        return {"loss": [0.5]}

    trained, history, cached = train_or_load(build_unet(channels=(4, 8)), path, train)
    loaded, history_again, cached_again = train_or_load(build_unet(channels=(4, 8)), path, train)
    assert not cached
    assert cached_again
    assert len(calls) == 1
    assert history_again == history
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_synthetic_deterministic():
    first = synthetic_busi(2, size=48, seed=3)
    second = synthetic_busi(2, size=48, seed=3)
    assert np.array_equal(first["images"], second["images"])
    assert np.array_equal(first["masks"], second["masks"])


def test_synthetic_prefix_stable_and_seed_changes():
    small = synthetic_busi(1, size=48, seed=3)
    large = synthetic_busi(3, size=48, seed=3)
    other = synthetic_busi(1, size=48, seed=4)
    assert np.array_equal(small["images"][0], large["images"][0])
    assert not np.array_equal(small["images"][0], other["images"][0])


def test_synthetic_classes_and_masks():
    data = synthetic_busi(3, size=64)
    lesion_pixels = data["masks"].sum(axis=(1, 2))
    assert list(data["labels"]) == ["benign"] * 3 + ["malignant"] * 3 + ["normal"] * 3
    assert (lesion_pixels[:6] > 0).all()
    assert (lesion_pixels[6:] == 0).all()
    assert data["images"].dtype == np.float32
    assert data["images"].min() >= 0
    assert data["images"].max() <= 1


def test_synthetic_lesion_is_hypoechoic():
    image, mask = synthetic_ultrasound("benign", size=96, seed=0, index=0)
    assert image[mask].mean() < 0.7 * image[~mask].mean()


def test_synthetic_unknown_class_raises():
    with pytest.raises(ValueError, match="Classe inconnue"):
        synthetic_ultrasound("cyst")
