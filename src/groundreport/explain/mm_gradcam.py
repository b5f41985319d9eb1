"""ALBEF/BLIP-style Grad-CAM on one multimodal block's attention (LAVIS ``compute_gradcam``).

map = mean over heads of ``attn * relu(grad)`` for the ITM logit, read row by row per text
token: every word's map from one backward. FLAVA has self-attention only, so the
"cross-attention" is the text-token rows against the patch columns.
"""

from __future__ import annotations

from .base import Explainer


class MultimodalGradCAM(Explainer):
    name = "mm-gradcam"
    label = "Grad-CAM (multimodal attention, per word)"
    encoder = "multimodal"
    target = "itm"
    description = "attn x relu(grad) of the ITM logit at the last multimodal block, heads averaged; text rows."

    def __init__(self, block: int = -1):
        self.block = block

    def inputs(self, rec):
        return [rec.mm_attn[self.block]]

    def rows(self, rec, grads):
        attn = rec.mm_attn[self.block].detach().float()  # [1, H, S, S]
        cam = (attn.unsqueeze(0) * grads[0].float().clamp(min=0)).mean(dim=2)[:, 0]  # [K, S, S]
        return cam[:, rec.mm_text_start:, rec.mm_patch_cols]
