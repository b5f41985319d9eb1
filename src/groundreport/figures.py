"""Matplotlib figures of one map: original | heatmap | overlay, with a title and a colour bar.

``explain`` saves one per map; ``Explanation.show`` returns the same figure in a notebook."""

from __future__ import annotations

import re

import numpy as np


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe form of a word or phrase: lower case, runs of other characters as '-'."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "x"


def map_figure(image, m: np.ndarray, title: str, flat: bool = False, region=None):
    """A figure of ``m`` ([gh, gw] in [0, 1]) over ``image``; ``flat`` says the map is constant;
    ``region``: the part of the image the map covers (None: all of it; the rest is drawn grey)."""
    import matplotlib.pyplot as plt

    from .colormap import CMAP_NAME
    from .overlays import overlay

    heat, over = overlay(image, m, region=region)
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
    for ax, img, name in zip(axes, (image, heat, over), ("original", "heatmap", "overlay")):
        ax.imshow(img)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=CMAP_NAME), ax=axes, shrink=0.8,
                       pad=0.02)
    bar.set_label("relevance (min-max normalised)", fontsize=8)
    if flat:
        axes[1].text(0.5, 0.5, "flat: no evidence found", transform=axes[1].transAxes, ha="center",
                     va="center", color="white", fontsize=9, bbox={"facecolor": "black", "alpha": 0.6})
    fig.suptitle(title, fontsize=10)
    return fig
