"""Sanity checks of a method (Adebayo et al., NeurIPS 2018): does its map depend on the caption
and on the model's weights at all?

- **Caption shuffle**: the same image explained once more with a caption taken from another
  image. Per pair, the Pearson correlation of the method's caption maps (true caption vs the
  other one, same image, flattened patch grids); per method, the mean over pairs. A method
  whose mean is above ``CAPTION_BLIND_THRESHOLD`` (0.9) is ``caption_blind``.
- **Cascading weight randomisation**: one deep copy of the model, re-initialised stage by
  stage from the top down, cumulatively; after each stage the method's maps are recomputed
  and compared with the original ones by Spearman rank correlation (mean over the pair's
  targets, caption and phrases, then over pairs). Stages (depth labels), FLAVA:

  - ``original``: depth 0, the trained model (1.0 by definition);
  - ``heads``: everything above the encoders' blocks: the image and text projections (the
    contrastive score), the image-to-mm and text-to-mm projections, the ITM head, and the
    image and multimodal encoders' final LayerNorms;
  - ``mm_block_{L-1}`` .. ``mm_block_0``: the multimodal blocks, top first, listed and run
    only for multimodal-encoder methods (an image-encoder method never reads them, so its
    maps could not change there);
  - ``image_block_{L-1}`` .. ``image_block_0``: the image blocks, top first. The last entry
    is full depth.

  The text encoder and the patch embedding are left trained: the cascade walks down the
  image path from the score, and the text encoder is a side branch whose randomisation would
  change the target rather than the image computation being explained. Re-initialisation is
  the model's own ``_init_weights`` (FLAVA: Linear weights ~ normal(0, initializer_range =
  0.02), biases 0, LayerNorm 1 and 0), seeded. A method whose full-depth Spearman is above
  ``RANDOMISATION_FLAG_THRESHOLD`` (0.5) is flagged (``randomisation_flag``): its maps do not
  follow the weights. The Spearman values are signed (an inverted map is not "the same").

Correlation of constant maps (a normalised map with no peak is all zeros): two constant maps
correlate 1.0 (nothing changed), one constant and one not correlate 0.0.

Over pairs: ``summarise`` -> the manifest's ``summary.sanity.<method>``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

CAPTION_BLIND_THRESHOLD = 0.9
RANDOMISATION_FLAG_THRESHOLD = 0.5


# -- correlations --------------------------------------------------------------------------------
def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.r_[0, np.flatnonzero(xs[1:] != xs[:-1]) + 1]
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0  # mean of the 1-based positions start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (flattened); constant maps as in the module docstring."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps of different sizes: {a.shape} vs {b.shape}")
    ca, cb = a.max() == a.min(), b.max() == b.min()
    if ca or cb:
        return 1.0 if ca and cb else 0.0
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps: Pearson of their average ranks."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps of different sizes: {a.shape} vs {b.shape}")
    return pearson(_ranks(a), _ranks(b))


# -- caption shuffle -------------------------------------------------------------------------------
def other_captions(captions: list[str], seed: int = 0) -> list[str]:
    """For each pair a caption of another pair, different in text: a seeded derangement."""
    n = len(captions)
    if n < 2 or len(set(captions)) < 2:
        raise ValueError("caption shuffle needs at least two different captions")
    cycle = np.random.default_rng(seed).permutation(n)
    nxt = {int(cycle[i]): [int(cycle[(i + j) % n]) for j in range(1, n)] for i in range(n)}
    return [next(captions[j] for j in nxt[i] if captions[j] != captions[i]) for i in range(n)]


def shuffle_correlations(true_maps: dict[str, np.ndarray], other_maps: dict[str, np.ndarray]) -> dict[str, float]:
    """One pair: method -> Pearson of its caption map for the true caption and for another image's caption."""
    return {m: pearson(true_maps[m], other_maps[m]) for m in true_maps if m in other_maps}


# -- cascading randomisation -----------------------------------------------------------------------
@dataclass
class Stage:
    label: str
    modules: list[torch.nn.Module]
    multimodal: bool = False  # True: only multimodal-encoder methods read these weights


def flava_stages(model) -> list[Stage]:
    """The cascade, top down, for a FLAVA model (``FlavaModel`` or ``FlavaForPreTraining``)."""
    flava = model.flava if hasattr(model, "flava") else model
    heads = [flava.image_projection, flava.text_projection, flava.image_to_mm_projection,
             flava.text_to_mm_projection, flava.image_model.layernorm, flava.multimodal_model.layernorm]
    if getattr(model, "itm_head", None) is not None:
        heads.append(model.itm_head)
    mm = list(flava.multimodal_model.encoder.layer)
    img = list(flava.image_model.encoder.layer)
    return ([Stage("heads", heads)]
            + [Stage(f"mm_block_{i}", [mm[i]], multimodal=True) for i in reversed(range(len(mm)))]
            + [Stage(f"image_block_{i}", [img[i]]) for i in reversed(range(len(img)))])


