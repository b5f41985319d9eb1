"""Run the selected explainers on one pair: one forward, one backward per target kind.

- Caption level: one backward of the caption score for every image-encoder gradient method
  together (their inputs are unioned), one backward of the ITM logit for every multimodal
  method together.
- Phrases: every phrase is encoded as its own text, its cosine with the image embedding is a
  target, and all K targets share one batched backward call (``gradients.batched_grads``).
- Words: multimodal methods give a row per text token from the single ITM backward;
  word-pieces are averaged into words. Image-encoder methods take each word *in context* as a
  target: its context's score minus its mean score with that word swapped for each other
  content word of the caption, all W words in one batched backward (occlusion: the same
  difference of its score drops). The context is the smallest phrase of known span around the
  word ("square" of "a purple square" in "a green square and a purple square" asks for *this*
  square), else the whole caption (``Adapter.word_directions``).
- A method the model cannot run (``Explainer.requires`` against ``adapter.capabilities``: no
  ITM head, no multimodal encoder, cross-attention only) is skipped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .base import Explainer
from .gradients import batched_grads, cut
from .normalise import normalise
from .targets import Target, get_target

WORD_CONTEXT = "phrase"  # a word's context: "phrase" (its phrase, where known) or "caption" (scripts compare)


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
    word_dirs: torch.Tensor | None = field(default=None, repr=False)  # [W, E] the words' target directions


def _words_in(words, span) -> list[int]:
    """Indices of the words overlapping a half-open character span (none when it is unknown)."""
    return [] if span is None else [i for i, w in enumerate(words) if w.span[0] < span[1] and span[0] < w.span[1]]


def _phrase_token_rows(words, spans) -> list[list[int]]:
    """Token indices of the (non-punctuation) words overlapping each phrase span (empty when unknown)."""
    return [[t for i in _words_in(words, span) if not words[i].is_punctuation for t in words[i].tokens]
            for span in spans]


def _content_words(words, among: list[int] | None = None) -> list[int]:
    """Indices of the content words (of ``among``, default all); failing those the non-punctuation
    ones, failing those all."""
    among = list(range(len(words))) if among is None else among
    return ([i for i in among if words[i].is_content] or [i for i in among if not words[i].is_punctuation]
            or among)


def _phrase_word_indices(words, spans) -> list[list[int]]:
    """Content words overlapping each phrase span (empty when the span is unknown or has no words)."""
    return [_content_words(words, inside) if inside else [] for inside in (_words_in(words, s) for s in spans)]


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


def _pair_grads(targets: list[torch.Tensor], methods: list[Explainer], batch,
                views) -> list[dict[str, list[torch.Tensor]]]:
    """Each pair's ``[K_b]`` targets -> each pair's gradients, as ``_grads_per_method`` gives them.

    Slot j is the sum over pairs of each pair's j-th target: pairs do not interact, so its
    gradient at pair b's activations is the gradient of pair b's own j-th target, and max K_b
    slots cost one batched backward over the batch. A pair with no target gets no gradients."""
    targets = [t.reshape(-1) for t in targets]
    k = max(len(t) for t in targets)
    if k == 0:
        return [{} for _ in targets]
    slots = targets[0] if len(targets) == 1 else torch.stack(
        [sum(t[j] for t in targets if j < len(t)) for j in range(k)])
    flat = _grads_per_method(slots, methods, batch)
    return [{m.name: [cut(g, b, x, lead=1)[:len(t)] for g, x in zip(flat[m.name], m.inputs(rec))] for m in methods}
            if len(t) else {} for b, (t, rec) in enumerate(zip(targets, views))]


class Suite:
    def __init__(self, methods: list[Explainer], caption_target: str | Target = "contrastive", shifts: int = 1,
                 smooth: bool = False):
        """``shifts``: copies of the image (1, 2 or 4; explainers/shifts.py) whose maps the
        methods with ``Explainer.shift_average`` average; 1: the plain maps. ``smooth``: each
        method's caption, word and phrase maps smoothed by its own ``Explainer.smooth``
        (explainers/smoothing.py), after the copies are averaged; False: raw maps."""
        from .shifts import offsets

        offsets(shifts)  # refuses anything but 1, 2 or 4
        self.methods = methods
        self.caption_target = get_target(caption_target)
        self.shifts = shifts
        self.smooth = smooth

    def smoothing(self) -> dict[str, float]:
        """Sigma (patches) of each method this suite smooths."""
        return {m.name: m.smooth for m in self.methods if self.smooth and m.smooth > 0}

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
        return self._finish(self._shift_average(adapter, pixel_values, [caption], [list(phrases)], [image_size]))[0]

    def run_batch(self, adapter, pixel_values: torch.Tensor, captions: list[str],
                  phrases_per_pair: list[list[tuple[str, tuple[int, int] | None]]],
                  image_sizes: list[tuple[int, int] | None] | None = None) -> list[PairResult]:
        """B pairs at once (``pixel_values`` [B, C, H, W]): the same results as ``run`` on each pair.

        One forward for the batch; one backward per caption-level target over the batch (the sum
        of the B pairs' scores: pairs do not interact, so its gradient at a pair's activations is
        that pair's own); phrase and word targets likewise summed slot by slot across pairs.
        Only FLAVA has a batched forward (models/flava_batch.py); other families go pair by pair
        here, with the same results and no batching speed-up."""
        if not len(captions) == len(phrases_per_pair) == pixel_values.shape[0]:
            raise ValueError(f"{pixel_values.shape[0]} images, {len(captions)} captions and "
                             f"{len(phrases_per_pair)} phrase lists: one of each per pair")
        sizes = list(image_sizes) if image_sizes is not None else [None] * len(captions)
        return self._finish(self._shift_average(adapter, pixel_values, list(captions),
                                                [list(p) for p in phrases_per_pair], sizes))

    def _finish(self, results: list[PairResult]) -> list[PairResult]:
        """Each smoothed method's caption, word and phrase maps smoothed (``smoothing``)."""
        from .smoothing import smooth

        for name, sigma in self.smoothing().items():
            for r in results:
                if name in r.maps:
                    for k in ("caption", "words", "phrases"):
                        setattr(r.maps[name], k, smooth(getattr(r.maps[name], k), sigma))
        return results

    def _pass(self, adapter, pixel_values, captions, phrases_per_pair, sizes, word_dirs) -> list[PairResult]:
        """One pass of this suite over the pairs: batched where the model has a batched forward
        (FLAVA), else pair by pair. ``word_dirs``: each pair's word directions when an earlier
        pass over the same captions made them (None: made here, returned in the results)."""
        from ..models.flava_batch import forward_batch, supports_batch

        methods, notes = self._usable(adapter)
        need_mm = self._needs_mm(methods)
        if supports_batch(adapter) and len(captions) > 1:
            batch, views = forward_batch(adapter, pixel_values, captions, need_mm=need_mm, image_sizes=sizes)
            return self._explain(adapter, pixel_values, batch, views, phrases_per_pair, methods, notes, word_dirs)
        out = []
        for b, (caption, phrases, size) in enumerate(zip(captions, phrases_per_pair, sizes)):
            rec = adapter.forward(pixel_values[b:b + 1], caption, need_mm=need_mm, image_size=size)
            out += self._explain(adapter, pixel_values[b:b + 1], rec, [rec], [phrases], methods, notes,
                                 None if word_dirs is None else word_dirs[b:b + 1])
        return out

    def _shift_average(self, adapter, pixel_values, captions, phrases_per_pair, sizes) -> list[PairResult]:
        """This suite's pass over the pairs, then the maps of every ``shift_average`` method
        averaged over the moved copies (explainers/shifts.py): all copies of all pairs explained
        in one more pass of a suite of those methods alone, reusing the words' directions (they
        depend on the text only). Scores, notes and attention layers stay the unmoved copy's."""
        from . import shifts

        results = self._pass(adapter, pixel_values, captions, phrases_per_pair, sizes, None)
        names = [m.name for m in self.methods if m.shift_average and any(m.name in r.maps for r in results)]
        if self.shifts == 1 or not names:
            return results
        n, offs = shifts.HALF, shifts.offsets(self.shifts)
        sub = Suite([m for m in self.methods if m.name in names], self.caption_target)
        h, w = pixel_values.shape[-2:]
        gh, gw = next(r.maps[name].caption.shape for r in results for name in names if name in r.maps)
        moved = torch.cat([shifts.moved(pixel_values, shifts.pixel_offset(ky, n, h, gh),
                                        shifts.pixel_offset(kx, n, w, gw)) for ky, kx in offs])
        copies = sub._pass(adapter, moved, captions * len(offs), phrases_per_pair * len(offs), sizes * len(offs),
                           [r.word_dirs for r in results] * len(offs))
        pairs = len(results)
        for b, r in enumerate(results):
            for name in names:
                if name not in r.maps:
                    continue
                for k in ("caption", "words", "phrases"):
                    total = getattr(r.maps[name], k)
                    if total is None:
                        continue
                    for j, (ky, kx) in enumerate(offs):
                        total = total + shifts.realign(getattr(copies[j * pairs + b].maps[name], k), ky, kx, n)
                    setattr(r.maps[name], k, normalise(total / self.shifts))
        return results

    def _usable(self, adapter) -> tuple[list[Explainer], list[str]]:
        """The methods this adapter can run, and a note for each one skipped."""
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
        return methods, notes

    def _needs_mm(self, methods: list[Explainer]) -> bool:
        return self.caption_target.needs_multimodal or any(m.encoder == "multimodal" for m in methods)

    def _explain(self, adapter, pixel_values, batch, views, phrases_per_pair, methods, notes,
                 word_dirs: list | None = None) -> list[PairResult]:
        """Gradients for every pair of ``batch`` (one backward per target kind), then each pair's maps.

        ``views`` are the per-pair records (``[batch]`` itself for one pair); ``word_dirs``: the
        words' directions of an earlier pass over the same captions (None: made here)."""
        results = [PairResult(score=rec.score.item(), itm=None if rec.itm is None else rec.itm.item(),
                              tokens=rec.tokens, words=rec.words, truncated=rec.truncated, notes=list(notes),
                              region=rec.region) for rec in views]

        # one backward per caption-level target, over the union of the methods' inputs
        grad_methods = [m for m in methods if self.target_of(m) is not None and not m.perturbation]
        grads: list[dict[str, list[torch.Tensor]]] = [{} for _ in views]
        for target in {self.target_of(m) for m in grad_methods}:
            users = [m for m in grad_methods if self.target_of(m) == target]
            for mine, new in zip(grads, _pair_grads([target(rec) for rec in views], users, batch, views)):
                mine.update(new)

        # phrases as their own texts: K targets, one batched backward for all image methods
        image_grad_methods = [m for m in grad_methods if m.encoder == "image"]
        no_grads = [{} for _ in views]
        phrase_grads, word_grads = no_grads, no_grads
        if image_grad_methods and any(phrases_per_pair):
            targets = [adapter.phrase_scores(rec, [p for p, _ in phrases]) if phrases else rec.score[:0]
                       for rec, phrases in zip(views, phrases_per_pair)]
            phrase_grads = _pair_grads(targets, image_grad_methods, batch, views)
        # words in context: the score of the word's phrase (or caption) minus its baseline's (the word
        # swapped for the others), W targets; each pair's directions encoded once, for the gradient
        # methods and occlusion alike
        if word_dirs is None:
            word_dirs = ([adapter.word_directions(rec, phrases if WORD_CONTEXT == "phrase" else ())
                          for rec, phrases in zip(views, phrases_per_pair)]
                         if image_grad_methods or any(m.perturbation for m in methods) else [None] * len(views))
        if image_grad_methods and any(rec.words for rec in views):
            targets = [adapter.word_scores(rec, d) if rec.words else rec.score[:0]
                       for rec, d in zip(views, word_dirs)]
            word_grads = _pair_grads(targets, image_grad_methods, batch, views)

        for b, rec in enumerate(views):
            results[b].word_dirs = word_dirs[b]
            self._maps(adapter, pixel_values[b:b + 1], rec, phrases_per_pair[b], methods, grads[b],
                       phrase_grads[b], word_grads[b], word_dirs[b], results[b])
        return results

    def _maps(self, adapter, pixel_values, rec, phrases, methods, grads, phrase_grads, word_grads, word_dirs,
              result) -> None:
        """One pair's maps, every method, from its record, its gradients and its words' target
        directions (``word_dirs``, [W, E]: context minus baseline embeddings), into ``result.maps``."""
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
                    # a word's target, score(caption) - score(its baseline), is the score of the
                    # embeddings' difference (scores are affine in the text embedding): its drops are
                    # the word map, with no subtraction of two nearly equal drops to round away
                    texts.append(word_dirs.to(texts[0].dtype))
                    drops = m.drops(adapter, pixel_values, torch.cat(texts))  # [1+K+W, P]
                    k = len(phrases)
                    caption_map = drops[0]
                    phrase_maps = drops[1:1 + k] if phrases else None
                    words = drops[1 + k:] if rec.words else None
                elif getattr(m, "word_targets", False):  # a target per word: the caption and phrases pool them
                    with torch.enable_grad():
                        word_rows = m.word_rows(adapter, rec, phrases if WORD_CONTEXT == "phrase" else ())  # [W, P]
                    caption_map = word_rows[_content_words(rec.words)].mean(0)
                    words = word_rows
                    phrase_maps = (_pool(word_rows, _phrase_word_indices(rec.words, [s for _, s in phrases]),
                                         caption_map) if phrases else None)
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
