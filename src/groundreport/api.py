"""The Python API a notebook user calls; the CLI is a thin layer over the same functions.

    from groundreport import load_model, explain
    m = load_model("demo")                      # hub id, local folder, or "demo"
    ex = explain(m, "photo.jpg", "a man in a red jacket", phrases=["a red jacket"])
    ex.maps["gradcam"]        # float32 [gh, gw] in [0, 1], caption level
    ex.words                  # list[str], the caption's words (word-pieces merged)
    ex.word_maps["jacket"]    # float32 [gh, gw] from the default per-word method
    ex.phrase_maps["relevancy"]["a red jacket"]
    ex.show("relevancy", phrase="a red jacket")   # matplotlib figure, with title and colour bar
    ex.score                  # float, the model's image-text score (cosine; SigLIP: its logit)
    exs = explain_many(m, [("a.jpg", "a dog"), ("b.jpg", "a cat", ["a cat"])], batch_size=8)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

DEFAULT_WORD_METHOD = "relevancy"  # each word in context; grounds best on the demo (docs/evaluation.md)


def load_model(name: str = "facebook/flava-full", device: str = "auto", dtype: str = "fp32", offline: bool = False):
    """A model adapter (FLAVA, CLIP, SigLIP or BLIP-ITM, picked by the checkpoint's
    ``model_type``) from a hub id, a local ``save_pretrained`` folder, or ``"demo"``."""
    from .models import load_adapter

    return load_adapter(name, device=device, dtype=dtype, offline=offline)


@dataclass
class Explanation:
    image: "object"  # PIL.Image, RGB
    caption: str
    score: float  # the image-text score: cosine of projected embeddings (SigLIP: its sigmoid's logit)
    itm: float | None  # ITM logit (match minus mismatch), when the model has the head
    words: list[str]  # caption words, word-pieces merged, punctuation included
    maps: dict[str, np.ndarray]  # method -> [gh, gw] caption-level map in [0, 1]
    word_maps: dict[str, np.ndarray]  # word -> [gh, gw] (DEFAULT_WORD_METHOD; first occurrence)
    method_word_maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> [W, gh, gw]
    phrase_maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> phrase -> map
    tokens: list[str] = field(default_factory=list)
    unknown_words: list[str] = field(default_factory=list)  # words the tokenizer cannot read
    warnings: list[str] = field(default_factory=list)  # one-line notes (unknown words, rejected caption...)
    region: tuple | None = None  # (x0, y0, x1, y1): the part of the image the maps cover (a crop), pixels

    def map(self, method: str | None = None, word: str | int | None = None, phrase: str | None = None):
        """``(map, method, label)`` for the caption, a word (text or index) or a phrase.

        ``method`` None: the default per-word method for a word, else relevancy (or the first
        method run). Unknown methods, words and phrases are one-line ``UserError``s."""
        if word is not None and phrase is not None:
            raise UserError("pass word= or phrase=, not both")
        if word is not None:
            method = method or (DEFAULT_WORD_METHOD if DEFAULT_WORD_METHOD in self.method_word_maps
                                else next(iter(self.method_word_maps), None))
            if method not in self.method_word_maps:
                raise UserError(f"method {method!r} has no word maps here; methods with word maps: "
                                f"{', '.join(self.method_word_maps) or 'none'}")
            i = word if isinstance(word, int) else next((k for k, w in enumerate(self.words) if w == word), None)
            if i is None or not 0 <= i < len(self.words):
                raise UserError(f"word {word!r} is not in the caption; its words: {', '.join(self.words)}")
            return self.method_word_maps[method][i], method, f"word \u201c{self.words[i]}\u201d"
        if phrase is not None:
            method = method or ("relevancy" if "relevancy" in self.phrase_maps else next(iter(self.phrase_maps), None))
            if method not in self.phrase_maps:
                raise UserError(f"method {method!r} has no phrase maps here; methods with phrase maps: "
                                f"{', '.join(self.phrase_maps) or 'none (pass phrases= to explain)'}")
            if phrase not in self.phrase_maps[method]:
                raise UserError(f"phrase {phrase!r} was not explained; explained phrases: "
                                f"{', '.join(self.phrase_maps[method]) or 'none'}")
            return self.phrase_maps[method][phrase], method, f"phrase \u201c{phrase}\u201d"
        method = method or ("relevancy" if "relevancy" in self.maps else next(iter(self.maps)))
        if method not in self.maps:
            raise UserError(f"unknown method {method!r}; methods run: {', '.join(self.maps)}")
        return self.maps[method], method, "caption"

    def show(self, method: str | None = None, word: str | int | None = None, phrase: str | None = None):
        """A matplotlib figure: original | heatmap | overlay, with a title and a colour bar."""
        from .figures import map_figure

        m, method, label = self.map(method, word, phrase)
        return map_figure(self.image, m, f"{method}, {label}: {self.caption}", flat=bool(m.max() <= 0),
                          region=self.region)


def explain(model, image, caption: str, methods: list[str] | None = None, phrases: list[str] | None = None,
            target: str = "contrastive", shifts: int = 4, smooth: bool = True) -> Explanation:
    """Explain one image-caption pair. ``image``: a path or a PIL image.

    A phrase that is not in the caption is explained as its own text (image-encoder methods);
    its multimodal rows, which need its words in the caption, fall back to the caption's."""
    return explain_many(model, [(image, caption, phrases)], methods, target, batch_size=1, shifts=shifts,
                        smooth=smooth)[0]


