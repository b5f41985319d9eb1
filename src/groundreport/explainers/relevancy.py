"""Gradient-weighted attention relevancy (Chefer et al., ICCV 2021), all blocks.

``ImageRelevancy``: image encoder, CLS row over patch columns, target = caption or phrase score.
Without a CLS (SigLIP) the pooling head's probe is one more (query-only) block: its
gradient-weighted attention row times the propagated matrix.
``MultimodalRelevancy``: FLAVA's multimodal encoder, each text token's row over the patch
columns, from ONE backward of the ITM logit: the per-word maps.
"""

from __future__ import annotations

from .base import Explainer, head_mean_positive, relevancy_propagate, summary_rows


class ImageRelevancy(Explainer):
    name = "relevancy"
    label = "Relevancy (image encoder)"
    shift_average = True
    version = 3  # 3: a word inside a phrase read in that phrase; 2: word maps measured against the caption's other content words swapped in (1: the word masked)
    description = "Chefer et al. relevancy over all image blocks; CLS row, patch columns."

    def inputs(self, rec):
        return list(rec.image_attn) + ([rec.pool_attn] if rec.layout.image_cls is None else [])

    def rows(self, rec, grads):
        n = len(rec.image_attn)
        r = relevancy_propagate(rec.image_attn, grads[:n])  # [K, N, N]
        pool_cam = None
        if rec.layout.image_cls is None:
            pool_cam = head_mean_positive(rec.pool_attn.detach().float(), grads[n].float())  # [K, 1, N]
        return summary_rows(rec, r, pool_cam)  # [K, 1, P]


class MultimodalRelevancy(Explainer):
    name = "mm-relevancy"
    label = "Relevancy (multimodal, per word)"
    encoder = "multimodal"
    target = "itm"
    requires = ("mm_self_attention",)  # propagation runs over one joint sequence; cross-attention has none
    description = "Chefer et al. relevancy over the multimodal blocks from the ITM logit; text-token rows, patch columns."

    def inputs(self, rec):
        return list(rec.mm_attn)

    def rows(self, rec, grads):
        r = relevancy_propagate(rec.mm_attn, grads)  # [K, S, S]
        return r[:, rec.layout.mm_text_rows, rec.layout.mm_patch_cols]  # [K, T, P]
