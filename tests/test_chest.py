"""Chest X-ray loaders on fabricated trees in the published CheXpert and NIH layouts."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from utils.chest import (
    FINDINGS,
    ChestXrayDataset,
    load_chest_data,
    parse_demographics,
    patient_split,
    read_chexpert_table,
    read_nih_table,
    shared_patients,
)
from utils.synthetic_cxr import make_synthetic_cxr

CHEXPERT_COLUMNS = [
    "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
    "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
    "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
]


def write_image(path, size=(24, 30), value=128):
    """Write a small grey JPEG or PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, dtype=np.uint8)).save(path)


def chexpert_row(path, view, labels):
    """Return one CheXpert CSV row; ``labels`` maps findings to "1.0", "0.0", "-1.0" or ""."""
    row = dict.fromkeys(CHEXPERT_COLUMNS, "")
    row.update({"Path": path, "Sex": "Female", "Age": "68", "Frontal/Lateral": view, "AP/PA": "AP" if view == "Frontal" else ""})
    row.update(labels)
    return row


@pytest.fixture
def chexpert_tree(data_dir):
    """Fabricate CheXpert-v1.0-small with every label value and both path forms."""
    folder = data_dir / "CheXpert-v1.0-small"
    folder.mkdir()
    rows = [
        # Chemin publié, avec le préfixe du dossier : 1, 0, -1 et case vide.
        chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "Frontal",
                     {"Atelectasis": "1.0", "Cardiomegaly": "0.0", "Consolidation": "-1.0", "Edema": "", "Pleural Effusion": "-1.0"}),
        chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg", "Lateral",
                     {"Atelectasis": "1.0", "Cardiomegaly": "0.0", "Consolidation": "-1.0", "Edema": "", "Pleural Effusion": "-1.0"}),
        # Chemin sans le préfixe, comme dans certaines copies.
        chexpert_row("train/patient00002/study1/view1_frontal.jpg", "Frontal",
                     {"Atelectasis": "", "Cardiomegaly": "1.0", "Consolidation": "0.0", "Edema": "-1.0", "Pleural Effusion": "1.0"}),
    ]
    for patient in range(3, 13):
        rows.append(chexpert_row(f"CheXpert-v1.0-small/train/patient{patient:05d}/study1/view1_frontal.jpg", "Frontal",
                                 {finding: ("1.0" if (patient + k) % 3 == 0 else "0.0") for k, finding in enumerate(FINDINGS)}))
    pd.DataFrame(rows, columns=CHEXPERT_COLUMNS).to_csv(folder / "train.csv", index=False)
    valid = [chexpert_row(f"CheXpert-v1.0-small/valid/patient{p:05d}/study1/view1_frontal.jpg", "Frontal",
                          {finding: ("1.0" if (p + k) % 2 else "0.0") for k, finding in enumerate(FINDINGS)})
             for p in range(64541, 64545)]
    pd.DataFrame(valid, columns=CHEXPERT_COLUMNS).to_csv(folder / "valid.csv", index=False)
    for row in rows + valid:
        relative = row["Path"].removeprefix("CheXpert-v1.0-small/")
        write_image(folder / relative)
    return folder


def test_chexpert_u_ones(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, uncertain="ones", frontal_only=False)
    first = table.iloc[0]
    assert first["Atelectasis"] == 1.0
    assert first["Cardiomegaly"] == 0.0
    assert first["Consolidation"] == 1.0
    assert first["Edema"] == 0.0
    assert first["Pleural Effusion"] == 1.0


def test_chexpert_u_zeros(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, uncertain="zeros", frontal_only=False)
    first = table.iloc[0]
    assert first["Atelectasis"] == 1.0
    assert first["Consolidation"] == 0.0
    assert first["Pleural Effusion"] == 0.0
    assert table.iloc[2]["Edema"] == 0.0


def test_chexpert_u_ignore(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, uncertain="ignore", frontal_only=False)
    first = table.iloc[0]
    assert math.isnan(first["Consolidation"])
    assert math.isnan(first["Pleural Effusion"])
    assert first["Edema"] == 0.0
    assert first["Atelectasis"] == 1.0


def test_chexpert_blank_ignore(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, uncertain="ones", blank="ignore", frontal_only=False)
    assert math.isnan(table.iloc[0]["Edema"])
    assert math.isnan(table.iloc[2]["Atelectasis"])
    assert table.iloc[2]["Edema"] == 1.0


