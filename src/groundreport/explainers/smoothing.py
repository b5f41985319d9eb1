"""Gaussian smoothing of patch-grid maps, for the methods whose maps peak on a few patches.

Relevancy and the masked-word map put most of their mass on one to three patches, often the
ones that straddle an object's edge, and now and then on a lone patch away from it; smoothed
with a Gaussian of one patch, the peak moves to the middle of the evidence and a lone patch no
longer wins. Which methods and how much (``Explainer.smooth``, sigma in patches) was chosen on
the demo's val scenes (docs/evaluation.md): a method is smoothed where both its pointing and its
box accuracy rose there. LAVIS's Grad-CAM display blurs its maps the same way (sigma 2% of the
image side). ``--no-smooth`` gives every method's raw map.
"""

from __future__ import annotations

import cv2
import numpy as np

from .normalise import normalise


def smooth(maps: np.ndarray | None, sigma: float) -> np.ndarray | None:
    """``[..., gh, gw]`` maps -> each convolved with a Gaussian of ``sigma`` patches (the grid's
    border replicated outwards, the kernel cut at 4 sigma) and min-max normalised again; a
    constant map stays constant (zeros). ``sigma`` 0 or ``maps`` None: returned unchanged."""
    if maps is None or sigma <= 0:
        return maps
    m = np.asarray(maps, dtype=np.float32)
    flat = m.reshape(-1, *m.shape[-2:])
    size = 2 * int(np.ceil(4 * sigma)) + 1
    out = np.stack([cv2.GaussianBlur(g, (size, size), sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
                    for g in flat]) if len(flat) else flat
    # a constant map blurs to a constant plus rounding, which min-max would blow up into a pattern
    flat_in = (flat.max(axis=(-2, -1)) == flat.min(axis=(-2, -1)))[:, None, None]
    return normalise(np.where(flat_in, 0.0, out).reshape(m.shape))
