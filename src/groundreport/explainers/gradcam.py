"""Grad-CAM on the image encoder's patch tokens, targeted at an image-text score.

Layer: the *input* of the last image block by default (``layer=-2`` of the hidden
states). The last block's output patch tokens get no gradient from FLAVA's scores (only the
CLS token is projected), so Grad-CAM there would be identically zero.
"""

from __future__ import annotations


from .base import Explainer


class GradCAM(Explainer):
    name = "gradcam"
    label = "Grad-CAM"
    description = "Grad-CAM on the input of the last image block; channel weights = mean gradient over patches."

    def __init__(self, layer: int = -2):
        self.layer = layer

    def inputs(self, rec):
        return [rec.image_hidden[self.layer]]

    def rows(self, rec, grads):
        acts = rec.image_hidden[self.layer].detach().float()[0, 1:]  # [P, D]
        g = grads[0].float()[:, 0, 1:]  # [K, P, D]
        weights = g.mean(dim=1, keepdim=True)  # [K, 1, D]
        return (weights * acts).sum(-1).clamp(min=0).unsqueeze(1)  # [K, 1, P]
