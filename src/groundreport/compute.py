"""The compute half of ``build`` and ``eval``: every sampled pair explained into report/.

Resumable: each finished pair leaves ``pairs/<id>/entry.json`` (written last, atomically;
report.py owns the layout). The pair id hashes the model revision, the image bytes, the
caption, its phrases, every setting that changes a map, the tool's version and the scoring
rule's version, so a rerun skips finished pairs and never reuses stale maps or scores.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__
from . import report as report_io
from .errors import BadInput, UserError
from .images import load_rgb
from .records import Example
from .sampling import Pair, sample_pairs

MAX_CAPTIONS_PER_IMAGE = 5


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
    models: list[str] = field(default_factory=list)  # several: explained side by side into one report
    offline: bool = False
    device: str = "auto"
    dtype: str = "fp32"
    methods: list[str] = field(default_factory=list)
    target: str = "contrastive"
    report: str = "report"
    demo: bool = False
    faithfulness: bool = False  # deletion/insertion, confidence change and sanity checks (metrics/checks.py)

    def validate(self) -> None:
        """One-line errors for bad values, before any model is loaded or any file written."""
        from .explainers import make_methods
        from .explainers.targets import get_target

        if self.sample is not None and (not isinstance(self.sample, int) or self.sample < 0):
            raise UserError(f"--sample must be 0 (all) or a positive number of images, not {self.sample}")
        if not 1 <= self.captions_per_image <= MAX_CAPTIONS_PER_IMAGE:
            raise UserError(f"--captions-per-image must be between 1 and {MAX_CAPTIONS_PER_IMAGE}, "
                            f"not {self.captions_per_image}")
        if not self.methods:
            raise UserError("--methods is empty; name at least one method")
        make_methods(self.methods)
        get_target(self.target)
        names = self.model_names()
        if len(set(names)) < len(names):
            raise UserError(f"--model names a model twice ({', '.join(names)})")

    def model_names(self) -> list[str]:
        """The models to explain, in order (``models`` when given, else ``model``)."""
        return list(self.models) or [self.model]

    def map_settings(self) -> dict:
        """The settings that change a pair's maps (part of every pair's id)."""
        return report_io.map_settings(self.methods, self.target, self.dtype, self.faithfulness)


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


def _load(pair: Pair):
    """Worker-thread part: read and decode the image (overlaps with model work)."""
    path = pair.example.image_path
    try:
        image = load_rgb(path)
        return pair, image, file_sha(path), None
    except BadInput as e:
        return pair, None, None, str(e)


def compute(cfg: BuildConfig, examples: list[Example], dataset_format: str, skipped: list, progress=True) -> dict:
    """Compute every sampled pair into ``cfg.report``, once per model, and write one manifest.
    Returns the manifest. Several models run one after another (one in memory at a time); every
    model's config is read first, so a mistyped second model fails before any work."""
    import torch

    from .explainers import make_methods
    from .explainers.suite import Suite
    from .metrics.summary import summarise
    from .models import load_adapter, resolve_adapter

    timer = Timer()
    report = Path(cfg.report)
    cfg.validate()
    methods = make_methods(cfg.methods)
    suite = Suite(methods, cfg.target)
    names = cfg.model_names()
    for name in names[1:]:
        resolve_adapter(name, cfg.device, cfg.dtype, cfg.offline)
    pairs = sample_pairs(examples, cfg.sample, cfg.captions_per_image, cfg.seed)
    settings = cfg.map_settings()
    entries, models, reused = [], [], 0
    for name in names:
        adapter = timer.run("model load", load_adapter, name, cfg.device, cfg.dtype, cfg.offline)
        if suite.caption_target.needs_multimodal and "itm" not in adapter.capabilities:
            raise UserError(f"--target {cfg.target} needs an ITM head; {name!r} has none (use --target contrastive)")
        report.mkdir(parents=True, exist_ok=True)  # only now: a failed load leaves no empty folder behind
        report_io.clean_temp_files(report)
        checks = None
        if cfg.faithfulness:
            from .metrics.checks import FaithfulnessRun

            checks = FaithfulnessRun(adapter, suite, [p.caption.text for p in pairs], seed=cfg.seed)
        own, n_reused = _explain_all(adapter, suite, pairs, report, settings, timer, skipped, progress, checks)
        for e in own:  # entries written before the key existed (the id already hashes the model)
            e.setdefault("model", adapter.model_id)
        summary = summarise(own)
        if summary is not None:
            summary["flat"] = report_io.flat_counts(own)
        if checks is not None:
            summary = dict(summary or {}, **timer.run("sanity checks", checks.summary, own))
        models.append(dict(adapter.describe(), summary=summary, flat=report_io.flat_counts(own)))
        entries += own
        reused += n_reused
        del adapter
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if not entries:
        raise UserError(f"no pair could be explained ({len(skipped)} skipped; first: {skipped[0][1] if skipped else '-'})")
    skipped[:] = list(dict.fromkeys(skipped))  # an unreadable image is skipped once, not once per model
    first = models[0]
    manifest = {
        "tool": {"name": "groundreport", "version": __version__},
        "config": {k: v for k, v in asdict(cfg).items()},
        "dataset": {"format": dataset_format, "examples": len(examples), "split": cfg.split},
        "model": {k: v for k, v in first.items() if k not in ("summary", "flat")},
        "models": models,
        "methods": [{"name": m.name, "label": m.label, "encoder": m.encoder, "target": suite.target_name(m),
                     "caption_blind": m.caption_blind, "description": m.description} for m in methods],
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": _version("transformers"), "platform": platform.platform()},
        "pairs": entries,
        "reused_pairs": reused,
        "skipped": [{"item": w, "reason": r} for w, r in skipped],
        "summary": first["summary"],
        "flat": first["flat"],
        "timings": {k: round(v, 3) for k, v in timer.totals.items()},
    }
    report_io.write_manifest(report, manifest)
    return report_io.load_manifest(report)


