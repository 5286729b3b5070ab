"""Tests of the near-duplicate grouping and the seeded augmented loader used to train BUSI U-Nets."""

import numpy as np
import torch

from utils.busi import near_duplicate_groups
from utils.segmentation import augmented_loader


def test_groups_join_copies_transitively():
    rng = np.random.default_rng(0)
    images = rng.random((5, 32, 32)).astype(np.float32)
    images[1] = images[0] + 0.01 * rng.random((32, 32))
    images[2] = images[1] * 1.5
    groups = near_duplicate_groups(images)
    assert groups[0] == groups[1] == groups[2]
    assert len(set(groups)) == 3


def test_groups_unrelated_images_separate():
    images = np.random.default_rng(1).random((4, 32, 32)).astype(np.float32)
    assert len(set(near_duplicate_groups(images))) == 4


def test_loader_same_seed_same_batches():
    images = torch.rand(6, 1, 32, 32)
    masks = (torch.rand(6, 1, 32, 32) > 0.5).float()
    first = [batch["image"] for batch in augmented_loader(images, masks, [0, 2, 3, 5], 2, seed=3)]
    second = [batch["image"] for batch in augmented_loader(images, masks, [0, 2, 3, 5], 2, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_loader_uses_only_indices():
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 16, 16).contiguous()
    masks = torch.zeros(6, 1, 16, 16)
    loader = augmented_loader(images, masks, [1, 4], 4, seed=0)
    batch = next(iter(loader))
    assert len(loader.dataset) == 2
    assert batch["label"].shape == (2, 1, 16, 16)