def explain_many(model, items, methods: list[str] | None = None, target: str = "contrastive",
                 batch_size: int = 8, shifts: int = 4, smooth: bool = True) -> list[Explanation]:
    """Explain many pairs, ``batch_size`` at a time (the maps equal ``explain``'s one by one, within
    float rounding). ``items``: ``(image, caption)`` or ``(image, caption, phrases)`` tuples.

    On an out-of-memory error the batch is halved and retried; a pair that does not fit alone is a
    ``UserError``. ``shifts``, ``smooth``: as ``build --shifts`` and ``--smooth`` (explainers/shifts.py,
    explainers/smoothing.py)."""
    from .compute import Batcher
    from .explainers import DEFAULT_METHODS, make_methods
    from .explainers.suite import Suite
    from .images import load_rgb
    from .records import locate_phrase

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive number of pairs, not {batch_size!r}")
    from .explainers.shifts import problem

    if problem(shifts):
        raise UserError(problem(shifts))
    pairs = []
    for item in items:
        image, caption, phrases = (tuple(item) + (None,))[:3]
        if not isinstance(caption, str) or not caption.strip():
            raise UserError("the caption is empty")
        phrases = list(phrases or [])
        if any(not p.strip() for p in phrases):
            raise UserError("a phrase is empty")
        img = load_rgb(Path(image)) if isinstance(image, (str, Path)) else image.convert("RGB")
        pairs.append((img, caption, phrases, [(p, locate_phrase(caption, p)) for p in phrases]))
    suite = Suite(make_methods(list(methods or DEFAULT_METHODS)), target, shifts, smooth)  # skips ITM methods without the head
    results = Batcher(model, suite, batch_size).run([model.pixel_values([img]) for img, *_ in pairs],
                                                    [caption for _, caption, *_ in pairs],
                                                    [spans for *_, spans in pairs],
                                                    [img.size for img, *_ in pairs])
    for result in results:
        if isinstance(result, str):
            raise UserError(result)
    return [_explanation(img, caption, phrases, spans, result)
            for (img, caption, phrases, spans), result in zip(pairs, results)]


def _explanation(img, caption: str, phrases: list[str], spans, result) -> Explanation:
    from .report import pair_warnings

    words = [w.text for w in result.words]
    word_method = DEFAULT_WORD_METHOD if DEFAULT_WORD_METHOD in result.maps else next(
        (n for n, mm in result.maps.items() if mm.words is not None), None)
    word_maps = {}
    if word_method and result.maps[word_method].words is not None:
        for w, m in zip(words, result.maps[word_method].words):
            word_maps.setdefault(w, m)
    notes = [f"phrase {p!r} is not in the caption: explained as its own text" for p, s in spans if s is None]
    return Explanation(
        image=img, caption=caption, score=result.score, itm=result.itm, words=words,
        maps={n: mm.caption for n, mm in result.maps.items()}, word_maps=word_maps,
        method_word_maps={n: mm.words for n, mm in result.maps.items() if mm.words is not None},
        phrase_maps={n: dict(zip(phrases, mm.phrases)) for n, mm in result.maps.items() if mm.phrases is not None},
        tokens=result.tokens, unknown_words=[w.text for w in result.words if w.unknown],
        warnings=notes + result.notes + pair_warnings(result.words, result.score, result.itm, result.truncated),
        region=result.region,
    )
