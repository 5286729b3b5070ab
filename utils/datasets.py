"""Registre des jeux de données du cours et état de leur présence locale.

Chaque entrée dit d'où vient le jeu, sa licence, comment le citer, la
disposition de fichiers attendue sous ``MEDIMG_DATA`` et sa taille. Les
chargeurs propres à chaque jeu vivent dans leurs modules ; ce module ne lit
que des noms de fichiers.
"""

from dataclasses import dataclass
from pathlib import Path

from .paths import data_root


@dataclass(frozen=True)
class DatasetInfo:
    """One course dataset as published by its provider."""

    key: str
    title: str
    folders: tuple[str, ...]
    markers: tuple[str, ...]
    source: str
    licence: str
    citation: str
    layout: str
    size: str
    kaggle_slug: str | None = None
    get_command: str = ""

    def locate(self, root: Path | None = None) -> Path | None:
        """Return the first candidate folder that holds every marker, else None."""
        root = data_root() if root is None else Path(root)
        for folder in self.folders:
            candidate = root / folder
            if all((candidate / marker).exists() for marker in self.markers):
                return candidate
        return None

    def fetch_command(self, root: Path | None = None) -> str:
        """Return the shell command that fetches this dataset into ``root``, or how to get it."""
        if self.kaggle_slug:
            from .colab import in_colab

            if in_colab():  # a shell command cannot read the notebook's Colab secrets
                return f'from utils.download import download_dataset; download_dataset("{self.key}")'
            return f"python -m utils.download {self.key}"
        root = data_root() if root is None else Path(root)
        command = self.get_command.replace("{root}", str(root))
        from .colab import in_colab

        if in_colab() and command.startswith(("git ", "wget ", "curl ", "python ")):
            return "!" + command  # a shell command in a Colab cell
        return command


REGISTRY: dict[str, DatasetInfo] = {
    info.key: info
    for info in (
        DatasetInfo(
            key="busi",
            title="BUSI (échographie mammaire, masques de lésion)",
            folders=("Dataset_BUSI_with_GT",),
            markers=("benign", "malignant", "normal"),
            source="Kaggle aryashah2k/breast-ultrasound-images-dataset",
            licence="CC0 1.0 (indiquée sur Kaggle)",
            citation=(
                "Al-Dhabyani W., Gomaa M., Khaled H., Fahmy A. Dataset of breast "
                "ultrasound images. Data in Brief 28 (2020) 104863."
            ),
            layout="Dataset_BUSI_with_GT/<classe>/<classe> (<n>).png et <classe> (<n>)_mask*.png",
            size="780 images PNG (environ 200 Mo)",
            kaggle_slug="aryashah2k/breast-ultrasound-images-dataset",
        ),
        DatasetInfo(
            key="bccd",
            title="BCCD (frottis sanguins, boîtes Pascal VOC)",
            folders=("BCCD_Dataset",),
            markers=("BCCD/JPEGImages", "BCCD/Annotations", "BCCD/ImageSets/Main"),
            source="GitHub Shenggan/BCCD_Dataset",
            licence="MIT",
            citation="Shenggan. BCCD Dataset (2017), github.com/Shenggan/BCCD_Dataset.",
            layout="BCCD_Dataset/BCCD/{JPEGImages,Annotations,ImageSets/Main}",
            size="364 images JPEG 640×480 (environ 8 Mo)",
            get_command=(
                'git clone --depth 1 https://github.com/Shenggan/BCCD_Dataset.git '
                '"{root}/BCCD_Dataset"'
            ),
        ),
        DatasetInfo(
            key="chexpert",
            title="CheXpert v1.0 small (radiographies thoraciques)",
            folders=("CheXpert-v1.0-small",),
            markers=("train.csv", "valid.csv"),
            source="Stanford AIMI, stanfordaimi.azurewebsites.net/datasets",
            licence="Stanford University School of Medicine CheXpert Dataset Research Use Agreement (pas de redistribution)",
            citation=(
                "Irvin J. et al. CheXpert: a large chest radiograph dataset with "
                "uncertainty labels and expert comparison. AAAI 2019."
            ),
            layout="CheXpert-v1.0-small/{train.csv,valid.csv,train/,valid/}",
            size="environ 224 000 radiographies (11 Go)",
            get_command=(
                "inscription puis téléchargement manuel sur "
                "https://stanfordaimi.azurewebsites.net/datasets ; décompresser "
                "CheXpert-v1.0-small dans {root}/"
            ),
        ),
        DatasetInfo(
            key="nih_chestxray14",
            title="NIH ChestX-ray14 (radiographies thoraciques, 14 anomalies)",
            folders=("NIH_ChestXray14", "NIH_ChestXray14_sample64"),
            markers=("Data_Entry_2017.csv", "images"),
            source="NIH Clinical Center, nihcc.app.box.com/v/ChestXray-NIHCC",
            licence="NIH Clinical Center : usage libre, attribution demandée",
            citation=(
                "Wang X. et al. ChestX-ray8: hospital-scale chest X-ray database "
                "and benchmarks. CVPR 2017."
            ),
            layout="NIH_ChestXray14/{Data_Entry_2017.csv,images/<Image Index>}",
            size="112 120 images PNG 1024×1024 (environ 45 Go)",
            get_command=(
                "téléchargement depuis https://nihcc.app.box.com/v/ChestXray-NIHCC "
                "(script batch_download_zips.py du NIH) ; extraire les archives "
                "dans {root}/NIH_ChestXray14/images/"
            ),
        ),
        DatasetInfo(
            key="chexphoto",
            title="CheXphoto (photographies de radiographies thoraciques)",
            folders=("CheXphoto-v1.0",),
            markers=("train.csv", "valid.csv"),
            source="Stanford ML Group, stanfordmlgroup.github.io/competitions/chexphoto",
            licence="Stanford CheXphoto Research Use Agreement (pas de redistribution)",
            citation=(
                "Phillips N. A. et al. CheXphoto: 10,000+ photos and transformations "
                "of chest X-rays for benchmarking deep learning robustness. "
                "ML4H, NeurIPS 2020."
            ),
            layout="CheXphoto-v1.0/{train.csv,valid.csv,train/,valid/}",
            size="environ 10 000 photographies et leurs transformations (environ 10 Go)",
            get_command=(
                "inscription puis téléchargement manuel sur "
                "https://stanfordmlgroup.github.io/competitions/chexphoto/ ; "
                "décompresser dans {root}/"
            ),
        ),
        DatasetInfo(
            key="hannover_covid19",
            title="Hannover COVID-19 CXR (site externe, radiographies thoraciques)",
            folders=("Hannover_COVID19_CXR",),
            markers=("data.csv", "png"),
            source="GitHub ml-workgroup/covid-19-image-repository",
            licence="CC BY 3.0",
            citation=(
                "Institute for Diagnostic and Interventional Radiology, Hannover "
                "Medical School. COVID-19 image repository. DOI 10.6084/m9.figshare.12275009."
            ),
            layout="Hannover_COVID19_CXR/{data.csv,png/<image_id>.png}",
            size="243 radiographies PNG de 71 patients",
            get_command=(
                "git clone --depth 1 https://github.com/ml-workgroup/covid-19-image-repository.git "
                '"{root}/Hannover_COVID19_CXR"'
            ),
        ),
    )
}


