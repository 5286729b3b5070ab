"""Échographies mammaires synthétiques, déterministes, avec leurs masques exacts.

Jeu de remplacement quand BUSI est absent. Chaque image imite une coupe
obtenue à la sonde linéaire : peau claire en haut, graisse sous-cutanée
sombre, tissu glandulaire plus échogène, paroi thoracique en bas. L'intensité
s'atténue avec la profondeur. Le chatoiement (*speckle*) vient d'un champ de
diffuseurs complexes filtré par une réponse impulsionnelle plus large
latéralement qu'axialement, dont on prend le module (loi de Rayleigh).

- ``benign`` : lésion hypoéchogène ovale à contour lisse, plus large que haute,
  avec un léger renforcement postérieur ;
- ``malignant`` : lésion hypoéchogène à contour irrégulier et spiculé, plus
  haute que large, avec un cône d'ombre postérieur ;
- ``normal`` : pas de lésion, masque vide.

Le masque est la région exacte où l'échogénicité de la lésion a été posée,
sur la même grille que l'image. L'image ``i`` de la classe ``c`` ne dépend que
de ``(seed, c, i)`` : demander plus d'images ne change pas les premières.
"""

import numpy as np
from scipy import ndimage

CLASSES = ("benign", "malignant", "normal")


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Return a smooth random field with zero mean and unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def _tissue_echogenicity(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return the echogenicity map of healthy breast tissue, layered along depth."""
    depth = np.linspace(0.0, 1.0, size)[:, None]
    lateral = np.linspace(0.0, 1.0, size)[None, :]

    def wavy_boundary(mean_depth: float, amplitude: float) -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, 2)
        frequency = rng.uniform(1.0, 2.5, 2)
        return (
            mean_depth
            + amplitude * np.sin(2 * np.pi * frequency[0] * lateral + phase[0])
            + 0.5 * amplitude * np.sin(2 * np.pi * frequency[1] * lateral + phase[1])
        )

    skin_end = 0.05
    fat_end = wavy_boundary(rng.uniform(0.18, 0.28), 0.03)
    gland_end = wavy_boundary(rng.uniform(0.72, 0.85), 0.04)

    echogenicity = np.full((size, size), 0.3)
    gland_texture = 0.6 + 0.15 * _smooth_field(rng, (size, size), size / 18)
    echogenicity = np.where(depth >= fat_end, gland_texture, echogenicity)
    echogenicity = echogenicity * _fat_lobules(rng, size)
    wall = 0.45 + 0.15 * np.sin(2 * np.pi * depth * rng.uniform(12, 18))
    echogenicity = np.where(depth >= gland_end, wall, echogenicity)
    echogenicity = np.where(depth < skin_end, 0.95, echogenicity)
    return np.clip(echogenicity, 0.05, 1.0)


def _fat_lobules(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return a multiplicative map of dark, flat fat lobules, the usual look-alikes of lesions."""
    rows, columns = np.mgrid[0:size, 0:size].astype(float) / size
    darkening = np.ones((size, size))
    for _ in range(rng.integers(2, 6)):
        centre_row, centre_column = rng.uniform(0.15, 0.85), rng.uniform(0.0, 1.0)
        half_width, half_height = rng.uniform(0.05, 0.14), rng.uniform(0.02, 0.05)
        inside = ((columns - centre_column) / half_width) ** 2 + ((rows - centre_row) / half_height) ** 2
        darkening *= 1.0 - rng.uniform(0.3, 0.6) * np.exp(-(inside**2))
    return darkening


def _lesion_mask(rng: np.random.Generator, size: int, malignant: bool) -> tuple[np.ndarray, tuple[float, float], float]:
    """Return a lesion mask, its centre (row, column) and half-width, in pixels."""
    rows, columns = np.mgrid[0:size, 0:size].astype(float)
    centre = (rng.uniform(0.38, 0.6) * size, rng.uniform(0.3, 0.7) * size)
    radius = rng.uniform(0.08, 0.16) * size
    if malignant:
        half_width, half_height = radius, radius * rng.uniform(1.0, 1.3)
    else:
        half_width, half_height = radius * rng.uniform(1.3, 1.8), radius
    dy = (rows - centre[0]) / half_height
    dx = (columns - centre[1]) / half_width
    distance = np.hypot(dx, dy)
    angle = np.arctan2(dy, dx)

    if malignant:
        # Irregular, spiculated margin: many harmonics of the boundary radius.
        harmonics = np.arange(2, 13)
        amplitudes = rng.uniform(0.03, 0.12, len(harmonics)) / np.sqrt(harmonics / 2)
        phases = rng.uniform(0, 2 * np.pi, len(harmonics))
        boundary = 1.0 + np.sum(
            amplitudes[:, None, None] * np.cos(harmonics[:, None, None] * angle + phases[:, None, None]), axis=0
        )
    else:
        # Smooth oval: one gentle harmonic at most.
        boundary = 1.0 + rng.uniform(0.0, 0.06) * np.cos(2 * angle + rng.uniform(0, 2 * np.pi))
    return distance <= boundary, centre, half_width


def _posterior_profile(size: int, centre: tuple[float, float], half_width: float, mask: np.ndarray) -> np.ndarray:
    """Return a (size, size) weight that is 1 in the columns under the lesion, 0 elsewhere."""
    rows, columns = np.mgrid[0:size, 0:size].astype(float)
    lateral = np.exp(-(((columns - centre[1]) / (0.8 * half_width)) ** 4))
    lesion_bottom = np.where(mask.any(axis=0), size - 1 - np.argmax(mask[::-1], axis=0), size)
    below = rows > lesion_bottom[None, :]
    fading = np.exp(-(rows - centre[0]) / size)
    return lateral * below * fading


def _speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return fully developed speckle: Rayleigh amplitude of filtered complex scatterers."""
    scatterers = rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))
    sigma = (max(size / 256, 0.5), max(size / 96, 0.8))
    real = ndimage.gaussian_filter(scatterers.real, sigma)
    imaginary = ndimage.gaussian_filter(scatterers.imag, sigma)
    amplitude = np.hypot(real, imaginary)
    return amplitude / amplitude.mean()


def synthetic_ultrasound(label: str, size: int = 128, seed: int = 0, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return one synthetic breast ultrasound image in [0, 1] and its boolean lesion mask.

    ``label`` is ``benign``, ``malignant`` or ``normal``; the result depends
    only on ``(label, size, seed, index)``.
    """
    if label not in CLASSES:
        raise ValueError(f"Classe inconnue : « {label} ». Classes possibles : {', '.join(CLASSES)}.")
    rng = np.random.default_rng([seed, CLASSES.index(label), index])
    echogenicity = _tissue_echogenicity(rng, size)
    mask = np.zeros((size, size), dtype=bool)

    if label != "normal":
        malignant = label == "malignant"
        mask, centre, half_width = _lesion_mask(rng, size, malignant)
        inside = rng.uniform(0.08, 0.22) + 0.04 * _smooth_field(rng, (size, size), size / 40)
        echogenicity = np.where(mask, inside, echogenicity)
        posterior = _posterior_profile(size, centre, half_width, mask)
        if malignant:
            echogenicity = echogenicity * (1.0 - 0.65 * posterior)
        else:
            echogenicity = echogenicity * (1.0 + 0.3 * posterior)

    depth = np.linspace(0.0, 1.0, size)[:, None]
    attenuation = np.exp(-rng.uniform(0.6, 1.2) * depth)
    intensity = echogenicity * attenuation * _speckle(rng, size)
    # Log compression as on a scanner display, then a fixed dynamic range.
    image = np.log1p(20.0 * intensity) / np.log1p(20.0 * 2.5)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


def synthetic_busi(n_per_class: int, size: int = 128, seed: int = 0) -> dict:
    """Return a synthetic stand-in for BUSI: ``n_per_class`` images of each class.

    Returns ``{"images": (N, size, size) float32 in [0, 1], "masks": (N, size,
    size) bool, "labels": (N,) class names, "names": (N,) file-like names}``,
    classes in the order of ``CLASSES``.
    """
    images, masks, labels, names = [], [], [], []
    for label in CLASSES:
        for index in range(n_per_class):
            image, mask = synthetic_ultrasound(label, size, seed, index)
            images.append(image)
            masks.append(mask)
            labels.append(label)
            names.append(f"synthetic {label} ({index + 1})")
    return {
        "images": np.stack(images),
        "masks": np.stack(masks),
        "labels": np.array(labels),
        "names": np.array(names),
    }
