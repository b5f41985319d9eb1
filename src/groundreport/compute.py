"""The compute half of ``build`` and ``eval``: every sampled pair explained into report/.

Resumable: each finished pair leaves ``pairs/<id>/entry.json`` (written last, atomically;
report.py owns the layout). The pair id hashes the model revision, the image bytes, the
caption, its phrases, every setting that changes a map, the tool's version and the scoring
rule's version, so a rerun skips finished pairs and never reuses stale maps or scores.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
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
    batch_size: int = 1  # pairs explained together; not a map setting (maps agree within float rounding)
    shifts: int = 4  # image copies averaged by image-encoder gradient methods (explainers/shifts.py); 1: off
    smooth: bool = True  # each method's maps smoothed by its Explainer.smooth (explainers/smoothing.py)
    world_size: int = 1  # processes (torchrun ranks) that explained the pairs; set by compute

    def validate(self) -> None:
        """One-line errors for bad values, before any model is loaded or any file written."""
        from .explainers import make_methods
        from .explainers.targets import get_target

        if self.sample is not None and (not isinstance(self.sample, int) or self.sample < 0):
            raise UserError(f"--sample must be 0 (all) or a positive number of images, not {self.sample}")
        if not 1 <= self.captions_per_image <= MAX_CAPTIONS_PER_IMAGE:
            raise UserError(f"--captions-per-image must be between 1 and {MAX_CAPTIONS_PER_IMAGE}, "
                            f"not {self.captions_per_image}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"--batch-size must be a positive number of pairs, not {self.batch_size}")
        from .explainers.shifts import problem

        if problem(self.shifts, "--shifts"):
            raise UserError(problem(self.shifts, "--shifts"))
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
        from .explainers import REGISTRY

        versions = {m: REGISTRY[m].version for m in self.methods if m in REGISTRY}
        smoothing = {m: REGISTRY[m].smooth for m in self.methods if m in REGISTRY} if self.smooth else {}
        return report_io.map_settings(self.methods, self.target, self.dtype, self.faithfulness, versions,
                                      self.shifts, smoothing)


class Timer:
    """Seconds per stage, summed; safe to add to from the reader and writer threads."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
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


