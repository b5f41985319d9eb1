"""LeGrad (Bousselham et al., arXiv 2404.03214, ICCV 2025) on the image encoder.

For every image block l: the gradient of the target score with respect to that block's
attention probabilities, ReLU, mean over heads and over every query row (CLS included, as the
reference code averages them), the patch columns kept; the blocks' maps averaged. The suite
min-max normalises the result.

ONE score (the model's final image-text score, or a phrase's, or a word in context) is
differentiated once, as the issue defines it; the reference code instead scores each block's
own CLS through the final norm and projection (a per-block "logit lens" score). Every block's
gradient comes out of the same batched backward as the relevancy method's (same inputs), so
LeGrad costs almost nothing extra.

Why the CLS row: the score reads the image through the last block's CLS token, so most of the
gradient sits in the CLS query rows. Averaging the patch rows alone, as this method did before,
pointed *below* chance on both demo models (val phrases, 40 scenes: 0.230 FLAVA, 0.214 CLIP;
chance 0.317); with every row, 0.667 and 0.532 (docs/evaluation.md).
"""

from __future__ import annotations

import torch

from .base import Explainer


class LeGrad(Explainer):
    name = "legrad"
    label = "LeGrad (image encoder)"
    shift_average = True
    version = 3  # 3: a word inside a phrase read in that phrase; 2: word maps measured against the caption's other content words swapped in (1: the word masked)
    description = ("Mean over image blocks of relu(d score / d attention), averaged over heads and all query "
                   "rows; patch columns.")

    def inputs(self, rec):
        return list(rec.image_attn)

    def rows(self, rec, grads):
        p = rec.layout.image_patches
        per_block = [g.float()[:, 0, :, :, p].clamp(min=0).mean(dim=(1, 2)) for g in grads]  # L x [K, P]
        return torch.stack(per_block).mean(0).unsqueeze(1)  # [K, 1, P]
