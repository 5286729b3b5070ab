"""Radiographies thoraciques : CheXpert, NIH ChestX-ray14 et une interface commune.

Les deux chargeurs lisent la disposition publiée de chaque jeu et rendent la
même table : une ligne par image avec ``path``, ``patient_id``, ``view``
(``frontal`` ou ``lateral``), ``source``, une colonne par anomalie de la
compétition CheXpert (``FINDINGS``), valant 1, 0 ou NaN (étiquette ignorée),
la colonne ``No Finding`` (1 quand le compte rendu ne décrit aucune anomalie,
parmi toutes celles du jeu) et les données démographiques ``sex`` (``F``,
``M`` ou manquant), ``age`` (années, NaN si absent ou invalide) et
``view_position`` (``PA``, ``AP``, ``LL``, ``RL`` ou manquant).
``ChestXrayDataset`` sert ensuite chaque image comme un dictionnaire
``{"image", "label", "index", "patient_id"}``, à la manière de torchxrayvision :
les NaN sont exclus de la perte et des AUC.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets import get_dataset, locate_dataset

FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

# Noms NIH des cinq anomalies ; « Effusion » y désigne l'épanchement pleural.
NIH_NAMES = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Effusion": "Pleural Effusion",
}

# Ce que devient une étiquette incertaine (-1) de CheXpert, selon Irvin et al. 2019.
UNCERTAIN_POLICIES = {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}
# Une case vide signifie « anomalie non mentionnée dans le compte rendu » :
# on la lit comme négative (convention de CheXpert) ou on l'ignore.
BLANK_POLICIES = {"zeros": 0.0, "ignore": np.nan}

CHEXPERT_VALUES = {1.0, 0.0, -1.0}

# Codes de sexe des deux jeux publiés (NIH : M/F ; CheXpert : Male/Female/Unknown).
SEX_CODES = {"M": "M", "F": "F", "MALE": "M", "FEMALE": "F"}
VIEW_POSITIONS = ("PA", "AP", "LL", "RL")
# Âges admis, en années. Le fichier NIH complet contient quelques âges
# au-delà de 120 ans (erreurs de saisie) : ils deviennent NaN et sont comptés.
AGE_RANGE = (0, 120)
NO_FINDING = "No Finding"
PATIENT_PATTERN = re.compile(r"patient(\d+)")
SPLITS = ("train", "val", "test")


def _check_policy(name: str, value: str, allowed: dict) -> None:
    """Raise a French ValueError when ``value`` is not an allowed policy."""
    if value not in allowed:
        raise ValueError(
            f"Politique {name} inconnue : {value!r}. Valeurs possibles : {', '.join(allowed)}."
        )


def parse_demographics(sex: pd.Series, age: pd.Series, view_position: pd.Series) -> tuple[pd.DataFrame, dict[str, int]]:
    """Normalise sex, age and view position; return ``(columns, invalid counts)``.

    ``sex`` becomes ``F``, ``M`` or missing (``Unknown`` and unexpected codes),
    ``age`` a float in ``AGE_RANGE`` or NaN (non-numeric or out of range) and
    ``view_position`` one of ``VIEW_POSITIONS`` or missing. Blank cells are
    missing but not invalid; every other rejected value is counted in the
    returned dict, keyed by column.
    """
    sex_text = sex.astype("string").str.strip().str.upper()
    sex_clean = sex_text.map(SEX_CODES, na_action="ignore").astype("string")
    ages = pd.to_numeric(age, errors="coerce").astype(float)
    valid_age = ages.between(*AGE_RANGE)
    view_text = view_position.astype("string").str.strip().str.upper().replace("", pd.NA)
    view_clean = view_text.where(view_text.isin(VIEW_POSITIONS))
    invalid = {
        # « Unknown » de CheXpert est une valeur manquante déclarée, pas une erreur.
        "sex": int((sex_text.notna() & (sex_text != "") & (sex_text != "UNKNOWN") & sex_clean.isna()).sum()),
        "age": int((age.notna() & ~valid_age).sum()),
        "view_position": int((view_text.notna() & view_clean.isna()).sum()),
    }
    columns = pd.DataFrame(
        {
            "sex": sex_clean.to_numpy(),
            "age": ages.where(valid_age).to_numpy(),
            "view_position": view_clean.astype("string").to_numpy(),
        }
    )
    return columns, invalid


def _demographic_columns(raw: pd.DataFrame, names: tuple[str, str, str], csv_name: str) -> pd.DataFrame:
    """Return the demographic columns of ``raw`` read from its columns ``names`` (sex, age, view).

    A column absent from the file gives missing values; invalid values are
    replaced by missing values and reported in French.
    """
    empty = pd.Series([pd.NA] * len(raw), index=raw.index, dtype="object")
    sources = [raw[name] if name in raw.columns else empty for name in names]
    columns, invalid = parse_demographics(*sources)
    absent = [name for name in names if name not in raw.columns]
    if absent:
        print(f"{csv_name} : colonnes démographiques absentes ({', '.join(absent)}), laissées vides.")
    labels = {"sex": "sexes", "age": f"âges hors de [{AGE_RANGE[0]}, {AGE_RANGE[1]}] ans ou non numériques", "view_position": "incidences"}
    report = [f"{count} {labels[name]}" for name, count in invalid.items() if count]
    if report:
        print(f"{csv_name} : valeurs invalides remplacées par des valeurs manquantes : {', '.join(report)}.")
    return columns


def _resolve_chexpert_path(folder: Path, relative: str) -> Path:
    """Return the image path of a CSV entry, with or without the folder prefix.

    The published CSV writes ``CheXpert-v1.0-small/train/patient.../view1_frontal.jpg``;
    some copies drop the first folder and write ``train/patient.../...``.
    """
    parts = Path(relative).parts
    if parts and parts[0].startswith("CheXpert-v1.0"):
        parts = parts[1:]
    return folder.joinpath(*parts)


def map_chexpert_labels(column: pd.Series, uncertain: str, blank: str) -> pd.Series:
    """Map one CheXpert label column (1, 0, -1, blank) to 1, 0 or NaN with the given policies."""
    _check_policy("pour les étiquettes incertaines", uncertain, UNCERTAIN_POLICIES)
    _check_policy("pour les cases vides", blank, BLANK_POLICIES)
    values = pd.to_numeric(column, errors="coerce")
    unreadable = column.notna() & values.isna()
    unexpected = values.notna() & ~values.isin(CHEXPERT_VALUES)
    if unreadable.any() or unexpected.any():
        bad = column[unreadable | unexpected].unique()[:5]
        raise ValueError(
            f"Valeurs inattendues dans la colonne CheXpert « {column.name} » : {list(bad)}. "
            "Valeurs admises : 1.0, 0.0, -1.0 ou case vide."
        )
    mapped = values.astype(float).copy()
    mapped[values == -1.0] = UNCERTAIN_POLICIES[uncertain]
    mapped[values.isna()] = BLANK_POLICIES[blank]
    return mapped


def read_chexpert_table(
    folder,
    split: str = "train",
    uncertain: str = "ones",
    blank: str = "zeros",
    frontal_only: bool = True,
) -> pd.DataFrame:
    """Read ``train.csv`` or ``valid.csv`` of CheXpert-v1.0-small as a label table.

    ``uncertain`` maps the -1 labels (``"ones"``: U-Ones, ``"zeros"``:
    U-Zeros, ``"ignore"``: U-Ignore, NaN); ``blank`` maps empty cells
    (``"zeros"`` or ``"ignore"``). With ``frontal_only``, lateral views are
    dropped. ``No Finding`` is 1 or 0 (a blank cell means that some finding
    was reported); ``Sex``, ``Age`` and ``AP/PA`` become ``sex``, ``age`` and
    ``view_position`` (see ``parse_demographics``). Image files are not
    opened here.
    """
    _check_policy("pour les étiquettes incertaines", uncertain, UNCERTAIN_POLICIES)
    _check_policy("pour les cases vides", blank, BLANK_POLICIES)
    folder = Path(folder)
    csv_name = {"train": "train.csv", "valid": "valid.csv"}.get(split)
    if csv_name is None:
        raise ValueError(f"Partie CheXpert inconnue : {split!r}. Valeurs possibles : train, valid.")
    csv_path = folder / csv_name
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"Fichier CheXpert introuvable : {csv_path}. {get_dataset('chexpert').fetch_command()}"
        )
    raw = read_chexpert_style_csv(csv_path, "CheXpert")
    patients, labels = chexpert_style_patients_and_labels(raw, "CheXpert", uncertain, blank)
    table = pd.DataFrame(
        {
            "path": [str(_resolve_chexpert_path(folder, p)) for p in raw["Path"]],
            "patient_id": "chexpert-" + patients,
            "view": raw["Frontal/Lateral"].str.strip().str.lower(),
            "source": "chexpert",
        }
    )
    if NO_FINDING in raw.columns:
        table[NO_FINDING] = map_chexpert_labels(raw[NO_FINDING], "ones", "zeros").to_numpy()
    else:
        table[NO_FINDING] = np.nan
    demographics = _demographic_columns(raw, ("Sex", "Age", "AP/PA"), csv_path.name)
    table = pd.concat([table, labels, demographics], axis=1)
    if frontal_only:
        table = table[table["view"] == "frontal"]
    return table.reset_index(drop=True)


def read_chexpert_style_csv(csv_path: Path, dataset: str) -> pd.DataFrame:
    """Read a CSV with CheXpert's columns (CheXpert, CheXphoto); raise ``ValueError`` naming ``dataset`` if one is missing."""
    raw = pd.read_csv(csv_path)
    required = ["Path", "Frontal/Lateral", *FINDINGS]
    missing = [name for name in required if name not in raw.columns]
    if missing:
        raise ValueError(f"Colonnes absentes de {csv_path.name} : {missing}. Ce fichier n'a pas la disposition de {dataset}.")
    return raw