def test_chexpert_both_path_forms(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, frontal_only=False)
    assert table.iloc[0]["path"] == str(chexpert_tree / "train/patient00001/study1/view1_frontal.jpg")
    assert table.iloc[2]["path"] == str(chexpert_tree / "train/patient00002/study1/view1_frontal.jpg")
    assert all(Path(path).is_file() for path in table["path"])


def test_chexpert_frontal_only(chexpert_tree):
    every = read_chexpert_table(chexpert_tree, frontal_only=False)
    frontal = read_chexpert_table(chexpert_tree, frontal_only=True)
    assert len(every) - len(frontal) == 1
    assert set(frontal["view"]) == {"frontal"}


def test_chexpert_patient_ids(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, frontal_only=False)
    assert table.iloc[0]["patient_id"] == table.iloc[1]["patient_id"] == "chexpert-00001"


def test_chexpert_unknown_policy(chexpert_tree):
    with pytest.raises(ValueError, match="Politique"):
        read_chexpert_table(chexpert_tree, uncertain="maybe")


def test_chexpert_unexpected_label(chexpert_tree):
    raw = pd.read_csv(chexpert_tree / "train.csv", dtype=str, keep_default_na=False)
    raw.loc[3, "Edema"] = "2.0"
    raw.to_csv(chexpert_tree / "train.csv", index=False)
    with pytest.raises(ValueError, match="Edema"):
        read_chexpert_table(chexpert_tree)


def test_chexpert_missing_csv(data_dir):
    with pytest.raises(FileNotFoundError, match="CheXpert"):
        read_chexpert_table(data_dir / "CheXpert-v1.0-small")


@pytest.fixture
def nih_tree(data_dir):
    """Fabricate NIH_ChestXray14 with a missing image and a corrupt one."""
    folder = data_dir / "NIH_ChestXray14"
    labels = ["Cardiomegaly|Effusion", "No Finding", "Atelectasis|Infiltration", "Edema", "Consolidation|Mass",
              "No Finding", "Effusion", "Hernia", "No Finding", "Cardiomegaly"]
    rows = []
    for i, finding_labels in enumerate(labels):
        name = f"{i // 2 + 1:08d}_{i % 2:03d}.png"
        rows.append({"Image Index": name, "Finding Labels": finding_labels, "Follow-up #": i % 2,
                     "Patient ID": i // 2 + 1, "Patient Age": 50, "Patient Gender": "F",
                     "View Position": "PA" if i % 3 else "AP"})
        if i != 9:
            write_image(folder / "images" / name, (64, 64))
    (folder / "images" / rows[8]["Image Index"]).write_bytes(b"not a png")
    pd.DataFrame(rows).to_csv(folder / "Data_Entry_2017.csv", index=False)
    return folder


def test_nih_labels_mapped(nih_tree):
    table, missing = read_nih_table(nih_tree)
    first = table.iloc[0]
    assert first["Cardiomegaly"] == 1.0
    assert first["Pleural Effusion"] == 1.0
    assert first["Atelectasis"] == 0.0
    assert table.iloc[2]["Atelectasis"] == 1.0


def test_nih_no_finding_all_zero(nih_tree):
    table, _ = read_nih_table(nih_tree)
    assert table.iloc[1][list(FINDINGS)].sum() == 0


def test_nih_missing_image_counted(nih_tree):
    table, missing = read_nih_table(nih_tree)
    assert missing == 1
    assert len(table) == 9


def test_nih_patient_ids(nih_tree):
    table, _ = read_nih_table(nih_tree)
    assert table["patient_id"].iloc[0] == table["patient_id"].iloc[1] == "nih-1"


def test_nih_missing_column(nih_tree):
    raw = pd.read_csv(nih_tree / "Data_Entry_2017.csv").drop(columns="Patient ID")
    raw.to_csv(nih_tree / "Data_Entry_2017.csv", index=False)
    with pytest.raises(ValueError, match="Patient ID"):
        read_nih_table(nih_tree)