def _explain_all(adapter, suite, pairs, report: Path, settings: dict, timer, skipped: list, progress,
                 checks=None) -> tuple:
    """Every pair through one model: (entries, how many were reused from an earlier run).
    ``checks``: a ``metrics.checks.FaithfulnessRun`` (``--faithfulness``) or None."""
    entries, reused = [], 0
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(pairs), desc=f"explaining ({adapter.model_id})", unit="pair")
    # decoding runs ahead in worker threads (a bounded window, so memory stays flat) and
    # artifact encoding runs behind in a writer thread, both overlapping the model's work
    with ThreadPoolExecutor(max_workers=2) as readers, ThreadPoolExecutor(max_workers=1) as writer:
        t_wait = time.perf_counter()
        for index, (pair, image, image_sha, error) in enumerate(prefetch(readers, _load, pairs, ahead=4)):
            timer.add("image decode (waited)", time.perf_counter() - t_wait)
            where = f"{pair.example.image_path.name} #{pair.caption_index}"
            if error:
                skipped.append((where, error))
            else:
                pid = report_io.pair_id(adapter.model_id, adapter.revision, image_sha, pair.caption, settings)
                finished = report_io.finished_entry(report, pid)
                try:
                    if finished is not None:
                        entries.append(finished)
                        reused += 1
                        if checks is not None:
                            checks.keep(timer.run("preprocess", _pixels, adapter, image), pair.caption.text,
                                        _phrase_spans(pair), image.size)
                    else:
                        pixels = timer.run("preprocess", _pixels, adapter, image)
                        result = _explain_pair(adapter, suite, pair, pixels, image.size, timer)
                        extra = None
                        if checks is not None:
                            checks.keep(pixels, pair.caption.text, _phrase_spans(pair), image.size)
                            extra = timer.run("faithfulness", checks.pair, index, pixels, pair.caption.text,
                                              _phrase_spans(pair), result, image.size)
                        entries.append(writer.submit(_write_pair_entry, report, pair, image, image_sha, pid,
                                                     result, timer, adapter.model_id, extra))
                except BadInput as e:
                    skipped.append((where, str(e)))
            if bar:
                bar.update(1)
            t_wait = time.perf_counter()
        entries = [e.result() if isinstance(e, Future) else e for e in entries]
    if bar:
        bar.close()
    return entries, reused


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


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


def _pixels(adapter, image):
    try:
        return adapter.pixel_values([image])
    except Exception as e:  # the processor rejects some degenerate images
        raise BadInput(f"image could not be preprocessed ({str(e).splitlines()[0][:100]})") from None


def _phrase_spans(pair) -> list[tuple]:
    return [(p.text, p.span) for p in pair.caption.phrases]


def _explain_pair(adapter, suite, pair, pixels, image_size, timer):
    import torch

    phrases = _phrase_spans(pair)
    t = time.perf_counter()
    try:
        result = suite.run(adapter, pixels, pair.caption.text, phrases, image_size=image_size)
    except torch.OutOfMemoryError:
        # pairs run one at a time, so there is no smaller batch to retry with: free and skip
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise BadInput("out of GPU memory for this pair (try --dtype bf16 or fewer --methods)") from None
    timer.add("explainers", time.perf_counter() - t)
    return result


def _write_pair_entry(report, pair, image, image_sha, pid, result, timer, model_id=None, checks=None) -> dict:
    """Writer-thread part: score the phrases, then the pair's files (entry.json last)."""
    from .metrics.phrases import score_phrases

    phrases = score_phrases(pair.caption.phrases, result.maps, image.size, result.words, region=result.region)
    return report_io.write_pair(report, pair, image, image_sha, pid, result, phrases, timer, model_id=model_id,
                                checks=checks)