def get_dataset(key: str) -> DatasetInfo:
    """Return the registry entry ``key`` or raise a French KeyError."""
    if key not in REGISTRY:
        raise KeyError(
            f"Jeu de données inconnu : « {key} ». Jeux enregistrés : {', '.join(REGISTRY)}."
        )
    return REGISTRY[key]


def locate_dataset(key: str, announce: bool = True) -> Path | None:
    """Return the folder of dataset ``key`` under ``MEDIMG_DATA``, or None.

    With ``announce``, print in French where it was found or, when it is
    missing, the exact command that fetches it.
    """
    info = get_dataset(key)
    folder = info.locate()
    if announce:
        if folder is None:
            print(
                f"Jeu de données absent : {info.title}, attendu sous {data_root()} "
                f"({info.layout}).\nPour l'obtenir : {info.fetch_command()}"
            )
        else:
            print(f"Jeu de données trouvé : {info.title} dans {folder}")
    return folder


def dataset_status(root: Path | None = None):
    """Return a French pandas table: each dataset, whether it is present, where."""
    import pandas as pd

    root = data_root() if root is None else Path(root)
    rows = []
    for info in REGISTRY.values():
        folder = info.locate(root)
        rows.append(
            {
                "jeu de données": info.key,
                "présent": "oui" if folder else "non",
                "dossier": folder.name if folder else "—",
                "description": info.title,
            }
        )
    return pd.DataFrame(rows).set_index("jeu de données")


def print_dataset_status(root: Path | None = None) -> None:
    """Print the data root, which datasets are present, and how to get the others."""
    root = data_root() if root is None else Path(root)
    print(f"Racine des données (MEDIMG_DATA) : {root}")
    if not root.exists():
        print("Ce dossier n'existe pas encore : aucun jeu de données n'est présent.")
    table = dataset_status(root)
    print(table.to_string())
    missing = table.index[table["présent"] == "non"]
    if len(missing):
        print("\nPour obtenir les jeux absents :")
        for key in missing:
            print(f"  {key} : {REGISTRY[key].fetch_command(root)}")
