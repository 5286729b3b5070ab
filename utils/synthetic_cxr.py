"""Radiographies thoraciques synthétiques, déterministes, pour travailler sans données.

Chaque image est dessinée comme une radiographie de face vue par le
radiologue (le côté droit du patient à gauche de l'image, les structures
denses en clair) : contour du thorax, deux champs pulmonaires arrêtés par les
coupoles diaphragmatiques, médiastin et silhouette cardiaque décalée vers la
gauche du patient, rachis, côtes et clavicules. Les cinq anomalies de la
compétition CheXpert y sont tracées par leur signe radiologique :

- cardiomégalie : silhouette cardiaque élargie (rapport cardiothoracique > 0,5) ;
- épanchement pleural : opacité basale à ménisque qui comble le cul-de-sac
  costodiaphragmatique ;
- condensation (consolidation) : opacité lobaire homogène ou en foyers ;
- œdème : voile périhilaire bilatéral « en ailes de papillon » ;
- atélectasie : opacité linéaire en bande et ascension de la coupole du même côté.

L'intensité de chaque signe varie d'un cas à l'autre, si bien que certains
cas positifs sont discrets. Les images d'un même patient partagent son
anatomie (et sa cardiomégalie), ce qui donne un sens aux partages par patient.

Chaque cliché porte aussi des données démographiques, tirées à part pour ne
changer aucune image : un sexe sous-représenté (30 % de femmes), un âge plus
élevé chez les patients atteints de cardiomégalie et une incidence de face
antéropostérieure (AP, cliché au lit) plus fréquente après 65 ans et en cas
d'épanchement ou d'œdème, comme dans les services d'hospitalisation. Avec
``demographic_bias=True``, les signes radiologiques des femmes sont en plus
tracés avec 30 % de leur contraste (``FEMALE_SIGN_CONSPICUITY``), comme si
leur maladie était moins visible sur l'image. Ce biais, volontaire et
artificiel, cumule sous-représentation et signes moins visibles : un modèle
manque alors plus de cas positifs chez les femmes (sous-diagnostic) sans
donner plus de fausses alertes. Dégrader plutôt toute l'image (surexposition,
bruit) produit ici l'inverse, plus de fausses alertes : le classifieur du
notebook 11 juge anormale une image atypique.
"""

import numpy as np
import pandas as pd
from scipy import ndimage

from .chest import FINDINGS

# Prévalences par image (la cardiomégalie est tirée par patient). Elles sont
# plus élevées que dans les vrais jeux pour que quelques centaines d'images
# contiennent assez de cas positifs de chaque anomalie.
CARDIOMEGALY_RATE = 0.22
EFFUSION_RATE = 0.12
CONSOLIDATION_RATE = 0.14
EDEMA_RATE = 0.08
ATELECTASIS_RATE = 0.15
MAX_IMAGES_PER_PATIENT = 5

# Données démographiques (tirées par des générateurs séparés de ceux du rendu).
FEMALE_RATE = 0.30
AP_BASE_RATE = 0.15
AP_OLD_EXTRA = 0.35  # après 65 ans
AP_FLUID_EXTRA = 0.25  # épanchement ou œdème
# Décalages des graines démographiques : au-delà de tout numéro de cliché
# (MAX_IMAGES_PER_PATIENT), ils ne croisent jamais les graines du rendu.
PATIENT_DEMOGRAPHY_STREAM = 10_000
IMAGE_DEMOGRAPHY_STREAM = 20_000
FEMALE_SIGN_CONSPICUITY = 0.3  # avec demographic_bias


def _superellipse(x, y, cx, cy, ax, ay, power=2.5):
    """Return the superellipse level: below 1 inside, 1 on the border."""
    return np.abs((x - cx) / ax) ** power + np.abs((y - cy) / ay) ** power


def _soft(mask_level, sharpness):
    """Return a smooth 0-1 indicator from a signed level (positive inside)."""
    return 1.0 / (1.0 + np.exp(-np.clip(sharpness * mask_level, -50, 50)))


def _patient_anatomy(rng):
    """Draw the anatomy shared by every image of one patient."""
    return {
        "body_width": rng.uniform(0.86, 0.98),
        "lung_width": rng.uniform(0.27, 0.32),
        "lung_height": rng.uniform(0.56, 0.66),
        "lung_gap": rng.uniform(0.36, 0.41),
        "dome_height": rng.uniform(0.08, 0.14),
        "rib_spacing": rng.uniform(0.15, 0.19),
        "rib_phase": rng.uniform(0.0, 1.0),
        "heart_center_y": rng.uniform(0.14, 0.22),
        "cardiomegaly": bool(rng.random() < CARDIOMEGALY_RATE),
        "ctr": rng.uniform(0.38, 0.47),
        "enlarged_ctr": rng.uniform(0.55, 0.66),
    }


