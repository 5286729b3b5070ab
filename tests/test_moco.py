"""MoCo v2: momentum update, queue, InfoNCE logits and checkpoints in MoCo's format."""

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from utils.classification import build_classifier
from utils.moco import (
    MoCo,
    TwoViewDataset,
    load_moco_checkpoint,
    pretrain_moco,
    radiograph_augmentation,
    save_moco_checkpoint,
)


@pytest.fixture
def small_moco():
    torch.manual_seed(0)
    network = build_classifier("mobilenet_v2", "random", remove_blocks=12)
    return MoCo(network, projection_dim=8, queue_size=12, momentum=0.9, temperature=0.2)


def test_momentum_rule_exact(small_moco):
    with torch.no_grad():
        for parameter in small_moco.query_parameters():
            parameter.add_(torch.randn_like(parameter))
    query = [p.detach().clone() for p in small_moco.query_parameters()]
    key = [p.detach().clone() for p in small_moco.key_parameters()]
    small_moco.momentum_update()
    for before_k, before_q, after in zip(key, query, small_moco.key_parameters()):
        assert torch.allclose(after, 0.9 * before_k + 0.1 * before_q, atol=1e-6)


def test_key_encoder_has_no_gradient(small_moco):
    assert all(not p.requires_grad for p in small_moco.key_parameters())


def test_queue_keeps_size_and_wraps(small_moco):
    keys = nn.functional.normalize(torch.randn(5, 8), dim=1)
    for _ in range(3):
        small_moco.enqueue(keys)
    assert tuple(small_moco.queue.shape) == (8, 12)
    assert int(small_moco.queue_ptr) == 15 % 12
    # Le troisième lot occupe les colonnes 10, 11 puis 0, 1, 2.
    assert torch.allclose(small_moco.queue[:, [10, 11, 0, 1, 2]], keys.T)


def test_queue_replaces_oldest(small_moco):
    first = nn.functional.normalize(torch.randn(12, 8), dim=1)
    second = nn.functional.normalize(torch.randn(4, 8), dim=1)
    small_moco.enqueue(first)
    small_moco.enqueue(second)
    assert torch.allclose(small_moco.queue[:, :4], second.T)
    assert torch.allclose(small_moco.queue[:, 4:], first[4:].T)


def test_forward_logits_shape(small_moco):
    images = torch.rand(6, 1, 32, 32)
    logits, targets = small_moco(images, images)
    assert tuple(logits.shape) == (6, 13)
    assert int(targets.sum()) == 0


def test_forward_positive_is_cosine(small_moco):
    small_moco.eval()
    small_moco.momentum = 0.0
    images = torch.rand(4, 1, 32, 32)
    small_moco.shuffle_groups = 1
    logits, _ = small_moco(images, images)
    # Réseaux requête et clé identiques, mêmes images : similarité cosinus 1.
    assert torch.allclose(logits[:, 0] * small_moco.temperature, torch.ones(4), atol=1e-5)


def test_invalid_momentum():
    with pytest.raises(ValueError, match="Momentum"):
        MoCo(build_classifier("mobilenet_v2", "random", remove_blocks=12), momentum=1.0)


def test_pretraining_updates_both_encoders():
    # Whether MoCo learns is checked on real images by notebook 04's check cell
    # (positive key found well above chance); here, only the mechanics.
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = (rng.random((16, 32, 32)) * 255).astype(np.uint8)
    moco = MoCo(build_classifier("mobilenet_v2", "random", remove_blocks=12), projection_dim=16, queue_size=8, momentum=0.9)
    query_before = [p.detach().clone() for p in moco.query_parameters()]
    key_before = [p.detach().clone() for p in moco.key_parameters()]
    dataset = TwoViewDataset(images, radiograph_augmentation(32))
    history = pretrain_moco(moco, dataset, epochs=2, batch_size=8, lr=0.05, device="cpu")
    assert list(history["epoch"]) == [1, 2]
    assert np.isfinite(history["loss"]).all()
    assert ((history["top1"] >= 0) & (history["top1"] <= 1)).all()
    assert any(not torch.equal(a, b) for a, b in zip(query_before, moco.query_parameters()))
    key_after = list(moco.key_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(key_before, key_after))
    # The key encoder trails the query encoder: it moved, but less.
    assert any(not torch.equal(a, b) for a, b in zip(key_after, moco.query_parameters()))


