"""Shift averaging: the same pair explained on copies of the image moved by a fraction of a patch.

A ViT map has one value per patch, so an object that straddles two patches, or sits near a
patch edge, is seen through a coarse and position-dependent grid. With ``Suite(shifts=c)`` the
image is explained in ``c`` copies: unmoved, and moved down and/or right by half a patch (c = 2:
the diagonal move; c = 4: right, down and both; edges repeated); each copy's map, realigned
onto the original's patch grid, enters one mean. Realigning is exact on a grid ``n`` times finer, where a moved copy's patch
covers ``n`` fine cells shifted by ``k``: pooled back to the patch grid, original cell ``i``
gets ``((n - k) * m[i] + k * m[i + 1]) / n`` of the moved copy's map (the last cell repeated).
The unmoved copy (k = 0) contributes its own map unchanged, so ``n = 1`` is the plain map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


HALF = 2  # the moves are k / HALF of a patch, k in {0, 1}
COPIES = {1: [], 2: [(1, 1)], 4: [(0, 1), (1, 0), (1, 1)]}  # copies -> the moved ones' (ky, kx)


def problem(copies, option: str = "shifts") -> str | None:
    """Why ``copies`` is not a number of copies this module knows (None: it is one)."""
    return None if copies in COPIES else f"{option} must be 1 (off), 2 or 4 copies of the image, not {copies!r}"


def offsets(copies: int) -> list[tuple[int, int]]:
    """The (ky, kx) offsets, in halves of a patch, of the moved copies (the unmoved one left out)."""
    if problem(copies):
        raise ValueError(problem(copies))
    return COPIES[copies]


def moved(pixel_values: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``pixel_values`` [B, C, H, W] with the content moved ``dy`` pixels down and ``dx`` right;
    the uncovered rows and columns repeat the edge."""
    h, w = pixel_values.shape[-2:]
    return F.pad(pixel_values, (dx, 0, dy, 0), mode="replicate")[..., :h, :w]


def pixel_offset(k: int, n: int, size: int, cells: int) -> int:
    """Pixels for ``k / n`` of a patch along an axis of ``size`` pixels and ``cells`` patches."""
    return int(round(k * size / cells / n))


def realign(maps: np.ndarray, ky: int, kx: int, n: int) -> np.ndarray:
    """Maps [..., gh, gw] of a copy moved by (ky, kx) n-ths of a patch -> the original's grid."""
    out = np.asarray(maps, dtype=np.float32)
    for axis, k in ((-2, ky), (-1, kx)):
        if k:
            nxt = np.concatenate([np.take(out, np.arange(1, out.shape[axis]), axis=axis),
                                  np.take(out, [-1], axis=axis)], axis=axis)
            out = ((n - k) * out + k * nxt) / n
    return out