def _lung(x, y, side, anatomy, dome_lift=0.0):
    """Return (soft lung mask, diaphragm height map) for one side (-1 right, +1 left).

    The patient's right lung is on the image's left (side = -1).
    """
    cx = side * anatomy["lung_gap"]
    cy = -0.06
    ax = anatomy["lung_width"] * (0.95 if side > 0 else 1.0)
    ay = anatomy["lung_height"]
    outline = 1.0 - _superellipse(x, y, cx, cy, ax, ay)
    base = cy + 0.82 * ay - dome_lift
    # Coupole convexe vers le haut : plus haute au centre du poumon qu'aux
    # bords, ce qui dessine des culs-de-sac latéraux aigus.
    diaphragm = base - anatomy["dome_height"] * (1.0 - np.clip(((x - cx) / ax) ** 2, 0, 1))
    below_dome = diaphragm - y
    mask = _soft(outline, 14.0) * _soft(below_dome, 60.0)
    return mask, diaphragm


def _ribs(x, y, anatomy, thickness=0.028):
    """Return the posterior and anterior rib shadows (0-1)."""
    shadows = np.zeros_like(x)
    spacing = anatomy["rib_spacing"]
    for k in range(-1, 8):
        top = -0.70 + (k + anatomy["rib_phase"]) * spacing
        # Arc postérieur : horizontal près du rachis, puis descendant en dehors.
        centre_line = top + 0.55 * (np.abs(x) - 0.1).clip(0) ** 2 + 0.06 * np.abs(x)
        shadows += np.exp(-(((y - centre_line) / thickness) ** 2))
        anterior = top + 0.18 - 0.35 * (np.abs(x) - 0.05).clip(0) ** 1.5
        shadows += 0.45 * np.exp(-(((y - anterior) / (0.8 * thickness)) ** 2)) * (np.abs(x) > 0.18)
    return np.clip(shadows, 0, 1.2)


def _draw_patchy(x, y, rng, cx, cy, count, spread, size):
    """Return a patchy opacity made of blurred blobs around (cx, cy)."""
    opacity = np.zeros_like(x)
    for _ in range(count):
        bx = cx + rng.normal(0, spread)
        by = cy + rng.normal(0, spread)
        sigma = size * rng.uniform(0.6, 1.3)
        opacity += np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * sigma**2))
    return np.clip(opacity, 0, 1)


