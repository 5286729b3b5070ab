"""Outils partagés des notebooks du cours « Apprentissage profond en imagerie médicale ».

Importer ce paquet ne charge ni ``torch`` ni ``kaggle`` et n'ouvre aucune
connexion réseau. Il fixe seulement ``PYTORCH_ENABLE_MPS_FALLBACK`` avant le
premier import de torch : sur un Mac Apple Silicon, les opérations que MPS ne
sait pas faire passent alors sur le CPU au lieu de lever une erreur. La
variable n'a d'effet que si elle existe quand torch est importé, d'où sa place
ici, en tête du paquet.
"""

import os

os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

from .paths import PROJECT_ROOT, data_root, output_dir  # noqa: E402
from .profile import Profile, get_profile  # noqa: E402
from .seed import seed_everything, seed_worker, torch_generator  # noqa: E402

__all__ = [
    "PROJECT_ROOT",
    "Profile",
    "data_root",
    "get_profile",
    "output_dir",
    "seed_everything",
    "seed_worker",
    "setup",
    "torch_generator",
]


def setup(seed: int = 0, verbose: bool = True):
    """Prepare a notebook: pick the device, read the profile, seed everything.

    Returns ``(device, profile)``. Prints the environment report and the
    profile with the reason it was chosen.
    """
    from .device import device_report, get_device

    device = get_device()
    profile = get_profile()
    seed_everything(seed)
    if verbose:
        print(device_report(device))
        print(profile.describe())
        print(f"Graine aléatoire : {seed}")
    return device, profile
