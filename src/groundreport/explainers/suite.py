"""Run the selected explainers on one pair: one forward, one backward per target kind.

- Caption level: one backward of the caption score for every image-encoder gradient method
  together (their inputs are unioned), one backward of the ITM logit for every multimodal
  method together.
- Phrases: every phrase is encoded as its own text, its cosine with the image embedding is a
  target, and all K targets share one batched backward (``is_grads_batched``).
- Words: multimodal methods give a row per text token from the single ITM backward;
  word-pieces are averaged into words. Image-encoder methods take each word *in context* as a
  target: the caption's score minus the score of the caption with that word masked, all W
  words in one batched backward (occlusion: the same difference of its score drops).
- A method the model cannot run (``Explainer.requires`` against ``adapter.capabilities``: no
  ITM head, no multimodal encoder, cross-attention only) is skipped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .base import Explainer
from .gradients import batched_grads
from .normalise import normalise
from .targets import Target, get_target


@dataclass
class MethodMaps:
    """All maps of one method for one pair, each normalised to [0, 1] on the patch grid."""

    caption: np.ndarray  # [gh, gw]
    words: np.ndarray | None = None  # [W, gh, gw], one per caption word
    phrases: np.ndarray | None = None  # [K, gh, gw], one per phrase
    layers: np.ndarray | None = None  # [L, gh, gw], heads averaged (raw attention only)
    heads: np.ndarray | None = None  # [L, H, gh, gw] (raw attention only)


@dataclass
class PairResult:
    score: float
    itm: float | None
    tokens: list[str]
    words: list  # models.base.Word
    truncated: bool
    maps: dict[str, MethodMaps] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    region: tuple[float, float, float, float] | None = None  # the original image's part the grid covers


def _phrase_token_rows(words, spans) -> list[list[int]]:
    """Token indices of the words overlapping each phrase span (empty when unknown)."""
    out = []
    for span in spans:
        rows = []
        if span is not None:
            for w in words:
                if w.span[0] < span[1] and span[0] < w.span[1] and not w.is_punctuation:
                    rows.extend(w.tokens)
        out.append(rows)
    return out


def _pool(rows: torch.Tensor, groups: list[list[int]], fallback: torch.Tensor) -> torch.Tensor:
    """Mean of the token rows in each group; ``fallback`` where a group is empty. -> [G, P]."""
    if not groups:
        return rows.new_zeros((0, rows.shape[-1]))
    return torch.stack([rows[g].mean(0) if g else fallback for g in groups])


def _grads_per_method(targets: torch.Tensor, methods: list[Explainer], rec) -> dict[str, list[torch.Tensor]]:
    """One (batched) backward for all ``methods``; each gets the gradients of its own inputs."""
    per_method = [m.inputs(rec) for m in methods]
    flat = batched_grads(targets, [x for xs in per_method for x in xs])
    out, i = {}, 0
    for m, xs in zip(methods, per_method):
        out[m.name] = flat[i:i + len(xs)]
        i += len(xs)
    return out


class Suite:
    def __init__(self, methods: list[Explainer], caption_target: str | Target = "contrastive"):
        self.methods = methods
        self.caption_target = get_target(caption_target)

    def target_of(self, m: Explainer) -> Target | None:
        """The score a method's maps explain (None: none, e.g. raw attention)."""
        if m.target is None:
            return None
        return self.caption_target if m.target == "caption" else get_target(m.target)

    def target_name(self, m: Explainer) -> str | None:
        t = self.target_of(m)
        return None if t is None else t.name

    def run(self, adapter, pixel_values: torch.Tensor, caption: str,
            phrases: list[tuple[str, tuple[int, int] | None]] = (),
            image_size: tuple[int, int] | None = None) -> PairResult:
        """``image_size`` (W, H) of the original image: the result's ``region`` (None: not known)."""
        notes, methods = [], []
        for m in self.methods:
            target = self.target_of(m)
            if target is not None and target.needs_multimodal and "itm" not in adapter.capabilities:
                notes.append(f"{m.name}: skipped, the checkpoint has no ITM head")
                continue
            reason = m.missing(adapter.capabilities)
            if reason:
                notes.append(f"{m.name}: skipped, {reason}")
                continue
            methods.append(m)
        need_mm = self.caption_target.needs_multimodal or any(m.encoder == "multimodal" for m in methods)
        rec = adapter.forward(pixel_values, caption, need_mm=need_mm, image_size=image_size)
        result = PairResult(score=rec.score.item(), itm=None if rec.itm is None else rec.itm.item(),
                            tokens=rec.tokens, words=rec.words, truncated=rec.truncated, notes=notes,
                            region=rec.region)

        # one backward per caption-level target, over the union of the methods' inputs
        grad_methods = [m for m in methods if self.target_of(m) is not None and not m.perturbation]
        grads: dict[str, list[torch.Tensor]] = {}
        for target in {self.target_of(m) for m in grad_methods}:
            users = [m for m in grad_methods if self.target_of(m) == target]
            grads.update(_grads_per_method(target(rec), users, rec))

        # phrases as their own texts: K targets, one batched backward for all image methods
        phrase_grads: dict[str, list[torch.Tensor]] = {}
        image_grad_methods = [m for m in grad_methods if m.encoder == "image"]
        if phrases and image_grad_methods:
            targets = adapter.phrase_scores(rec, [p for p, _ in phrases])
            phrase_grads = _grads_per_method(targets, image_grad_methods, rec)
        # words in context: the caption's score minus its score without the word, W targets
        word_grads: dict[str, list[torch.Tensor]] = {}
        if rec.words and image_grad_methods:
            word_grads = _grads_per_method(adapter.word_scores(rec), image_grad_methods, rec)

        gh, gw = rec.grid
        word_groups = rec.word_token_rows()
        content = [t for w in rec.words if not w.is_punctuation for t in w.tokens] or [t for g in word_groups for t in g]
        phrase_groups = _phrase_token_rows(rec.words, [s for _, s in phrases])
        for m in methods:
            with torch.no_grad():
                if m.perturbation:  # the caption and every phrase from one set of perturbed forwards
                    texts = [rec.text_embed.detach()]
                    if phrases:
                        texts.append(adapter.text_embeds([p for p, _ in phrases]).to(texts[0].dtype))
                    texts.append(adapter.word_ablated_embeds(rec).to(texts[0].dtype))
                    drops = m.drops(adapter, pixel_values, torch.cat(texts))  # [1+K+W, P]
                    k = len(phrases)
                    caption_map = drops[0]
                    phrase_maps = drops[1:1 + k] if phrases else None
                    # a word's target is score(caption) - score(caption without it): drops subtract alike
                    words = drops[0:1] - drops[1 + k:] if rec.words else None
                elif m.encoder == "multimodal":
                    token_rows = m.rows(rec, grads.get(m.name))[0]  # [T, P]
                    caption_map = token_rows[content].mean(0)
                    words = _pool(token_rows, word_groups, caption_map)
                    phrase_maps = _pool(token_rows, phrase_groups, caption_map) if phrases else None
                else:
                    caption_map = m.rows(rec, grads.get(m.name))[0, 0]
                    words = m.rows(rec, word_grads[m.name])[:, 0] if m.name in word_grads else None
                    if m.name in phrase_grads:
                        phrase_maps = m.rows(rec, phrase_grads[m.name])[:, 0]
                    elif phrases:
                        phrase_maps = caption_map.expand(len(phrases), -1)  # caption-blind: same map
                    else:
                        phrase_maps = None
            out = MethodMaps(caption=normalise(caption_map.reshape(gh, gw).cpu().numpy()))
            if words is not None:
                out.words = normalise(words.reshape(-1, gh, gw).cpu().numpy())
            if phrase_maps is not None:
                out.phrases = normalise(phrase_maps.reshape(-1, gh, gw).cpu().numpy())
            if hasattr(m, "per_layer"):
                per = m.per_layer(rec)  # [L, H, P] or [L, H, T, P]
                if per.dim() == 4:
                    per = per[:, :, content].mean(2)
                heads = per.reshape(per.shape[0], per.shape[1], gh, gw)
                out.heads = normalise(heads.cpu().numpy())
                out.layers = normalise(heads.mean(1).cpu().numpy())
            result.maps[m.name] = out
        return result
