"""Is a map faithful to the model? Deletion and insertion curves, confidence drop and increase.

Setting: one image and K targets. A target's **score** is FLAVA's contrastive cosine between
the image embedding and the target text's unit embedding (the caption, or a phrase encoded as
its own text): the score occlusion explains, whatever ``--target`` says, because every masked
image then needs one image-encoder forward and no multimodal pass per text. Each target has its
own map ``[gh, gw]`` on the patch grid. **Hiding** a patch sets its pixels to 0 in normalised
pixel space (the processor's mean colour), as occlusion does.

- **Order**: patches by the map's value, highest first; ties by row-major patch index (a
  stable sort), so equal values go top-left first and a run is reproducible.
- **Deletion curve** (RISE, Petsiuk et al. 2018): from the full image, hide patches in that
  order. Scores ``s_0 .. s_S`` after ``n_i = round(i * P / S)`` patches, at fractions
  ``x_i = n_i / P``; ``S = steps`` (default 16; ``steps=None``: every patch, ``S = P``).
  ``s_0`` is the full image, ``s_S`` the all-hidden one.
- **Insertion curve**: from the all-hidden image, reveal patches in the same order; ``s_0`` is
  all hidden, ``s_S`` the full image.
- **AUC**: the trapezoid rule over ``x`` in [0, 1] of ``s(x) / s_full``, ``s_full`` the
  target's score on the full image. A deletion curve that keeps the full score all the way has
  AUC 1; one that falls to 0 at once has AUC about 0. Lower deletion and higher insertion AUC
  mean a more faithful map. Dividing by ``s_full`` lets targets with different full scores
  average fairly; when ``s_full <= 0`` the ratio means nothing (it flips sign or explodes), so
  that target's AUCs and drop are NaN, left out of every mean and counted as ``skipped``.
  A cosine can fall below 0 on a heavily masked image (the demo model's all-hidden image
  scores below 0 for about half the texts), so a deletion AUC can be negative and a drop above 1.
- **Confidence drop and increase** (M2IB, Wang et al. NeurIPS 2023; pytorch-grad-cam's
  ``CamMultImageConfidenceChange``): the normalised pixels times the map, min-max scaled to
  [0, 1] and upsampled bilinearly to the pixel grid (1 keeps a pixel, 0 turns it into the mean
  colour; half-pixel centres, as ``grounding.resize_map``). With ``masked`` its score:
  ``drop = max(0, s_full - masked) / s_full`` (NaN when ``s_full <= 0``) and
  ``increase = 1 if masked > s_full else 0``. Over targets: the mean drop (a fraction; M2IB
  prints it x 100) and the share of targets whose score rose.

Batching: every masked image of one pair (all methods, targets and steps, the confidence
masks, plus the full and the all-hidden image they share) is built lazily and embedded in
chunks of ``batch_size``; identical masks (a caption-blind method's repeated phrase maps, the
centre baseline) are embedded once. Cost per map: ``2 (S - 1) + 1`` image-encoder forwards
(31 at S = 16), plus 2 per pair; ``forwards_per_map``.

Per pair: ``evaluate_pair`` -> ``PairFaithfulness`` (``to_json`` for the pair's manifest
entry). Over pairs: ``summarise`` -> the manifest's ``summary.faithfulness`` and
``summary.faithfulness_curves`` (the mean normalised curves, for plotting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..explainers.normalise import normalise

DEFAULT_STEPS = 16


# -- orders, steps and baseline maps -----------------------------------------------------------
def patch_order(maps: np.ndarray) -> np.ndarray:
    """``[K, gh, gw]`` maps -> ``[K, P]`` patch indices (row-major), highest value first, ties by index."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    return np.argsort(-flat, axis=1, kind="stable")


def step_counts(n_patches: int, steps: int | None = DEFAULT_STEPS) -> np.ndarray:
    """Patches hidden (deletion) or revealed (insertion) after each step: ``round(i * P / S)``, i = 0..S."""
    s = n_patches if steps is None else int(steps)
    if s < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return np.rint(np.arange(s + 1) * n_patches / s).astype(int)


def forwards_per_map(n_patches: int, steps: int | None = DEFAULT_STEPS) -> int:
    """Image-encoder forwards one map costs: the inner deletion and insertion steps, and its confidence mask."""
    s = len(step_counts(n_patches, steps)) - 1
    return 2 * (s - 1) + 1


