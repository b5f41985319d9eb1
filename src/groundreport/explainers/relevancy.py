"""Gradient-weighted attention relevancy (Chefer et al., ICCV 2021), all blocks.

``ImageRelevancy``: image encoder, CLS row over patch columns, target = caption or phrase score.
Without a CLS (SigLIP) the pooling head's probe is one more (query-only) block: its
gradient-weighted attention row times the propagated matrix.
``MultimodalRelevancy``: FLAVA's multimodal encoder, each text token's row over the patch
columns, from ONE backward of the ITM logit: the per-word maps.
"""

from __future__ import annotations

import torch

from .base import Explainer, head_mean_positive, propagated_rows, summary_probe


class ImageRelevancy(Explainer):
    name = "relevancy"
    label = "Relevancy (image encoder)"
    shift_average = True
    smooth = 1.0  # sigma in patches (explainers/smoothing.py): chosen on val, docs/evaluation.md
    version = 3  # 3: a word inside a phrase read in that phrase; 2: word maps measured against the caption's other content words swapped in (1: the word masked)
    description = "Chefer et al. relevancy over all image blocks; CLS row, patch columns."

    def inputs(self, rec):
        return list(rec.image_attn) + ([rec.pool_attn] if rec.layout.image_cls is None else [])

    def rows(self, rec, grads):
        n = len(rec.image_attn)
        pool_cam = None
        if rec.layout.image_cls is None:  # the pooling head's gradient-weighted probe row, [K, 1, N]
            pool_cam = head_mean_positive(rec.pool_attn.detach().float(), grads[n].float())
        probe = summary_probe(rec, grads[0].shape[0], rec.image_attn[0].shape[-1], pool_cam)
        # summary_rows of relevancy_propagate's R, the summary row carried through the blocks as a row
        return propagated_rows(rec.image_attn, grads[:n], probe)[:, :, rec.layout.image_patches]  # [K, 1, P]


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
        lay = rec.layout
        eye = torch.eye(rec.mm_attn[0].shape[-1], device=grads[0].device)[lay.mm_text_rows]  # the text rows of I
        return propagated_rows(rec.mm_attn, grads, eye.expand(grads[0].shape[0], -1, -1))[:, :, lay.mm_patch_cols]
