"""Score one pair's phrase maps against the phrase boxes: the manifest's per-phrase records."""

from __future__ import annotations

from .grounding import baselines, score_map


def score_phrases(phrases, maps, image_size: tuple[int, int]) -> list[dict]:
    """One record per phrase: its boxes, each method's pointing/box score, and chance levels.

    ``phrases``: the caption's ``Phrase`` records; ``maps``: method -> MethodMaps whose
    ``phrases`` rows follow the same order. Phrases without boxes are listed, unscored."""
    n_objects = sum(1 for p in phrases if p.boxes)
    out = []
    for k, ph in enumerate(phrases):
        entry = {"text": ph.text, "span": list(ph.span) if ph.span else None,
                 "boxes": [list(b) for b in ph.boxes], "scores": {}, "baselines": None}
        if ph.boxes:
            for name, mm in maps.items():
                if mm.phrases is None:
                    continue
                s = score_map(mm.phrases[k], image_size, ph.boxes)
                entry["scores"][name] = {"pointing": bool(s.pointing_hit), "point": list(s.point),
                                         "box": list(s.box), "box_iou": round(s.box_iou, 4)}
            entry["baselines"] = baselines(image_size, ph.boxes, n_objects)
        out.append(entry)
    return out
