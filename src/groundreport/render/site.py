"""Render report/ into a static site. Reads only report/ and templates/; never loads a model.

The new site is built in a sibling folder and swapped in with renames, so a browser (or a
crash) never sees half a site. Every link is relative; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import gc
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..metrics.summary import below_chance
from ..report import load_manifest, read_maps
from . import faithfulness
from .charts import pyplot, save_svg
from .paths import templates_dir

PAGE_SIZE = 48         # cards on one page of the gallery
CARDS_PER_FILE = 250   # cards in one data/cards-NNNN.js file
PAIRS_PER_TASK = 200   # pair pages one worker process renders per task
BIG_SITE = 2000        # pair pages from which an old site is removed in the background
# Without a summary (no boxes to score against) methods are tried in this order; names not
# listed follow in manifest order. Caption-blind methods always come last, whatever they score:
# they cannot say anything about a caption.
DEFAULT_ORDER = ("relevancy", "gradcam", "occlusion", "mm-masked", "mm-relevancy", "mm-gradcam", "mm-attention",
                 "attention", "rollout")
MIN_SIDE = 120   # px: the shorter side of the pair page's main view, so 2000x60 stays readable


def _quantize(a: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, NaN as 0."""
    q = np.asarray(a, dtype=np.float32) * 255 + 0.5
    np.nan_to_num(q, copy=False)
    return np.clip(q, 0, 255, out=q).astype(np.uint8)


def _b64(q: np.ndarray) -> str:
    return binascii.b2a_base64(q.tobytes(), newline=False).decode("ascii")


def _b64_each(q: np.ndarray) -> list[str]:
    """One base64 string per map of a stack (the stack's bytes taken once)."""
    raw, size = q.tobytes(), q[0].size if len(q) else 0
    return [binascii.b2a_base64(raw[k * size:(k + 1) * size], newline=False).decode("ascii") for k in range(len(q))]


