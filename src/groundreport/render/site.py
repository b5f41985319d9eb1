"""Render report/ into a static site. Reads only report/ and templates/; never loads a model.

The new site is built in a sibling folder and swapped in with renames, so a browser (or a
crash) never sees half a site. Every link is relative; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..report import load_manifest, read_maps
from . import faithfulness
from .charts import pyplot, save_svg
from .paths import templates_dir

PAGE_SIZE = 48
# Without a summary (no boxes to score against) methods are tried in this order; names not
# listed follow in manifest order. Caption-blind methods always come last, whatever they score:
# they cannot say anything about a caption.
DEFAULT_ORDER = ("relevancy", "gradcam", "occlusion", "mm-relevancy", "mm-gradcam", "mm-attention",
                 "attention", "rollout")
MIN_SIDE = 120   # px: the shorter side of the pair page's main view, so 2000x60 stays readable


def _b64(m: np.ndarray) -> str:
    q = np.clip(np.nan_to_num(np.asarray(m, dtype=np.float32)) * 255 + 0.5, 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def _script_json(obj) -> str:
    """JSON safe to inline in <script type="application/json"> (no '</script>' can close it)."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def rank_methods(methods: list[dict], table: dict | None) -> list[str]:
    """Method names, best first: by pointing accuracy in ``table`` (a summary's phrase table,
    or its word table) where it has one, else DEFAULT_ORDER; caption-blind methods last."""
    scores = (table or {}).get("methods", {})

    def key(pos_m):
        pos, m = pos_m
        p = scores.get(m["name"], {}).get("pointing")
        scored = isinstance(p, (int, float)) and p == p
        fixed = DEFAULT_ORDER.index(m["name"]) if m["name"] in DEFAULT_ORDER else len(DEFAULT_ORDER) + pos
        return (bool(m.get("caption_blind")), not scored, -p if scored else 0.0, fixed)

    return [m["name"] for _, m in sorted(enumerate(methods), key=key)]


def _flat(entry: dict) -> dict:
    """{method: {caption: bool, words: [bool], phrases: [bool]}}; reports from before the
    flat marks have none, read as 'not flat'."""
    return entry["maps"].get("flat") or {}


def _card(entry: dict, ranked: list[str], labels: dict[str, str]) -> dict:
    """What an index card shows: the caption map of the best method this pair has (the plain
    image where that map is flat: a darkened photo would look like a finding)."""
    best = next((n for n in ranked if n in entry["overlays"]), None)
    flat = bool(best and _flat(entry).get(best, {}).get("caption"))
    return {"method": best, "label": labels.get(best, best), "flat": flat,
            "src": entry["overlays"][best]["overlay"] if best and not flat else entry["thumb"]}


def score_flag(score: float) -> str | None:
    """A word for an alignment score that should not pass unremarked."""
    return "negative" if score < 0 else None


def _frame(width: int, height: int) -> dict:
    """CSS variables for a map view of this image: its aspect ratio, and the least width that
    keeps the shorter side at MIN_SIDE px (the view scrolls beyond that)."""
    ar = width / max(height, 1)
    return {"ar": round(ar, 5), "minw": round(MIN_SIDE * max(ar, 1.0)), "extreme": not 1 / 3 <= ar <= 3,
            "min_side": MIN_SIDE}

def _pair_data(report: Path, entry: dict, methods: list[dict]) -> dict:
    arrays = read_maps(report, entry)
    out = {}
    for m in methods:
        keys = entry["maps"]["keys"].get(m["name"])
        if not keys:
            continue
        d = {"caption": _b64(arrays[keys["caption"]])}
        for level in ("words", "phrases", "layers"):
            if level in keys:
                d[level] = [_b64(a) for a in arrays[keys[level]]]
        if "heads" in keys:
            d["heads"] = [[_b64(h) for h in layer] for layer in arrays[keys["heads"]]]
        out[m["name"]] = d
    grid = list(arrays[next(iter(arrays))].shape[-2:]) if arrays else [1, 1]
    return {"grid": grid, "maps": out}


def _copy(report: Path, site: Path, rel: str) -> None:
    dst = site / "media" / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        shutil.copyfile(report / rel, dst)


def _method_chart(summary: dict, methods: list[dict], path: Path) -> None:
    plt = pyplot()
    names = [m["name"] for m in methods if m["name"] in summary["methods"]]
    labels = [m["label"] for m in methods if m["name"] in summary["methods"]]
    vals = [summary["methods"][n]["pointing"] for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.3), dpi=100)
    y = np.arange(len(names))[::-1]
    ax.barh(y, vals, color="#e8743b", height=0.6)
    for value, yy in zip(vals, y):
        ax.text(value + 0.01, yy, f"{value:.2f}", va="center", fontsize=9)
    styles = {"random_object": ("random object", "--"), "centre": ("image centre", ":"),
              "random_point": ("random point", "-.")}
    for key, (label, ls) in styles.items():
        if key in summary["baselines"]:
            ax.axvline(summary["baselines"][key], color="#444", ls=ls, lw=1, label=f"{label} {summary['baselines'][key]:.2f}")
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("pointing game accuracy")
    # above the bars, so that no bar's value label can run into it
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    save_svg(fig, path)


