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

from .. import atomic
from ..errors import UserError
from ..report import entry_files, load_manifest, read_maps
from .paths import templates_dir

PAGE_SIZE = 48


def _b64(m: np.ndarray) -> str:
    q = np.clip(np.nan_to_num(np.asarray(m, dtype=np.float32)) * 255 + 0.5, 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def _script_json(obj) -> str:
    """JSON safe to inline in <script type="application/json"> (no '</script>' can close it)."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import io

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    atomic.write_text(path, buf.getvalue())


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
        summary = manifest.get("summary")
        if summary:
            _method_chart(summary, methods, stage / "assets" / "methods.svg")
        common = {"manifest": manifest, "methods": methods, "colours": colours, "summary": summary}
        pair_tpl = env.get_template("pair.html")
        for i, entry in enumerate(pairs):
            for rel in entry_files(entry, with_maps=False):
                _copy(report, stage, rel)
            data = _pair_data(report, entry, methods)
            data.update({"words": entry["words"], "phrases": entry["phrases"], "width": entry["width"],
                         "height": entry["height"], "overlays": entry["overlays"], "lut": lut_b64})
            html = pair_tpl.render(
                **common, pair=entry, data=data, index=i, total=len(pairs),
                prev_id=pairs[i - 1]["id"] if i > 0 else None,
                next_id=pairs[i + 1]["id"] if i + 1 < len(pairs) else None)
            (stage / "pairs" / f"{entry['id']}.html").write_text(html, encoding="utf-8")
        index_html = env.get_template("index.html").render(**common, pairs=pairs, page_size=PAGE_SIZE)
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
