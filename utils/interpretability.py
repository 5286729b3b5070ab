"""Cartes d'attribution et tests de fiabilité des explications.

Chaque méthode prend un modèle qui reçoit des images grises ``(N, 1, H, W)``
et rend un logit par classe, puis renvoie une carte ``(N, H, W)`` par image
pour la classe ``targets[i]`` :

- ``gradcam`` : Grad-CAM (Selvaraju et al. 2017) de ``pytorch-grad-cam`` sur
  une couche convolutive, positive et normalisée dans [0, 1] par image ;
- ``integrated_gradients`` et ``occlusion`` : captum, signées ;
- ``lime`` : LIME (Ribeiro et al. 2016) de captum sur des superpixels SLIC,
  un poids par superpixel ;
- ``shap`` : ``GradientExplainer`` de la bibliothèque ``shap`` (gradients
  espérés, Lundberg et Lee 2017) sur un fond d'images d'entraînement.

Les fonctions de mesure comparent des cartes entre elles (corrélation de
rang), à un masque (part de l'attribution positive dans une région) ou
mesurent l'effet d'un masquage de région sur la prédiction.
"""

import copy
import warnings

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.segmentation import slic
from torch import nn

METHODS = ("gradcam", "integrated_gradients", "occlusion", "lime", "shap")
METHOD_LABELS = {
    "gradcam": "Grad-CAM",
    "integrated_gradients": "gradients intégrés",
    "occlusion": "occlusion",
    "lime": "LIME",
    "shap": "SHAP (gradients espérés)",
}


def _as_batch(images) -> torch.Tensor:
    batch = torch.as_tensor(images, dtype=torch.float32)
    if batch.ndim == 3:
        batch = batch[:, None]
    if batch.ndim != 4 or batch.shape[1] != 1:
        raise ValueError(f"Images attendues de forme (N, 1, H, W) ou (N, H, W), reçu {tuple(batch.shape)}.")
    return batch


