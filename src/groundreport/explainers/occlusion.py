"""Occlusion (Zeiler & Fergus, 2014): how much the score drops when one patch is hidden.

Model-agnostic and gradient-free, so it is the reference the gradient methods can be held
against. Each patch of the model's input grid in turn is set to 0 in normalised pixel space
(the processor's mean colour); the map is ``score(image) - score(occluded image)`` for the
caption and for every phrase (each encoded as its own text), all from the same occluded
batch. The score is FLAVA's contrastive cosine, whatever ``--target`` says: ITM would need a
multimodal pass per occluded image and per text.

Cost: one image-encoder forward per occluder, in batches of ``batch_size`` (8 on a CPU); the texts are
encoded once. The occluder is one patch on grids up to 15 x 15 (64 forwards on the demo FLAVA,
196 on flava-full at 224 px); on larger grids it is ``grid // 8`` patches a side (the demo
CLIP's 16 x 16 grid: 2 x 2 patches, 64 forwards rather than 256; SigLIP or BLIP at 384 px,
24 x 24: 3 x 3, 64 rather than 576), and every patch under it gets its drop.
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
    version = 4  # 4: a word inside a phrase read in that phrase; 3: word maps against the caption's other content words swapped in (2: the word masked);
    # 2: occluders of grid//8 patches on grids over 15 x 15 (1: always one patch)
    description = ("Score drop when each patch is set to the mean colour; contrastive score, caption and "
                   "phrases. Gradient-free; one forward per patch (per 2 x 2 or 3 x 3 patches on grids "
                   "over 15 x 15).")

    def __init__(self, batch_size: int | None = None, window: int | None = None):
        # images a forward (None: 8 on a CPU, 16 on a GPU). On the 2-core CPU a batch's attention
        # maps outgrow the caches: the 16 x 16 demo CLIP's occlusion took 0.88 s a pair at 32 images,
        # 0.52 s at 16; later, alternated in one run over 6 val scenes, 529 ms at 16 and 409 ms at 8
        # (the demo FLAVA: 753 and 574 ms; 4 gained nothing more)
        self.batch_size = batch_size
        self.window = window  # occluder side in patches; None: occluder_window(grid)

    def drops(self, adapter, pixel_values: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """``[K, E]`` unit text embeddings -> ``[K, P]`` score drops, patches in row-major order."""
        gh, gw = adapter.grid
        _, _, h, w = pixel_values.shape
        ph, pw = h // gh, w // gw
        kh = kw = self.window or occluder_window((gh, gw))
        cells = [(r, c) for r in range(0, gh, kh) for c in range(0, gw, kw)]  # top-left patches, row-major
        size = self.batch_size or (8 if pixel_values.device.type == "cpu" else 16)
        with torch.no_grad():
            base = adapter.image_embeds(pixel_values) @ text_embeds.T  # [1, K]
            drops = []
            for start in range(0, len(cells), size):
                chunk = cells[start:start + size]
                batch = pixel_values.repeat(len(chunk), 1, 1, 1)
                for i, (r, c) in enumerate(chunk):
                    batch[i, :, r * ph:(r + kh) * ph, c * pw:(c + kw) * pw] = 0
                drops.append(base - adapter.image_embeds(batch) @ text_embeds.T)  # [n, K]
        per_cell = torch.cat(drops).T.float()  # [K, cells]
        if kh == kw == 1:
            return per_cell
        per_row = -(-gw // kw)  # occluders in a row of them
        owner = torch.tensor([(r // kh) * per_row + c // kw for r in range(gh) for c in range(gw)])
        return per_cell[:, owner]  # every patch gets the drop of the occluder over it


def occluder_window(grid: tuple[int, int]) -> int:
    """Occluder side in patches: 1 while the shorter side is at most 15 patches, else that side
    // 8 (a square grid: 64 to 99 forwards)."""
    return max(1, min(grid) // 8)
