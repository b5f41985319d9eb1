"""The word as the target: mask it, and ask where the multimodal encoder looked to get it back.

FLAVA was pre-trained with masked multimodal modelling (MMM): a caption word replaced by
[MASK] is predicted from the image and the rest of the caption. "a red [MASK] and a blue
square" can only be completed by looking at the red object, so the prediction of the word
itself is a per-word target that must read the image where the word's object is.

For each word w of the caption (all W in one batch, ``Adapter.masked_words``): the caption
with w's tokens masked (or, for a word inside a phrase of known span, that smallest phrase's own
text with w masked: "a red [MASK]" rather than the whole caption, as the image-side word targets
read a word in its phrase) goes through the text and multimodal encoders with the pair's image;
the target is the MMM head's log-probability of w's own tokens at their masked positions; the
map is Grad-CAM on the multimodal attention (ALBEF/LAVIS style: mean over heads of
``attn * relu(grad)``) at ``block``, summed over every query row, read at the patch columns.
A caption map is the mean of its content words' maps, a phrase map the mean of its content
words' (articles and conjunctions are predicted from the text alone, so their maps are noise).
Like the image-encoder gradient maps, it is averaged over half-patch moved copies of the image
(``Suite(shifts=)``; explainers/shifts.py): val words 0.573 -> 0.615 on the demo FLAVA.

Needs a checkpoint whose MMM head was trained (``FlavaForPreTraining`` with ``mmm_text_weight``
> 0 in its config: flava-full, and demo models trained with ``mmm_loss_weight``).
"""

from __future__ import annotations

import torch

from ..models.base import word_phrases
from .base import Explainer


class MaskedWordGradCAM(Explainer):
    name = "mm-masked"
    label = "Masked word (multimodal, per word)"
    encoder = "multimodal"
    target = None  # its own targets, one per word (not the caption score)
    word_targets = True
    shift_average = True
    smooth = 1.0  # sigma in patches (explainers/smoothing.py): chosen on val, docs/evaluation.md
    version = 3  # 3: a word inside a phrase masked in that phrase alone; 2: averaged over moved copies (--shifts)
    requires = ("mmm", "mm_self_attention")
    description = ("Each word masked in turn; Grad-CAM (attn x relu(grad), heads averaged, all query rows) of "
                   "the MMM head's log-probability of the word, on the multimodal attention.")

    def __init__(self, block: int | None = None, chunk: int = 16):
        self.block = block  # None: every block's map, summed (grounded best on the demo's val scenes)
        self.chunk = chunk  # words per batch of masked copies: memory stays bounded on long captions

    def word_rows(self, adapter, rec, phrases=()) -> torch.Tensor:
        """[W, P]: one map per word of ``rec``, patches in row-major order. A word inside one of
        ``phrases`` (text, caption span) is masked in its smallest phrase alone ("a red [MASK]"),
        any other word in the caption."""
        out = []
        context = word_phrases(rec.words, phrases)
        for start in range(0, len(rec.words), self.chunk):
            stop = min(start + self.chunk, len(rec.words))
            attns, own = adapter.masked_words(rec, rec.words[start:stop], [context.get(i) for i in range(start, stop)])
            attns = list(attns) if self.block is None else [attns[self.block]]
            grads = torch.autograd.grad(own.sum(), attns)  # copies do not interact: row i's gradient is word i's
            cam = sum((a.detach().float() * g.float().clamp(min=0)).mean(1) for a, g in zip(attns, grads))
            out.append(cam.sum(1)[:, rec.layout.mm_patch_cols])  # [w, P]: every query row's weight on a patch
        return torch.cat(out) if out else torch.zeros(0, rec.n_patches)
