"""Cost of the faithfulness metrics and sanity checks, on the bundled demo model (CPU).

    PYTHONPATH=src python benchmarks/bench_faithfulness.py              # 5 scenes, 1 thread
    PYTHONPATH=src python benchmarks/bench_faithfulness.py --threads 2 --pairs 10

Prints (a) image-encoder forwards per map, from the formula, for the demo grid (8x8) and
flava-full's (14x14), at 16 steps and at every patch; (b) forwards actually run per pair for
the six suite methods plus the random and centre maps (deduplicated) and seconds per pair;
(c) the sanity checks' cost per pair in suite runs and seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

METHODS = ["relevancy", "gradcam", "occlusion", "rollout", "attention", "mm-relevancy"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from groundreport.demo.scenes import heldout_seeds, make_scene, with_article
    from groundreport.explainers import make_methods
    from groundreport.explainers.suite import Suite
    from groundreport.metrics import faithfulness as fa
    from groundreport.metrics import sanity as sa
    from groundreport.models.flava import FlavaAdapter

    print("(a) image-encoder forwards per map (deletion + insertion inner steps + confidence mask; "
          "+2 per pair: full and all-hidden)")
    for grid, name in (((8, 8), "demo 8x8"), ((14, 14), "flava-full 14x14")):
        p = grid[0] * grid[1]
        print(f"    {name:17s} steps={args.steps}: {fa.forwards_per_map(p, args.steps):4d}   "
              f"every patch: {fa.forwards_per_map(p, None):4d}")

    adapter = FlavaAdapter.load("demo", device="cpu")
    methods = make_methods(METHODS)
    suite = Suite(methods)
    scenes = [make_scene(s, (2, 4)) for s in heldout_seeds("val", args.pairs)]
    t_suite = t_faith = 0.0
    forwards = nominal = maps_n = 0
    pairs = []
    for s in scenes:
        phrases = [with_article(o.phrase) for o in s.objects]
        spans = [(p, (s.caption.index(p), s.caption.index(p) + len(p))) for p in phrases]
        px = adapter.pixel_values([s.image])
        pairs.append((px, s.caption, spans))
        t = time.perf_counter()
        res = suite.run(adapter, px, s.caption, spans)
        t_suite += time.perf_counter() - t
        k = 1 + len(spans)
        maps = {n: np.concatenate([m.caption[None], m.phrases]) for n, m in res.maps.items()}
        maps.update(fa.baseline_maps(adapter.grid, k, seed=s.seed))
        t = time.perf_counter()
        texts = adapter.text_embeds([s.caption] + phrases)
        pf = fa.evaluate_pair(adapter, px, texts, maps, steps=args.steps, batch_size=args.batch_size)
        t_faith += time.perf_counter() - t
        forwards += pf.forwards
        maps_n += len(maps) * k
        nominal += 2 + len(maps) * k * fa.forwards_per_map(64, args.steps)
    n = len(scenes)
    print(f"(b) {n} pairs, {len(METHODS)} methods + 2 baselines, {maps_n / n:.1f} maps/pair, "
          f"{args.threads} thread(s), batch {args.batch_size}:")
    print(f"    forwards/pair: {forwards / n:.0f} run ({nominal / n:.0f} before deduplication; "
          f"{forwards / maps_n:.1f} per map)")
    print(f"    seconds/pair: faithfulness {t_faith / n:.2f}  (the suite itself: {t_suite / n:.2f}); "
          f"{1000 * t_faith / forwards:.1f} ms per masked image")

    t = time.perf_counter()
    r = sa.randomisation(adapter, methods, pairs, seed=0)
    t_rand = time.perf_counter() - t
    runs = 1 + len(sa.flava_stages(adapter.model))
    print(f"(c) caption shuffle: 1 extra suite run per pair ({t_suite / n:.2f} s)")
    print(f"    randomisation: {runs} suite runs per pair (original + {runs - 1} stages; image-encoder "
          f"methods skip the {len(r['mm-relevancy']['depths']) - len(r['relevancy']['depths'])} mm stages), "
          f"{t_rand / n:.2f} s/pair, plus one model copy")


if __name__ == "__main__":
    main()