def _as_targets(targets, count: int) -> list[int]:
    targets = [int(target) for target in np.atleast_1d(targets)]
    if len(targets) == 1 and count > 1:
        targets = targets * count
    if len(targets) != count:
        raise ValueError(f"{len(targets)} classes cibles pour {count} images.")
    return targets


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def gradcam_maps(model: nn.Module, images, targets, layer: nn.Module) -> np.ndarray:
    """Return Grad-CAM maps of ``layer``, upsampled to the image size, in [0, 1] per image."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    batch = _as_batch(images).to(_model_device(model))
    outputs = [ClassifierOutputTarget(target) for target in _as_targets(targets, len(batch))]
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return np.asarray(cam(input_tensor=batch, targets=outputs), dtype=np.float32)


def integrated_gradients_maps(model: nn.Module, images, targets, steps: int = 32) -> np.ndarray:
    """Return signed integrated gradients from a black image (captum), one channel per image."""
    from captum.attr import IntegratedGradients

    batch = _as_batch(images).to(_model_device(model))
    target = torch.tensor(_as_targets(targets, len(batch)))
    attribution = IntegratedGradients(model).attribute(
        batch, baselines=torch.zeros_like(batch), target=target, n_steps=steps, internal_batch_size=64
    )
    return attribution[:, 0].detach().cpu().numpy()


def occlusion_maps(model: nn.Module, images, targets, window: int, stride: int) -> np.ndarray:
    """Return the drop of the target logit when a ``window`` square is set to 0 (captum ``Occlusion``)."""
    from captum.attr import Occlusion

    batch = _as_batch(images).to(_model_device(model))
    target = torch.tensor(_as_targets(targets, len(batch)))
    explainer = Occlusion(model)
    maps = []
    # captum multiplie le lot par perturbations_per_eval : une image à la fois borne la mémoire.
    for image, image_target in zip(batch, target):
        attribution = explainer.attribute(
            image[None], target=int(image_target), sliding_window_shapes=(1, window, window),
            strides=(1, stride, stride), baselines=0.0, perturbations_per_eval=64,
        )
        maps.append(attribution[0, 0].detach().cpu().numpy())
    return np.stack(maps)


def superpixels(image: np.ndarray, segments: int) -> np.ndarray:
    """Return SLIC superpixel labels (0, 1, …) of a grey image in [0, 1]."""
    return slic(np.asarray(image, dtype=np.float64), n_segments=segments, compactness=0.1, channel_axis=None,
                start_label=0)


def lime_maps(model: nn.Module, images, targets, samples: int = 200, segments: int = 30, seed: int = 0) -> np.ndarray:
    """Return LIME weights (captum ``Lime``, ridge surrogate) painted on each SLIC superpixel.

    A perturbed sample sets a random subset of superpixels to 0 (black). The
    surrogate is fitted on ``samples`` perturbations, each weighted by an
    exponential kernel on its cosine distance to the whole image.
    """
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    batch = _as_batch(images).to(_model_device(model))
    explainer = Lime(
        model,
        interpretable_model=SkLearnRidge(alpha=1.0),
        similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=0.25),
    )
    maps = []
    for image, target in zip(batch, _as_targets(targets, len(batch))):
        labels = superpixels(image[0].cpu().numpy(), segments)
        mask = torch.as_tensor(labels, device=batch.device)[None, None]
        # captum tire ses perturbations avec le générateur global de torch.
        torch.manual_seed(seed)
        attribution = explainer.attribute(
            image[None], target=target, feature_mask=mask, n_samples=samples, perturbations_per_eval=64,
            baselines=0.0,
        )
        maps.append(attribution[0, 0].detach().cpu().numpy())
    return np.stack(maps)


def shap_maps(model: nn.Module, images, targets, background, samples: int = 100, seed: int = 0) -> np.ndarray:
    """Return SHAP values of the target class from ``shap.GradientExplainer`` (expected gradients)."""
    with warnings.catch_warnings():
        # shap 0.51 appelle à l'import une fonction de matplotlib annoncée comme obsolète.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    batch = _as_batch(images).to(_model_device(model))
    reference = _as_batch(background).to(batch.device)
    image_targets = np.array(_as_targets(targets, len(batch)))
    maps = np.zeros(batch.shape[:1] + batch.shape[2:], dtype=np.float32)
    # GradientExplainer calcule toutes les sorties du modèle : on ne lui montre que le logit
    # de la classe cible, ce qui divise le coût par le nombre de classes.
    for target in np.unique(image_targets):
        chosen = np.flatnonzero(image_targets == target)
        explainer = shap.GradientExplainer(_SelectedLogit(model, int(target)), reference)
        values = np.asarray(explainer.shap_values(batch[chosen], nsamples=samples, rseed=seed))
        # shap ≥ 0.45 rend (N, 1, H, W, sorties), ici avec une seule sortie.
        maps[chosen] = values.reshape(len(chosen), *batch.shape[2:])
    return maps


class _SelectedLogit(nn.Module):
    """Expose one output column of ``model`` as a model with a single output."""

    def __init__(self, model: nn.Module, column: int):
        super().__init__()
        self.model = model
        self.column = column

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[:, self.column:self.column + 1]


def attribution_maps(method: str, model: nn.Module, images, targets, **options) -> np.ndarray:
    """Dispatch to one of ``METHODS``; ``options`` are the keyword arguments of that method's function."""
    functions = {
        "gradcam": gradcam_maps,
        "integrated_gradients": integrated_gradients_maps,
        "occlusion": occlusion_maps,
        "lime": lime_maps,
        "shap": shap_maps,
    }
    if method not in functions:
        raise ValueError(f"Méthode d'attribution inconnue : {method!r}. Valeurs possibles : {', '.join(METHODS)}.")
    return functions[method](model, images, targets, **options)