def chexpert_style_patients_and_labels(raw: pd.DataFrame, dataset: str, uncertain: str, blank: str):
    """Return ``(patients, labels)`` of a CheXpert-style table.

    ``patients`` is the patient number found in each ``Path``; ``labels`` has
    one column per finding, mapped by ``uncertain`` and ``blank`` as in
    ``map_chexpert_labels``. Raises ``ValueError`` naming ``dataset`` when a
    path has no patient number.
    """
    patients = raw["Path"].str.extract(PATIENT_PATTERN, expand=False)
    if patients.isna().any():
        example = raw.loc[patients.isna(), "Path"].iloc[0]
        raise ValueError(f"Identifiant patient introuvable dans le chemin {dataset} : {example!r} (attendu « patientNNNNN »).")
    labels = pd.DataFrame({finding: map_chexpert_labels(raw[finding], uncertain, blank).to_numpy() for finding in FINDINGS})
    return patients, labels


def _nih_image_index(folder: Path) -> dict[str, Path]:
    """Map image names to files in ``images/`` or the ``images_NNN/images/`` folders of the NIH download."""
    found = {}
    for pattern in ("images/*.png", "images_*/images/*.png"):
        for path in folder.glob(pattern):
            found.setdefault(path.name, path)
    return found


def read_nih_table(folder) -> tuple[pd.DataFrame, int]:
    """Read ``Data_Entry_2017.csv`` of NIH ChestX-ray14 as a label table.

    Returns ``(table, missing)``: rows whose image is absent are dropped and
    counted in ``missing``. The four NIH findings that have a CheXpert
    competition counterpart keep their name; ``Effusion`` becomes ``Pleural
    Effusion``. NIH labels carry no uncertainty, so every label is 0 or 1.
    ``No Finding`` is 1 when the image has none of the 14 NIH findings.
    ``Patient Gender``, ``Patient Age`` and ``View Position`` become ``sex``,
    ``age`` and ``view_position``; invalid values (for example ages above
    120 years) become missing values and are counted in a printed message.
    """
    folder = Path(folder)
    csv_path = folder / "Data_Entry_2017.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"Fichier NIH introuvable : {csv_path}. {get_dataset('nih_chestxray14').fetch_command()}"
        )
    raw = pd.read_csv(csv_path)
    required = ["Image Index", "Finding Labels", "Patient ID", "View Position"]
    missing_columns = [name for name in required if name not in raw.columns]
    if missing_columns:
        raise ValueError(
            f"Colonnes absentes de {csv_path.name} : {missing_columns}. Ce fichier n'a pas la disposition du NIH."
        )
    if raw["Finding Labels"].isna().any():
        raise ValueError(f"{int(raw['Finding Labels'].isna().sum())} lignes de {csv_path.name} n'ont aucune étiquette.")

    images = _nih_image_index(folder)
    present = raw["Image Index"].isin(images.keys())
    raw = raw[present]
    findings = raw["Finding Labels"].str.split("|")
    table = pd.DataFrame(
        {
            "path": [str(images[name]) for name in raw["Image Index"]],
            "patient_id": "nih-" + raw["Patient ID"].astype(str),
            # PA et AP sont deux incidences de face ; le NIH ne publie pas de profil.
            "view": np.where(raw["View Position"].isin(["PA", "AP"]), "frontal", "lateral"),
            "source": "nih_chestxray14",
        }
    )
    for nih_name, finding in NIH_NAMES.items():
        table[finding] = findings.map(lambda names, wanted=nih_name: float(wanted in names)).to_numpy()
    table[NO_FINDING] = findings.map(lambda names: float(names == ["No Finding"])).to_numpy()
    demographics = _demographic_columns(raw, ("Patient Gender", "Patient Age", "View Position"), csv_path.name)
    table = pd.concat([table.reset_index(drop=True), demographics.reset_index(drop=True)], axis=1)
    return table, int((~present).sum())


