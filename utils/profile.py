"""Profils d'exécution : ``smoke``, ``quick`` et ``full``.

``MEDIMG_PROFILE`` est lu une seule fois par processus. Les tailles qui
dépendent du profil (taille d'image, époques, nombre d'échantillons, tirages
Monte-Carlo) sont rassemblées dans ``SETTINGS`` : un notebook les lit avec
``profile.settings("<nom du notebook>")`` et n'écrit jamais ces nombres
lui-même.
"""

import os
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

PROFILES = ("smoke", "quick", "full")

PROFILE_PURPOSE = {
    "smoke": "vérifie seulement que chaque cellule s'exécute, sur quelques images et une époque",
    "quick": "résultats qui restent parlants en quelques minutes sur un CPU",
    "full": "vise les chiffres publiés ; prévu pour un GPU CUDA",
}

# Réglages par notebook puis par profil. Chaque profil d'un notebook définit
# les mêmes clés, ce que vérifie tests/test_profile.py.
SETTINGS: dict[str, dict[str, dict]] = {
    "01_modalites_et_bruit": {
        "smoke": {"noise_repeats": 4, "dose_levels": (10, 1000), "rician_snrs": (0.5, 2.0, 8.0)},
        "quick": {
            "noise_repeats": 32,
            "dose_levels": (5, 20, 100, 1000),
            "rician_snrs": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
        },
        "full": {
            "noise_repeats": 128,
            "dose_levels": (2, 5, 20, 100, 1000, 5000),
            "rician_snrs": (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0),
        },
    },
    "02_segmentation_busi": {
        "smoke": {
            "image_size": 32,
            "max_per_class": 6,
            "synthetic_per_class": 6,
            "channels": (8, 16, 32),
            "dropout": 0.1,
            "epochs": 1,
            "batch_size": 8,
            "yolo_model": "yolov8n-seg.yaml",
            "yolo_weights": None,
            "yolo_imgsz": 64,
            "yolo_epochs": 1,
            "yolo_batch": 8,
            "yolo_mosaic": 0.0,
            "bootstrap_resamples": 100,
        },
        "quick": {
            "image_size": 64,
            "max_per_class": None,
            "synthetic_per_class": 50,
            "channels": (16, 32, 64, 128),
            "dropout": 0.1,
            "epochs": 60,
            "batch_size": 8,
            "yolo_model": "yolov8n-seg.yaml",
            "yolo_weights": None,
            "yolo_imgsz": 96,
            "yolo_epochs": 60,
            "yolo_batch": 16,
            "yolo_mosaic": 0.0,
            "bootstrap_resamples": 1000,
        },
        "full": {
            "image_size": 256,
            "max_per_class": None,
            "synthetic_per_class": 200,
            "channels": (32, 64, 128, 256, 512),
            "dropout": 0.1,
            "epochs": 150,
            "batch_size": 16,
            "yolo_model": "yolov8n-seg.yaml",
            "yolo_weights": "yolov8n-seg.pt",
            "yolo_imgsz": 256,
            "yolo_epochs": 150,
            "yolo_batch": 16,
            "yolo_mosaic": 1.0,
            "bootstrap_resamples": 2000,
        },
    },
    "03_detection_bccd": {
        "smoke": {
            "max_images_per_split": 8,
            "synthetic_images": 20,
            "yolo_model": "yolov8n.yaml",
            "yolo_weights": None,
            "yolo_imgsz": 160,
            "yolo_epochs": 1,
            "yolo_batch": 8,
            "yolo_close_mosaic": 0,
            "unet_size": (96, 128),
            "unet_channels": (8, 16, 32, 64),
            "unet_epochs": 1,
            "unet_batch": 8,
        },
        "quick": {
            "max_images_per_split": None,
            "synthetic_images": 200,
            "yolo_model": "yolov8n.yaml",
            "yolo_weights": None,
            "yolo_imgsz": 320,
            "yolo_epochs": 15,
            "yolo_batch": 8,
            "yolo_close_mosaic": 4,
            "unet_size": (192, 256),
            "unet_channels": (16, 32, 64, 128),
            "unet_epochs": 12,
            "unet_batch": 8,
        },
        "full": {
            "max_images_per_split": None,
            "synthetic_images": 364,
            "yolo_model": "yolov8n.yaml",
            "yolo_weights": "yolov8n.pt",
            "yolo_imgsz": 640,
            "yolo_epochs": 100,
            "yolo_batch": 16,
            "yolo_close_mosaic": 10,
            "unet_size": (384, 512),
            "unet_channels": (32, 64, 128, 256),
            "unet_epochs": 80,
            "unet_batch": 16,
        },
    },
    "04_peu_d_etiquettes_moco": {
        "smoke": {
            "image_size": 64,
            "max_images": 160,
            "synthetic_count": 160,
            "label_policy": "ones",
            "arch": "mobilenet_v2",
            "compare_arch": None,
            "remove_blocks": 5,
            "moco_epochs": 1,
            "moco_batch": 32,
            "moco_queue": 32,
            "moco_momentum": 0.99,
            "moco_temperature": 0.2,
            "moco_lr": 0.03,
            "moco_cxr_checkpoint": None,
            "probe_fractions": (0.25, 1.0),
            "probe_seeds": 2,
            "finetune_fractions": (1.0,),
            "finetune_seeds": 1,
            "finetune_epochs": 1,
            "finetune_lr": 3e-3,
            "batch_size": 32,
            "bootstrap": 100,
            "min_positive_patients": 2,
            "exercise_moco_epochs": 1,
        },
        "quick": {
            "image_size": 64,
            "max_images": 1000,
            "synthetic_count": 1000,
            "label_policy": "ones",
            "arch": "mobilenet_v2",
            "compare_arch": None,
            "remove_blocks": 5,
            "moco_epochs": 20,
            "moco_batch": 32,
            "moco_queue": 128,
            "moco_momentum": 0.99,
            "moco_temperature": 0.2,
            "moco_lr": 0.03,
            "moco_cxr_checkpoint": None,
            "probe_fractions": (0.05, 0.1, 0.25, 0.5, 1.0),
            "probe_seeds": 5,
            "finetune_fractions": (0.1, 1.0),
            "finetune_seeds": 1,
            "finetune_epochs": 10,
            "finetune_lr": 3e-3,
            "batch_size": 32,
            "bootstrap": 1000,
            "min_positive_patients": 5,
            "exercise_moco_epochs": 3,
        },
        "full": {
            "image_size": 224,
            "max_images": 60000,
            "synthetic_count": 5000,
            "label_policy": "ones",
            "arch": "densenet121",
            "compare_arch": "resnet18",
            "remove_blocks": 2,
            "moco_epochs": 20,
            "moco_batch": 64,
            "moco_queue": 8192,
            "moco_momentum": 0.999,
            "moco_temperature": 0.2,
            "moco_lr": 0.03,
            "moco_cxr_checkpoint": "MoCo-CXR/r8w-00001.pth.tar",
            "probe_fractions": (0.002, 0.01, 0.1, 1.0),
            "probe_seeds": 5,
            "finetune_fractions": (0.01, 0.1, 1.0),
            "finetune_seeds": 3,
            "finetune_epochs": 10,
            "finetune_lr": 3e-4,
            "batch_size": 64,
            "bootstrap": 2000,
            "min_positive_patients": 5,
            "exercise_moco_epochs": 5,
        },
    },
    "05_incertitude_segmentation": {
        "smoke": {
            "mc_samples": 3,
            "ensemble_size": 2,
            "ensemble_epochs": 1,
            "tta_angles": (10.0,),
            "bootstrap_resamples": 100,
            "random_referral_repeats": 20,
            "ood_per_kind": 2,
        },
        "quick": {
            "mc_samples": 10,
            "ensemble_size": 3,
            "ensemble_epochs": 30,
            "tta_angles": (-10.0, 10.0),
            "bootstrap_resamples": 1000,
            "random_referral_repeats": 200,
            "ood_per_kind": 8,
        },
        "full": {
            "mc_samples": 20,
            "ensemble_size": 5,
            "ensemble_epochs": None,
            "tta_angles": (-15.0, -7.5, 7.5, 15.0),
            "bootstrap_resamples": 2000,
            "random_referral_repeats": 500,
            "ood_per_kind": 20,
        },
    },
    "06_calibration_et_prediction_conforme": {
        "smoke": {
            "image_size": 64,
            "max_per_class": 10,
            "synthetic_per_class": 10,
            "dropout": 0.2,
            "learning_rate": 1e-2,
            "head_steps": 40,
            "kl_annealing_steps": 20,
            "mc_samples": 5,
            "resplits": 20,
            "ece_bins": 5,
            "bootstrap_resamples": 100,
        },
        "quick": {
            "image_size": 128,
            "max_per_class": None,
            "synthetic_per_class": 50,
            "dropout": 0.2,
            "learning_rate": 1e-2,
            "head_steps": 600,
            "kl_annealing_steps": 300,
            "mc_samples": 30,
            "resplits": 200,
            "ece_bins": 5,
            "bootstrap_resamples": 1000,
        },
        "full": {
            "image_size": 224,
            "max_per_class": None,
            "synthetic_per_class": 150,
            "dropout": 0.2,
            "learning_rate": 1e-2,
            "head_steps": 1000,
            "kl_annealing_steps": 500,
            "mc_samples": 50,
            "resplits": 1000,
            "ece_bins": 10,
            "bootstrap_resamples": 2000,
        },
    },
    "07_robustesse_decalage": {
        "smoke": {
            "degradations": ("glare", "blur", "brightness", "jpeg"),
            "severities": (5,),
            "degradation_seed": 0,
            "max_external_images": 200,
            "second_hospital_count": 60,
            "bootstrap": 50,
            "dropout": 0.2,
            "head_epochs": 1,
            "head_lr": 1e-3,
            "mc_samples": 5,
            "knn_k": 3,
            "min_unseen_per_kind": 1,
        },
        "quick": {
            "degradations": ("glare", "moire", "perspective", "blur", "motion", "brightness", "contrast", "rotation", "translation", "jpeg"),
            "severities": (1, 3, 5),
            "degradation_seed": 0,
            "max_external_images": 2000,
            "second_hospital_count": 400,
            "bootstrap": 300,
            "dropout": 0.2,
            "head_epochs": 5,
            "head_lr": 1e-3,
            "mc_samples": 30,
            "knn_k": 5,
            "min_unseen_per_kind": 10,
        },
        "full": {
            "degradations": ("glare", "moire", "perspective", "blur", "motion", "brightness", "contrast", "rotation", "translation", "jpeg"),
            "severities": (1, 2, 3, 4, 5),
            "degradation_seed": 0,
            "max_external_images": 20000,
            "second_hospital_count": 1000,
            "bootstrap": 1000,
            "dropout": 0.2,
            "head_epochs": 5,
            "head_lr": 1e-3,
            "mc_samples": 50,
            "knn_k": 10,
            "min_unseen_per_kind": 20,
        },
    },
    "08_interpretabilite": {
        "smoke": {
            "image_size": 64,
            "max_per_class": 6,
            "synthetic_per_class": 6,
            "explained_images": 2,
            "sanity_images": 1,
            "ig_steps": 8,
            "occlusion_window": 16,
            "occlusion_stride": 8,
            "lime_samples": 30,
            "lime_segments": 20,
            "shap_samples": 10,
            "shap_background": 8,
            "border_fraction": 0.15,
            "marker_size": 0.2,
            "degradations": ("glare", "blur"),
            "severity": 5,
            "bootstrap": 100,
        },
        "quick": {
            "image_size": 128,
            "max_per_class": None,
            "synthetic_per_class": 50,
            "explained_images": 8,
            "sanity_images": 3,
            "ig_steps": 16,
            "occlusion_window": 32,
            "occlusion_stride": 16,
            "lime_samples": 100,
            "lime_segments": 30,
            "shap_samples": 50,
            "shap_background": 16,
            "border_fraction": 0.15,
            "marker_size": 0.2,
            "degradations": ("glare", "moire", "perspective", "blur", "motion", "brightness", "contrast", "rotation", "translation", "jpeg"),
            "severity": 5,
            "bootstrap": 1000,
        },
        "full": {
            "image_size": 224,
            "max_per_class": None,
            "synthetic_per_class": 150,
            "explained_images": 50,
            "sanity_images": 20,
            "ig_steps": 64,
            "occlusion_window": 24,
            "occlusion_stride": 12,
            "lime_samples": 1000,
            "lime_segments": 60,
            "shap_samples": 200,
            "shap_background": 64,
            "border_fraction": 0.15,
            "marker_size": 0.2,
            "degradations": ("glare", "moire", "perspective", "blur", "motion", "brightness", "contrast", "rotation", "translation", "jpeg"),
            "severity": 5,
            "bootstrap": 2000,
        },
    },
    "09_detection_anomalies": {
        "smoke": {
            "channels": (8, 16, 32, 32),
            "ae_latent": 16,
            "vae_latent": 32,
            "epochs": 2,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "beta": 1.0,
            "shots": (5, None),
            "shot_seeds": 2,
            "bootstrap": 50,
            "min_positive_patients": 1,
            "exercise_latent": 64,
            "exercise_epochs": 1,
        },
        "quick": {
            "channels": (8, 16, 32, 32),
            "ae_latent": 16,
            "vae_latent": 32,
            "epochs": 15,
            "batch_size": 32,
            "learning_rate": 3e-3,
            "beta": 1.0,
            "shots": (5, 10, 25, None),
            "shot_seeds": 5,
            "bootstrap": 500,
            "min_positive_patients": 3,
            "exercise_latent": 64,
            "exercise_epochs": 8,
        },
        "full": {
            "channels": (16, 32, 64, 128),
            "ae_latent": 32,
            "vae_latent": 128,
            "epochs": 60,
            "batch_size": 64,
            "learning_rate": 1e-3,
            "beta": 1.0,
            "shots": (5, 10, 25, 100, None),
            "shot_seeds": 10,
            "bootstrap": 2000,
            "min_positive_patients": 5,
            "exercise_latent": 256,
            "exercise_epochs": 30,
        },
    },
    "10_apprentissage_federe": {
        "smoke": {
            "image_size": 64,
            "max_images": 240,
            "synthetic_count": 240,
            "arch": "mobilenet_v2",
            "remove_blocks": 5,
            "num_sites": 4,
            "dirichlet_alpha": 0.5,
            "rounds": 3,
            "local_epochs": 1,
            "local_epoch_grid": (1,),
            "lr": 1e-2,
            "batch_size": 32,
            "noise_multiplier": 1.0,
            "max_grad_norm": 1.0,
            "dp_delta": 1e-4,
            "exercise_alpha": 5.0,
            "exercise_noise_grid": (1.0, 4.0),
            "fedprox_mu": 0.1,
            "bootstrap": 50,
            "min_positive_patients": 2,
        },
        "quick": {
            "image_size": 64,
            "max_images": None,
            "synthetic_count": 1000,
            "arch": "mobilenet_v2",
            "remove_blocks": 5,
            "num_sites": 4,
            "dirichlet_alpha": 0.5,
            "rounds": 10,
            "local_epochs": 5,
            "local_epoch_grid": (1, 5),
            "lr": 1e-2,
            "batch_size": 32,
            "noise_multiplier": 1.0,
            "max_grad_norm": 1.0,
            "dp_delta": 1e-4,
            "exercise_alpha": 5.0,
            "exercise_noise_grid": (0.5, 1.0, 2.0, 4.0),
            "fedprox_mu": 0.1,
            "bootstrap": 300,
            "min_positive_patients": 3,
        },
        "full": {
            "image_size": 224,
            "max_images": None,
            "synthetic_count": 5000,
            "arch": "mobilenet_v2",
            "remove_blocks": 0,
            "num_sites": 4,
            "dirichlet_alpha": 0.5,
            "rounds": 50,
            "local_epochs": 5,
            "local_epoch_grid": (1, 5, 10),
            "lr": 1e-2,
            "batch_size": 64,
            "noise_multiplier": 1.0,
            "max_grad_norm": 1.0,
            "dp_delta": 1e-5,
            "exercise_alpha": 5.0,
            "exercise_noise_grid": (0.5, 1.0, 2.0, 4.0),
            "fedprox_mu": 0.1,
            "bootstrap": 1000,
            "min_positive_patients": 5,
        },
    },
    "11_equite_et_biais": {
        "smoke": {"image_size": 64, "max_images": 200, "synthetic_count": 200, "folds": 3, "regularisation": 1e-3,
                  "bootstrap": 50, "min_positive_patients": 3, "threshold_quantiles": (0.3, 0.5, 0.7)},
        "quick": {"image_size": 128, "max_images": None, "synthetic_count": 1000, "folds": 5, "regularisation": 1e-3,
                  "bootstrap": 500, "min_positive_patients": 5, "threshold_quantiles": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
        "full": {"image_size": 224, "max_images": None, "synthetic_count": 3000, "folds": 5, "regularisation": 1e-3,
                 "bootstrap": 1000, "min_positive_patients": 10, "threshold_quantiles": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
    },
}


@dataclass(frozen=True)
class Profile:
    """Run profile: its name and why it was chosen."""

    name: str
    reason: str

    def settings(self, notebook: str) -> SimpleNamespace:
        """Return the settings of ``notebook`` for this profile."""
        if notebook not in SETTINGS:
            known = ", ".join(sorted(SETTINGS))
            raise KeyError(
                f"Aucun réglage de profil pour le notebook « {notebook} ». "
                f"Notebooks connus : {known}. Ajoutez une entrée à utils/profile.py."
            )
        return SimpleNamespace(**SETTINGS[notebook][self.name])

    @property
    def is_smoke(self) -> bool:
        """Whether this run only checks that cells execute."""
        return self.name == "smoke"

    def describe(self) -> str:
        """Return a French sentence naming the profile and the reason."""
        return f"Profil : {self.name} ({PROFILE_PURPOSE[self.name]}) ; {self.reason}."


def resolve_profile(value: str | None, cuda_available: bool) -> Profile:
    """Choose the profile from the ``MEDIMG_PROFILE`` value and the hardware.

    Without a value, a CUDA GPU gives ``full`` and anything else ``quick``.
    Apple MPS also gives ``quick``, because the full budgets were sized for a
    CUDA GPU; set ``MEDIMG_PROFILE=full`` to override.
    """
    if value is not None and value.strip():
        name = value.strip().lower()
        if name not in PROFILES:
            raise ValueError(
                f"MEDIMG_PROFILE={value!r} n'est pas un profil valide. "
                f"Valeurs possibles : {', '.join(PROFILES)}."
            )
        return Profile(name, f"choisi par la variable MEDIMG_PROFILE={name}")
    if cuda_available:
        return Profile("full", "GPU CUDA détecté et MEDIMG_PROFILE non défini")
    return Profile("quick", "aucun GPU CUDA détecté et MEDIMG_PROFILE non défini")


@lru_cache(maxsize=1)
def get_profile() -> Profile:
    """Return the profile of this process, read once from ``MEDIMG_PROFILE``."""
    import torch

    return resolve_profile(os.environ.get("MEDIMG_PROFILE"), torch.cuda.is_available())
