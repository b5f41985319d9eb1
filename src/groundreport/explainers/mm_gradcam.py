"""ALBEF/BLIP-style Grad-CAM on one multimodal block (default: second to last)'s attention (LAVIS ``compute_gradcam``).

map = mean over heads of ``attn * relu(grad)`` for the ITM logit, read row by row per text
token: every word's map from one backward. FLAVA has self-attention only, so the
"cross-attention" is the text-token rows against the patch columns; BLIP has cross-attention,
read at LAVIS's default block (the adapter's ``Layout.mm_default_block``).
"""

from __future__ import annotations

from .base import Explainer


class MultimodalGradCAM(Explainer):
    name = "mm-gradcam"
    label = "Grad-CAM (multimodal attention, per word)"
    encoder = "multimodal"
    target = "itm"
    requires = ("itm", ("mm_self_attention", "cross_attention"))
    description = "attn x relu(grad) of the ITM logit at the second-to-last multimodal block, heads averaged; text rows."

    def __init__(self, block: int | None = None):
        self.block = block

    def _block(self, rec) -> int:
        # The ITM head reads only the (mm) CLS, so in the LAST block the text rows' attention
        # cannot change the score: their gradient is exactly zero. One block earlier (as
        # ALBEF reads block 8 of 12) every text row feeds the CLS through the last block.
        if self.block is not None:
            return self.block
        default = rec.layout.mm_default_block
        return default if default is not None else max(0, len(rec.mm_attn) - 2)

    def inputs(self, rec):
        return [rec.mm_attn[self._block(rec)]]

    def rows(self, rec, grads):
        attn = rec.mm_attn[self._block(rec)].detach().float()  # [1, H, S, S]
        cam = (attn.unsqueeze(0) * grads[0].float().clamp(min=0)).mean(dim=2)[:, 0]  # [K, S, S]
        return cam[:, rec.layout.mm_text_rows, rec.layout.mm_patch_cols]
