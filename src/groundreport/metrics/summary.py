"""Aggregate per-phrase (and per-word) hits into the method comparison tables."""

from __future__ import annotations


def _table(items) -> dict | None:
    """``items``: (scores by method, baselines) per scored phrase or word -> the summary table."""
    totals: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    n = 0
    for scores, baselines in items:
        n += 1
        for method, s in scores.items():
            t = totals.setdefault(method, [0.0, 0.0, 0])
            t[0] += float(s["pointing"])
            t[1] += float(s["box_iou"] >= 0.5)
            t[2] += 1
        for k, v in baselines.items():
            base.setdefault(k, []).append(v)
    if n == 0:
        return None
    return {"methods": {m: {"pointing": t[0] / t[2], "box_accuracy": t[1] / t[2], "n": t[2]}
                        for m, t in totals.items()},
            "baselines": {k: sum(v) / len(v) for k, v in base.items()}, "n": n}


def summarise(pairs: list[dict]) -> dict | None:
    """Mean pointing/box accuracy per method over every scored phrase of every pair, and the
    same over every content word of those phrases (``words``, against its phrase's boxes,
    with the phrase's chance levels).

    ``pairs`` are manifest entries; each scored phrase carries ``scores[method]`` with
    ``pointing`` and ``box_iou``, ``baselines``, and ``words[].scores``. None when nothing
    was scored.
    """
    scored = [ph for p in pairs for ph in p.get("phrases", []) if ph.get("scores")]
    phrases = _table((ph["scores"], ph["baselines"]) for ph in scored)
    if phrases is None:
        return None
    words = _table((w["scores"], ph["baselines"]) for ph in scored for w in ph.get("words", []) if w["scores"])
    out = {
        "phrases": phrases.pop("n"),
        **phrases,
        "pointing_form": "argmax of the map resized to the image (ties: the middle of the tied pixels), inside any box of the phrase (no tolerance)",
        "box_form": "largest region above 0.5 x max; hit at IoU >= 0.5 with the union of the phrase's boxes",
    }
    if words is not None:
        out["words"] = {"words": words.pop("n"), **words,
                        "form": "each content word of a boxed phrase (not articles, conjunctions, punctuation), "
                                "its map scored against that phrase's boxes"}
    return out


def below_chance(summary: dict | None) -> dict[str, list[str]]:
    """Per method, which of its tables (``phrases``, ``words``) point clearly *below* the
    random-object chance on the same items: more than two binomial standard errors under it,
    so that a few dozen phrases' noise is not called a failure. A map that lands on other
    objects more often than a random guess is telling the user something false."""
    out: dict[str, list[str]] = {}
    if not summary or "methods" not in summary:
        return out
    for kind, table in (("phrases", summary), ("words", summary.get("words"))):
        chance = (table or {}).get("baselines", {}).get("random_object")
        if chance is None:
            continue
        for method, s in table["methods"].items():
            n = s.get("n") or table.get("n") or 0
            if n and s["pointing"] < chance - 2 * (chance * (1 - chance) / n) ** 0.5:
                out.setdefault(method, []).append(kind)
    return out
