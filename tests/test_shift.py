"""Tests of utils.shift: degradations, external-site loaders, thresholds and shift scores."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from utils.chest import FINDINGS
from utils.datasets import locate_dataset
from utils.shift import (
    DEGRADATIONS,
    MAX_SEVERITY,
    SYNTHETIC_UNSEEN,
    binary_uncertainty,
    degrade,
    detection_auroc,
    draw_unseen_findings,
    f1_per_finding,
    fit_knn,
    fit_mahalanobis,
    fit_thresholds,
    load_external_site,
    load_square_images,
    make_second_hospital,
    paired_auc_difference,
    read_chexphoto_table,
    read_hannover_table,
    read_other_findings,
    second_hospital_acquisition,
    shift_scores,
    unseen_disease_masks,
)
from utils.synthetic_cxr import make_synthetic_cxr


@pytest.fixture(scope="module")
def radiographs():
    images, _ = make_synthetic_cxr(4, size=48, seed=3)
    return images


# ---------------------------------------------------------------------------
# Dégradations


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_deterministic_for_seed(name, radiographs):
    first = degrade(radiographs, name, 3, seed=7)
    second = degrade(radiographs, name, 3, seed=7)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_keeps_uint8_shape_and_type(name, radiographs):
    degraded = degrade(radiographs, name, MAX_SEVERITY, seed=0)
    assert degraded.shape == radiographs.shape
    assert degraded.dtype == np.uint8


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_keeps_float_range(name, radiographs):
    image = radiographs[0].astype(np.float32) / 255.0
    degraded = degrade(image, name, MAX_SEVERITY, seed=0)
    assert degraded.shape == image.shape
    assert degraded.dtype == np.float32
    assert degraded.min() >= 0.0
    assert degraded.max() <= 1.0


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_severity_zero_is_identity(name, radiographs):
    degraded = degrade(radiographs, name, 0, seed=5)
    assert np.array_equal(degraded, radiographs)
    assert degraded is not radiographs


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_changes_image(name, radiographs):
    assert not np.array_equal(degrade(radiographs, name, 2, seed=0), radiographs)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_severity_grows_the_change(name, radiographs):
    original = radiographs.astype(float)
    changes = [np.abs(degrade(radiographs, name, s, seed=1).astype(float) - original).mean() for s in range(MAX_SEVERITY + 1)]
    assert changes[MAX_SEVERITY] > changes[1]
    # JPEG n'est pas strictement monotone image par image : tolérance d'un niveau de gris.
    assert all(later >= earlier - 1.0 for earlier, later in zip(changes, changes[1:]))


def test_degradation_image_independent_of_batch(radiographs):
    batch = degrade(radiographs, "glare", 4, seed=2)
    alone = degrade(radiographs[:1], "glare", 4, seed=2)
    assert np.array_equal(batch[:1], alone)


def test_degradation_seed_changes_random_parameters(radiographs):
    assert not np.array_equal(degrade(radiographs, "rotation", 3, seed=0), degrade(radiographs, "rotation", 3, seed=1))


def test_degradation_unknown_name_raises(radiographs):
    with pytest.raises(ValueError, match="Dégradation inconnue"):
        degrade(radiographs, "fog", 1)


@pytest.mark.parametrize("severity", [-1, 6, 2.5])
def test_degradation_invalid_severity_raises(severity, radiographs):
    with pytest.raises(ValueError, match="Sévérité invalide"):
        degrade(radiographs, "blur", severity)


def test_degradation_float_out_of_range_raises():
    with pytest.raises(ValueError, match="hors de"):
        degrade(np.full((8, 8), 2.0), "blur", 1)


# ---------------------------------------------------------------------------
# Second hôpital synthétique


def test_second_hospital_deterministic_and_uint8(radiographs):
    first = second_hospital_acquisition(radiographs, seed=4)
    assert np.array_equal(first, second_hospital_acquisition(radiographs, seed=4))
    assert first.shape == radiographs.shape
    assert first.dtype == np.uint8


def test_second_hospital_changes_acquisition(radiographs):
    acquired = second_hospital_acquisition(radiographs, seed=0)
    assert np.abs(acquired.astype(float) - radiographs.astype(float)).mean() > 10
    assert acquired.mean() > radiographs.mean()


def test_second_hospital_table_marks_source():
    images, table = make_second_hospital(6, size=32, seed=9)
    assert images.shape == (6, 32, 32)
    assert set(table["source"]) == {"synthetic_hospital_b"}
    assert table["patient_id"].str.startswith("B").all()


# ---------------------------------------------------------------------------
# CheXphoto sur une arborescence fabriquée

CHEXPHOTO_ROWS = [
    # chemin, incidence, cardiomégalie, épanchement
    ("CheXphoto-v1.0/valid/natural/nokia10/patient64541/study1/view1_frontal.jpg", "Frontal", 1.0, -1.0),
    ("CheXphoto-v1.0/valid/synthetic/digital/patient64541/study1/view1_frontal.jpg", "Frontal", 1.0, None),
    ("CheXphoto-v1.0/valid/synthetic/photographic/patient64542/study1/view1_frontal.jpg", "Frontal", 0.0, 1.0),
    ("CheXphoto-v1.0/valid/natural/nokia10/patient64542/study1/view2_lateral.jpg", "Lateral", 0.0, 1.0),
    ("CheXphoto-v1.0/valid/natural/iphone8/patient64543/study1/view1_frontal.jpg", "Frontal", 0.0, 0.0),
]


def write_chexphoto_tree(root, skip_image=None):
    """Write valid.csv and tiny JPEG images in the published CheXphoto layout; return the folder."""
    folder = root / "CheXphoto-v1.0"
    rows = []
    for i, (path, view, cardio, effusion) in enumerate(CHEXPHOTO_ROWS):
        row = {"Path": path, "Sex": "Female", "Age": 60, "Frontal/Lateral": view, "AP/PA": "AP", "No Finding": None}
        for finding in FINDINGS:
            row[finding] = None
        row["Cardiomegaly"] = cardio
        row["Pleural Effusion"] = effusion
        rows.append(row)
        if i != skip_image:
            image_path = root / path
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 24), 40 * i, np.uint8)).save(image_path)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "valid.csv", index=False)
    return folder


def test_chexphoto_reads_published_layout(tmp_path):
    table, missing = read_chexphoto_table(write_chexphoto_tree(tmp_path))
    assert missing == 0
    assert len(table) == 4
    assert list(table["kind"]) == ["natural", "synthetic", "synthetic", "natural"]
    assert list(table["variant"]) == ["nokia10", "digital", "photographic", "iphone8"]
    assert all((tmp_path / p).is_file() for p in table["path"])


def test_chexphoto_keeps_chexpert_patient_ids(tmp_path):
    table, _ = read_chexphoto_table(write_chexphoto_tree(tmp_path))
    assert list(table["patient_id"]) == ["chexpert-64541", "chexpert-64541", "chexpert-64542", "chexpert-64543"]


def test_chexphoto_maps_labels_with_policy(tmp_path):
    folder = write_chexphoto_tree(tmp_path)
    ones, _ = read_chexphoto_table(folder, uncertain="ones", blank="zeros")
    ignore, _ = read_chexphoto_table(folder, uncertain="ignore", blank="ignore")
    assert list(ones["Pleural Effusion"]) == [1.0, 0.0, 1.0, 0.0]
    assert np.isnan(ignore["Pleural Effusion"].iloc[0])
    assert np.isnan(ignore["Pleural Effusion"].iloc[1])
    assert list(ones["Cardiomegaly"]) == [1.0, 1.0, 0.0, 0.0]


def test_chexphoto_lateral_kept_on_request(tmp_path):
    table, _ = read_chexphoto_table(write_chexphoto_tree(tmp_path), frontal_only=False)
    assert (table["view"] == "lateral").sum() == 1


def test_chexphoto_missing_image_counted(tmp_path):
    table, missing = read_chexphoto_table(write_chexphoto_tree(tmp_path, skip_image=2))
    assert missing == 1
    assert len(table) == 3


def test_chexphoto_path_without_prefix(tmp_path):
    folder = write_chexphoto_tree(tmp_path)
    raw = pd.read_csv(folder / "valid.csv")
    raw["Path"] = raw["Path"].str.replace("CheXphoto-v1.0/", "", regex=False)
    raw.to_csv(folder / "valid.csv", index=False)
    table, missing = read_chexphoto_table(folder)
    assert missing == 0
    assert len(table) == 4
    assert list(table["variant"]) == ["nokia10", "digital", "photographic", "iphone8"]


def test_chexphoto_missing_csv_names_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="CheXphoto"):
        read_chexphoto_table(tmp_path)


def test_chexphoto_malformed_path_raises(tmp_path):
    folder = write_chexphoto_tree(tmp_path)
    raw = pd.read_csv(folder / "valid.csv")
    raw.loc[0, "Path"] = "view1_frontal.jpg"
    raw.to_csv(folder / "valid.csv", index=False)
    with pytest.raises(ValueError, match="Chemin CheXphoto inattendu"):
        read_chexphoto_table(folder)


def test_chexphoto_unknown_split_raises(tmp_path):
    with pytest.raises(ValueError, match="Partie CheXphoto inconnue"):
        read_chexphoto_table(write_chexphoto_tree(tmp_path), split="test")


# ---------------------------------------------------------------------------
# Hannover COVID-19 CXR


def write_hannover_tree(root, sizes=((60, 50), (60, 50), (40, 40))):
    folder = root / "Hannover_COVID19_CXR"
    (folder / "png").mkdir(parents=True)
    rows = []
    for i, (width, height) in enumerate(sizes):
        image_id = f"{i:08x}"
        rows.append({"patient_id": f"p{i // 2}", "image_id": image_id, "sex": "m", "modality": "CR", "projection": "ap"})
        Image.fromarray(np.full((height, width), 100, np.uint8)).save(folder / "png" / f"{image_id}.png")
    pd.DataFrame(rows).to_csv(folder / "data.csv", index=False)
    return folder


def test_hannover_fabricated_tree(tmp_path):
    table, missing = read_hannover_table(write_hannover_tree(tmp_path))
    assert missing == 0
    assert list(table["patient_id"]) == ["hannover-p0", "hannover-p0", "hannover-p1"]
    assert (table["view"] == "frontal").all()
    assert table[list(FINDINGS)].isna().all().all()


def test_hannover_missing_png_counted(tmp_path):
    folder = write_hannover_tree(tmp_path)
    (folder / "png" / "00000001.png").unlink()
    table, missing = read_hannover_table(folder)
    assert missing == 1
    assert len(table) == 2


def test_hannover_missing_column_raises(tmp_path):
    folder = write_hannover_tree(tmp_path)
    pd.read_csv(folder / "data.csv").drop(columns="image_id").to_csv(folder / "data.csv", index=False)
    with pytest.raises(ValueError, match="image_id"):
        read_hannover_table(folder)


def test_hannover_real_sample():
    folder = locate_dataset("hannover_covid19", announce=False)
    if folder is None:
        pytest.skip("Hannover_COVID19_CXR absent de MEDIMG_DATA")
    table, missing = read_hannover_table(folder)
    assert missing == 0
    assert len(table) == 243
    assert table["patient_id"].nunique() == 71
    assert set(table["projection"]) == {"ap", "pa"}
    dataset, unreadable = load_external_site(table.head(5), 32)
    assert unreadable == 0
    assert dataset[0]["image"].shape == (1, 32, 32)


def test_square_images_cut_centre(tmp_path):
    # Bandes latérales blanches, centre noir : le recadrage central doit les écarter.
    pixels = np.zeros((40, 70), np.uint8)
    pixels[:, :10] = 255
    pixels[:, -10:] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    images, readable = load_square_images([tmp_path / "wide.png"], 20)
    assert readable.all()
    assert images.shape == (1, 20, 20)
    assert images.max() == 0


def test_square_images_unreadable_flagged(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    images, readable = load_square_images([tmp_path / "broken.png"], 8)
    assert list(readable) == [False]


# ---------------------------------------------------------------------------
# Seuils et scores


def test_threshold_maximises_validation_f1():
    scores = np.array([[0.1], [0.2], [0.35], [0.4], [0.8], [0.9]])
    labels = np.array([[0.0], [0.0], [1.0], [0.0], [1.0], [1.0]])
    # Seuil 0,35 : 3 vrais positifs, 1 faux positif, F1 = 6/7, le meilleur possible ici.
    assert fit_thresholds(scores, labels)[0] == pytest.approx(0.35)


def test_threshold_ignores_nan_labels():
    scores = np.array([[0.1], [0.6], [0.7], [0.2]])
    labels = np.array([[0.0], [1.0], [np.nan], [np.nan]])
    assert fit_thresholds(scores, labels)[0] == pytest.approx(0.6)


def test_threshold_without_positive_is_half():
    assert fit_thresholds(np.array([[0.2], [0.9]]), np.zeros((2, 1)))[0] == 0.5


def test_threshold_from_validation_only():
    # Sur la validation, le meilleur seuil est 0,5 ; sur le test décalé, tous
    # les scores ont baissé et un seuil choisi sur le test (0,2) donnerait F1 = 1.
    val_scores = np.array([[0.1], [0.2], [0.5], [0.6]])
    val_labels = np.array([[0.0], [0.0], [1.0], [1.0]])
    test_scores = np.array([[0.05], [0.1], [0.2], [0.3]])
    test_labels = np.array([[0.0], [0.0], [1.0], [1.0]])
    thresholds = fit_thresholds(val_scores, val_labels)
    table = shift_scores(np.repeat(test_scores, 5, 1), np.repeat(test_labels, 5, 1), np.repeat(thresholds, 5))
    assert thresholds[0] == pytest.approx(0.5)
    assert fit_thresholds(test_scores, test_labels)[0] == pytest.approx(0.2)
    assert table.loc["Cardiomegaly", "F1"] == 0.0
    assert table.loc["Cardiomegaly", "AUC"] == 1.0


def test_f1_nan_without_positive():
    values = f1_per_finding(np.array([[0.9], [0.1]]), np.zeros((2, 1)), np.array([0.5]))
    assert np.isnan(values[0])


def test_shift_scores_mean_row():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (40, 5)).astype(float)
    table = shift_scores(labels * 0.8 + 0.1, labels, np.full(5, 0.5))
    assert list(table.index) == [*FINDINGS, "moyenne"]
    assert table.loc["moyenne", "AUC"] == 1.0
    assert table.loc["moyenne", "F1"] == 1.0


def test_shift_scores_mean_over_averaged_findings():
    labels = np.tile(np.array([[0.0], [1.0], [0.0], [1.0]]), (1, 5))
    scores = np.tile(np.array([[0.1], [0.9], [0.2], [0.8]]), (1, 5))
    scores[:, 0] = [0.9, 0.1, 0.8, 0.2]  # AUC 0 pour l'atélectasie
    table = shift_scores(scores, labels, np.full(5, 0.5), averaged=["Cardiomegaly", "Edema"])
    assert table.loc["Atelectasis", "AUC"] == 0.0
    assert table.loc["moyenne", "AUC"] == 1.0


def test_paired_difference_zero_for_same_scores():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (60, 5)).astype(float)
    scores = rng.random((60, 5))
    assert paired_auc_difference(scores, scores, labels, n_boot=50) == (0.0, 0.0, 0.0)


def test_paired_difference_detects_drop():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, (80, 5)).astype(float)
    informative = labels * 0.6 + rng.random((80, 5)) * 0.4
    noise = rng.random((80, 5))
    groups = np.repeat(np.arange(40), 2)
    difference, low, high = paired_auc_difference(noise, informative, labels, groups, n_boot=200)
    assert difference < -0.3
    assert low <= difference <= high
    assert high < 0


def test_paired_difference_skips_single_class_finding():
    labels = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    scores = np.array([[0.1, 0.5], [0.9, 0.5], [0.2, 0.5], [0.8, 0.5]])
    difference, _, _ = paired_auc_difference(scores[:, ::-1].copy(), scores, labels, columns=[0, 1], n_boot=20)
    assert difference == pytest.approx(-0.5)


# ---------------------------------------------------------------------------
# Incertitude et distances


def test_binary_uncertainty_agreeing_samples_no_mutual_information():
    samples = np.tile(np.array([[[0.5, 0.9]]]), (6, 3, 1))
    measures = binary_uncertainty(samples)
    assert measures["mean"].shape == (3, 2)
    assert np.allclose(measures["image_mutual_information"], 0.0)
    assert measures["predictive_entropy"][0, 0] == pytest.approx(np.log(2))


def test_binary_uncertainty_mean_is_sample_average():
    samples = np.array([[[0.1, 0.8]], [[0.3, 0.6]]])
    assert np.allclose(binary_uncertainty(samples)["mean"], [[0.2, 0.7]])


def test_binary_uncertainty_disagreement_raises_mutual_information():
    agreeing = np.full((4, 1, 1), 0.5)
    disagreeing = np.array([0.01, 0.99, 0.01, 0.99]).reshape(4, 1, 1)
    assert binary_uncertainty(disagreeing)["image_mutual_information"][0] > binary_uncertainty(agreeing)["image_mutual_information"][0] + 0.5


def test_distances_rank_far_points_higher():
    # Les caractéristiques d'un réseau sont positives (après ReLU) : des nuages
    # décentrés, que la distance cosinus sépare par leur direction.
    rng = np.random.default_rng(0)
    centre, other = np.eye(10)[0] * 4, np.eye(10)[1] * 4
    reference = rng.normal(size=(200, 10)) + centre
    near = rng.normal(size=(50, 10)) + centre
    far = rng.normal(size=(50, 10)) + other
    mahalanobis, knn = fit_mahalanobis(reference), fit_knn(reference)
    assert detection_auroc(mahalanobis(near), mahalanobis(far)) > 0.95
    assert detection_auroc(knn(near), knn(far)) > 0.95


def test_knn_exclude_self_skips_own_match():
    reference = np.eye(3) + 0.01
    assert fit_knn(reference, k=1)(reference).max() == pytest.approx(0.0, abs=1e-9)
    assert fit_knn(reference, k=1, exclude_self=True)(reference).min() > 0.5


def test_knn_too_many_neighbours_raises():
    with pytest.raises(ValueError, match="voisins"):
        fit_knn(np.ones((3, 2)), k=3, exclude_self=True)


# ---------------------------------------------------------------------------
# Anomalies jamais vues


def test_unseen_drawings_deterministic_uint8(radiographs):
    first, names = draw_unseen_findings(radiographs, seed=3)
    second, same_names = draw_unseen_findings(radiographs, seed=3)
    assert np.array_equal(first, second)
    assert names == same_names
    assert first.shape == radiographs.shape
    assert first.dtype == np.uint8


def test_unseen_drawings_name_each_image():
    images, _ = make_synthetic_cxr(30, size=32, seed=1)
    drawn, names = draw_unseen_findings(images, seed=0)
    assert len(names) == 30
    assert set(names) == set(SYNTHETIC_UNSEEN)
    changed = [not np.array_equal(before, after) for before, after in zip(images, drawn)]
    assert all(changed)


def test_unseen_nodule_brightens_lung(radiographs):
    drawn, names = draw_unseen_findings(radiographs, seed=0)
    for before, after, name in zip(radiographs, drawn, names):
        if name in ("Nodule", "Mass"):
            assert after.astype(int).sum() > before.astype(int).sum()


def split_table(split, five, other):
    """Build a table whose cardiomegaly column is ``five``, with the other findings of each row."""
    table = pd.DataFrame({"split": split, "patient_id": [f"p{i}" for i in range(len(split))]})
    for finding in FINDINGS:
        table[finding] = 0.0
    table["Cardiomegaly"] = five
    return table, [("Nodule",) if flag else () for flag in other]


def test_unseen_masks_select_rows():
    table, other = split_table(
        ["train", "train", "val", "val", "test", "test", "test"],
        [0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        [True, False, True, True, True, False, False],
    )
    in_distribution, unseen = unseen_disease_masks(table, other)
    assert list(in_distribution) == [False, False, False, False, False, True, True]
    assert list(unseen) == [False, False, True, False, True, False, False]


def test_other_findings_nih(tmp_path):
    folder = tmp_path / "NIH_ChestXray14"
    (folder / "images").mkdir(parents=True)
    raw = pd.DataFrame(
        {
            "Image Index": ["a.png", "b.png", "c.png"],
            "Finding Labels": ["Effusion", "Nodule|Effusion", "No Finding"],
            "Patient ID": [1, 2, 3],
            "View Position": ["PA", "PA", "AP"],
        }
    )
    raw.to_csv(folder / "Data_Entry_2017.csv", index=False)
    table = pd.DataFrame({"path": [str(folder / "images" / name) for name in raw["Image Index"]]})
    assert list(read_other_findings(table, "nih_chestxray14", folder)) == [(), ("Nodule",), ()]


def test_other_findings_unknown_source_raises(tmp_path):
    with pytest.raises(ValueError, match="Source sans anomalies"):
        read_other_findings(pd.DataFrame({"path": []}), "synthetic", tmp_path)
