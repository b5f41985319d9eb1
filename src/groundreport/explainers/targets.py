"""The scores a map can explain: each a name and a function of the forward record.

As pytorch-grad-cam passes targets, a target here is a small callable object, validated once
(``get_target``) and then passed around; nothing downstream compares strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    fn: Callable  # ForwardRecord -> [1] tensor in the graph
    needs_multimodal: bool = False  # the score is read after the multimodal encoder

    def __call__(self, rec):
        return self.fn(rec)


def _itm(rec):
    if rec.itm is None:
        raise UserError("this checkpoint has no ITM head (load a FlavaForPreTraining checkpoint)")
    return rec.itm


CONTRASTIVE = Target("contrastive", "cosine of the projected image and text embeddings", lambda rec: rec.score)
ITM = Target("itm", "image-text matching logit (match minus mismatch)", _itm, needs_multimodal=True)
TARGETS = {t.name: t for t in (CONTRASTIVE, ITM)}


def get_target(target) -> Target:
    """A ``Target`` from itself or its name; an unknown name is a one-line ``UserError``."""
    if isinstance(target, Target):
        return target
    if target in TARGETS:
        return TARGETS[target]
    raise UserError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
