"""One colour map for every heatmap the tool draws (PNG overlays, the site's canvas, the colour bar)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CMAP_NAME = "inferno"


@lru_cache(maxsize=1)
def lut() -> np.ndarray:
    """[256, 3] uint8 RGB lookup table."""
    from matplotlib import colormaps

    return (colormaps[CMAP_NAME](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colourise(m: np.ndarray) -> np.ndarray:
    """[H, W] map in [0, 1] -> [H, W, 3] uint8."""
    idx = np.clip(np.nan_to_num(m) * 255, 0, 255).astype(np.uint8)
    return np.take(lut(), idx, axis=0)  # what lut()[idx] gives, 10x faster on a 500 x 375 map
