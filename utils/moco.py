"""MoCo v2 (Momentum Contrast) pour radiographies, et lecture des points de contrôle MoCo-CXR.

Deux vues augmentées d'une même radiographie forment une paire positive.
Le réseau requête (*query*) est entraîné par gradient ; le réseau clé
(*key*) en est une moyenne mobile exponentielle (``momentum``). Les clés des
lots précédents restent dans une file (*queue*) et servent d'exemples
négatifs. La perte InfoNCE est une entropie croisée sur les similarités
cosinus divisées par une température. MoCo v2 ajoute une tête de projection
MLP et des augmentations plus fortes (He et al. 2020 ; Chen et al. 2020).

Les points de contrôle suivent le format du dépôt facebookresearch/moco, repris
par MoCo-CXR (Sowrirajan et al. 2021) : ``{"epoch", "arch", "state_dict",
"optimizer"}`` où ``state_dict`` contient ``module.encoder_q.*``,
``module.encoder_k.*``, ``module.queue`` et ``module.queue_ptr``, la tête MLP
étant rangée sous ``fc`` (ResNet) ou ``classifier`` (DenseNet, MobileNet).
"""

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .classification import ChestClassifier
from .seed import seed_worker, torch_generator


def radiograph_augmentation(size: int, rotation: float = 10.0, crop_scale=(0.7, 1.0), contrast: float = 0.25, flip: bool = True):
    """Return the random augmentation of one grey radiograph tensor ``(1, H, W)`` in [0, 1].

    The steps are small rotations, horizontal flips, mild crops and mild
    brightness and contrast changes. Colour jitter, grey-level inversion and
    strong blur are left out because they would change what the radiograph shows.
    """
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(size, scale=crop_scale, ratio=(0.9, 1.1), antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.RandomRotation(rotation, interpolation=v2.InterpolationMode.BILINEAR),
        v2.ColorJitter(brightness=contrast, contrast=contrast),
    ]
    return v2.Compose(steps)


class TwoViewDataset:
    """Pairs of augmented views for contrastive pretraining; labels are never read.

    By default both views come from the same image. With ``patient_ids`` the
    second view comes from another image of the same patient when one
    exists, which makes positives out of two radiographs of one person.
    """

    def __init__(self, images: np.ndarray, transform, patient_ids=None, seed: int = 0):
        self.images = images
        self.transform = transform
        self.partners = None
        self.rng = np.random.default_rng(seed)
        if patient_ids is not None:
            ids = pd.Series(np.asarray(patient_ids))
            if len(ids) != len(images):
                raise ValueError(f"{len(ids)} identifiants patient pour {len(images)} images.")
            self.partners = [np.flatnonzero(ids.to_numpy() == pid) for pid in ids]

    def __len__(self) -> int:
        return len(self.images)

    def _tensor(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.images[index].astype(np.float32) / 255.0)[None]

    def __getitem__(self, index: int):
        other = index
        if self.partners is not None and len(self.partners[index]) > 1:
            choices = self.partners[index][self.partners[index] != index]
            other = int(self.rng.choice(choices))
        return self.transform(self._tensor(index)), self.transform(self._tensor(other))


def projection_head(feature_dim: int, projection_dim: int) -> nn.Sequential:
    """Return the MoCo v2 MLP head: linear, ReLU, linear."""
    return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True), nn.Linear(feature_dim, projection_dim))


