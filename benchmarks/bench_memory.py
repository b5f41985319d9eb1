"""Flat memory over a long run: resident memory (RSS) after 200 and after 2,000 pairs.

    python benchmarks/bench_memory.py                    # demo model, 2,000 distinct demo scenes
    python benchmarks/bench_memory.py --pairs 400 --early 100 --batch-size 8

Runs ``compute`` (the whole of ``build`` but rendering: decode, explain, score, write every
pair's arrays and overlays) in this process on generated demo scenes, one caption each, and
reads this process's RSS from /proc each time the writer has finished another pair. Bar
(issue 17): RSS after 2,000 pairs within 10% of RSS after 200.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def write_scenes(folder: Path, n: int) -> Path:
    """n distinct demo scenes (2-4 objects) as a grounding .jsonl with boxes."""
    from groundreport.demo.scenes import make_scene

    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        s = make_scene(50_000 + i, (2, 4), size=96)
        s.image.save(folder / "imgs" / f"s{i}.png")
        lines.append(json.dumps({"image": f"imgs/s{i}.png", "caption": s.caption,
                                 "phrases": [{"text": o.phrase, "boxes": [[float(v) for v in o.box]]}
                                             for o in s.objects]}))
    (folder / "scenes.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "scenes.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--early", type=int, default=200, help="the first reading")
    ap.add_argument("--every", type=int, default=100, help="also print RSS every this many pairs")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="gradcam,relevancy,mm-relevancy,mm-gradcam,mm-attention,attention,rollout")
    args = ap.parse_args()

    import torch

    from groundreport import compute as compute_mod
    from groundreport import report as report_io
    from groundreport.datasets import load_dataset

    torch.set_num_threads(args.threads)
    readings: dict[int, float] = {}
    done = [0]
    lock = threading.Lock()
    real_write = report_io.write_pair

    def write_and_measure(*a, **kw):
        entry = real_write(*a, **kw)
        with lock:
            done[0] += 1
            n = done[0]
        if n == args.early or n == args.pairs or n % args.every == 0:
            readings[n] = rss_mib()
            print(f"  {n:5d} pairs: RSS {readings[n]:7.1f} MiB  ({time.strftime('%H:%M:%S')})", flush=True)
        return entry

    report_io.write_pair = write_and_measure
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_scenes(tmp / "data", args.pairs)
        print(f"{args.pairs} demo scenes written; RSS before loading the model {rss_mib():.1f} MiB", flush=True)
        cfg = compute_mod.BuildConfig(captions=str(data), dataset="jsonl", sample=None, model="demo", device="cpu",
                                      methods=args.methods.split(","), report=str(tmp / "report"),
                                      batch_size=args.batch_size)
        skipped: list = []
        fmt, examples = load_dataset(data, None, "jsonl", "test", skipped)
        t = time.perf_counter()
        manifest = compute_mod.compute(cfg, examples, fmt, skipped, progress=False)
        seconds = time.perf_counter() - t
        final = rss_mib()  # the manifest: every pair's entry, read back once at the end
    early, late = readings[args.early], readings[args.pairs]
    print(f"\n{len(manifest['pairs'])} pairs in {seconds / 60:.1f} min, batch {args.batch_size}, "
          f"{args.threads} thread(s), methods {args.methods}")
    print(f"RSS after {args.early} pairs: {early:.1f} MiB; after {args.pairs}: {late:.1f} MiB; "
          f"ratio {late / early:.3f}  (bar <= 1.10)")
    print(f"RSS after the manifest is written (all {len(manifest['pairs'])} entries in memory once): {final:.1f} MiB")
    sys.exit(0 if late <= 1.10 * early else 1)


if __name__ == "__main__":
    main()
