"""Graines aléatoires pour python, numpy, torch et les workers de DataLoader."""

import random

import numpy as np


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch (CPU and every GPU) with ``seed``."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def seed_worker(worker_id: int) -> None:
    """Seed python and numpy inside a DataLoader worker.

    Pass it as ``worker_init_fn``. torch already gives each worker the seed
    ``base_seed + worker_id``; this function derives the numpy and python
    seeds from it, so that noise drawn in different workers differs and a
    run started from the same generator draws the same noise again.
    """
    import torch

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def torch_generator(seed: int = 0):
    """Return a ``torch.Generator`` seeded with ``seed`` for a DataLoader."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