def _render(size, anatomy, labels, rng, conspicuity=1.0):
    """Draw one radiograph as floats in [0, 1] (bright means dense).

    ``conspicuity`` scales every radiological sign (opacities, raised dome,
    cardiac enlargement) without changing the random draws; 1 draws them
    in full.
    """
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(coords, coords, indexing="ij")

    body = _soft(1.0 - _superellipse(x, y, 0.0, 0.12, anatomy["body_width"], 1.15, 4.0), 10.0)
    image = 0.06 + 0.40 * body

    atelectasis_side = int(rng.choice([-1, 1]))
    dome_lift = {-1: 0.0, 1: 0.0}
    if labels["Atelectasis"]:
        dome_lift[atelectasis_side] = rng.uniform(0.04, 0.10) * conspicuity

    lungs, diaphragms = {}, {}
    for side in (-1, 1):
        lungs[side], diaphragms[side] = _lung(x, y, side, anatomy, dome_lift[side])
    lung_mask = np.clip(lungs[-1] + lungs[1], 0, 1)

    # Silhouette cardiaque : ellipse décalée vers la gauche du patient (droite
    # de l'image). Sa largeur suit le rapport cardiothoracique.
    thoracic_width = 2 * (anatomy["lung_gap"] + anatomy["lung_width"])
    ctr = anatomy["enlarged_ctr"] if labels["Cardiomegaly"] else anatomy["ctr"]
    if conspicuity != 1.0:
        ctr = anatomy["ctr"] + conspicuity * (ctr - anatomy["ctr"])
    heart_half_width = ctr * thoracic_width / 2
    heart_cx = 0.06 + 0.35 * (heart_half_width - 0.28)
    heart = _soft(1.0 - ((x - heart_cx) / heart_half_width) ** 2 - ((y - anatomy["heart_center_y"]) / 0.25) ** 2, 12.0)
    mediastinum = _soft(0.11 - np.abs(x - 0.01), 40.0) * _soft(0.35 - y, 8.0)

    fluid_or_tissue = np.zeros_like(x)
    if labels["Pleural Effusion"]:
        sides = [-1, 1] if rng.random() < 0.35 else [int(rng.choice([-1, 1]))]
        for side in sides:
            lung_bottom = diaphragms[side]
            height = rng.uniform(0.10, 0.32)
            # Ménisque : le liquide remonte le long de la paroi latérale.
            lateral = np.clip(side * (x - side * anatomy["lung_gap"]) / anatomy["lung_width"], -1, 1)
            level = lung_bottom - height - 0.12 * np.clip(lateral, 0, 1) ** 2
            fluid_or_tissue += lungs[side] * _soft(y - level, 40.0) * rng.uniform(0.75, 1.0)
    if labels["Consolidation"]:
        side = int(rng.choice([-1, 1]))
        cx = side * anatomy["lung_gap"]
        if rng.random() < 0.5:
            # Condensation lobaire : un lobe entier, limité par une scissure oblique.
            fissure = -0.05 + rng.uniform(-0.1, 0.15) + 0.35 * side * (x - cx)
            lobe = _soft(y - fissure, 30.0) if rng.random() < 0.6 else _soft(fissure - y, 30.0)
            fluid_or_tissue += lungs[side] * lobe * rng.uniform(0.45, 0.85)
        else:
            patch = _draw_patchy(x, y, rng, cx + rng.normal(0, 0.05), rng.uniform(-0.3, 0.3), rng.integers(3, 7), 0.08, 0.06)
            fluid_or_tissue += lungs[side] * patch * rng.uniform(0.5, 0.9)
    if labels["Edema"]:
        amplitude = rng.uniform(0.35, 0.7)
        for side in (-1, 1):
            hilum_x = side * (anatomy["lung_gap"] - 0.12)
            haze = np.exp(-(((x - hilum_x) / 0.22) ** 2) - (((y - 0.02) / 0.30) ** 2))
            fluid_or_tissue += amplitude * haze * lungs[side]
        fluid_or_tissue += 0.15 * amplitude * _ribs(x * 3.1, y, anatomy, 0.01) * lung_mask  # lignes interstitielles
    if labels["Atelectasis"]:
        side = atelectasis_side
        cx = side * anatomy["lung_gap"] + rng.normal(0, 0.04)
        cy = rng.uniform(0.15, 0.35)
        angle = rng.uniform(-0.35, 0.35)
        along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        band = np.exp(-((across / rng.uniform(0.018, 0.035)) ** 2)) * _soft(0.16 - np.abs(along), 40.0)
        fluid_or_tissue += lungs[side] * band * rng.uniform(0.6, 1.0)
    # Le poumon aéré n'absorbe presque rien : il assombrit l'image, sauf là
    # où le cœur, le médiastin, du liquide ou un tissu densifié remplacent l'air.
    if conspicuity != 1.0:
        fluid_or_tissue = conspicuity * fluid_or_tissue
    air = lung_mask * (1.0 - np.maximum(heart, mediastinum)) * (1.0 - np.clip(fluid_or_tissue, 0, 1))
    image = image - 0.30 * air + 0.04 * heart

    spine = _soft(0.065 - np.abs(x), 60.0) * body
    endplates = 0.5 + 0.5 * np.cos(2 * np.pi * (y + 1) / 0.11)
    clavicles = np.zeros_like(x)
    for side in (-1, 1):
        line = -0.62 - 0.18 * side * x + 0.25 * x**2
        clavicles += np.exp(-(((y - line) / 0.03) ** 2)) * _soft(0.62 - np.abs(x), 20.0) * _soft(side * x - 0.05, 30.0)
    image = image + 0.16 * spine * (0.8 + 0.2 * endplates) + 0.09 * _ribs(x, y, anatomy) * body + 0.10 * clavicles

    # Chaîne d'acquisition : flou, petite rotation et décalage de
    # positionnement, contraste et bruit quantique propres à chaque cliché.
    image = ndimage.gaussian_filter(image, sigma=0.012 * size)
    image = ndimage.rotate(image, rng.uniform(-4, 4), reshape=False, order=1, mode="nearest")
    image = ndimage.shift(image, rng.normal(0, 0.015 * size, 2), order=1, mode="nearest")
    image = np.clip(image, 0, 1) ** rng.uniform(0.85, 1.15)
    photons = rng.uniform(150, 400)
    image = rng.poisson(image * photons) / photons
    return np.clip(image, 0, 1)