def _strata(table: pd.DataFrame) -> np.ndarray:
    """Return a stratum per image: 1 + the index of its rarest positive finding, 0 when it has none."""
    labels = np.nan_to_num(table[list(FINDINGS)].to_numpy(dtype=float)) == 1
    rarity = np.argsort(np.argsort(labels.sum(axis=0)))  # 0 pour l'anomalie la plus rare
    ranked = np.where(labels, rarity[None, :], len(FINDINGS))
    rarest = ranked.argmin(axis=1)
    return np.where(labels.any(axis=1), rarest + 1, 0)


def patient_split(table: pd.DataFrame, fractions=(0.6, 0.15, 0.25), seed: int = 0, names=SPLITS, folds: int = 20) -> pd.Series:
    """Assign every row to a part (``train``, ``val``, ``test``) so that no patient spans two parts.

    Patients are dealt into ``folds`` groups by scikit-learn's
    ``StratifiedGroupKFold``, which keeps each image's rarest finding about
    as frequent in every group. Each part then takes a share of the groups
    in proportion to its fraction. Returns the part name of every row.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if len(fractions) != len(names) or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"Fractions de partage invalides : {fractions} ({len(names)} valeurs positives de somme 1 attendues)."
        )
    groups = table["patient_id"].to_numpy()
    folds = min(folds, len(set(groups)))
    if folds < len(names):
        raise ValueError(f"Trop peu de patients ({folds}) pour former {len(names)} parties distinctes.")
    strata = _strata(table)
    # Les strates de moins de `folds` images sont regroupées, puis ce groupe
    # rejoint la strate la plus fréquente s'il reste trop petit : scikit-learn
    # demande au moins `folds` images par strate.
    values, counts = np.unique(strata, return_counts=True)
    strata = np.where(np.isin(strata, values[counts < folds]), -1, strata)
    merged = strata == -1
    if 0 < merged.sum() < folds and not merged.all():
        values, counts = np.unique(strata[~merged], return_counts=True)
        strata[merged] = values[np.argmax(counts)]
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of_row = np.empty(len(table), dtype=int)
    for fold, (_, rows) in enumerate(splitter.split(np.zeros(len(table)), strata, groups)):
        fold_of_row[rows] = fold
    # Nombre de groupes par partie, au moins un chacune.
    shares = np.maximum(1, np.round(np.asarray(fractions) * folds).astype(int))
    shares[0] = folds - shares[1:].sum()
    part_of_fold = np.repeat(np.arange(len(names)), shares)
    return pd.Series(np.asarray(names)[part_of_fold[fold_of_row]], index=table.index, name="split")


def shared_patients(*tables: pd.DataFrame) -> set:
    """Return the patient ids that appear in more than one of ``tables``."""
    seen, shared = set(), set()
    for table in tables:
        ids = set(table["patient_id"])
        shared |= seen & ids
        seen |= ids
    return shared


def load_image(path, size: int) -> np.ndarray:
    """Read one radiograph as a ``uint8`` grey image of ``size`` × ``size`` pixels."""
    from PIL import Image

    with Image.open(path) as image:
        grey = image.convert("L")
        if grey.size != (size, size):
            grey = grey.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(grey, dtype=np.uint8)


def load_images(paths, size: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read every image of ``paths``; return ``(images, readable)`` with a mask of the files read.

    An unreadable or corrupt file is skipped (its mask entry is False) rather
    than raising, so that the caller can count and report it.
    """
    from PIL import UnidentifiedImageError
    from tqdm.auto import tqdm

    paths = list(paths)
    images = np.zeros((len(paths), size, size), dtype=np.uint8)
    readable = np.ones(len(paths), dtype=bool)
    for i, path in enumerate(tqdm(paths, desc="lecture des images", disable=not progress)):
        try:
            images[i] = load_image(path, size)
        except (OSError, UnidentifiedImageError):
            readable[i] = False
    return images, readable


