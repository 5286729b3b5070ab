"""Segmentation 2D : U-Net et Attention U-Net de MONAI, entraînement, prédiction, scores.

Conventions partagées par les notebooks :

- une image est un tenseur ``(C, H, W)`` de flottants (C = 1 ou 3), un lot
  ``(N, C, H, W)`` ;
- un masque de vérité est un tenseur ``(N, 1, H, W)`` de 0 et de 1 pour une
  seule classe, ou ``(N, K, H, W)`` en *one-hot* pour K classes ;
- un modèle à une sortie donne un *logit* par pixel, lu avec une sigmoïde ; un
  modèle à K sorties est lu avec un *softmax*. La perte par défaut, la
  prédiction et les scores suivent la même règle.

Scores par image (``segmentation_scores``), calculés par MONAI. Convention pour
les masques vides, nécessaire sur les images sans lésion :

- vérité et prédiction vides : Dice = IoU = 1 et HD95 = 0 (rien à trouver,
  rien de trouvé) ;
- une seule des deux vide : Dice = IoU = 0 et HD95 = diagonale de l'image,
  la pire distance possible, pour que la moyenne reste finie et pénalise
  l'erreur au lieu de l'ignorer.
"""

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn


def build_unet(
    in_channels: int = 1,
    out_channels: int = 1,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    num_res_units: int = 1,
    dropout: float = 0.0,
) -> nn.Module:
    """Build a 2D MONAI U-Net with stride-2 downsampling between levels.

    ``dropout`` is applied after every convolution block; a non-zero value
    lets the same network serve Monte-Carlo dropout later.
    """
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        num_res_units=num_res_units,
        norm="batch",
        dropout=dropout,
    )


def build_attention_unet(
    in_channels: int = 1,
    out_channels: int = 1,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    dropout: float = 0.0,
) -> nn.Module:
    """Build a 2D MONAI Attention U-Net (Oktay et al. 2018) with stride-2 levels."""
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
        dropout=dropout,
    )


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def default_loss(out_channels: int = 1) -> nn.Module:
    """Return MONAI's Dice + cross-entropy loss matching the output convention.

    One channel: sigmoid, binary cross-entropy on the logit. Several channels:
    softmax, cross-entropy. The Dice term is computed over the whole batch
    (``batch=True``) so that a batch of images without lesion does not give
    an undefined Dice.
    """
    from monai.losses import DiceCELoss

    if out_channels == 1:
        return DiceCELoss(sigmoid=True, batch=True)
    return DiceCELoss(softmax=True, batch=True)


def _split_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, targets) from a MONAI dict batch or an (image, target) pair."""
    if isinstance(batch, dict):
        return batch["image"], batch["label"]
    images, targets = batch[0], batch[1]
    return images, targets


def train_segmentation(
    model: nn.Module,
    loader,
    epochs: int,
    device: torch.device | str = "cpu",
    loss_function: nn.Module | None = None,
    learning_rate: float = 3e-3,
    weight_decay: float = 1e-4,
    progress: bool = True,
    description: str = "",
) -> dict:
    """Train ``model`` with AdamW and a one-cycle schedule and return its history.

    ``loader`` yields MONAI dictionaries ``{"image", "label"}`` or
    ``(image, target)`` pairs. The loss defaults to ``default_loss`` for the
    model's number of outputs. Returns ``{"loss": [mean loss per epoch],
    "seconds": wall time}``. The model is left in evaluation mode.
    """
    from tqdm.auto import tqdm

    model.to(device)
    if loss_function is None:
        out_channels = getattr(model, "out_channels", 1)
        loss_function = default_loss(out_channels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=learning_rate, total_steps=max(1, epochs * len(loader)), pct_start=0.2
    )

    history = {"loss": []}
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=description or "entraînement", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            images, targets = _split_batch(batch)
            images = torch.as_tensor(images).to(device)
            targets = torch.as_tensor(targets).to(device).float()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(model(images), targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(images)
            count += len(images)
        history["loss"].append(total / max(count, 1))
        bar.set_postfix(perte=f"{history['loss'][-1]:.3f}")
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return history


def train_or_load(
    model: nn.Module,
    path: Path,
    train: Callable[[nn.Module], dict],
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, dict, bool]:
    """Load the weights cached at ``path``, or train ``model`` and cache them.

    ``train(model)`` must train in place and return a history dictionary,
    which is stored with the weights. ``path`` usually comes from
    ``utils.cache.cache_path`` so that it changes with the settings. Returns
    ``(model, history, loaded_from_cache)``; the model is in evaluation mode.
    """
    path = Path(path)
    if path.is_file():
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint["state_dict"])
        model.to(device).eval()
        return model, checkpoint["history"], True
    history = train(model)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "history": history}, path)
    model.to(device).eval()
    return model, history, False


def _set_dropout_train(model: nn.Module) -> None:
    """Put every dropout layer of ``model`` in training mode, the rest stays in eval."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train()


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    mc_dropout: bool = False,
) -> torch.Tensor:
    """Return per-pixel probabilities ``(N, K, H, W)`` on the CPU.

    A one-output model goes through a sigmoid, a K-output model through a
    softmax over channels. With ``mc_dropout``, dropout layers stay active so
    that repeated calls draw Monte-Carlo samples; batch normalisation still
    uses its running statistics.
    """
    model.to(device).eval()
    if mc_dropout:
        _set_dropout_train(model)
    outputs = []
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size].to(device)).float()
        if logits.shape[1] == 1:
            outputs.append(torch.sigmoid(logits).cpu())
        else:
            outputs.append(torch.softmax(logits, dim=1).cpu())
    model.eval()
    return torch.cat(outputs)