def _patient_demography(rng, cardiomegaly: bool) -> dict:
    """Draw the sex and the age at the first radiograph of one patient."""
    low, high = (55, 90) if cardiomegaly else (20, 85)
    return {"sex": "F" if rng.random() < FEMALE_RATE else "M", "age": int(rng.integers(low, high + 1))}


def _view_position(rng, age: float, labels: dict) -> str:
    """Draw PA or AP: bedside AP radiographs are more frequent for old or fluid-overloaded patients."""
    fluid = labels["Pleural Effusion"] or labels["Edema"]
    ap_rate = AP_BASE_RATE + AP_OLD_EXTRA * (age >= 65) + AP_FLUID_EXTRA * fluid
    return "AP" if rng.random() < ap_rate else "PA"


def make_synthetic_cxr(count: int, size: int = 64, seed: int = 0, demographic_bias: bool = False):
    """Draw ``count`` synthetic chest radiographs with their five labels.

    Returns ``(images, table)``: a ``uint8`` array of shape ``(count, size,
    size)`` and a table with the columns of the real loaders (``path``,
    ``patient_id``, ``view``, ``source``, one column per finding, 0 or 1,
    ``No Finding`` and the demographic columns ``sex``, ``age`` and
    ``view_position``). Image ``i`` depends only on ``seed``, ``size``,
    ``demographic_bias`` and ``i``, so a larger ``count`` extends a smaller
    set without changing it. With ``demographic_bias`` the signs of women
    are drawn with ``FEMALE_SIGN_CONSPICUITY`` of their contrast; without it
    the images do not depend on the demographic columns.
    """
    if count < 1:
        raise ValueError(f"Nombre d'images synthétiques invalide : {count} (il en faut au moins 1).")
    if size < 16:
        raise ValueError(f"Taille d'image synthétique trop petite : {size} pixels (minimum 16).")
    images = np.empty((count, size, size), dtype=np.uint8)
    rows = []
    patient = 0
    while len(rows) < count:
        patient_rng = np.random.default_rng([seed, patient])
        anatomy = _patient_anatomy(patient_rng)
        visits = int(patient_rng.integers(1, MAX_IMAGES_PER_PATIENT + 1))
        demography = _patient_demography(np.random.default_rng([seed, patient, PATIENT_DEMOGRAPHY_STREAM]), anatomy["cardiomegaly"])
        for visit in range(visits):
            if len(rows) == count:
                break
            rng = np.random.default_rng([seed, patient, visit])
            cardio = anatomy["cardiomegaly"]
            labels = {
                "Cardiomegaly": cardio,
                # L'insuffisance cardiaque associe souvent cardiomégalie,
                # épanchement et œdème : les trois sont corrélés ici aussi.
                "Pleural Effusion": bool(rng.random() < EFFUSION_RATE + 0.20 * cardio),
                "Edema": bool(rng.random() < EDEMA_RATE + 0.15 * cardio),
                "Consolidation": bool(rng.random() < CONSOLIDATION_RATE),
                "Atelectasis": bool(rng.random() < ATELECTASIS_RATE),
            }
            biased = demographic_bias and demography["sex"] == "F"
            image = _render(size, anatomy, labels, rng, FEMALE_SIGN_CONSPICUITY if biased else 1.0)
            image_rng = np.random.default_rng([seed, patient, IMAGE_DEMOGRAPHY_STREAM + visit])
            age = demography["age"] + visit  # un cliché de suivi par an
            view_position = _view_position(image_rng, age, labels)
            images[len(rows)] = np.round(255 * image).astype(np.uint8)
            rows.append(
                {
                    "path": f"synthetic/{patient:05d}_{visit:03d}",
                    "patient_id": f"S{patient:05d}",
                    "view": "frontal",
                    "source": "synthetic",
                    **{finding: float(labels[finding]) for finding in FINDINGS},
                    "No Finding": float(not any(labels.values())),
                    "sex": demography["sex"],
                    "age": float(age),
                    "view_position": view_position,
                }
            )
        patient += 1
    return images, pd.DataFrame(rows)
