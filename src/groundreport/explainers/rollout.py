"""Attention rollout (Abnar & Zuidema, 2020) on the image encoder: a caption-blind baseline.

Per block, heads averaged, identity added for the residual path, rows renormalised; the
product over blocks; the CLS row over patch columns (no CLS: the pooling head's probe
attention, heads averaged, times the product).
"""

from __future__ import annotations

import torch

from .base import Explainer, summary_rows


class Rollout(Explainer):
    name = "rollout"
    label = "Attention rollout"
    target = None
    caption_blind = True
    description = "Abnar & Zuidema rollout over image blocks (0.5 A + 0.5 I). Ignores the caption."

    def rows(self, rec, grads):
        n = rec.image_attn[0].shape[-1]
        eye = torch.eye(n, device=rec.image_attn[0].device)
        r = eye
        for a in rec.image_attn:
            a = 0.5 * a.detach().float()[0].mean(0) + 0.5 * eye
            r = (a / a.sum(-1, keepdim=True)) @ r
        probe = None if rec.pool_attn is None else rec.pool_attn.detach().float()[:, :, 0].mean(1, keepdim=True)
        return summary_rows(rec, r[None], probe)  # [1, 1, P]
