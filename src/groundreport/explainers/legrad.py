"""LeGrad (Bousselham et al., arXiv 2404.03214, ICCV 2025) on the image encoder.

For every image block l: the gradient of the target score with respect to that block's
attention probabilities, ReLU, mean over heads and over the query rows that are patch tokens
(the CLS row is left out: it is the row the score reads, where the other methods look already;
a model without CLS has patch rows only), the patch columns kept; the blocks' maps averaged.
The suite min-max normalises the result.

This is the issue's definition: ONE score (the model's final image-text score, or a phrase's,
or a word in context) differentiated once; the reference code instead scores each block's own
tokens through the final norm and projection (a per-block "logit lens" score) and averages all
query rows including CLS. Every block's gradient comes out of the same batched backward as the
relevancy method's (same inputs), so LeGrad costs almost nothing extra.
"""

from __future__ import annotations

import torch

from .base import Explainer


class LeGrad(Explainer):
    name = "legrad"
    label = "LeGrad (image encoder)"
    description = ("Mean over image blocks of relu(d score / d attention), averaged over heads and patch query "
                   "rows; patch columns.")

    def inputs(self, rec):
        return list(rec.image_attn)

    def rows(self, rec, grads):
        p = rec.layout.image_patches
        per_block = [g.float()[:, 0, :, p, p].clamp(min=0).mean(dim=(1, 2)) for g in grads]  # L x [K, P]
        return torch.stack(per_block).mean(0).unsqueeze(1)  # [K, 1, P]