def _script_json(obj) -> str:
    """JSON safe to inline in <script type="application/json"> (no '</script>' can close it)."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _js_call(function: str, *args) -> str:
    """A data file the gallery loads with a <script> tag (file:// forbids fetching JSON):
    ``window.<function>(<json>, ...);``, safe against any caption text."""
    body = ",".join(_script_json(a).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") for a in args)
    return f"window.{function}({body});\n"


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


def _site_media(rel: str) -> str:
    """Where a report file lies under site/media/: images/ as in the report, a pair's own files
    side by side in cards/ (one folder: a folder per pair cost seconds at 20,000 pairs)."""
    parts = rel.split("/")
    return f"cards/{parts[1]}_{parts[2]}" if parts[0] == "pairs" and len(parts) == 3 else rel


def _card(entry: dict, ranked: list[str]) -> dict:
    """What an index card shows (a record of data/cards-NNNN.js): the caption map of the best
    method this pair has, or none where that map is flat (a darkened photo would look like a
    finding), and the plain thumbnail. Caption and score live in the search index."""
    best = next((n for n in ranked if n in entry["overlays"]), None)
    flat = bool(best and _flat(entry).get(best, {}).get("caption"))
    return {"id": entry["id"], "image_id": entry["image_id"], "w": entry["width"], "h": entry["height"],
            "thumb": _site_media(entry["thumb"]), "method": best, "flat": flat,
            "map": _site_media(entry["overlays"][best]["overlay"]) if best and not flat else None,
            "phrases": len(entry["phrases"]), "warnings": entry.get("warnings") or [], "flag": score_flag(entry["score"])}


def _pointing(entry: dict, method: str) -> tuple[int, int]:
    """(hits, scored) of one method's pointing game over a pair's boxed phrases (a flat map
    is a miss, as in the summary)."""
    scores = [ph["scores"][method] for ph in entry["phrases"] if method in (ph.get("scores") or {})]
    return sum(bool(s["pointing"]) for s in scores), len(scores)


def _search_index(pairs: list[dict], methods: list[dict], ranked: list[str]) -> dict:
    """data/search.js: what the gallery searches, sorts and filters all pairs by, one column
    per field (captions, scores, and per method the phrases hit and scored)."""
    pointing = {}
    for name in ranked:
        hits, scored = zip(*(_pointing(e, name) for e in pairs)) if pairs else ((), ())
        if any(scored):
            pointing[name] = {"hits": list(hits), "scored": list(scored)}
    return {"total": len(pairs), "per_file": CARDS_PER_FILE,
            "labels": {m["name"]: m["label"] for m in methods},
            "captions": [e["caption"] for e in pairs], "scores": [e["score"] for e in pairs],
            "pointing": pointing}


def _write_gallery_data(stage: Path, pairs: list[dict], cards: list[dict], search: dict) -> tuple[int, int]:
    """data/search.js and data/cards-NNNN.js (CARDS_PER_FILE cards each, in sample order).
    Returns (files, bytes)."""
    (stage / "data").mkdir()
    texts = [_js_call("GR_SEARCH", search)]
    for k in range(0, len(cards), CARDS_PER_FILE):
        texts.append(_js_call("GR_PAGE", k // CARDS_PER_FILE, cards[k:k + CARDS_PER_FILE]))
    names = ["search.js"] + [f"cards-{k:04d}.js" for k in range(len(texts) - 1)]
    size = 0
    for name, text in zip(names, texts):
        data = text.encode("utf-8")
        (stage / "data" / name).write_bytes(data)
        size += len(data)
    return len(texts) - 1, size


def score_flag(score: float) -> str | None:
    """A word for an alignment score that should not pass unremarked."""
    return "negative" if score < 0 else None


def _frame(width: int, height: int) -> dict:
    """CSS variables for a map view of this image: its aspect ratio, and the least width that
    keeps the shorter side at MIN_SIDE px (the view scrolls beyond that)."""
    ar = width / max(height, 1)
    return {"ar": round(ar, 5), "minw": round(MIN_SIDE * max(ar, 1.0)), "extreme": not 1 / 3 <= ar <= 3,
            "min_side": MIN_SIDE}

# levels of a pair's maps that its own page draws; a column of another model's maps on that page
# (the comparison panel) needs only the selectable ones, not the per-layer and per-head views
LEVELS = ("words", "phrases", "layers", "heads")
COLUMN_LEVELS = ("words", "phrases")


def _pair_data(report: Path, entry: dict, methods: list[dict], levels: tuple[str, ...] = LEVELS) -> dict:
    """A pair's maps as the page embeds them: ``{grid, maps: {method: {caption: b64,
    words|phrases|layers: [b64], heads: [[b64]]}}}``, each map quantised to bytes (pair.js
    decodes them), only the ``levels`` asked for."""
    keys = {m["name"]: {lv: k for lv, k in entry["maps"]["keys"][m["name"]].items() if lv == "caption" or lv in levels}
            for m in methods if entry["maps"]["keys"].get(m["name"])}
    wanted = {k for ks in keys.values() for k in ks.values()}
    arrays, q = {k: a for k, a in read_maps(report, entry).items() if k in wanted}, {}
    if arrays:  # quantized together: per array, numpy's call overhead was most of the cost
        flat = _quantize(np.concatenate([a.ravel() for a in arrays.values()]))
        ends = np.cumsum([a.size for a in arrays.values()]).tolist()
        q = {k: flat[e - a.size:e].reshape(a.shape) for (k, a), e in zip(arrays.items(), ends)}
    out = {}
    for name, ks in keys.items():
        d = {"caption": _b64(q[ks["caption"]])}
        for level in ("words", "phrases", "layers"):
            if level in ks:
                d[level] = _b64_each(q[ks[level]])
        if "heads" in ks:
            d["heads"] = [_b64_each(layer) for layer in q[ks["heads"]]]
        out[name] = d
    grid = list(arrays[next(iter(arrays))].shape[-2:]) if arrays else [1, 1]
    return {"grid": grid, "maps": out}


def _region(entry: dict) -> list[float]:
    """The part of the image the patch grid covers (a centre crop: less than all of it), as
    fractions of its width and height; reports from before regions cover it all."""
    x0, y0, x1, y1 = entry["maps"].get("region") or (0, 0, entry["width"], entry["height"])
    w, h = max(entry["width"], 1), max(entry["height"], 1)
    return [round(x0 / w, 5), round(y0 / h, 5), round(x1 / w, 5), round(y1 / h, 5)]


# -- other models' maps of the same image and caption (the pair page's comparison panel) ------
def model_siblings(pairs: list[dict]) -> list[list[int]]:
    """Per pair, the pairs of the other models on the same image and caption text: indexes into
    ``pairs``, one per other model, in the order the models first appear (the manifest's).
    The image is its display file, named by the image's hash, so a copy of an image elsewhere
    matches too; of two pairs of one model (a caption sampled twice) the same caption index wins."""
    groups: dict[tuple, list[int]] = {}
    for i, e in enumerate(pairs):
        groups.setdefault((e["image"], e["caption"]), []).append(i)
    order = {m: k for k, m in enumerate(dict.fromkeys(e.get("model") for e in pairs))}
    out = []
    for e in pairs:
        best: dict = {}
        for j in groups[(e["image"], e["caption"])]:
            o, m = pairs[j], pairs[j].get("model")
            if m == e.get("model"):
                continue
            if m not in best or (o.get("caption_index") == e.get("caption_index") != pairs[best[m]].get("caption_index")):
                best[m] = j
        out.append(sorted(best.values(), key=lambda j: order[pairs[j].get("model")]))
    return out


def match_words(words: list[dict], other: list[dict]) -> list[int | None]:
    """For each of ``words``, the index of the word of ``other`` (the same caption, another
    model's words) with the same character span, or None. Tokenizers split a caption
    differently (CLIP reads "42" as two words and "dog's" as "dog" "'s", BERT as "42" and
    "dog" "'" "s"), so a word's index differs between models; only its span names it."""
    at = {tuple(w["span"]): k for k, w in enumerate(other)}
    return [at.get(tuple(w["span"])) for w in words]


def _skipped(entry: dict) -> dict[str, str]:
    """{method: why the model could not run it}, from the pair's notes ("<name>: skipped, <why>")."""
    out = {}
    for note in entry.get("notes") or []:
        name, sep, why = note.partition(": skipped, ")
        if sep:
            out[name] = why
    return out


def _model_meta(manifest: dict) -> dict[str, dict]:
    """{model id: {id, family, class}} for every model of the report."""
    models = manifest.get("models") or [manifest["model"]]
    return {m["id"]: {"id": m["id"], "family": m.get("family", ""), "class": m.get("class", "")} for m in models}


def _column(report: Path, entry: dict, other: dict, methods: list[dict], meta: dict) -> dict:
    """What the comparison panel of ``entry``'s page needs of ``other`` (another model's pair of
    the same image and caption) to draw its map of any selection: its caption, word and phrase
    maps (no layers or heads), the page's words matched to its words by span, its pointing
    scores, and why it lacks a method."""
    data = _pair_data(report, other, methods, COLUMN_LEVELS)
    word_of = match_words(entry["words"], other["words"])
    # an unmatched word: the other model's words over the same characters, to say how it split them
    reads = {i: [o["text"] for o in other["words"] if o["span"][0] < w["span"][1] and w["span"][0] < o["span"][1]]
             for i, (w, k) in enumerate(zip(entry["words"], word_of)) if k is None and not w["punct"]}
    score_keys = ("pointing", "point", "box")

    def slim(scores):
        return {m: {k: s[k] for k in score_keys} for m, s in (scores or {}).items() if m in data["maps"]}

    return {**meta.get(other.get("model"), {"id": other.get("model"), "family": "", "class": ""}),
            "pair": other["id"], "score": other["score"], "truncated": bool(other.get("truncated")),
            "grid": data["grid"], "region": _region(other), "maps": data["maps"], "flat": _flat(other),
            "word_of": word_of, "reads": reads,
            "unknown": [k for k, w in enumerate(other["words"]) if w.get("unknown")],
            "phrases": [{"boxes": ph["boxes"], "scores": slim(ph.get("scores")),
                         "words": [{"index": w["index"], "scores": slim(w.get("scores"))} for w in ph.get("words") or []]}
                        for ph in other["phrases"]],
            "missing": {m["name"]: _skipped(other).get(m["name"], "not computed in this report")
                        for m in methods if m["name"] not in data["maps"]}}


class _Media:
    """Puts report files into site/media/: a hard link where the file system allows (20,000
    copies cost seconds; a link costs an inode), else a copy. Both stay valid when the report
    is rebuilt, since report files are replaced by rename, never rewritten in place."""

    def __init__(self, report: Path, site: Path):
        self.report, self.media, self.link, self.dirs = report, site / "media", True, set()

    def put(self, rel: str) -> None:
        src, dst = self.report / rel, self.media / _site_media(rel)
        if dst.parent not in self.dirs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            self.dirs.add(dst.parent)
        if self.link:
            try:
                os.link(src, dst)
                return
            except (FileNotFoundError, FileExistsError):
                raise
            except OSError:  # another device, or no links here: copy from now on
                self.link = False
        shutil.copyfile(src, dst)


def _scoring(summary: dict | None, methods: list[dict]) -> dict:
    """How pages rank methods by ``summary`` (a model's; None where nothing has boxes)."""
    # a word's map is judged by how words point (summary.words), a caption's or phrase's by phrases
    return {"summary": summary, "ranked": rank_methods(methods, summary),
            "word_ranked": rank_methods(methods, (summary or {}).get("words") or summary)}


def _score_tables(manifest: dict, summary: dict | None, meta: dict[str, dict]) -> list[dict]:
    """The index's score tables: one, of the report's summary, for one model; one per model
    that has scores when the report holds several. Each ``{model (None for one), summary,
    pairs (that model's), chart (file name under assets/)}``."""
    models = manifest.get("models") or []
    if len(models) < 2:
        return [{"model": None, "summary": summary, "pairs": len(manifest["pairs"]), "chart": "methods.svg",
                 "below": below_chance(summary)}] if summary else []
    counts: dict = {}
    for e in manifest["pairs"]:
        counts[e.get("model")] = counts.get(e.get("model"), 0) + 1
    out = []
    for k, m in enumerate(models):
        s = summary if k == 0 else m.get("summary")  # the first model's is the report's summary
        if (s or {}).get("methods"):
            out.append({"model": meta[m["id"]], "summary": s, "pairs": counts.get(m["id"], 0),
                        "chart": "methods.svg" if k == 0 else f"methods-{k}.svg", "below": below_chance(s)})
    return out


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


# What every pair page needs, set by render() before the pages are made; worker processes,
# forked, inherit it instead of receiving a pickled copy of a manifest of 20,000 pairs.
_JOB: dict = {}


def _pair_page(i: int) -> int:
    """Write pair ``i``'s page (from _JOB); returns its size in bytes."""
    job = _JOB
    pairs, entry = job["pairs"], job["pairs"][i]
    # methods ranked and scored by this pair's model's summary (in a report of several models,
    # another model's scores would say nothing about these maps)
    sc = job["scoring"].get(entry.get("model")) or job["scoring"][None]
    ranked, word_ranked = sc["ranked"], sc["word_ranked"]
    data = _pair_data(job["report"], entry, job["methods"])
    data.update({"words": entry["words"], "phrases": entry["phrases"], "width": entry["width"],
                 "height": entry["height"], "lut": job["lut"], "flat": _flat(entry), "region": _region(entry),
                 "unseen": job["unseen"],
                 "order": {"caption": [n for n in ranked if n in data["maps"]],
                           "phrases": [n for n in ranked if n in data["maps"]],
                           "words": [n for n in word_ranked if n in data["maps"]]},
                 "scored": bool(sc["summary"]), "labels": job["labels"]})
    checks = faithfulness.pair_view(entry, list(data["maps"]), job["itm"])
    if checks:
        data["checks"] = checks
    model = job["meta"].get(entry.get("model"))
    if job["siblings"][i]:  # other models explained this image and caption: the comparison panel
        own = [m for m in job["methods"] if m["name"] in data["maps"]]
        data["model"] = dict(model or {"id": entry.get("model"), "family": "", "class": ""}, pair=entry["id"],
                             score=entry["score"])
        data["columns"] = [_column(job["report"], entry, pairs[j], own, job["meta"]) for j in job["siblings"][i]]
    html = job["template"].render(
        **dict(job["common"], summary=sc["summary"], scored=bool(sc["summary"]),
               ranked=[job["by_name"][n] for n in ranked]), pair=entry, data=data, index=i, total=len(pairs), frame=_frame(entry["width"], entry["height"]),
        model=model if job["several"] else None,
        warnings=entry.get("warnings") or [],
        prev_id=pairs[i - 1]["id"] if i > 0 else None,
        next_id=pairs[i + 1]["id"] if i + 1 < len(pairs) else None).encode("utf-8")
    (job["stage"] / "pairs" / f"{entry['id']}.html").write_bytes(html)
    return len(html)


def _pair_span(span: tuple[int, int]) -> int:
    """Pages of pairs start..stop-1; returns the largest one's bytes."""
    return max((_pair_page(i) for i in range(*span)), default=0)


def _workers(n_pairs: int) -> int:
    """Processes for the pair pages: one per usable core, forked (Linux) so that they share the
    manifest; 1 (this process alone) for a small report, or where a fork is unsafe: other
    threads running (a lock held by one would stay held in the child), or not Linux."""
    if sys.platform != "linux" or threading.active_count() > 1:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), n_pairs // PAIRS_PER_TASK))


def render(report: Path, site: Path) -> dict:
    """Render ``report`` into ``site`` (replaced atomically). Returns timing and size facts."""
    import jinja2

    from ..colormap import lut
    from ..overlays import UNSEEN_DIM, UNSEEN_GREY

    t0 = time.perf_counter()
    report, site = Path(report), Path(site)
    manifest = load_manifest(report)
    tdir = templates_dir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tdir)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson_script"] = _script_json
    site.parent.mkdir(parents=True, exist_ok=True)
    stage = site.parent / f".{site.name}.building"
    # a crash's leftovers, or old sites whose removal was cut short
    for leftover in (stage, *site.parent.glob(f".{site.name}.old*"), *site.parent.glob(f"{stage.name}.trash-*")):
        _discard(leftover)
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
        scoring = {None: _scoring(summary, methods)}  # the report's, which is its first model's
        ranked = scoring[None]["ranked"]
        by_name = {m["name"]: m for m in methods}
        meta = _model_meta(manifest)
        common = {"manifest": manifest, "methods": methods, "colours": colours, "summary": summary,
                  "ranked": [by_name[n] for n in ranked], "scored": bool(summary), "score_flag": score_flag,
                  "models_label": " + ".join(meta)}
        score_tables = _score_tables(manifest, summary, meta)
        if len(meta) > 1:
            scored_by = {t["model"]["id"]: t["summary"] for t in score_tables}
            scoring.update({m: _scoring(scored_by.get(m), methods) for m in meta})
        _JOB.update(report=report, stage=stage, pairs=pairs, methods=methods, scoring=scoring, by_name=by_name,
                    lut=lut_b64, labels={m["name"]: m["label"] for m in methods},
                    itm=[m["name"] for m in methods if m.get("target") == "itm"],
                    siblings=model_siblings(pairs), meta=meta, several=len(meta) > 1,
                    unseen={"grey": UNSEEN_GREY, "dim": UNSEEN_DIM},
                    common=common, template=env.get_template("pair.html"))
        spans = [(k, min(k + PAIRS_PER_TASK, len(pairs))) for k in range(0, len(pairs), PAIRS_PER_TASK)]
        workers = _workers(len(pairs))
        # the manifest's million objects out of the collector's reach: no full collection walks
        # them here, nor touches (and so copies) the pages the workers share with this process
        gc.freeze()
        stages = {"manifest and setup": time.perf_counter() - t0}
        with multiprocessing.get_context("fork").Pool(workers) if workers > 1 else _NoPool() as pool:
            largest = pool.imap_unordered(_pair_span, spans)  # pair pages, in the workers ...
            # ... while this process draws the chart, links the media, writes the gallery's data and index
            for table in score_tables:
                _method_chart(table["summary"], methods, stage / "assets" / table["chart"])
            cards = [_card(p, ranked) for p in pairs]
            media, seen = _Media(report, stage), set()
            for entry, card in zip(pairs, cards):
                # pair pages draw their maps from inlined arrays; only cards use an overlay image
                overlay = [entry["overlays"][card["method"]]["overlay"]] if card["map"] else []
                for rel in [entry["image"], entry["thumb"], *overlay]:
                    if rel not in seen:
                        seen.add(rel)
                        media.put(rel)
            search = _search_index(pairs, methods, ranked)
            files, data_bytes = _write_gallery_data(stage, pairs, cards, search)
            gallery = {"per_view": PAGE_SIZE, "per_file": CARDS_PER_FILE, "files": files,
                       "maps": any(c["map"] for c in cards),
                       "hit_methods": [by_name[n] for n in search["pointing"]]}
            faith = faithfulness.index_view(full_summary, methods, stage / "assets")
            index_html = env.get_template("index.html").render(**common, pairs=pairs, gallery=gallery,
                                                               faith=faith, score_tables=score_tables).encode("utf-8")
            (stage / "index.html").write_bytes(index_html)
            stages["chart, media, gallery data, index"] = time.perf_counter() - t0 - sum(stages.values())
            largest = max(largest, default=0)
            stages["pair pages (waited for)"] = time.perf_counter() - t0 - sum(stages.values())
    except FileNotFoundError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise UserError(f"{report} is incomplete ({Path(e.filename or '?').name} is missing); "
                        "rerun 'groundreport build' to redo it") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        _JOB.clear()
        gc.unfreeze()

    # swap: old site aside, new site in, old site gone
    old = site.parent / f".{site.name}.old"
    if site.exists():
        site.rename(old)
    stage.rename(site)
    _discard(old)
    stages["swap"] = time.perf_counter() - t0 - sum(stages.values())
    return {"pairs": len(pairs), "seconds": time.perf_counter() - t0, "workers": workers,
            "largest_pair_page_bytes": largest, "index_bytes": len(index_html),
            "card_pages": files, "card_data_bytes": data_bytes, "stages": stages}


def _discard(path: Path) -> None:
    """Remove a folder of this renderer's: here and now when small; when it holds a large
    site (unlinking 20,000 pages took a minute on a busy disk) it is renamed aside and removed
    by a detached process, so that render returns as soon as the new site is in place."""
    if not path.exists():
        return
    try:
        with os.scandir(path / "pairs") as it:
            big = sum(1 for _ in itertools.islice(it, BIG_SITE)) == BIG_SITE
    except OSError:
        big = False
    if not big:
        shutil.rmtree(path, ignore_errors=True)
        return
    trash = path.with_name(f"{path.name}.trash-{os.getpid()}-{time.time_ns()}")
    path.rename(trash)
    subprocess.Popen([sys.executable, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)",
                      str(trash)], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _NoPool:
    """The pool's interface, run here and now (one worker)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap_unordered(fn, items):
        return map(fn, items)
