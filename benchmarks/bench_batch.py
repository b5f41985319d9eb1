"""Pairs per second when pairs are explained B at a time (``--batch-size``), in one run.

    python benchmarks/bench_batch.py                     # CPU: demo model and FLAVA-full-size
    python benchmarks/bench_batch.py --models demo       # the demo model only
    python benchmarks/bench_batch.py --device cuda       # a GPU, bf16 by default

Each model explains its pairs with build's default methods (all but occlusion: every word's
map, phrase maps, all-layer attention) through ``compute.Batcher``, the path ``build`` takes
(batch 1: ``Suite.run``; larger: ``Suite.run_batch``). Rounds alternate the batch sizes and the
best round of each counts, so a load that comes and goes on a shared machine hurts every size
alike. Also printed: the model's FLOPs per pair (torch's FlopCounterMode, forward and every
backward), and for FLAVA-full-size the original notebook's per-image procedure for scale (b/c).

The demo model: 64 x 64 px, 8 x 8 patches, 1.8 M parameters, demo scenes with 2-4 objects.
FLAVA-full-size: ``FlavaConfig()`` with random weights (compute does not depend on weight
values), 224 x 224 px, 14 x 14 patches, Flickr30k-like captions of 10-16 words, 2-3 phrases.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

CAPTIONS = [  # Flickr30k-like, with the phrases Entities would box
    ("a man in a red jacket and a woman with a small dog near the door", ["a man", "a red jacket", "a small dog"]),
    ("two young children are playing with a ball on the green grass", ["two young children", "a ball"]),
    ("a woman in a blue dress is walking down a busy city street", ["a woman", "a blue dress", "a busy city street"]),
    ("a brown dog jumps over a wooden fence in the park", ["a brown dog", "a wooden fence"]),
    ("an old man sits on a bench reading a newspaper", ["an old man", "a bench", "a newspaper"]),
    ("three people ride bicycles along a road next to the river", ["three people", "bicycles", "the river"]),
    ("a girl in a pink shirt holds a balloon at the fair", ["a girl", "a pink shirt", "a balloon"]),
    ("a construction worker in an orange vest stands beside a truck", ["a construction worker", "a truck"]),
]
ENTITIES_TEST_PAIRS = 1000 * 5  # Flickr30k Entities test split: 1,000 images x 5 captions


def _spans(caption: str, phrases: list[str]):
    return [(p, (caption.find(p), caption.find(p) + len(p))) for p in phrases]


def demo_pairs(adapter, n: int):
    from groundreport.demo.scenes import make_scene

    scenes = [make_scene(20_000 + i, (2, 4), size=96) for i in range(n)]
    return ([adapter.pixel_values([s.image]) for s in scenes], [s.caption for s in scenes],
            [_spans(s.caption, [o.phrase for o in s.objects]) for s in scenes])


def full_size_pairs(adapter, n: int):
    gen = torch.Generator().manual_seed(0)
    pixels = [torch.randn(1, 3, 224, 224, generator=gen).to(adapter.device, adapter.dtype) for _ in range(n)]
    chosen = [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]
    return pixels, [c for c, _ in chosen], [_spans(c, p) for c, p in chosen]


def load(name: str, device: str, dtype: str):
    from groundreport.models.flava import DTYPES, FlavaAdapter

    if name == "demo":
        return FlavaAdapter.load("demo", device=device, dtype=dtype)
    from bench_explain import build_adapter

    return build_adapter(device, DTYPES[dtype], [c for c, _ in CAPTIONS] + [p for _, ps in CAPTIONS for p in ps])


def flops_per_pair(suite, adapter, pixels, captions, phrases) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        suite.run(adapter, pixels[0], captions[0], phrases[0])
    return counter.get_total_flops()


def rate(batcher, pixels, captions, phrases, sync) -> float:
    """Pairs per second over all the pairs, B at a time, handed over in windows as ``build`` does."""
    sync()
    t = time.perf_counter()
    window = batcher.WINDOW * batcher.size
    for i in range(0, len(pixels), window):
        j = i + window
        out = batcher.run(pixels[i:j], captions[i:j], phrases[i:j])
        assert not any(isinstance(o, str) for o in out), out
    sync()
    return len(pixels) / (time.perf_counter() - t)


def write_rates(result, caption: str, phrases, threads: int, n: int = 10) -> tuple[float, float]:
    """Pairs per second that build's writer (score the phrases, write the arrays and overlays;
    on the CPU whatever the device) keeps up with, for a 500 x 375 image (Flickr30k's usual
    size): on one thread, and on ``threads`` threads as build runs it. Best of two tries each."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    from groundreport.compute import Timer, _write_pair_entry
    from groundreport.records import Caption, Example, Phrase
    from groundreport.sampling import Pair

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (375, 500, 3), dtype=np.uint8))
    boxed = [Phrase(t, ((40.0, 30.0, 200.0, 300.0),), span) for t, span in phrases]
    pair = Pair(Example("bench", Path("bench.jpg"), [Caption(caption, boxed)]), 0)
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, workers in enumerate((1, threads)):
            best = 0.0
            for attempt in range(2):
                with ThreadPoolExecutor(workers) as pool:
                    t = time.perf_counter()
                    # five captions to an image, as in Flickr30k: its display copy is written once per five pairs
                    shas = [f"{k}{attempt}{i // 5:010d}".ljust(64, "0") for i in range(n * workers)]
                    jobs = [pool.submit(_write_pair_entry, Path(tmp), pair, image, sha, f"p{k}{attempt}{i}", result,
                                        Timer()) for i, sha in enumerate(shas)]
                    for j in jobs:
                        j.result()
                    best = max(best, n * workers / (time.perf_counter() - t))
            rates.append(best)
    return rates[0], rates[1]