def random_map(grid: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """``[n, gh, gw]`` uniform noise, one independent map per target, from ``seed``."""
    return np.random.default_rng(seed).random((n, *grid)).astype(np.float32)


def centre_map(grid: tuple[int, int], n: int = 1) -> np.ndarray:
    """``[n, gh, gw]``: 1 at the image centre falling linearly with the distance to it (0 at a corner)."""
    gh, gw = grid
    y = (np.arange(gh) + 0.5) / gh - 0.5
    x = (np.arange(gw) + 0.5) / gw - 0.5
    d = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    m = (1.0 - d / np.sqrt(0.5)).astype(np.float32)
    return np.repeat(m[None], n, axis=0)


def baseline_maps(grid: tuple[int, int], n: int, seed: int) -> dict[str, np.ndarray]:
    """The two baselines every method is shown next to, for ``n`` targets of one pair."""
    return {"random": random_map(grid, n, seed), "centre": centre_map(grid, n)}


# -- one pair ------------------------------------------------------------------------------------
@dataclass
class MapFaithfulness:
    """One method's maps on one pair: raw scores (cosines), K targets, S + 1 steps."""

    fractions: np.ndarray  # [S+1] fraction of patches hidden (deletion) / revealed (insertion)
    full: np.ndarray  # [K] score of the full image
    deletion: np.ndarray  # [K, S+1]
    insertion: np.ndarray  # [K, S+1]
    masked: np.ndarray  # [K] score of the image times the soft map

    def _per_full(self, x: np.ndarray) -> np.ndarray:
        full = self.full.reshape(-1, *([1] * (x.ndim - 1)))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(full > 0, x / np.where(full > 0, full, 1.0), np.nan)

    @property
    def deletion_norm(self) -> np.ndarray:
        """[K, S+1] deletion curve divided by the full score (NaN rows where it is <= 0)."""
        return self._per_full(self.deletion)

    @property
    def insertion_norm(self) -> np.ndarray:
        return self._per_full(self.insertion)

    @property
    def deletion_auc(self) -> np.ndarray:
        return np.trapezoid(self.deletion_norm, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        return np.trapezoid(self.insertion_norm, self.fractions, axis=1)

    @property
    def drop(self) -> np.ndarray:
        return self._per_full(np.maximum(0.0, self.full - self.masked))

    @property
    def increase(self) -> np.ndarray:
        return (self.masked > self.full).astype(np.float64)

    def to_json(self) -> dict:
        """Raw curves plus the per-target metrics (NaN -> None), for a pair's manifest entry."""
        def clean(a):
            return [None if not np.isfinite(v) else round(float(v), 6) for v in np.ravel(a)]
        k = len(self.full)
        return {
            "full": clean(self.full), "masked": clean(self.masked),
            "deletion": [clean(r) for r in self.deletion.reshape(k, -1)],
            "insertion": [clean(r) for r in self.insertion.reshape(k, -1)],
            "deletion_auc": clean(self.deletion_auc), "insertion_auc": clean(self.insertion_auc),
            "drop": clean(self.drop), "increase": clean(self.increase),
        }

    @classmethod
    def from_json(cls, fractions, d: dict) -> "MapFaithfulness":
        def arr(x):
            return np.array([np.nan if v is None else v for v in np.ravel(np.array(x, dtype=object))],
                            dtype=np.float64)
        k = len(d["full"])
        return cls(np.asarray(fractions, dtype=np.float64), arr(d["full"]),
                   arr(d["deletion"]).reshape(k, -1), arr(d["insertion"]).reshape(k, -1), arr(d["masked"]))


@dataclass
class PairFaithfulness:
    """Every method's (and baseline's) faithfulness on one pair; ``forwards`` = image-encoder forwards spent."""

    fractions: np.ndarray
    methods: dict[str, MapFaithfulness] = field(default_factory=dict)
    forwards: int = 0

    def to_json(self) -> dict:
        """``{"fractions": [S+1], "methods": {name: MapFaithfulness.to_json()}}``: per target k,
        ``full[k]``, ``masked[k]``, the raw curves ``deletion[k]``/``insertion[k]`` ([S+1] cosines;
        divide by ``full[k]`` to plot them as the summary does) and the four metrics."""
        return {"fractions": [round(float(x), 6) for x in self.fractions],
                "methods": {m: r.to_json() for m, r in self.methods.items()}}


class _MaskedImages:
    """The masked images one pair needs, each identified by its patch-grid mask; identical masks are kept once."""

    def __init__(self):
        self.index: dict[tuple, int] = {}
        self.masks: list[tuple[str, np.ndarray]] = []

    def add(self, kind: str, mask: np.ndarray) -> int:
        """``kind`` "patch": a 0/1 keep mask (nearest upsampling); "soft": a [0, 1] multiplier (bilinear)."""
        mask = np.ascontiguousarray(mask, dtype=np.float32)
        key = (kind, mask.tobytes())
        if key not in self.index:
            self.index[key] = len(self.masks)
            self.masks.append((kind, mask))
        return self.index[key]

    def embed(self, adapter, pixels: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Unit image embeddings of every masked image, [U, E], ``batch_size`` images per forward."""
        _, _, h, w = pixels.shape
        out = []
        for start in range(0, len(self.masks), batch_size):
            chunk = self.masks[start:start + batch_size]
            factors = []
            for kind, m in chunk:
                t = torch.from_numpy(m)[None, None].to(pixels.device, torch.float32)
                if kind == "patch":
                    factors.append(F.interpolate(t, size=(h, w), mode="nearest"))
                else:
                    factors.append(F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False))
            images = pixels * torch.cat(factors).to(pixels.dtype)  # [n, C, H, W]; 0 = the mean colour
            out.append(adapter.image_embeds(images).float())
        return torch.cat(out)


def evaluate_pair(adapter, pixels: torch.Tensor, text_embeds: torch.Tensor, maps: dict[str, np.ndarray],
                  steps: int | None = DEFAULT_STEPS, batch_size: int = 64) -> PairFaithfulness:
    """Deletion, insertion and confidence change of every method's maps on one pair.

    ``pixels`` [1, C, H, W] (the adapter's normalised pixels); ``text_embeds`` [K, E] unit
    embeddings of the K targets (``adapter.text_embeds([caption, *phrases])``); ``maps``:
    method name -> ``[K, gh, gw]``, row k explaining target k (add ``baseline_maps`` here to get
    the baselines on the same pair, from the same batches).
    """
    if pixels.dim() != 4 or pixels.shape[0] != 1:
        raise ValueError(f"pixels must be [1, C, H, W], got {tuple(pixels.shape)}")
    k = text_embeds.shape[0]
    gh, gw = adapter.grid
    p = gh * gw
    counts = step_counts(p, steps)
    fractions = counts / p
    images = _MaskedImages()
    full_id = images.add("patch", np.ones((gh, gw)))
    plan = {}  # method -> (deletion ids [K, S+1], insertion ids [K, S+1], soft ids [K])
    for name, m in maps.items():
        m = np.asarray(m, dtype=np.float32)
        if m.shape != (k, gh, gw):
            raise ValueError(f"maps[{name!r}] has shape {m.shape}; expected {(k, gh, gw)} (one map per target)")
        order = patch_order(m)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(p)[None].repeat(k, 0), axis=1)  # rank[k, patch]
        dele = np.empty((k, len(counts)), dtype=int)
        ins = np.empty((k, len(counts)), dtype=int)
        for t in range(k):
            for i, n in enumerate(counts):
                first_n = (rank[t] < n).reshape(gh, gw)
                dele[t, i] = images.add("patch", ~first_n)
                ins[t, i] = images.add("patch", first_n)
        soft = np.array([images.add("soft", s) for s in normalise(m)])
        plan[name] = (dele, ins, soft)
    with torch.no_grad():
        emb = images.embed(adapter, pixels, batch_size)  # [U, E]
        scores = (emb @ text_embeds.float().T).cpu().numpy().astype(np.float64)  # [U, K]
    rows = np.arange(k)[:, None]
    full = scores[full_id]  # [K]
    result = PairFaithfulness(fractions=fractions, forwards=len(images.masks))
    for name, (dele, ins, soft) in plan.items():
        result.methods[name] = MapFaithfulness(fractions, full.copy(), scores[dele, rows], scores[ins, rows],
                                               scores[soft, np.arange(k)])
    return result


# -- over pairs ------------------------------------------------------------------------------
METRICS = ("deletion_auc", "insertion_auc", "drop", "increase")


def _mean(x: list[np.ndarray]) -> float | None:
    v = np.concatenate(x) if x else np.zeros(0)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else None


def summarise(records: list[dict]) -> dict | None:
    """Average per-pair results into the manifest's summary blocks; None when there are none.

    ``records``: ``PairFaithfulness.to_json()`` of each pair (as stored in its manifest entry).
    Every target of every pair (caption and phrases alike) counts once; targets whose full
    score is <= 0 are left out of the AUCs and the drop. Returns::

        {"faithfulness": {method: {deletion_auc, insertion_auc, drop, increase}},
         "faithfulness_curves": {"fractions": [...], "methods": {method: {"deletion": [...],
                                 "insertion": [...], "targets": n, "skipped": n}}}}

    ``faithfulness_curves`` holds the mean normalised curves (score / full score), whose
    trapezoid areas are the AUCs above; methods keep their first-seen order (baselines
    ``random`` and ``centre`` are methods like any other).
    """
    if not records:
        return None
    fractions = records[0]["fractions"]
    per: dict[str, list[MapFaithfulness]] = {}
    for rec in records:
        if rec["fractions"] != fractions:
            raise ValueError("pairs were scored at different steps; faithfulness curves cannot be averaged")
        for name, d in rec["methods"].items():
            per.setdefault(name, []).append(MapFaithfulness.from_json(fractions, d))
    table, curves = {}, {}
    for name, rs in per.items():
        table[name] = {m: _mean([getattr(r, m) for r in rs]) for m in METRICS}
        dele = np.concatenate([r.deletion_norm for r in rs])
        ok = np.isfinite(dele).all(axis=1)
        ins = np.concatenate([r.insertion_norm for r in rs])[ok]
        curves[name] = {
            "deletion": [round(float(v), 6) for v in dele[ok].mean(0)] if ok.any() else None,
            "insertion": [round(float(v), 6) for v in ins.mean(0)] if ok.any() else None,
            "targets": int(len(ok)), "skipped": int((~ok).sum()),
        }
    return {"faithfulness": table, "faithfulness_curves": {"fractions": fractions, "methods": curves}}
