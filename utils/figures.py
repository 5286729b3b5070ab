"""Figures communes : grilles d'images et mise en forme des axes."""

import matplotlib.pyplot as plt
import numpy as np


def show_grid(images, titles=None, ncols: int = 4, cmap: str = "gray", size: float = 3.0, suptitle=None):
    """Draw images in a grid without axes and return the figure.

    Colour images (H, W, 3) are drawn as they are; 2D arrays use ``cmap``.
    """
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, title in zip(axes.flat, images, titles):
        axis.imshow(image, cmap=None if np.ndim(image) == 3 else cmap)
        axis.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
