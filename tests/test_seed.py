import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from utils.seed import seed_everything, seed_worker, torch_generator


def draw_all():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_draws():
    seed_everything(123)
    first = draw_all()
    seed_everything(123)
    assert draw_all() == first


def test_different_seeds_differ():
    seed_everything(1)
    first = draw_all()
    seed_everything(2)
    assert draw_all() != first


class NumpyNoise(Dataset):
    """Each item is a numpy draw made inside the worker that loads it."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return np.random.rand()


def load_noise(seed):
    loader = DataLoader(
        NumpyNoise(), batch_size=2, num_workers=2, worker_init_fn=seed_worker,
        generator=torch_generator(seed),
    )
    return [batch.tolist() for batch in loader]


def test_workers_draw_different_reproducible_noise():
    first = load_noise(7)
    assert first == load_noise(7)
    assert first[0] != first[1], "two workers drew the same numpy noise"
    assert load_noise(8) != first