def render(report: Path, site: Path) -> dict:
    """Render ``report`` into ``site`` (replaced atomically). Returns timing and size facts."""
    import jinja2

    from ..colormap import lut

    t0 = time.perf_counter()
    report, site = Path(report), Path(site)
    manifest = load_manifest(report)
    tdir = templates_dir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tdir)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson_script"] = _script_json
    site.parent.mkdir(parents=True, exist_ok=True)
    stage = site.parent / f".{site.name}.building"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "assets").mkdir(parents=True)
    (stage / "pairs").mkdir()
    for f in (tdir / "static").iterdir():
        shutil.copyfile(f, stage / "assets" / f.name)
    (stage / ".nojekyll").write_text("")

    try:
        pairs = manifest["pairs"]
        methods = manifest["methods"]
        colours = ["#%02x%02x%02x" % tuple(c) for c in lut()[::32].tolist()] + ["#%02x%02x%02x" % tuple(lut()[-1])]
        lut_b64 = base64.b64encode(lut().tobytes()).decode("ascii")
        full_summary = manifest.get("summary")
        # --faithfulness writes a summary even where no pair has boxes: grounding scores need "methods"
        summary = full_summary if (full_summary or {}).get("methods") else None
        if summary:
            _method_chart(summary, methods, stage / "assets" / "methods.svg")
        ranked = rank_methods(methods, summary)
        # a word's map is judged by how words point (summary.words), a caption's or phrase's by phrases
        word_ranked = rank_methods(methods, (summary or {}).get("words") or summary)
        by_name = {m["name"]: m for m in methods}
        common = {"manifest": manifest, "methods": methods, "colours": colours, "summary": summary,
                  "ranked": [by_name[n] for n in ranked], "scored": bool(summary), "score_flag": score_flag}
        pair_tpl = env.get_template("pair.html")
        cards = [_card(p, ranked, {m["name"]: m["label"] for m in methods}) for p in pairs]
        for i, entry in enumerate(pairs):
            # the pair page draws its maps from the inlined arrays; only cards use an overlay image
            for rel in {entry["image"], entry["thumb"], cards[i]["src"]}:
                _copy(report, stage, rel)
            data = _pair_data(report, entry, methods)
            checks = faithfulness.pair_view(entry, list(data["maps"]), [m["name"] for m in methods if m.get("target") == "itm"])
            if checks:
                data["checks"] = checks
            data.update({"words": entry["words"], "phrases": entry["phrases"], "width": entry["width"],
                         "height": entry["height"], "lut": lut_b64, "flat": _flat(entry),
                         "order": {"caption": [n for n in ranked if n in data["maps"]],
                                   "phrases": [n for n in ranked if n in data["maps"]],
                                   "words": [n for n in word_ranked if n in data["maps"]]},
                         "scored": bool(summary),
                         "labels": {m["name"]: m["label"] for m in methods}})
            html = pair_tpl.render(
                **common, pair=entry, data=data, index=i, total=len(pairs), frame=_frame(entry["width"], entry["height"]),
                warnings=entry.get("warnings") or [],
                prev_id=pairs[i - 1]["id"] if i > 0 else None,
                next_id=pairs[i + 1]["id"] if i + 1 < len(pairs) else None)
            (stage / "pairs" / f"{entry['id']}.html").write_text(html, encoding="utf-8")
        faith = faithfulness.index_view(full_summary, methods, stage / "assets")
        index_html = env.get_template("index.html").render(**common, pairs=pairs, cards=cards, page_size=PAGE_SIZE,
                                                           faith=faith)
        (stage / "index.html").write_text(index_html, encoding="utf-8")
    except FileNotFoundError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise UserError(f"{report} is incomplete ({Path(e.filename or '?').name} is missing); "
                        "rerun 'groundreport build' to redo it") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise

    # swap: old site aside, new site in, old site gone
    old = site.parent / f".{site.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if site.exists():
        site.rename(old)
    stage.rename(site)
    if old.exists():
        shutil.rmtree(old)
    sizes = [p.stat().st_size for p in (site / "pairs").glob("*.html")]
    return {"pairs": len(pairs), "seconds": time.perf_counter() - t0,
            "largest_pair_page_bytes": max(sizes) if sizes else 0}