def bench_model(name, args, sync) -> dict[int, float]:
    from groundreport.compute import Batcher, writer_threads
    from groundreport.explainers import DEFAULT_METHODS, make_methods
    from groundreport.explainers.suite import Suite

    adapter = load(name, args.device, args.dtype)
    batches = args.batches if name == "demo" else args.full_batches
    suite = Suite(make_methods(DEFAULT_METHODS))
    n = args.demo_pairs if name == "demo" else args.full_pairs
    make = demo_pairs if name == "demo" else full_size_pairs
    pixels, captions, phrases = make(adapter, max(n, max(batches)))
    flops = flops_per_pair(suite, adapter, pixels, captions, phrases)
    best: dict[int, float] = {}
    for _ in range(args.rounds):
        for b in batches:
            m = max(n, b) // b * b  # whole batches only
            batcher = Batcher(adapter, suite, b)
            batcher.run(pixels[:b], captions[:b], phrases[:b])  # warm-up (allocator, kernels)
            best[b] = max(best.get(b, 0.0), rate(batcher, pixels[:m], captions[:m], phrases[:m], sync))
            if batcher.size != b:
                print(f"  note: out of memory at batch {b}; it ran at batch {batcher.size}")
    words = statistics.mean(len(c.split()) for c in captions)
    params = sum(p.numel() for p in adapter.model.parameters()) / 1e6
    print(f"\n{name}: {adapter.describe()['grid']} patches, {params:.1f} M "
          f"parameters, captions of {words:.1f} words, {flops / 1e9:.1f} GFLOP per pair (batch 1), "
          f"peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    for b in batches:
        print(f"  batch {b:3d}: {best[b]:8.2f} pairs/s  ({1000 / best[b]:8.1f} ms per pair, "
              f"{flops * best[b] / 1e9:6.1f} GFLOP/s)")
    for b in batches[1:]:
        print(f"  batch {b} / batch {batches[0]} = {best[b] / best[batches[0]]:.2f}"
              + ("   (bar >= 2.0)" if name == "demo" and b == 8 and batches[0] == 1 else ""))
    result = Batcher(adapter, suite, 1).run(pixels[:1], captions[:1], phrases[:1])[0]
    threads = args.writers or writer_threads()
    one, many = write_rates(result, captions[0], phrases[0], threads)
    print(f"  writing a pair's arrays and overlays (CPU, 500 x 375 image, 5 captions an image): {1000 / one:.0f} ms "
          f"on one thread; {many:.1f} pairs/s on {threads} writer thread(s)"
          + ("" if args.writers else " (build's number here)"))
    fastest = max(best, key=best.get)
    pace = min(best[fastest], many)
    print(f"  the Entities test split ({ENTITIES_TEST_PAIRS} pairs) at batch {fastest} on this machine: "
          f"{ENTITIES_TEST_PAIRS / best[fastest] / 60:.1f} min of explaining, {ENTITIES_TEST_PAIRS / many / 60:.1f} min "
          f"of writing (overlapped): {ENTITIES_TEST_PAIRS / pace / 60:.1f} min, paced by "
          + ("the model" if pace == best[fastest] else "the writer"))
    if name == "full":
        from bench_explain import median_time, notebook_procedure

        enc = {k: v.to(adapter.device) for k, v in adapter.tokenize([captions[0]]).items() if k != "offset_mapping"}
        c = median_time(lambda: notebook_procedure(adapter, pixels[0], enc), 3, sync)
        for b in batches:
            print(f"  b/c at batch {b}: suite per pair / notebook per image = {1 / best[b] / c:.2f}"
                  + ("   (bar <= 1.0 on a GPU)" if args.device.startswith("cuda") else ""))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bf16 on a GPU, fp32 on CPU")
    ap.add_argument("--models", default="demo,full", help="demo, full (FLAVA-full-size, random weights)")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--full-batches", default=None,
                    help="FLAVA-full-size's batch sizes; default --batches on a GPU, 1,8 on CPU (batch 32 there "
                         "holds ~30 GiB: about 4x batch 8's measured 8.4 GiB peak)")
    ap.add_argument("--demo-pairs", type=int, default=64)
    ap.add_argument("--full-pairs", type=int, default=8, help="CPU: few, so that it ends in minutes")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--writers", type=int, default=None, help="writer threads to time; default: build's here")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads; default: torch's own default, what build runs with (one per core)")
    args = ap.parse_args()
    args.full_batches = args.full_batches or (args.batches if args.device.startswith("cuda") else "1,8")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.full_batches = [int(b) for b in args.full_batches.split(",")]
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    where = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} thread(s)"
    print(f"device: {where}; dtype {args.dtype}; best of {args.rounds} rounds; build's default methods")
    for name in args.models.split(","):
        bench_model(name, args, sync)


if __name__ == "__main__":
    main()
