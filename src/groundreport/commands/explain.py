"""``groundreport explain``: one image-caption pair into a folder of arrays and figures.

out/maps.npz      "<method>/caption" [gh, gw], "<method>/words" [W, gh, gw], "<method>/phrases" [K, gh, gw]
out/<method>/caption.png, phrase-<slug>.png, word-<i>-<slug>.png   figures with a title and colour bar
out/index.json    every figure: method, level, text, npz key and row
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import BadInput, UserError


def _figures(ex) -> list[dict]:
    """One record per map to draw: the caption map of every method, every phrase, every word."""
    from ..figures import slug

    items = []
    for method in ex.maps:
        items.append({"method": method, "level": "caption", "text": ex.caption, "array": f"{method}/caption",
                      "row": None, "image": f"{method}/caption.png"})
        for k, phrase in enumerate(ex.phrase_maps.get(method, {})):
            items.append({"method": method, "level": "phrase", "text": phrase, "array": f"{method}/phrases",
                          "row": k, "image": f"{method}/phrase-{k:02d}-{slug(phrase)}.png"})
        if method in ex.method_word_maps:
            for i, word in enumerate(ex.words):
                items.append({"method": method, "level": "word", "text": word, "array": f"{method}/words",
                              "row": i, "image": f"{method}/word-{i:02d}-{slug(word)}.png"})
    return items


def run(image: Path, caption: str, out: Path, model: str, phrases: list[str], offline: bool, device: str,
        dtype: str, methods: list[str], target: str, shifts: int = 4, smooth: bool = True) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import atomic
    from ..api import explain, load_model
    from ..explainers import make_methods
    from ..explainers.shifts import problem
    from ..explainers.targets import get_target
    from ..figures import map_figure

    if not caption.strip():
        raise UserError("the caption is empty")
    make_methods(methods)  # one-line errors before the model loads
    get_target(target)
    if problem(shifts, "--shifts"):
        raise UserError(problem(shifts, "--shifts"))
    m = load_model(model, device=device, dtype=dtype, offline=offline)
    try:
        ex = explain(m, image, caption, methods=methods, phrases=phrases, target=target, shifts=shifts,
                     smooth=smooth)
    except BadInput as e:
        raise UserError(f"{image}: {e}") from None
    for w in ex.warnings:
        typer.echo(f"warning: {w}", err=True)
    arrays = {f"{k}/caption": v for k, v in ex.maps.items()}
    arrays.update({f"{k}/words": v for k, v in ex.method_word_maps.items()})
    arrays.update({f"{k}/phrases": np.stack(list(v.values())) for k, v in ex.phrase_maps.items() if v})
    atomic.write_npz(out / "maps.npz", arrays)
    items = _figures(ex)
    for it in items:
        mp = arrays[it["array"]] if it["row"] is None else arrays[it["array"]][it["row"]]
        fig = map_figure(ex.image, mp, f"{it['method']}, {it['level']} \u201c{it['text']}\u201d",
                         flat=bool(mp.max() <= 0), region=ex.region)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        atomic.write_bytes(out / it["image"], buf.getvalue())
        it["flat"] = bool(mp.max() <= 0)
    atomic.write_json(out / "index.json", {"caption": caption, "score": ex.score, "itm": ex.itm, "words": ex.words,
                                           "unknown_words": ex.unknown_words, "warnings": ex.warnings,
                                           "region": list(ex.region) if ex.region else None,
                                           "arrays": "maps.npz", "maps": items})
    typer.echo(f"score {ex.score:.4f}" + (f", ITM logit {ex.itm:.3f}" if ex.itm is not None else ""))
    typer.echo("words: " + " | ".join(w + (" [unknown]" if w in ex.unknown_words else "") for w in ex.words))
    typer.echo(f"wrote {len(arrays)} arrays and {len(items)} figures to {out} (index.json lists them)")
