"""``groundreport build``'s compute half: dataset -> sample -> model -> explainers -> report/.

Each finished pair leaves ``pairs/<id>/entry.json`` (written last, atomically). The pair id
hashes the model revision, the image bytes, the caption, its phrases and every setting that
changes a map, so a rerun skips finished pairs and a changed setting never reuses stale ones.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, atomic
from .errors import BadInput, UserError
from .images import load_rgb
from .records import Example
from .sampling import Pair, sample_pairs

SCHEMA_VERSION = 1


@dataclass
class BuildConfig:
    captions: str | None = None
    images: str | None = None
    dataset: str = "auto"
    split: str = "test"
    sample: int | None = 20
    captions_per_image: int = 1
    seed: int = 0
    model: str = "facebook/flava-full"
    offline: bool = False
    device: str = "auto"
    dtype: str = "fp32"
    methods: list[str] = field(default_factory=list)
    target: str = "contrastive"
    report: str = "report"
    demo: bool = False

    def map_settings(self) -> dict:
        """The settings that change a pair's maps (part of every pair's id)."""
        return {"methods": sorted(self.methods), "target": self.target, "dtype": self.dtype, "schema": SCHEMA_VERSION}


class Timer:
    def __init__(self):
        self.totals: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds

    def run(self, stage: str, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(stage, time.perf_counter() - t)


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pair_id(revision: str, model_id: str, image_sha: str, pair: Pair, settings: dict) -> str:
    cap = pair.caption
    key = json.dumps([model_id, revision, image_sha, cap.text,
                      [(p.text, p.boxes, p.span) for p in cap.phrases], settings], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _load(pair: Pair):
    """Worker-thread part: read and decode the image (overlaps with model work)."""
    path = pair.example.image_path
    try:
        image = load_rgb(path)
        return pair, image, file_sha(path), None
    except BadInput as e:
        return pair, None, None, str(e)


def _phrase_entries(pair: Pair, result, image_size, methods) -> list[dict]:
    from .metrics.grounding import baselines, score_map

    phrases = pair.caption.phrases
    n_objects = sum(1 for p in phrases if p.boxes)
    out = []
    for k, ph in enumerate(phrases):
        entry = {"text": ph.text, "span": list(ph.span) if ph.span else None,
                 "boxes": [list(b) for b in ph.boxes], "scores": {}, "baselines": None}
        if ph.boxes:
            for name in methods:
                mm = result.maps.get(name)
                if mm is None or mm.phrases is None:
                    continue
                s = score_map(mm.phrases[k], image_size, ph.boxes)
                entry["scores"][name] = {"pointing": bool(s.pointing_hit), "point": list(s.point),
                                         "box": list(s.box), "box_iou": round(s.box_iou, 4)}
            entry["baselines"] = baselines(image_size, ph.boxes, n_objects)
        out.append(entry)
    return out


def compute(cfg: BuildConfig, examples: list[Example], dataset_format: str, skipped: list, progress=True) -> dict:
    """Compute every sampled pair into ``cfg.report`` and write its manifest. Returns the manifest."""
    import torch

    from .explainers import make_methods
    from .explainers.suite import Suite
    from .metrics.summary import summarise
    from .models.flava import FlavaAdapter

    timer = Timer()
    report = Path(cfg.report)
    report.mkdir(parents=True, exist_ok=True)
    for stale in report.rglob(".*.tmp"):  # temp files of a run killed mid-write
        stale.unlink(missing_ok=True)
    methods = make_methods(cfg.methods)
    if cfg.target not in ("contrastive", "itm"):
        raise UserError(f"unknown --target {cfg.target!r}; choose contrastive or itm")
    pairs = sample_pairs(examples, cfg.sample, cfg.captions_per_image, cfg.seed)
    adapter = timer.run("model load", FlavaAdapter.load, cfg.model, cfg.device, cfg.dtype, cfg.offline)
    if cfg.target == "itm" and adapter.itm_head is None:
        raise UserError(f"--target itm needs an ITM head; {cfg.model!r} has none (use --target contrastive)")
    suite = Suite(methods, cfg.target)
    settings = cfg.map_settings()
    entries, reused = [], 0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(pairs), desc="explaining", unit="pair")
    # decoding runs ahead in worker threads (a bounded window, so memory stays flat) and
    # artifact encoding runs behind in a writer thread, both overlapping the model's work
    with ThreadPoolExecutor(max_workers=2) as readers, ThreadPoolExecutor(max_workers=1) as writer:
        t_wait = time.perf_counter()
        for pair, image, image_sha, error in prefetch(readers, _load, pairs, ahead=4):
            timer.add("image decode (waited)", time.perf_counter() - t_wait)
            where = f"{pair.example.image_path.name} #{pair.caption_index}"
            if error:
                skipped.append((where, error))
            else:
                pid = pair_id(adapter.revision, adapter.model_id, image_sha, pair, settings)
                done = report / "pairs" / pid / "entry.json"
                finished = _finished_entry(report, done)
                if finished is not None:
                    entries.append(finished)
                    reused += 1
                else:
                    try:
                        result = _explain_pair(adapter, suite, pair, image, timer)
                        entries.append(writer.submit(_write_pair_entry, report, pair, image, image_sha, pid,
                                                     result, timer))
                    except BadInput as e:
                        skipped.append((where, str(e)))
            if bar:
                bar.update(1)
            t_wait = time.perf_counter()
        entries = [e.result() if isinstance(e, Future) else e for e in entries]
    if bar:
        bar.close()
    if not entries:
        raise UserError(f"no pair could be explained ({len(skipped)} skipped; first: {skipped[0][1] if skipped else '-'})")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "groundreport", "version": __version__},
        "config": {k: v for k, v in asdict(cfg).items()},
        "dataset": {"format": dataset_format, "examples": len(examples), "split": cfg.split},
        "model": adapter.describe(),
        "methods": [{"name": m.name, "label": m.label, "encoder": m.encoder, "target": suite.target_name(m),
                     "caption_blind": m.caption_blind, "description": m.description} for m in methods],
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": _version("transformers"), "platform": platform.platform()},
        "pairs": entries,
        "reused_pairs": reused,
        "skipped": [{"item": w, "reason": r} for w, r in skipped],
        "summary": summarise(entries),
        "timings": {k: round(v, 3) for k, v in timer.totals.items()},
    }
    atomic.write_json(report / "manifest.json", manifest)
    return manifest


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


def _finished_entry(report: Path, done: Path) -> dict | None:
    """A finished pair's entry, or None when it is absent or any file it names has gone."""
    if not done.is_file():
        return None
    try:
        entry = json.loads(done.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    from .artifacts import entry_files

    return entry if all((report / f).is_file() for f in entry_files(entry)) else None


def prefetch(pool, fn, items, ahead: int):
    """``map(fn, items)`` in ``pool`` with at most ``ahead`` results in flight, in order."""
    window: deque[Future] = deque()
    it = iter(items)
    for item in it:
        window.append(pool.submit(fn, item))
        if len(window) >= ahead:
            break
    while window:
        yield window.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            window.append(pool.submit(fn, nxt))


def _explain_pair(adapter, suite, pair, image, timer):
    import torch

    t = time.perf_counter()
    try:
        pixels = adapter.pixel_values([image])
    except Exception as e:  # the processor rejects some degenerate images
        raise BadInput(f"image could not be preprocessed ({str(e).splitlines()[0][:100]})") from None
    timer.add("preprocess", time.perf_counter() - t)
    phrases = [(p.text, p.span) for p in pair.caption.phrases]
    t = time.perf_counter()
    try:
        result = suite.run(adapter, pixels, pair.caption.text, phrases)
    except torch.OutOfMemoryError:
        # pairs run one at a time, so there is no smaller batch to retry with: free and skip
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise BadInput("out of GPU memory for this pair (try --dtype bf16 or fewer --methods)") from None
    timer.add("explainers", time.perf_counter() - t)
    return result


def _write_pair_entry(report, pair, image, image_sha, pid, result, timer) -> dict:
    """Writer-thread part: overlays, arrays, then entry.json (last: it marks the pair done)."""
    from .artifacts import write_display_image, write_pair

    t = time.perf_counter()
    image_rel, thumb_rel = write_display_image(report, image, image_sha[:12])
    npz_rel, index, overlays = write_pair(report, pid, image, result.maps)
    timer.add("image encoding", time.perf_counter() - t)
    entry = {
        "id": pid,
        "image_id": pair.example.image_id,
        "image": image_rel,
        "thumb": thumb_rel,
        "width": image.size[0],
        "height": image.size[1],
        "caption": pair.caption.text,
        "caption_index": pair.caption_index,
        "truncated": result.truncated,
        "tokens": result.tokens,
        "words": [{"text": w.text, "span": list(w.span), "tokens": w.tokens, "punct": w.is_punctuation}
                  for w in result.words],
        "score": round(result.score, 5),
        "itm": None if result.itm is None else round(result.itm, 5),
        "maps": {"file": npz_rel, "keys": index},
        "overlays": overlays,
        "phrases": _phrase_entries(pair, result, image.size, list(result.maps)),
        "notes": result.notes,
    }
    atomic.write_json(report / "pairs" / pid / "entry.json", entry)
    return entry