def writer_threads() -> int:
    """Threads that encode a run's overlays and arrays (Pillow and zlib release the GIL while
    they encode): half of this process's share of the cores, 1 to 8. One pair's files cost
    ~0.4 s of CPU, so on a GPU that explains tens of pairs a second a single writer, not the
    model, set the pace. The share: the cores this process may run on (affinity, not the
    host's count), split among torchrun's local ranks."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    local_ranks = max(1, int(local)) if local.isdigit() else 1
    return max(1, min(8, cores // local_ranks // 2))


def _load(item: tuple[int, Pair]):
    """Worker-thread part: read and decode the image of ``(index, pair)`` (overlaps with model work)."""
    path = item[1].example.image_path
    try:
        image = load_rgb(path)
        return item, image, file_sha(path), None
    except BadInput as e:
        return item, None, None, str(e)


def compute(cfg: BuildConfig, examples: list[Example], dataset_format: str, skipped: list,
            progress=True) -> dict | None:
    """Compute every sampled pair into ``cfg.report``, once per model, and write one manifest.
    Returns the manifest. Several models run one after another (one in memory at a time); every
    model's config is read first, so a mistyped second model fails before any work.

    Under torchrun each rank explains its shard of the pairs with every model; rank 0 merges,
    writes the manifest and returns it, the other ranks return None."""
    import torch

    from .distributed import group, ranks_from_env
    from .explainers import make_methods
    from .explainers.suite import Suite
    from .metrics.summary import summarise
    from .models import load_adapter, resolve_adapter

    timer = Timer()
    report = Path(cfg.report)
    cfg.validate()
    ranks = ranks_from_env()
    cfg.world_size = ranks.world_size
    methods = make_methods(cfg.methods)
    suite = Suite(methods, cfg.target, cfg.shifts, cfg.smooth)
    names = cfg.model_names()
    for name in names[1:]:
        resolve_adapter(name, cfg.device, cfg.dtype, cfg.offline)
    pairs = sample_pairs(examples, cfg.sample, cfg.captions_per_image, cfg.seed)
    entries, models, reused, batch_sizes, batch_notes = [], [], 0, [], []
    with group(ranks) as ranks_group:
        for name in names:
            adapter = timer.run("model load", load_adapter, name, ranks.device(cfg.device), cfg.dtype, cfg.offline)
            if suite.caption_target.needs_multimodal and "itm" not in adapter.capabilities:
                raise UserError(f"--target {cfg.target} needs an ITM head; {name!r} has none "
                                "(use --target contrastive)")
            if ranks.is_main:
                report.mkdir(parents=True, exist_ok=True)  # only now: a failed load leaves no empty folder behind
                report_io.clean_temp_files(report)
            ranks_group.wait("start")  # nobody writes before rank 0 has removed the temp files of a killed run
            checks = None
            if cfg.faithfulness:
                from .metrics.checks import FaithfulnessRun

                # each rank checks its own pairs; the per-run randomisation runs on rank 0, on the
                # first pairs of its shard (all pairs' first ones with one process)
                checks = FaithfulnessRun(adapter, suite, [p.caption.text for p in pairs], seed=cfg.seed)
            mine = _explain_shard(cfg, adapter, suite, ranks, ranks.shard(pairs), timer, progress, checks)
            if ranks.several:
                t = time.perf_counter()
                ranks_group.wait("all pairs explained")
                timer.add("waiting for the other ranks", time.perf_counter() - t)
            shards = ranks_group.gather(mine)
            if ranks.is_main:
                # every pair's entry.json, whichever rank wrote it: read only now, so that no rank
                # holds the entries of a long run in memory while it explains
                own = [_read_entry(report, pid) for _, pid in sorted(x for shard in shards for x in shard["pairs"])]
                skipped.extend((w, r) for _, w, r in sorted((x for shard in shards for x in shard["skipped"]),
                                                             key=lambda x: x[0]))
                for e in own:  # entries written before the key existed (the id already hashes the model)
                    e.setdefault("model", adapter.model_id)
                summary = summarise(own)
                if summary is not None:
                    summary["flat"] = report_io.flat_counts(own)
                if checks is not None:
                    summary = dict(summary or {}, **timer.run("sanity checks", checks.summary, own))
                models.append(dict(adapter.describe(), summary=summary, flat=report_io.flat_counts(own)))
                entries += own
                reused += sum(shard["reused"] for shard in shards)
                batch_sizes += [shard["batch_size"] for shard in shards]
                batch_notes += [n for shard in shards for n in shard["batch_notes"]]
            del adapter, checks
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    if not ranks.is_main:
        return None

    if not entries:
        where = skipped[0][1] if skipped else "-"
        raise UserError(f"no pair could be explained ({len(skipped)} skipped; first: {where})")
    skipped[:] = list(dict.fromkeys(skipped))  # an unreadable image is skipped once, not once per model
    first = models[0]
    explained = {name for e in entries for name in e["maps"]["keys"]}  # methods some model did not skip
    manifest = {
        "tool": {"name": "groundreport", "version": __version__},
        "config": {k: v for k, v in asdict(cfg).items()},
        "dataset": {"format": dataset_format, "examples": len(examples), "split": cfg.split},
        "model": {k: v for k, v in first.items() if k not in ("summary", "flat")},
        "models": models,
        "methods": [{"name": m.name, "label": m.label, "encoder": m.encoder, "target": suite.target_name(m),
                     "caption_blind": m.caption_blind,
                     "shift_average": bool(m.shift_average and cfg.shifts > 1 and m.name in explained),
                     "smooth": suite.smoothing().get(m.name, 0.0),
                     "description": m.description}
                    for m in methods],
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": _version("transformers"), "platform": platform.platform()},
        "pairs": entries,
        "reused_pairs": reused,
        "skipped": [{"item": w, "reason": r} for w, r in skipped],
        "summary": first["summary"],
        "flat": first["flat"],
        "batch": {"size": cfg.batch_size, "final": min(batch_sizes), "notes": batch_notes},
        "timings": {k: round(v, 3) for k, v in timer.totals.items()},
    }
    report_io.write_manifest(report, manifest)
    return report_io.load_manifest(report)


def _explain_shard(cfg, adapter, suite, ranks, shard: list[tuple[int, Pair]], timer, progress,
                   checks=None) -> dict:
    """This rank's pairs (``(index, pair)``) through one model, explained into report/ or reused from it.
    ``checks``: a ``metrics.checks.FaithfulnessRun`` (``--faithfulness``) or None.

    Returns ``{pairs: [(index, pair id)], skipped: [(index, item, reason)], reused, batch_size,
    batch_notes}``: small and picklable, so that rank 0 can gather every rank's."""
    report = Path(cfg.report)
    settings = cfg.map_settings()
    done: list[tuple[int, str]] = []  # (index, pair id) of every pair explained or reused
    skipped: list[tuple[int, str, str]] = []
    reused = 0
    batcher = Batcher(adapter, suite, cfg.batch_size, timer)
    pending: list[tuple[int, Pair, object, str, str, object]] = []  # index, pair, image, sha, pid, pixels
    writing: deque[Future] = deque()
    bar = None
    if progress and ranks.is_main:
        from tqdm import tqdm
        desc = f"explaining ({adapter.model_id})" + (f", rank 0 of {ranks.world_size}" if ranks.several else "")
        bar = tqdm(total=len(shard), desc=desc, unit="pair")

    writers = writer_threads()

    def flush(n: int) -> None:
        """Explain the first ``n`` pending pairs, B at a time, and queue their writes."""
        batch, pending[:] = pending[:n], pending[n:]
        outcomes = batcher.run([p[5] for p in batch], [p[1].caption.text for p in batch],
                               [_phrase_spans(p[1]) for p in batch], [p[2].size for p in batch])
        for (index, pair, image, sha, pid, pixels), outcome in zip(batch, outcomes):
            extra = None
            if not isinstance(outcome, str) and checks is not None:
                # --faithfulness: the per-pair checks run pair by pair after the batch
                try:
                    extra = timer.run("faithfulness", checks.pair, index, pixels, pair.caption.text,
                                      _phrase_spans(pair), outcome, image.size)
                except BadInput as e:
                    outcome = str(e)
            if isinstance(outcome, str):
                skipped.append((index, _where(pair), outcome))
            else:
                writing.append(writer.submit(_write_pair_entry, report, pair, image, sha, pid, outcome,
                                             timer, adapter.model_id, extra, ranks.rank))
                done.append((index, pid))
            if bar:
                bar.update(1)
        # a bounded queue of writes: when encoding is slower than explaining, memory stays flat
        while len(writing) > (batcher.WINDOW + 1) * batcher.size + 2 * writers:
            writing.popleft().result()

    # decoding runs ahead in worker threads (a bounded window, so memory stays flat) and
    # artifact encoding runs behind in writer threads, both overlapping the model's work
    with ThreadPoolExecutor(max_workers=2) as readers, ThreadPoolExecutor(max_workers=writers) as writer:
        t_wait = time.perf_counter()
        for (index, pair), image, image_sha, error in prefetch(readers, _load, shard,
                                                               ahead=max(4, cfg.batch_size)):
            timer.add("image decode (waited)", time.perf_counter() - t_wait)
            pid = None if error else report_io.pair_id(adapter.model_id, adapter.revision, image_sha,
                                                       pair.caption, settings)
            finished = None if error else report_io.finished_entry(report, pid)
            queued = False
            if error:
                skipped.append((index, _where(pair), error))
            elif finished is not None:
                done.append((index, pid))
                reused += 1
                if checks is not None:
                    try:
                        checks.keep(_preprocess(adapter, image, timer), pair.caption.text, _phrase_spans(pair),
                                    image.size)
                    except BadInput:
                        pass  # reused pair: its checks are in its entry; only the randomisation misses it
            else:
                try:
                    pixels = _preprocess(adapter, image, timer)
                    if checks is not None:
                        checks.keep(pixels, pair.caption.text, _phrase_spans(pair), image.size)
                    pending.append((index, pair, image, image_sha, pid, pixels))
                    queued = True
                except BadInput as e:
                    skipped.append((index, _where(pair), str(e)))
            if bar and not queued:
                bar.update(1)  # reused or skipped; a queued pair counts when it is explained
            if len(pending) >= batcher.WINDOW * batcher.size:
                flush(len(pending))
            t_wait = time.perf_counter()
        if pending:
            flush(len(pending))
        while writing:
            writing.popleft().result()  # a failed write raises here
    if bar:
        bar.close()
    return {"pairs": done, "skipped": skipped, "reused": reused, "batch_size": batcher.size,
            "batch_notes": batcher.notes}