def test_queue_larger_than_half_dataset(small_moco):
    images = np.zeros((20, 32, 32), dtype=np.uint8)
    dataset = TwoViewDataset(images, radiograph_augmentation(32))
    with pytest.raises(ValueError, match="moitié"):
        pretrain_moco(small_moco, dataset, epochs=1, batch_size=4, lr=0.01, device="cpu")


def test_two_views_same_patient():
    images = np.stack([np.full((16, 16), value, dtype=np.uint8) for value in (0, 100, 200)])
    dataset = TwoViewDataset(images, lambda image: image, patient_ids=["a", "a", "b"])
    first, second = dataset[0]
    assert float(first.max()) == 0.0
    assert float(second.max()) == pytest.approx(100 / 255)
    alone, partner = dataset[2]
    assert torch.equal(alone, partner)


def test_augmentation_shape_and_range():
    augment = radiograph_augmentation(32)
    view = augment(torch.rand(1, 40, 40))
    assert tuple(view.shape) == (1, 32, 32)
    assert float(view.min()) >= 0.0
    assert float(view.max()) <= 1.0


class OfficialMoCo(nn.Module):
    """MoCo v2 as facebookresearch/moco builds it: torchvision ResNet with its fc replaced by an MLP."""

    def __init__(self):
        super().__init__()
        self.encoder_q = resnet18(num_classes=16)
        self.encoder_k = resnet18(num_classes=16)
        for encoder in (self.encoder_q, self.encoder_k):
            encoder.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), encoder.fc)
        self.register_buffer("queue", torch.randn(16, 64))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))


def test_official_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    official = OfficialMoCo()
    wrapped = {f"module.{key}": value for key, value in official.state_dict().items()}
    path = tmp_path / "checkpoint_0019.pth.tar"
    torch.save({"epoch": 20, "arch": "resnet18", "state_dict": wrapped, "optimizer": {"state": {}, "param_groups": []}}, path)

    state, info = load_moco_checkpoint(path)
    model = build_classifier("resnet18", "state", encoder_state=state)
    assert info["arch"] == "resnet18"
    assert info["epoch"] == 20
    assert info["head_tensors_dropped"] == 4
    assert torch.equal(model.encoder.conv1.weight, official.encoder_q.conv1.weight)
    assert torch.equal(model.encoder.layer4[1].bn2.running_mean, official.encoder_q.layer4[1].bn2.running_mean)


def test_checkpoint_round_trip(tmp_path, small_moco):
    path = save_moco_checkpoint(small_moco, tmp_path / "moco.pth.tar", "mobilenet_v2", epoch=3)
    state, info = load_moco_checkpoint(path)
    model = build_classifier("mobilenet_v2", "state", remove_blocks=12, encoder_state=state)
    reference = small_moco.query.encoder.state_dict()
    assert info["head_tensors_dropped"] == 4
    assert all(torch.equal(model.encoder.state_dict()[key], value) for key, value in reference.items())


def test_checkpoint_wrong_arch(tmp_path, small_moco):
    path = save_moco_checkpoint(small_moco, tmp_path / "moco.pth.tar", "mobilenet_v2", epoch=1)
    with pytest.raises(ValueError, match="Architecture"):
        load_moco_checkpoint(path, arch="resnet18")


def test_checkpoint_not_moco(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "arch": "resnet18"}, path)
    with pytest.raises(ValueError, match="encoder_q"):
        load_moco_checkpoint(path)


def test_checkpoint_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="MoCo-CXR"):
        load_moco_checkpoint(tmp_path / "absent.pth.tar")
