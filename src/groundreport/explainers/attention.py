"""Raw attention, per layer and head: the thumbnails' source, and two gradient-free maps.

``ImageAttention``: image CLS -> patches (caption-blind: shown as a baseline). A model without a
CLS token (SigLIP) has one summary query, its pooling head's probe: one "layer" of rows.
``MultimodalAttention``: text tokens -> patches in the multimodal encoder (text-conditioned).
Rows use the last block, averaged over heads; ``per_layer`` gives every block and head.
"""

from __future__ import annotations

import torch

from .base import Explainer


def image_cls_rows(rec) -> torch.Tensor:
    """[L, H, P]: image CLS attention to patches, every block and head ([1, H, P]: the pooling
    head's probe, for a model without CLS)."""
    lay = rec.layout
    if lay.image_cls is None:
        return rec.pool_attn.detach().float()[0, :, 0, lay.image_patches][None]
    return torch.stack([a.detach().float()[0, :, lay.image_cls, lay.image_patches] for a in rec.image_attn])


def mm_text_rows(rec) -> torch.Tensor:
    """[L, H, T, P]: text-token attention to patches in the multimodal encoder (or cross-attention)."""
    lay = rec.layout
    return torch.stack([a.detach().float()[0, :, lay.mm_text_rows, lay.mm_patch_cols] for a in rec.mm_attn])


class ImageAttention(Explainer):
    name = "attention"
    label = "Raw attention (image CLS)"
    target = None
    caption_blind = True
    description = "Last image block's CLS-to-patch attention, heads averaged. Ignores the caption."

    def rows(self, rec, grads):
        return image_cls_rows(rec)[-1].mean(0)[None, None]  # [1, 1, P]

    def per_layer(self, rec) -> torch.Tensor:
        return image_cls_rows(rec)  # [L, H, P]


class MultimodalAttention(Explainer):
    name = "mm-attention"
    label = "Raw attention (multimodal, per word)"
    encoder = "multimodal"
    target = None
    requires = (("mm_self_attention", "cross_attention"),)
    description = "Last multimodal block's text-token-to-patch attention, heads averaged."

    def rows(self, rec, grads):
        return mm_text_rows(rec)[-1].mean(0)[None]  # [1, T, P]

    def per_layer(self, rec) -> torch.Tensor:
        return mm_text_rows(rec)  # [L, H, T, P]