def depth_labels(stages: list[Stage], multimodal: bool) -> list[str]:
    """The depths one method is measured at: ``original`` then the stages it reads."""
    return ["original"] + [s.label for s in stages if multimodal or not s.multimodal]


def reinitialise(model, modules: list[torch.nn.Module], seed: int) -> None:
    """Re-initialise ``modules`` (parts of ``model``) in place with the model's own ``_init_weights``, seeded.

    Raises when no weight changed: a silent no-op would let every method look weight-blind."""
    params = [p for mod in modules for p in mod.parameters()]
    before = [p.detach().clone() for p in params]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for mod in modules:
            for sub in mod.modules():
                model._init_weights(sub)
    if not any(not torch.equal(b, p) for b, p in zip(before, params)):
        raise RuntimeError(f"re-initialising {type(modules[0]).__name__} changed no weight")


def _targets(result, name: str) -> np.ndarray:
    """All maps of one method on one pair: caption first, then phrases, [1+K, gh, gw]."""
    m = result.maps[name]
    return m.caption[None] if m.phrases is None else np.concatenate([m.caption[None], m.phrases])


def randomisation(adapter, methods: list, pairs: list[tuple], seed: int = 0,
                  caption_target: str = "contrastive") -> dict[str, dict]:
    """Cascading randomisation of every method in ``methods`` over ``pairs``.

    ``pairs``: ``(pixels, caption, phrases)`` as ``Suite.run`` takes them. One deep copy of
    the model is randomised stage by stage (depth outer, pairs inner, so one copy is ever
    held). Returns method -> ``{"depths": labels, "spearman": [mean over pairs, per depth],
    "per_pair": [[per depth] per pair]}``.
    """
    from ..explainers.suite import Suite

    if not pairs:
        raise ValueError("randomisation needs at least one pair")
    originals = [Suite(methods, caption_target).run(adapter, *p) for p in pairs]
    orig = {m.name: [_targets(r, m.name) for r in originals] for m in methods if m.name in originals[0].maps}
    per_pair = {name: [[1.0] for _ in pairs] for name in orig}
    labels = {name: ["original"] for name in orig}
    model = copy.deepcopy(adapter.model)
    rand = type(adapter)(model, adapter.processor, adapter.device, adapter.dtype, adapter.model_id, "randomised")
    for depth, stage in enumerate(flava_stages(model), start=1):
        reinitialise(model, stage.modules, seed * 1000 + depth)
        users = [m for m in methods if m.name in orig and (not stage.multimodal or m.encoder == "multimodal")]
        if not users:
            continue
        suite = Suite(users, caption_target)
        for i, p in enumerate(pairs):
            res = suite.run(rand, *p)
            for m in users:
                new = _targets(res, m.name)
                per_pair[m.name][i].append(float(np.mean([spearman(a, b) for a, b in zip(orig[m.name][i], new)])))
        for m in users:
            labels[m.name].append(stage.label)
    return {name: {"depths": labels[name], "spearman": np.mean(per_pair[name], axis=0).round(6).tolist(),
                   "per_pair": per_pair[name]} for name in orig}


# -- over pairs ------------------------------------------------------------------------------------
def summarise(shuffle: list[dict[str, float]] | None = None, randomised: dict[str, dict] | None = None) -> dict:
    """The manifest's ``summary.sanity``: method -> ``{caption_shuffle_corr, caption_blind,
    randomisation, randomisation_depths, randomisation_flag}``.

    ``shuffle``: ``shuffle_correlations`` of each pair; ``randomised``: ``randomisation``'s
    result. A check that was not run gives None in its keys.
    """
    names = list(dict.fromkeys([m for d in (shuffle or []) for m in d] + list(randomised or {})))
    out = {}
    for name in names:
        corrs = [d[name] for d in (shuffle or []) if name in d]
        corr = float(np.mean(corrs)) if corrs else None
        r = (randomised or {}).get(name)
        out[name] = {
            "caption_shuffle_corr": None if corr is None else round(corr, 6),
            "caption_blind": None if corr is None else bool(corr > CAPTION_BLIND_THRESHOLD),
            "randomisation": None if r is None else r["spearman"],
            "randomisation_depths": None if r is None else r["depths"],
            "randomisation_flag": None if r is None else bool(r["spearman"][-1] > RANDOMISATION_FLAG_THRESHOLD),
        }
    return out
