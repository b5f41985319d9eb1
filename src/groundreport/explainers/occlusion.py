"""Occlusion (Zeiler & Fergus, 2014): how much the score drops when one patch is hidden.

Model-agnostic and gradient-free, so it is the reference the gradient methods can be held
against. Each patch of the model's input grid in turn is set to 0 in normalised pixel space
(the processor's mean colour); the map is ``score(image) - score(occluded image)`` for the
caption and for every phrase (each encoded as its own text), all from the same occluded
batch. The score is FLAVA's contrastive cosine, whatever ``--target`` says: ITM would need a
multimodal pass per occluded image and per text.

Cost: one image-encoder forward per patch (64 on the demo model; 196 on flava-full at
224 px), in batches of ``batch_size``; the texts are encoded once.
"""

from __future__ import annotations

import torch

from .base import Explainer


class Occlusion(Explainer):
    name = "occlusion"
    label = "Occlusion (score drop)"
    target = "contrastive"
    perturbation = True
    expensive = True
    description = ("Score drop when each patch is set to the mean colour; contrastive score, caption and "
                   "phrases. Gradient-free; one forward per patch.")

    def __init__(self, batch_size: int = 32):
        self.batch_size = batch_size

    def drops(self, adapter, pixel_values: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """``[K, E]`` unit text embeddings -> ``[K, P]`` score drops, patches in row-major order."""
        gh, gw = adapter.grid
        _, _, h, w = pixel_values.shape
        ph, pw = h // gh, w // gw
        with torch.no_grad():
            base = adapter.image_embeds(pixel_values) @ text_embeds.T  # [1, K]
            drops = []
            for start in range(0, gh * gw, self.batch_size):
                cells = range(start, min(start + self.batch_size, gh * gw))
                batch = pixel_values.repeat(len(cells), 1, 1, 1)
                for i, cell in enumerate(cells):
                    r, c = divmod(cell, gw)
                    batch[i, :, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = 0
                drops.append(base - adapter.image_embeds(batch) @ text_embeds.T)  # [n, K]
        return torch.cat(drops).T.float()