def test_patient_split_disjoint():
    _, table = make_synthetic_cxr(120, 32, seed=1)
    split = patient_split(table, (0.6, 0.15, 0.25), seed=3)
    parts = [table[split == name] for name in ("train", "val", "test")]
    assert shared_patients(*parts) == set()
    assert all(len(part) > 0 for part in parts)


def test_patient_split_fractions():
    _, table = make_synthetic_cxr(400, 32, seed=1)
    split = patient_split(table, (0.6, 0.15, 0.25), seed=0)
    assert abs((split == "train").mean() - 0.6) < 0.03
    assert abs((split == "test").mean() - 0.25) < 0.03


def test_shared_patients_detected():
    first = pd.DataFrame({"patient_id": ["a", "b"]})
    second = pd.DataFrame({"patient_id": ["b", "c"]})
    assert shared_patients(first, second) == {"b"}


def test_dataset_sample_dict():
    images, table = make_synthetic_cxr(6, 32)
    table.loc[2, "Edema"] = np.nan
    sample = ChestXrayDataset(table, 32, images)[2]
    assert tuple(sample["image"].shape) == (1, 32, 32)
    assert float(sample["image"].max()) <= 1.0
    assert sample["index"] == 2
    assert np.isnan(sample["label"][FINDINGS.index("Edema")].item())


def test_dataset_reads_files(nih_tree):
    table, _ = read_nih_table(nih_tree)
    sample = ChestXrayDataset(table.iloc[:2], 40)[1]
    assert tuple(sample["image"].shape) == (1, 40, 40)


def test_source_chexpert_first(chexpert_tree, nih_tree):
    data = load_chest_data(image_size=32, seed=0)
    assert data.source == "chexpert"
    assert set(data.part("test")["patient_id"]) == {f"chexpert-{p}" for p in range(64541, 64545)}
    assert shared_patients(data.part("train"), data.part("val"), data.part("test")) == set()


def test_source_nih_skips_corrupt(nih_tree):
    data = load_chest_data(image_size=32, seed=0)
    assert data.source == "nih_chestxray14"
    assert data.skipped == 2
    assert len(data.table) == 8


def test_source_synthetic_default(data_dir):
    data = load_chest_data(image_size=32, synthetic_count=50, seed=0)
    assert data.source == "synthetic"
    assert data.images.shape == (50, 32, 32)


def test_synthetic_deterministic():
    first, table = make_synthetic_cxr(12, 32, seed=5)
    second, _ = make_synthetic_cxr(20, 32, seed=5)
    assert np.array_equal(first, second[:12])
    assert set(np.unique(table[list(FINDINGS)])) <= {0.0, 1.0}


def test_synthetic_cardiomegaly_widens_heart():
    images, table = make_synthetic_cxr(400, 64, seed=0)
    # Le cœur élargi remplace du poumon sombre près de la base gauche :
    # cette zone est en moyenne plus claire chez les cas de cardiomégalie.
    region = images[:, 34:48, 34:46].mean(axis=(1, 2))
    cardio = table["Cardiomegaly"].to_numpy() == 1
    assert region[cardio].mean() > region[~cardio].mean() + 5


# ---------------------------------------------------------------------------
# Données démographiques : sexe, âge, incidence


def test_nih_demographic_columns(nih_tree):
    table, _ = read_nih_table(nih_tree)
    assert table["sex"].iloc[0] == "F"
    assert table["age"].iloc[0] == 50.0
    assert table["view_position"].iloc[0] == "AP"
    assert table["view_position"].iloc[1] == "PA"


def test_nih_no_finding_column(nih_tree):
    table, _ = read_nih_table(nih_tree)
    assert table["No Finding"].iloc[1] == 1.0
    # « Hernia » seule n'est pas une des cinq anomalies, mais ce n'est pas « No Finding ».
    hernia = table["path"].str.endswith("00000004_001.png")
    assert table.loc[hernia, "No Finding"].item() == 0.0
    assert table.loc[hernia, list(FINDINGS)].sum(axis=1).item() == 0


def test_nih_invalid_age_reported(nih_tree, capsys):
    csv_path = nih_tree / "Data_Entry_2017.csv"
    raw = pd.read_csv(csv_path)
    raw.loc[0, "Patient Age"] = 413
    raw.loc[1, "Patient Age"] = -2
    raw.loc[2, "Patient Gender"] = "X"
    raw.to_csv(csv_path, index=False)
    table, _ = read_nih_table(nih_tree)
    assert np.isnan(table["age"].iloc[0])
    assert np.isnan(table["age"].iloc[1])
    assert table["age"].iloc[3] == 50.0
    assert pd.isna(table["sex"].iloc[2])
    message = capsys.readouterr().out
    assert "2 âges hors de [0, 120] ans" in message
    assert "1 sexes" in message


