"""Held-out image->text retrieval for the demo model: top-1 among N scene captions."""

from __future__ import annotations

import torch

from .scenes import HELDOUT_SEED_BASE, make_scene


def image_to_text_top1(adapter, n: int = 100, seed_base: int = HELDOUT_SEED_BASE + 500_000) -> float:
    """Fraction of N held-out scenes whose own caption scores highest among the N captions."""
    from ..models import flava_parts as parts

    scenes = [make_scene(seed_base + i, (2, 4)) for i in range(n)]
    with torch.no_grad():
        px = adapter.pixel_values([s.image for s in scenes])
        img = parts.image_embedding(adapter.flava, parts.encode_image(adapter.flava, px))
        enc = adapter.tokenize([s.caption for s in scenes])
        txt = parts.text_embedding(adapter.flava, parts.encode_text(
            adapter.flava, enc["input_ids"].to(adapter.device), enc["attention_mask"].to(adapter.device)))
    return float(((img @ txt.T).argmax(1) == torch.arange(n, device=img.device)).float().mean())
