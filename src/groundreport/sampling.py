"""Seeded sampling of image-caption pairs: the same seed gives the same pairs."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .records import Caption, Example


@dataclass
class Pair:
    example: Example
    caption_index: int

    @property
    def caption(self) -> Caption:
        return self.example.captions[self.caption_index]


def sample_pairs(examples: list[Example], n_images: int | None, captions_per_image: int, seed: int) -> list[Pair]:
    """``n_images`` images (all when None), then the first k captions of each, in a seeded order."""
    if captions_per_image < 1:
        raise ValueError("captions_per_image must be at least 1")
    rng = random.Random(seed)
    chosen = list(examples)
    if n_images is not None and n_images < len(chosen):
        chosen = rng.sample(chosen, n_images)
    pairs = []
    for ex in chosen:
        order = list(range(len(ex.captions)))
        rng.shuffle(order)
        pairs.extend(Pair(ex, i) for i in sorted(order[:captions_per_image]))
    return pairs
