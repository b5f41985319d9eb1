"""Pictures of a map: the heatmap and the overlay on the image, and the display copies.

report.py decides where they go; this module only draws them.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .colormap import colourise
from .metrics.grounding import resize_map

DISPLAY_MAX = 512
THUMB_MAX = 256


def _fit(image: Image.Image, side: int) -> Image.Image:
    out = image.copy()
    out.thumbnail((side, side), Image.LANCZOS)
    return out


def display_copy(image: Image.Image) -> Image.Image:
    """The image as the pages show it: longest side at most DISPLAY_MAX."""
    return _fit(image, DISPLAY_MAX)


def thumbnail(image: Image.Image) -> Image.Image:
    return _fit(image, THUMB_MAX)


def overlay(image: Image.Image, m: np.ndarray, alpha: float = 0.5) -> tuple[Image.Image, Image.Image]:
    """(heatmap, overlay) at the image's size: the map resized, coloured, blended."""
    full = resize_map(m, image.size)
    heat = colourise(np.clip(full, 0, 1))
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    blend = (1 - alpha) * base + alpha * heat.astype(np.float32)
    return Image.fromarray(heat), Image.fromarray(blend.clip(0, 255).astype(np.uint8))
