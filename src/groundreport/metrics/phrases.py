"""Score one pair's phrase maps against the phrase boxes: the manifest's per-phrase records."""

from __future__ import annotations

from .grounding import baselines, in_view, score_map


def _scores(m, image_size, boxes, region=None) -> dict:
    s = score_map(m, image_size, boxes, region)
    return {"pointing": bool(s.pointing_hit), "point": list(s.point), "box": list(s.box),
            "box_iou": round(s.box_iou, 4)}


def phrase_words(phrase, words) -> list[int]:
    """Indices of the content words (not articles, conjunctions, punctuation) inside a phrase's span."""
    if phrase.span is None:
        return []
    s0, s1 = phrase.span
    return [i for i, w in enumerate(words) if w.is_content and s0 <= w.span[0] and w.span[1] <= s1]


def score_phrases(phrases, maps, image_size: tuple[int, int], words=(), region=None) -> list[dict]:
    """One record per phrase: its boxes, each method's pointing/box score, and chance levels;
    under ``words``, each content word of the phrase scored against the phrase's boxes for
    every method with word maps.

    ``phrases``: the caption's ``Phrase`` records; ``maps``: method -> MethodMaps whose
    ``phrases`` rows follow the same order and ``words`` rows follow ``words``. Phrases
    without boxes are listed, unscored. ``region``: the part of the image the maps cover (None:
    all of it); ``in_view`` says whether any of a phrase's boxes overlaps it."""
    n_objects = sum(1 for p in phrases if p.boxes)
    out = []
    for k, ph in enumerate(phrases):
        entry = {"text": ph.text, "span": list(ph.span) if ph.span else None,
                 "boxes": [list(b) for b in ph.boxes], "scores": {}, "baselines": None}
        if ph.boxes:
            for name, mm in maps.items():
                if mm.phrases is not None:
                    entry["scores"][name] = _scores(mm.phrases[k], image_size, ph.boxes, region)
            entry["baselines"] = baselines(image_size, ph.boxes, n_objects)
            entry["in_view"] = in_view(image_size, ph.boxes, region)
            entry["words"] = [{"index": i, "text": words[i].text,
                               "scores": {name: _scores(mm.words[i], image_size, ph.boxes, region)
                                          for name, mm in maps.items() if mm.words is not None}}
                              for i in phrase_words(ph, words)]
        out.append(entry)
    return out
