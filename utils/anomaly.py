"""Détection d'anomalies par reconstruction : auto-encodeurs de MONAI entraînés sur des images normales.

Un auto-encodeur (*autoencoder*) apprend à reconstruire les images qu'il a vues.
Entraîné sur des images normales seulement, il reconstruit mal ce qui s'en
écarte : l'erreur de reconstruction, par pixel, sert de carte d'anomalie, et
sa moyenne sur l'image de score d'anomalie.
"""

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

KINDS = ("ae", "vae")


def build_autoencoder(kind: str, image_size: int, channels, latent_size: int) -> nn.Module:
    """Build a MONAI ``AutoEncoder`` (``kind="ae"``) or ``VarAutoEncoder`` (``"vae"``) for grey images.

    Every level halves the resolution. The plain autoencoder ends its
    encoder with ``latent_size`` channels, so the code it passes to the
    decoder has ``latent_size × (image_size / 2**levels)²`` numbers. The
    variational one compresses to a vector of ``latent_size`` numbers. Both
    outputs go through a sigmoid, since images are in [0, 1].
    """
    from monai.networks.nets import AutoEncoder, VarAutoEncoder

    if kind not in KINDS:
        raise ValueError(f"Type d'auto-encodeur inconnu : {kind!r}. Valeurs possibles : {', '.join(KINDS)}.")
    channels = tuple(channels)
    strides = (2,) * len(channels)
    if image_size % 2 ** len(channels):
        raise ValueError(f"La taille d'image {image_size} doit être divisible par 2^{len(channels)}.")
    if kind == "ae":
        network = AutoEncoder(
            spatial_dims=2, in_channels=1, out_channels=1, channels=(*channels[:-1], latent_size),
            strides=strides, norm="batch",
        )
        return nn.Sequential(network, nn.Sigmoid())
    return VarAutoEncoder(
        spatial_dims=2, in_shape=(1, image_size, image_size), out_channels=1, latent_size=latent_size,
        channels=channels, strides=strides, norm="batch", use_sigmoid=True, use_mean_at_inference=True,
    )


def _reconstruct(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Return ``(reconstruction, mu, logvar)``; ``mu`` and ``logvar`` are None for a plain autoencoder."""
    output = model(batch)
    if isinstance(output, tuple):
        reconstruction, mu, logvar, _ = output
        return reconstruction, mu, logvar
    return output, None, None


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Return KL(N(mu, exp(logvar)) ‖ N(0, 1)), summed over the latent and averaged over the batch."""
    return -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))


def autoencoder_loss(model: nn.Module, batch: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Return the training loss: per-image summed squared error, plus ``beta`` × KL for a VAE."""
    reconstruction, mu, logvar = _reconstruct(model, batch)
    loss = torch.mean(torch.sum((reconstruction - batch) ** 2, dim=(1, 2, 3)))
    if mu is not None:
        loss = loss + beta * kl_divergence(mu, logvar)
    return loss


def train_autoencoder(
    model: nn.Module,
    images: np.ndarray,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    device,
    beta: float = 1.0,
    seed: int = 0,
    progress: str | None = None,
) -> list[float]:
    """Train ``model`` to reconstruct grey ``images`` ``(N, H, W)`` in [0, 1]; return the mean loss of each epoch.

    Batches are drawn with their own seeded generator, so two runs with the
    same seed see the same batches.
    """
    data = torch.as_tensor(images, dtype=torch.float32)[:, None]
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history = []
    for _ in tqdm(range(epochs), desc=progress, disable=progress is None):
        order = torch.randperm(len(data), generator=generator)
        total = 0.0
        for start in range(0, len(data), batch_size):
            batch = data[order[start:start + batch_size]].to(device)
            if len(batch) < 2:  # la normalisation par lot a besoin d'au moins deux images
                continue
            loss = autoencoder_loss(model, batch, beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / len(data))
    model.eval()
    return history


def reconstruction_maps(model: nn.Module, images: np.ndarray, device, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(reconstructions, error_maps)`` of grey images ``(N, H, W)``; the map is the squared error per pixel.

    A VAE built with ``use_mean_at_inference`` decodes its mean code in
    evaluation mode, so the maps are deterministic.
    """
    model.eval()
    data = torch.as_tensor(images, dtype=torch.float32)[:, None]
    outputs = []
    with torch.no_grad():
        for batch in data.split(batch_size):
            outputs.append(_reconstruct(model, batch.to(device))[0].cpu())
    reconstructions = torch.cat(outputs)[:, 0].numpy()
    return reconstructions, (reconstructions - np.asarray(images, dtype=np.float32)) ** 2


def anomaly_scores(error_maps: np.ndarray, region=None) -> np.ndarray:
    """Return the mean of each error map, over ``region`` (a shared ``(H, W)`` mask) when given."""
    error_maps = np.asarray(error_maps)
    if region is None:
        return error_maps.reshape(len(error_maps), -1).mean(1)
    region = np.asarray(region, dtype=bool)
    if region.shape != error_maps.shape[1:]:
        raise ValueError(f"Région {region.shape} et cartes {error_maps.shape[1:]} de tailles différentes.")
    return error_maps[:, region].mean(1)


def changed_region(original: np.ndarray, modified: np.ndarray) -> np.ndarray:
    """Return the boolean mask of the pixels where ``modified`` differs from ``original`` (same shape)."""
    original, modified = np.asarray(original), np.asarray(modified)
    if original.shape != modified.shape:
        raise ValueError(f"Images de formes différentes : {original.shape} et {modified.shape}.")
    return original != modified


def pixel_auroc(error_maps: np.ndarray, regions: np.ndarray) -> float:
    """Return the ROC AUC of the pooled pixels of ``error_maps`` against the boolean ``regions``.

    Every pixel of every image counts once, as in the pixel-level AUROC of
    anomaly segmentation benchmarks. Raises ``ValueError`` when the shapes
    differ or when the regions are all empty or all full.
    """
    from sklearn.metrics import roc_auc_score

    error_maps, regions = np.asarray(error_maps), np.asarray(regions, dtype=bool)
    if error_maps.shape != regions.shape:
        raise ValueError(f"Cartes {error_maps.shape} et régions {regions.shape} de formes différentes.")
    if regions.all() or not regions.any():
        raise ValueError("Les régions doivent contenir des pixels anormaux et des pixels normaux.")
    return float(roc_auc_score(regions.ravel(), error_maps.ravel()))
