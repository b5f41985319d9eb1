"""Map normalisation that never produces NaN."""

from __future__ import annotations

import numpy as np


def normalise(maps: np.ndarray, axes=(-2, -1)) -> np.ndarray:
    """Min-max scale each map to [0, 1] over ``axes``; a constant map becomes all zeros."""
    m = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo = m.min(axis=axes, keepdims=True)
    span = m.max(axis=axes, keepdims=True) - lo
    return np.where(span > 0, (m - lo) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