class ChestXrayDataset:
    """Chest radiographs as dicts: grey image in [0, 1], label vector with NaN, index.

    ``images`` is an optional ``uint8`` array aligned with ``table``; without
    it each image is read from ``table["path"]`` when requested. ``transform``
    receives and returns a ``(1, H, W)`` float tensor.
    """

    def __init__(self, table: pd.DataFrame, image_size: int = 64, images=None, transform=None):
        self.table = table.reset_index(drop=True)
        self.image_size = image_size
        self.images = images
        self.transform = transform
        self.labels = np.array(self.table[list(FINDINGS)], dtype=np.float32)
        if images is not None and len(images) != len(self.table):
            raise ValueError(f"{len(images)} images pour {len(self.table)} lignes : les deux doivent correspondre.")

    def __len__(self) -> int:
        return len(self.table)

    def image_array(self, index: int) -> np.ndarray:
        """Return image ``index`` as ``uint8`` (preloaded, or read from its file)."""
        if self.images is not None:
            return self.images[index]
        return load_image(self.table.at[index, "path"], self.image_size)

    def __getitem__(self, index: int) -> dict:
        import torch

        image = torch.from_numpy(self.image_array(index).astype(np.float32) / 255.0)[None]
        if self.transform is not None:
            image = self.transform(image)
        return {
            "image": image,
            "label": torch.from_numpy(self.labels[index]),
            "index": index,
            "patient_id": self.table.at[index, "patient_id"],
        }

    def __repr__(self) -> str:
        counts = ", ".join(f"{f} {int(np.nansum(self.labels[:, i]))}" for i, f in enumerate(FINDINGS))
        ignored = int(np.isnan(self.labels).sum())
        return (
            f"ChestXrayDataset({len(self)} images, {self.table['patient_id'].nunique()} patients, "
            f"{self.image_size}×{self.image_size} ; positifs : {counts} ; étiquettes ignorées : {ignored})"
        )


