"""Faithfulness and sanity checks of every suite method on the demo model (issue 18's bars).

    PYTHONPATH=src python scripts/faithfulness_demo.py                 # 50 held-out test scenes
    PYTHONPATH=src python scripts/faithfulness_demo.py --scenes 10 --out /tmp/faith.json

Scenes: ``heldout_seeds("test", N)``, 2-4 objects. Targets per scene: the caption and every
phrase ("a red circle", its span in the caption for the per-word methods). Prints the
deletion/insertion AUC, drop and increase of each method next to the random and centre maps,
then the caption-shuffle correlation and the randomisation cascade, and checks the bars:
relevancy's deletion AUC below random's and its insertion AUC above; rollout and image-CLS
attention caption-blind, no text-conditioned method caption-blind; every gradient method's
full-depth Spearman below 0.5.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

METHODS = ["relevancy", "gradcam", "occlusion", "rollout", "attention", "mm-relevancy"]
GRADIENT = ["relevancy", "gradcam", "mm-relevancy"]
BLIND = ["rollout", "attention"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=50)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--randomisation-scenes", type=int, default=None, help="default: all scenes")
    ap.add_argument("--out", default=None, help="write the summary (and per-pair records) as JSON here")
    args = ap.parse_args()

    from groundreport.demo.scenes import heldout_seeds, make_scene, with_article
    from groundreport.explainers import make_methods
    from groundreport.explainers.suite import Suite
    from groundreport.metrics import faithfulness as fa
    from groundreport.metrics import sanity as sa
    from groundreport.models.flava import FlavaAdapter

    adapter = FlavaAdapter.load("demo", device="cpu")
    methods = make_methods(METHODS)
    suite = Suite(methods)
    scenes = [make_scene(s, (2, 4)) for s in heldout_seeds("test", args.scenes)]
    pairs = []
    for s in scenes:
        phrases = [with_article(o.phrase) for o in s.objects]
        spans = [(p, (s.caption.index(p), s.caption.index(p) + len(p))) for p in phrases]
        pairs.append((adapter.pixel_values([s.image]), s.caption, spans))

    records, shuffle, t_faith, forwards = [], [], 0.0, 0
    others = sa.other_captions([s.caption for s in scenes], seed=0)
    for s, (px, caption, spans), other in zip(scenes, pairs, others):
        res = suite.run(adapter, px, caption, spans)
        k = 1 + len(spans)
        maps = {n: np.concatenate([m.caption[None], m.phrases]) for n, m in res.maps.items()}
        maps.update(fa.baseline_maps(adapter.grid, k, seed=s.seed))
        t = time.perf_counter()
        texts = adapter.text_embeds([caption] + [p for p, _ in spans])
        pf = fa.evaluate_pair(adapter, px, texts, maps, steps=args.steps)
        t_faith += time.perf_counter() - t
        forwards += pf.forwards
        records.append(pf.to_json())
        shuffled = suite.run(adapter, px, other)
        shuffle.append(sa.shuffle_correlations({n: m.caption for n, m in res.maps.items()},
                                               {n: m.caption for n, m in shuffled.maps.items()}))
    n_targets = sum(1 + len(p[2]) for p in pairs)
    print(f"{len(scenes)} scenes, {n_targets} targets; faithfulness {t_faith / len(scenes):.2f} s/pair, "
          f"{forwards / len(scenes):.0f} image forwards/pair ({fa.forwards_per_map(64, args.steps)} per map)")

    faith = fa.summarise(records)
    print(f"\n{'method':14s} {'deletion':>9s} {'insertion':>9s} {'drop':>7s} {'increase':>8s}")
    for name, v in faith["faithfulness"].items():
        print(f"{name:14s} {v['deletion_auc']:9.3f} {v['insertion_auc']:9.3f} {v['drop']:7.3f} {v['increase']:8.3f}")
    skipped = {n: c["skipped"] for n, c in faith["faithfulness_curves"]["methods"].items() if c["skipped"]}
    print("targets with full score <= 0 (left out):", skipped or "none")

    t = time.perf_counter()
    rpairs = pairs[:args.randomisation_scenes] if args.randomisation_scenes else pairs
    rand = sa.randomisation(adapter, methods, rpairs, seed=0)
    print(f"\nrandomisation over {len(rpairs)} scenes: {time.perf_counter() - t:.0f} s")
    sanity = sa.summarise(shuffle, rand)
    for name, v in sanity.items():
        cascade = " ".join(f"{d}={r:+.2f}" for d, r in zip(v["randomisation_depths"], v["randomisation"]))
        print(f"{name:14s} shuffle r={v['caption_shuffle_corr']:.3f} blind={v['caption_blind']!s:5s} "
              f"flag={v['randomisation_flag']!s:5s} {cascade}")

    table = faith["faithfulness"]
    bars = {
        "relevancy deletion < random": table["relevancy"]["deletion_auc"] < table["random"]["deletion_auc"],
        "relevancy insertion > random": table["relevancy"]["insertion_auc"] > table["random"]["insertion_auc"],
        "rollout, attention caption-blind": all(sanity[m]["caption_blind"] for m in BLIND),
        "no text-conditioned method caption-blind": not any(sanity[m]["caption_blind"] for m in METHODS
                                                            if m not in BLIND),
        "gradient methods' full-depth Spearman < 0.5": all(sanity[m]["randomisation"][-1] < 0.5 for m in GRADIENT),
    }
    print()
    for bar, ok in bars.items():
        print(f"{'PASS' if ok else 'FAIL'}  {bar}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"summary": {**faith, "sanity": sanity}, "pairs": records, "bars": bars}, f)


if __name__ == "__main__":
    main()