def _read_entry(report: Path, pid: str) -> dict:
    entry = report_io.finished_entry(report, pid)
    if entry is None:
        raise UserError(f"{report}/pairs/{pid}: written during this run but now missing or unreadable "
                        "(was report/ changed meanwhile?); rerun the same command to redo that pair")
    return entry


def _where(pair: Pair) -> str:
    return f"{pair.example.image_path.name} #{pair.caption_index}"


class Batcher:
    """Explains pairs ``size`` at a time. On out-of-memory it halves ``size`` and retries the
    same pairs (``size`` stays halved for the rest of the run); at one pair, the pair is skipped.

    A batch costs as many gradient targets per pair as its longest caption has words (targets
    are summed across pairs slot by slot), so ``run`` groups the pairs it is given by caption
    length before cutting them into batches; results come back in the order given."""

    WINDOW = 4  # batches' worth of pairs a caller should hand ``run`` at once, for grouping

    def __init__(self, adapter, suite, size: int, timer: Timer | None = None):
        self.adapter, self.suite, self.size = adapter, suite, size
        self.timer = timer or Timer()
        self.notes: list[str] = []

    def run(self, pixels: list, captions: list[str], phrases: list[list], sizes: list | None = None) -> list:
        """One result per pair: a ``PairResult``, or a string saying why the pair was skipped.
        ``sizes``: each original image's (W, H), for the results' ``region`` (None: unknown)."""
        sizes = list(sizes) if sizes is not None else [None] * len(pixels)
        order = sorted(range(len(pixels)), key=lambda k: (len(captions[k].split()), len(phrases[k])))
        out: dict[int, object] = {}
        i = 0
        while i < len(order):
            n = min(self.size, len(order) - i)
            chunk = order[i:i + n]
            try:
                results = self._explain([pixels[k] for k in chunk], [captions[k] for k in chunk],
                                        [phrases[k] for k in chunk], [sizes[k] for k in chunk])
            except RuntimeError as e:
                if not _is_oom(e):
                    raise
                _free_device_memory()
                if n > 1:
                    self.size = max(1, n // 2)
                    self.notes.append(f"out of memory at batch {n}: continued at batch {self.size}")
                    continue
                # one pair: there is no smaller batch to retry with
                results = [f"out of {'GPU ' if 'CUDA' in str(e) else ''}memory for this pair "
                           "(try --dtype bf16 or fewer --methods)"]
            out.update(zip(chunk, results))
            i += n
        return [out[k] for k in range(len(pixels))]

    def _explain(self, pixels, captions, phrases, sizes) -> list:
        import torch

        t = time.perf_counter()
        if len(pixels) == 1:  # the adapter's own forward: a batch of one is exactly the one-pair run
            results = [self.suite.run(self.adapter, pixels[0], captions[0], phrases[0], image_size=sizes[0])]
        else:  # FLAVA: one batched forward; other families: run_batch goes pair by pair
            results = self.suite.run_batch(self.adapter, torch.cat(pixels), captions, phrases, image_sizes=sizes)
        self.timer.add("explainers", time.perf_counter() - t)
        return results


def _is_oom(e: RuntimeError) -> bool:
    """CUDA's out-of-memory error, or the CPU allocator's (a plain RuntimeError)."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e)


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()  # the failed batch's graph may sit in a reference cycle of the traceback
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def _preprocess(adapter, image, timer) -> object:
    """The model's input for one image, ``[1, C, H, W]`` on its device."""
    t = time.perf_counter()
    try:
        pixels = adapter.pixel_values([image])
    except Exception as e:  # the processor rejects some degenerate images
        raise BadInput(f"image could not be preprocessed ({str(e).splitlines()[0][:100]})") from None
    timer.add("preprocess", time.perf_counter() - t)
    return pixels


def _phrase_spans(pair) -> list[tuple]:
    return [(p.text, p.span) for p in pair.caption.phrases]


def _write_pair_entry(report, pair, image, image_sha, pid, result, timer, model_id=None, checks=None,
                      rank: int = 0) -> dict:
    """Writer-thread part: score the phrases, then the pair's files (entry.json last)."""
    from .metrics.phrases import score_phrases

    phrases = score_phrases(pair.caption.phrases, result.maps, image.size, result.words, region=result.region)
    return report_io.write_pair(report, pair, image, image_sha, pid, result, phrases, timer, model_id=model_id,
                                checks=checks, rank=rank)