class MoCo(nn.Module):
    """MoCo v2 around a ``ChestClassifier`` whose encoder is pretrained (its linear head is unused).

    ``shuffle_groups`` splits the key batch, after shuffling it, into groups
    that go through batch normalisation separately. On one device this
    replaces MoCo's cross-GPU shuffle, which keeps a query from recognising
    its key through batch statistics.
    """

    def __init__(
        self,
        network: ChestClassifier,
        projection_dim: int = 128,
        queue_size: int = 1024,
        momentum: float = 0.99,
        temperature: float = 0.2,
        shuffle_groups: int = 2,
    ):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"Momentum MoCo invalide : {momentum} (attendu dans [0, 1[).")
        if temperature <= 0:
            raise ValueError(f"Température invalide : {temperature} (attendue > 0).")
        feature_dim = network.head.in_features
        self.query = network
        self.projector_q = projection_head(feature_dim, projection_dim)
        self.key = copy.deepcopy(network)
        self.projector_k = copy.deepcopy(self.projector_q)
        for parameter in self.key_parameters():
            parameter.requires_grad = False
        self.momentum = momentum
        self.temperature = temperature
        self.shuffle_groups = shuffle_groups
        self.register_buffer("queue", nn.functional.normalize(torch.randn(projection_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def query_parameters(self):
        """Return the trained parameters: query encoder and query projection head."""
        return [*self.query.encoder.parameters(), *self.projector_q.parameters()]

    def key_parameters(self):
        """Return the momentum parameters, in the same order as ``query_parameters``."""
        return [*self.key.encoder.parameters(), *self.projector_k.parameters()]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Move each key parameter to ``momentum × key + (1 − momentum) × query``."""
        for key, query in zip(self.key_parameters(), self.query_parameters()):
            key.mul_(self.momentum).add_(query.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (N, D) over the oldest entries of the queue, wrapping around its end."""
        size = self.queue.shape[1]
        keys = keys[-size:]
        positions = (int(self.queue_ptr) + torch.arange(len(keys), device=keys.device)) % size
        self.queue[:, positions] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (int(self.queue_ptr) + len(keys)) % size

    @torch.no_grad()
    def encode_keys(self, images: torch.Tensor) -> torch.Tensor:
        """Return the normalised keys of ``images``, batch-normalised in shuffled groups."""
        order = torch.randperm(len(images), device=images.device)
        groups = max(1, min(self.shuffle_groups, len(images) // 2))
        keys = torch.cat([self.projector_k(self.key.features(chunk)) for chunk in images[order].chunk(groups)])
        keys = nn.functional.normalize(keys, dim=1)
        return keys[torch.argsort(order)]

    def forward(self, images_q: torch.Tensor, images_k: torch.Tensor):
        """Return ``(logits, targets)`` of InfoNCE and push the new keys into the queue.

        Column 0 of ``logits`` is the positive pair; the others are the queue.
        """
        queries = nn.functional.normalize(self.projector_q(self.query.features(images_q)), dim=1)
        self.momentum_update()
        keys = self.encode_keys(images_k)
        positive = (queries * keys).sum(dim=1, keepdim=True)
        negative = queries @ self.queue.clone().detach()
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        targets = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        self.enqueue(keys)
        return logits, targets


def pretrain_moco(
    moco: MoCo,
    dataset: TwoViewDataset,
    epochs: int,
    batch_size: int,
    lr: float,
    device,
    seed: int = 0,
    weight_decay: float = 1e-4,
    progress: str | None = None,
) -> pd.DataFrame:
    """Train ``moco`` with SGD (momentum 0.9) and a cosine learning-rate decay.

    Returns one row per epoch: InfoNCE loss, top-1 accuracy of the positive
    among ``1 + queue_size`` candidates, and time.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    queue_size = moco.queue.shape[1]
    if queue_size > len(dataset) // 2:
        raise ValueError(
            f"File de {queue_size} clés pour {len(dataset)} images : la file doit rester au plus de la moitié "
            "du jeu, sinon elle contient des clés de l'image de la requête elle-même, comptées comme négatives."
        )
    if len(dataset) < 2 * batch_size:
        batch_size = max(2, len(dataset) // 2)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0,
        worker_init_fn=seed_worker, generator=torch_generator(seed),
    )
    moco.to(device).train()
    optimizer = torch.optim.SGD(moco.query_parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(loader)))
    history = []
    for epoch in tqdm(range(1, epochs + 1), desc=progress, disable=progress is None, leave=False):
        started = time.perf_counter()
        losses, hits, seen = [], 0, 0
        for images_q, images_k in loader:
            logits, targets = moco(images_q.to(device), images_k.to(device))
            loss = nn.functional.cross_entropy(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            hits += int((logits.argmax(dim=1) == 0).sum())
            seen += len(targets)
        history.append(
            {"epoch": epoch, "loss": float(np.mean(losses)), "top1": hits / max(seen, 1), "time_s": time.perf_counter() - started}
        )
    return pd.DataFrame(history)


# ---------------------------------------------------------------------------
# Points de contrôle au format MoCo


def _head_key(arch: str) -> str:
    """Return the attribute under which MoCo stores the MLP head for ``arch``."""
    return "fc" if arch.startswith(("resnet", "resnext", "wide_resnet")) else "classifier"


def save_moco_checkpoint(moco: MoCo, path, arch: str, epoch: int) -> Path:
    """Write ``moco`` in MoCo's checkpoint format (keys ``module.encoder_q.*`` and so on)."""
    head = _head_key(arch)
    state = {}
    for side, network, projector in (("q", moco.query, moco.projector_q), ("k", moco.key, moco.projector_k)):
        for key, value in network.encoder.state_dict().items():
            state[f"module.encoder_{side}.{key}"] = value.cpu()
        # La tête MLP (linéaire, ReLU, linéaire) est rangée à la place de la
        # tête de classification, comme dans facebookresearch/moco.
        for key, value in projector.state_dict().items():
            state[f"module.encoder_{side}.{head}.{key}"] = value.cpu()
    state["module.queue"] = moco.queue.cpu()
    state["module.queue_ptr"] = moco.queue_ptr.cpu()
    path = Path(path)
    torch.save({"epoch": epoch, "arch": arch, "state_dict": state}, path)
    return path


def load_moco_checkpoint(path, arch: str | None = None) -> tuple[dict, dict]:
    """Read the query encoder of a MoCo or MoCo-CXR checkpoint.

    Returns ``(encoder_state, info)``: the weights of ``encoder_q`` with the
    prefix and the MLP head removed, ready for a torchvision network whose
    head was replaced by an identity (``build_classifier(arch, "state",
    encoder_state=...)``), and ``info`` with ``arch``, ``epoch`` and the
    number of head tensors dropped. ``arch`` is read from the checkpoint when
    it stores one; passing a different one raises an error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Point de contrôle MoCo introuvable : {path}. Placez à cet endroit un point de contrôle "
            "au format MoCo, par exemple l'un de ceux que publient les auteurs de MoCo-CXR "
            "(github.com/stanfordmlgroup/MoCo-CXR)."
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path.name} ne contient pas de state_dict : ce n'est pas un point de contrôle MoCo.")
    stored_arch = checkpoint.get("arch")
    if arch is not None and stored_arch is not None and arch != stored_arch:
        raise ValueError(f"Architecture demandée {arch!r}, mais {path.name} contient {stored_arch!r}.")
    arch = arch or stored_arch
    if arch is None:
        raise ValueError(f"{path.name} n'indique pas son architecture : passez arch='resnet18' (par exemple).")

    head = _head_key(arch)
    encoder_state, dropped = {}, 0
    for key, value in state.items():
        name = key.removeprefix("module.")
        if not name.startswith("encoder_q."):
            continue
        name = name.removeprefix("encoder_q.")
        if name == head or name.startswith(f"{head}."):
            dropped += 1
            continue
        encoder_state[name] = value
    if not encoder_state:
        raise ValueError(
            f"Aucune clé « encoder_q » dans {path.name} : ce n'est pas un point de contrôle au format MoCo."
        )
    return encoder_state, {"arch": arch, "epoch": checkpoint.get("epoch"), "head_tensors_dropped": dropped}
