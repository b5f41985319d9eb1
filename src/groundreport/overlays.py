"""Pictures of a map: the heatmap and the overlay on the image, and the display copies.

report.py decides where they go; this module only draws them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .colormap import colourise
from .metrics.grounding import place_map

DISPLAY_MAX = 512
THUMB_MAX = 256
UNSEEN_GREY = 96  # heatmap colour of the pixels the model never saw (outside a centre crop)
UNSEEN_DIM = 0.35  # the overlay keeps this much of the image there


def _fit(image: Image.Image, side: int) -> Image.Image:
    out = image.copy()
    out.thumbnail((side, side), Image.LANCZOS)
    return out


def display_copy(image: Image.Image) -> Image.Image:
    """The image as the pages show it: longest side at most DISPLAY_MAX."""
    return _fit(image, DISPLAY_MAX)


def thumbnail(image: Image.Image) -> Image.Image:
    return _fit(image, THUMB_MAX)


def scale_region(region, from_size: tuple[int, int], to_size: tuple[int, int]):
    """A region in ``from_size`` pixels -> the same region in ``to_size`` pixels (None stays None)."""
    if region is None:
        return None
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return (region[0] * sx, region[1] * sy, region[2] * sx, region[3] * sy)


def overlay(image: Image.Image, m: np.ndarray, alpha: float = 0.5, region=None) -> tuple[Image.Image, Image.Image]:
    """(heatmap, overlay) at the image's size: the map resized onto ``region`` (image pixels;
    None: the whole image), coloured, blended; pixels outside it are drawn as not seen (grey
    heatmap, dimmed image)."""
    full, seen = place_map(m, image.size, region)
    heat = colourise(np.clip(full, 0, 1))
    heat[~seen] = UNSEEN_GREY
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    blend = (1 - alpha) * base + alpha * heat.astype(np.float32)
    blend[~seen] = UNSEEN_DIM * base[~seen]
    return Image.fromarray(heat), Image.fromarray(blend.clip(0, 255).astype(np.uint8))
