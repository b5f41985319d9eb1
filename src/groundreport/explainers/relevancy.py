"""Gradient-weighted attention relevancy (Chefer et al., ICCV 2021), all blocks.

``ImageRelevancy``: image encoder, CLS row over patch columns, target = caption or phrase score.
``MultimodalRelevancy``: FLAVA's multimodal encoder, each text token's row over the patch
columns, from ONE backward of the ITM logit: the per-word maps.
"""

from __future__ import annotations

from .base import Explainer, relevancy_propagate


class ImageRelevancy(Explainer):
    name = "relevancy"
    label = "Relevancy (image encoder)"
    description = "Chefer et al. relevancy over all image blocks; CLS row, patch columns."

    def inputs(self, rec):
        return list(rec.image_attn)

    def rows(self, rec, grads):
        r = relevancy_propagate(rec.image_attn, grads)  # [K, N, N]
        return r[:, 0:1, 1:]  # [K, 1, P]


class MultimodalRelevancy(Explainer):
    name = "mm-relevancy"
    label = "Relevancy (multimodal, per word)"
    encoder = "multimodal"
    target = "itm"
    description = "Chefer et al. relevancy over the multimodal blocks from the ITM logit; text-token rows, patch columns."

    def inputs(self, rec):
        return list(rec.mm_attn)

    def rows(self, rec, grads):
        r = relevancy_propagate(rec.mm_attn, grads)  # [K, S, S]
        return r[:, rec.mm_text_start:, rec.mm_patch_cols]  # [K, T, P]
