"""The Python API a notebook user calls; the CLI is a thin layer over the same functions.

    from groundreport import load_model, explain
    m = load_model("demo")                      # hub id, local folder, or "demo"
    ex = explain(m, "photo.jpg", "a man in a red jacket")
    ex.maps["gradcam"]        # float32 [gh, gw] in [0, 1], caption level
    ex.words                  # list[str], the caption's words (word-pieces merged)
    ex.word_maps["jacket"]    # float32 [gh, gw] from the default per-word method
    ex.score                  # float, cosine of projected image and text CLS
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_WORD_METHOD = "mm-relevancy"


def load_model(name: str = "facebook/flava-full", device: str = "auto", dtype: str = "fp32", offline: bool = False):
    """A FLAVA adapter from a hub id, a local ``save_pretrained`` folder, or ``"demo"``."""
    from .models.flava import FlavaAdapter

    return FlavaAdapter.load(name, device=device, dtype=dtype, offline=offline)


@dataclass
class Explanation:
    image: "object"  # PIL.Image, RGB
    caption: str
    score: float  # cosine of projected image CLS and text CLS
    itm: float | None  # ITM logit (match minus mismatch), when the model has the head
    words: list[str]  # caption words, word-pieces merged, punctuation included
    maps: dict[str, np.ndarray]  # method -> [gh, gw] caption-level map in [0, 1]
    word_maps: dict[str, np.ndarray]  # word -> [gh, gw] (DEFAULT_WORD_METHOD; first occurrence)
    method_word_maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> [W, gh, gw]
    phrase_maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> phrase -> map
    tokens: list[str] = field(default_factory=list)

    def show(self, method: str = "gradcam", word: str | None = None):
        """A matplotlib figure: original | heatmap | overlay, as on the site."""
        import matplotlib.pyplot as plt

        from .artifacts import overlay

        m = self.word_maps[word] if word is not None else self.maps[method]
        heat, over = overlay(self.image, m)
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
        for ax, img, title in zip(axes, (self.image, heat, over), ("original", "heatmap", "overlay")):
            ax.imshow(img)
            ax.set_title(title)
            ax.axis("off")
        fig.suptitle(f"{word or method}: {self.caption}", fontsize=10)
        fig.tight_layout()
        return fig


def explain(model, image, caption: str, methods: list[str] | None = None, phrases: list[str] | None = None,
            target: str = "contrastive") -> Explanation:
    """Explain one image-caption pair. ``image``: a path or a PIL image."""
    from .explainers import DEFAULT_METHODS, make_methods
    from .explainers.suite import Suite
    from .images import load_rgb
    from .records import locate_phrase

    img = load_rgb(Path(image)) if isinstance(image, (str, Path)) else image.convert("RGB")
    suite = Suite(make_methods(list(methods or DEFAULT_METHODS)), target)  # skips ITM methods without the head
    spans = [(p, locate_phrase(caption, p)) for p in (phrases or [])]
    result = suite.run(model, model.pixel_values([img]), caption, spans)
    words = [w.text for w in result.words]
    word_method = DEFAULT_WORD_METHOD if DEFAULT_WORD_METHOD in result.maps else next(
        (n for n, mm in result.maps.items() if mm.words is not None), None)
    word_maps = {}
    if word_method:
        for w, m in zip(words, result.maps[word_method].words):
            word_maps.setdefault(w, m)
    return Explanation(
        image=img, caption=caption, score=result.score, itm=result.itm, words=words,
        maps={n: mm.caption for n, mm in result.maps.items()}, word_maps=word_maps,
        method_word_maps={n: mm.words for n, mm in result.maps.items() if mm.words is not None},
        phrase_maps={n: dict(zip(phrases or [], mm.phrases)) for n, mm in result.maps.items() if mm.phrases is not None},
        tokens=result.tokens,
    )
