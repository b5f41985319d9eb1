"""Held-out image->text retrieval for the demo model: top-1 among N scene captions."""

from __future__ import annotations

import torch

from .scenes import HELDOUT_SEED_BASE, make_scene


def image_to_text_top1(adapter, n: int = 100, seed_base: int = HELDOUT_SEED_BASE + 500_000) -> float:
    """Fraction of N held-out scenes whose own caption scores highest among the N captions."""
    scenes = [make_scene(seed_base + i, (2, 4)) for i in range(n)]
    img = adapter.image_embeds(adapter.pixel_values([s.image for s in scenes]))
    txt = adapter.text_embeds([s.caption for s in scenes])
    return float(((img @ txt.T).argmax(1) == torch.arange(n, device=img.device)).float().mean())