def test_nih_missing_demographic_column(nih_tree, capsys):
    csv_path = nih_tree / "Data_Entry_2017.csv"
    pd.read_csv(csv_path).drop(columns="Patient Age").to_csv(csv_path, index=False)
    table, _ = read_nih_table(nih_tree)
    assert table["age"].isna().all()
    assert "Patient Age" in capsys.readouterr().out


def test_parse_demographics_values():
    sex = pd.Series(["Male", "Female", "Unknown", None, "F", "?"])
    age = pd.Series(["68", "121", "abc", None, "0", "120"])
    view = pd.Series(["AP", " pa ", "", None, "LL", "XX"])
    columns, invalid = parse_demographics(sex, age, view)
    assert columns["sex"].tolist()[:2] == ["M", "F"]
    assert columns["sex"].isna().tolist() == [False, False, True, True, False, True]
    assert columns["age"].tolist()[0] == 68.0
    assert columns["age"].isna().tolist() == [False, True, True, True, False, False]
    assert columns["view_position"].tolist()[:2] == ["AP", "PA"]
    assert columns["view_position"].isna().tolist() == [False, False, True, True, False, True]
    assert invalid == {"sex": 1, "age": 2, "view_position": 1}


def test_chexpert_demographic_columns(chexpert_tree):
    table = read_chexpert_table(chexpert_tree, frontal_only=False)
    assert table["sex"].iloc[0] == "F"
    assert table["age"].iloc[0] == 68.0
    assert table["view_position"].iloc[0] == "AP"
    assert pd.isna(table["view_position"].iloc[1])  # profil : AP/PA vide
    assert set(table["No Finding"].unique()) == {0.0}


def test_source_nih_keeps_demographics(nih_tree):
    data = load_chest_data(image_size=32, seed=0)
    assert {"sex", "age", "view_position", "No Finding"} <= set(data.table.columns)
    assert data.table["sex"].notna().all()


def test_synthetic_demographic_columns():
    _, table = make_synthetic_cxr(300, 32, seed=2)
    assert set(table["sex"].unique()) == {"F", "M"}
    assert set(table["view_position"].unique()) == {"AP", "PA"}
    assert table["age"].between(20, 100).all()
    assert (table.groupby("patient_id")["sex"].nunique() == 1).all()
    no_finding = table[list(FINDINGS)].sum(axis=1) == 0
    assert (table["No Finding"] == no_finding.astype(float)).all()
    # Femmes sous-représentées (30 % attendus des patients).
    female_share = table.groupby("patient_id")["sex"].first().eq("F").mean()
    assert 0.15 < female_share < 0.45


def test_synthetic_bias_changes_only_women():
    plain, table = make_synthetic_cxr(80, 32, seed=4)
    biased, biased_table = make_synthetic_cxr(80, 32, seed=4, demographic_bias=True)
    pd.testing.assert_frame_equal(table, biased_table)
    women = (table["sex"] == "F").to_numpy()
    assert np.array_equal(plain[~women], biased[~women])
    assert not np.array_equal(plain[women], biased[women])


def test_synthetic_bias_fades_signs():
    plain, table = make_synthetic_cxr(400, 64, seed=0)
    biased, _ = make_synthetic_cxr(400, 64, seed=0, demographic_bias=True)
    women = (table["sex"] == "F").to_numpy()
    cardio = table["Cardiomegaly"].to_numpy() == 1
    # Même zone que test_synthetic_cardiomegaly_widens_heart : le cœur élargi
    # l'éclaircit, et moins quand le signe est atténué.
    region = slice(34, 48), slice(34, 46)
    plain_gap = plain[women & cardio][:, region[0], region[1]].mean() - plain[women & ~cardio][:, region[0], region[1]].mean()
    biased_gap = biased[women & cardio][:, region[0], region[1]].mean() - biased[women & ~cardio][:, region[0], region[1]].mean()
    assert biased_gap < plain_gap - 2