def probabilities_to_masks(probabilities: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Turn probabilities ``(N, K, H, W)`` into boolean masks of the same shape.

    One channel: threshold. Several channels: one-hot of the most probable
    class.
    """
    if probabilities.shape[1] == 1:
        return probabilities >= threshold
    labels = probabilities.argmax(dim=1)
    one_hot = torch.nn.functional.one_hot(labels, probabilities.shape[1])
    return one_hot.permute(0, 3, 1, 2).bool()


def segmentation_scores(predictions, targets, spacing: float = 1.0):
    """Return a pandas table of Dice, IoU and HD95 for each image.

    ``predictions`` and ``targets`` are binary masks ``(N, H, W)`` or
    ``(N, 1, H, W)`` (tensors or arrays). Dice and IoU come from MONAI's
    ``compute_dice`` and ``compute_iou``; HD95 from ``compute_hausdorff_distance``
    with ``percentile=95``, in pixels times ``spacing``. Empty masks follow the
    convention in the module docstring. Columns: ``dice``, ``iou``, ``hd95``,
    ``truth_pixels``, ``predicted_pixels``.
    """
    import pandas as pd
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

    predicted = torch.as_tensor(np.asarray(predictions)).bool()
    truth = torch.as_tensor(np.asarray(targets)).bool()
    if predicted.ndim == 3:
        predicted = predicted[:, None]
    if truth.ndim == 3:
        truth = truth[:, None]
    if predicted.shape != truth.shape or predicted.shape[1] != 1:
        raise ValueError(
            f"Masques incompatibles : prédiction {tuple(predicted.shape)}, vérité "
            f"{tuple(truth.shape)}. Attendu deux masques binaires (N, H, W) ou (N, 1, H, W) de même forme."
        )

    predicted_pixels = predicted.flatten(1).sum(1)
    truth_pixels = truth.flatten(1).sum(1)
    dice = compute_dice(predicted.float(), truth.float(), include_background=True, ignore_empty=False)[:, 0]
    iou = compute_iou(predicted.float(), truth.float(), include_background=True, ignore_empty=False)[:, 0]

    height, width = truth.shape[-2:]
    hd95 = torch.full((len(truth),), float(np.hypot(height, width)) * spacing)
    both_empty = (predicted_pixels == 0) & (truth_pixels == 0)
    hd95[both_empty] = 0.0
    both_present = (predicted_pixels > 0) & (truth_pixels > 0)
    if both_present.any():
        with warnings.catch_warnings():
            # MONAI 1.5-1.6 warns about its own internal use of a deprecated argument.
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
            hd95[both_present] = compute_hausdorff_distance(
                predicted[both_present].float(),
                truth[both_present].float(),
                include_background=True,
                percentile=95,
                spacing=spacing,
            )[:, 0].float()

    return pd.DataFrame(
        {
            "dice": dice.double().numpy(),
            "iou": iou.double().numpy(),
            "hd95": hd95.double().numpy(),
            "truth_pixels": truth_pixels.numpy(),
            "predicted_pixels": predicted_pixels.numpy(),
        }
    )


def augmentation_transform(image_size: int):
    """Return the MONAI augmentation for ``{"image", "label"}`` pairs of ``image_size``² images.

    Horizontal flip (p = 0.5); rotation up to 0.2 rad, scaling up to 15 % and
    shift up to 8 % of the side together (p = 0.7, masks resampled by nearest
    neighbour); gamma contrast change of the image only (p = 0.3).
    """
    from monai.transforms import Compose, RandAdjustContrastd, RandAffined, RandFlipd

    keys = ["image", "label"]
    return Compose(
        [
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandAffined(
                keys,
                prob=0.7,
                rotate_range=0.2,
                scale_range=0.15,
                translate_range=(0.08 * image_size, 0.08 * image_size),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandAdjustContrastd(["image"], prob=0.3, gamma=(0.7, 1.5)),
        ]
    )


def augmented_loader(images: torch.Tensor, masks: torch.Tensor, indices, batch_size: int, seed: int):
    """Return a shuffled, augmented MONAI DataLoader over ``images[indices]`` and their masks.

    ``images`` and ``masks`` are ``(N, 1, H, W)`` tensors. The augmentation
    (``augmentation_transform``) and the shuffling are both seeded by
    ``seed``, so that the same seed gives the same batches.
    """
    from monai.data import DataLoader, Dataset

    from .seed import seed_worker, torch_generator

    transform = augmentation_transform(images.shape[-1])
    transform.set_random_state(seed=seed)
    items = [{"image": images[i], "label": masks[i]} for i in indices]
    return DataLoader(
        Dataset(items, transform=transform),
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch_generator(seed),
        worker_init_fn=seed_worker,
    )


BUSI_LEARNING_RATE = 1e-2


def busi_unet_recipe(settings, profile_name: str, source: str, n_images: int, test_names, seed: int = 0) -> dict:
    """Return the training recipe of the BUSI U-Nets of notebook 02, used as their cache key.

    Notebook 05 rebuilds the same recipe to find notebook 02's U-Net in the
    cache, so any change here retrains both. ``settings`` are notebook 02's
    profile settings. ``test_names`` are the names of the test images, so
    that a network trained on another split is never read back by mistake.
    """
    return {
        "profile": profile_name,
        "data": source,
        "images": n_images,
        "test_names": sorted(test_names),
        "image_size": settings.image_size,
        "normalisation": "z-score per image",
        "loss": "DiceCELoss(sigmoid=True, batch=True)",
        "channels": settings.channels,
        "dropout": settings.dropout,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "learning_rate": BUSI_LEARNING_RATE,
        "seed": seed,
    }