def positive_fraction_inside(maps, masks) -> np.ndarray:
    """Return, per image, the share of the positive attribution that falls inside ``masks``.

    Negative values (evidence against the class) are left out. An image
    whose map has no positive value gets NaN, not a made-up share.
    """
    positive = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    masks = np.asarray(masks, dtype=bool)
    if positive.shape != masks.shape:
        raise ValueError(f"Cartes {positive.shape} et masques {masks.shape} de formes différentes.")
    total = positive.reshape(len(positive), -1).sum(1)
    inside = (positive * masks).reshape(len(positive), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def rank_correlation(maps_a, maps_b, absolute: bool = True) -> np.ndarray:
    """Return the Spearman correlation between paired maps, per image.

    With ``absolute`` the maps are compared in absolute value, as Adebayo et
    al. (2018) do, because a sign flip of the whole map would otherwise hide
    an unchanged pattern. A constant map gives NaN.
    """
    maps_a = np.asarray(maps_a, dtype=np.float64)
    maps_b = np.asarray(maps_b, dtype=np.float64)
    if maps_a.shape != maps_b.shape:
        raise ValueError(f"Cartes de formes différentes : {maps_a.shape} et {maps_b.shape}.")
    if absolute:
        maps_a, maps_b = np.abs(maps_a), np.abs(maps_b)
    values = []
    for a, b in zip(maps_a.reshape(len(maps_a), -1), maps_b.reshape(len(maps_b), -1)):
        values.append(np.nan if a.std() == 0 or b.std() == 0 else spearmanr(a, b).statistic)
    return np.array(values)


def randomized_copy(model: nn.Module, module_names, seed: int = 0) -> nn.Module:
    """Return a copy of ``model`` whose named modules get fresh random weights (cascading randomisation).

    Every submodule of each named module that has ``reset_parameters`` is
    re-initialised; the rest of the network keeps its trained weights.
    """
    randomized = copy.deepcopy(model)
    torch.manual_seed(seed)
    for name in module_names:
        module = randomized.get_submodule(name)
        reset = [sub for sub in module.modules() if hasattr(sub, "reset_parameters")]
        if not reset:
            raise ValueError(f"Le module {name!r} n'a aucun poids à réinitialiser.")
        for sub in reset:
            sub.reset_parameters()
    return randomized.eval()


def border_mask(size: int, fraction: float) -> np.ndarray:
    """Return a ``(size, size)`` boolean mask of the band of width ``fraction × size`` along the edges."""
    if not 0 < fraction < 0.5:
        raise ValueError(f"La largeur de bande doit être dans ]0 ; 0,5[, reçu {fraction}.")
    width = max(1, int(round(fraction * size)))
    mask = np.ones((size, size), dtype=bool)
    mask[width:size - width, width:size - width] = False
    return mask


def fill_region(images, region, method: str = "mean") -> np.ndarray:
    """Return a copy of grey ``images`` ``(N, H, W)`` with ``region`` erased.

    ``region`` is one ``(H, W)`` mask shared by all images or one mask per
    image. ``method="mean"`` paints the region with the image's mean grey.
    That leaves a uniform patch with sharp edges, itself a new pattern for
    the network. ``"inpaint"`` fills the region from its surroundings with
    scikit-image's biharmonic inpainting.
    """
    if method not in ("mean", "inpaint"):
        raise ValueError(f"Méthode d'effacement inconnue : {method!r}. Valeurs possibles : mean, inpaint.")
    images = np.array(images, dtype=np.float32, copy=True)
    region = np.broadcast_to(np.asarray(region, dtype=bool), images.shape)
    for index, (image, mask) in enumerate(zip(images, region)):
        if not mask.any():
            continue
        if method == "mean":
            image[mask] = image.mean()
        else:
            from skimage.restoration import inpaint_biharmonic

            images[index] = inpaint_biharmonic(image, np.array(mask))
    return images