@dataclass
class ChestData:
    """A chest X-ray source ready for training: its name, its table with a ``split`` column and its images."""

    source: str
    table: pd.DataFrame
    images: np.ndarray | None
    image_size: int
    skipped: int = 0

    def dataset(self, split: str, transform=None, rows=None) -> ChestXrayDataset:
        """Return the dataset of one part (``train``, ``val`` or ``test``), optionally restricted to ``rows``."""
        if split not in SPLITS:
            raise ValueError(f"Partie inconnue : {split!r}. Valeurs possibles : {', '.join(SPLITS)}.")
        positions = np.flatnonzero(self.table["split"].to_numpy() == split)
        if rows is not None:
            positions = positions[np.asarray(rows)]
        images = None if self.images is None else self.images[positions]
        return ChestXrayDataset(self.table.iloc[positions], self.image_size, images, transform)

    def part(self, split: str) -> pd.DataFrame:
        """Return the rows of one part."""
        return self.table[self.table["split"] == split].reset_index(drop=True)


def _subsample_patients(table: pd.DataFrame, max_images: int | None, seed: int) -> pd.DataFrame:
    """Keep whole patients, drawn at random, until ``max_images`` rows are reached."""
    if max_images is None or len(table) <= max_images:
        return table
    counts = table["patient_id"].value_counts(sort=False)
    order = np.random.default_rng(seed).permutation(len(counts))
    kept = counts.index[order][np.cumsum(counts.to_numpy()[order]) <= max_images]
    return table[table["patient_id"].isin(set(kept))].reset_index(drop=True)


