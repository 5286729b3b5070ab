"""Images médicales réelles livrées par les paquets installés, sans téléchargement.

``pydicom`` contient quelques petits fichiers DICOM ; ``pydicom-data`` (module
``data_store``) ajoute des radiographies, scanners, IRM, échographies et une
scintigraphie dans plusieurs syntaxes de transfert. ``nibabel`` livre quelques
volumes IRM NIfTI. Ces fonctions cherchent les fichiers sur le disque et ne
déclenchent jamais le téléchargement que ``pydicom.data`` tente pour un
fichier absent.
"""

from importlib.util import find_spec
from pathlib import Path


def _package_folder(module: str, *parts: str) -> Path | None:
    """Return a data folder inside an installed package, or None."""
    spec = find_spec(module)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent.joinpath(*parts)
    return folder if folder.is_dir() else None


def dicom_sample(name: str) -> Path:
    """Return the path of a DICOM test file shipped by pydicom or pydicom-data."""
    folders = [
        _package_folder("pydicom", "data", "test_files"),
        _package_folder("data_store", "data"),
    ]
    for folder in folders:
        if folder is not None and (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"Fichier DICOM d'exemple introuvable : {name}. Il est livré par le paquet "
        "pydicom-data : installez-le avec « python -m pip install pydicom-data »."
    )


def nifti_sample(name: str) -> Path:
    """Return the path of a NIfTI test volume shipped by nibabel."""
    folder = _package_folder("nibabel", "tests", "data")
    if folder is not None and (folder / name).is_file():
        return folder / name
    raise FileNotFoundError(
        f"Volume NIfTI d'exemple introuvable : {name}. Il est livré avec nibabel : "
        "réinstallez-le avec « python -m pip install --force-reinstall nibabel »."
    )
