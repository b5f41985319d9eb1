"""Aggregate per-phrase hits into the method comparison table."""

from __future__ import annotations


def summarise(pairs: list[dict]) -> dict | None:
    """Mean pointing/box accuracy per method over every scored phrase of every pair.

    ``pairs`` are manifest entries; each scored phrase carries ``scores[method]`` with
    ``pointing`` and ``box_iou``, and ``baselines``. None when nothing was scored.
    """
    totals: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    n = 0
    for p in pairs:
        for ph in p.get("phrases", []):
            if not ph.get("scores"):
                continue
            n += 1
            for method, s in ph["scores"].items():
                t = totals.setdefault(method, [0.0, 0.0])
                t[0] += float(s["pointing"])
                t[1] += float(s["box_iou"] >= 0.5)
            for k, v in ph["baselines"].items():
                base.setdefault(k, []).append(v)
    if n == 0:
        return None
    return {
        "phrases": n,
        "methods": {m: {"pointing": t[0] / n, "box_accuracy": t[1] / n} for m, t in totals.items()},
        "baselines": {k: sum(v) / len(v) for k, v in base.items()},
        "pointing_form": "argmax of the map resized to the image (ties: the middle of the tied pixels), inside any box of the phrase (no tolerance)",
        "box_form": "largest region above 0.5 x max; hit at IoU >= 0.5 with the union of the phrase's boxes",
    }