def _read_and_keep(table: pd.DataFrame, image_size: int, preload: bool) -> tuple[pd.DataFrame, np.ndarray | None, int]:
    """Preload the images of ``table`` and drop the unreadable ones; return the count dropped."""
    if not preload:
        return table, None, 0
    images, readable = load_images(table["path"], image_size, progress=len(table) > 2000)
    return table[readable].reset_index(drop=True), images[readable], int((~readable).sum())


def load_chest_data(
    image_size: int = 64,
    max_images: int | None = None,
    synthetic_count: int = 1000,
    uncertain: str = "ones",
    blank: str = "zeros",
    frontal_only: bool = True,
    fractions=(0.6, 0.15, 0.25),
    seed: int = 0,
    preload: bool = True,
    synthetic_demographic_bias: bool = False,
) -> ChestData:
    """Load CheXpert if present, else NIH ChestX-ray14, else synthetic radiographs.

    Prints in French which source is used and why. CheXpert keeps its
    official ``valid.csv`` as the test part and splits ``train.csv`` by
    patient into ``train`` and ``val``. The other sources are split by
    patient with ``fractions``. ``max_images`` keeps whole patients drawn at
    random. Rows whose image is missing or unreadable are dropped, counted in
    ``skipped`` and reported. ``synthetic_demographic_bias`` is passed to
    ``make_synthetic_cxr`` as ``demographic_bias`` (synthetic source only).
    """
    folder = locate_dataset("chexpert")
    if folder is not None:
        train = read_chexpert_table(folder, "train", uncertain, blank, frontal_only)
        test = read_chexpert_table(folder, "valid", uncertain, blank, frontal_only)
        train = _subsample_patients(train, max_images, seed)
        train_fraction = fractions[0] / (fractions[0] + fractions[1])
        train["split"] = patient_split(train, (train_fraction, 1 - train_fraction), seed, names=("train", "val"))
        test["split"] = "test"
        table = pd.concat([train, test], ignore_index=True)
        table, images, skipped = _read_and_keep(table, image_size, preload)
        source = "chexpert"
    else:
        folder = locate_dataset("nih_chestxray14")
        if folder is not None:
            table, missing = read_nih_table(folder)
            if frontal_only:
                table = table[table["view"] == "frontal"].reset_index(drop=True)
            table = _subsample_patients(table, max_images, seed)
            table["split"] = patient_split(table, fractions, seed)
            table, images, unreadable = _read_and_keep(table, image_size, preload)
            skipped = missing + unreadable
            source = "nih_chestxray14"
            print("CheXpert absent : le notebook utilise NIH ChestX-ray14 (mêmes cinq anomalies, « Effusion » = épanchement pleural).")
        else:
            from .synthetic_cxr import make_synthetic_cxr

            images, table = make_synthetic_cxr(synthetic_count, image_size, seed, demographic_bias=synthetic_demographic_bias)
            table["split"] = patient_split(table, fractions, seed)
            skipped = 0
            source = "synthetic"
            print(
                f"Ni CheXpert ni NIH ChestX-ray14 : le notebook continue avec {synthetic_count} "
                "radiographies SYNTHÉTIQUES (utils.synthetic_cxr). Les scores obtenus ne disent rien de vraies images."
            )
    if skipped:
        print(f"{skipped} images absentes ou illisibles ont été écartées.")
    shared = shared_patients(*(table[table["split"] == s] for s in SPLITS))
    if shared:
        raise RuntimeError(f"Partage incorrect : {len(shared)} patients sont dans plusieurs parties.")
    return ChestData(source, table, images, image_size, skipped)
