"""The gallery's faithfulness part: what the index page and a pair page show of ``--faithfulness``.

Reads only the manifest (``summary.faithfulness``, ``faithfulness_curves``, ``sanity``, ``checks``
and each entry's ``checks``; docs/report-schema.md). The index gets a table row per method and
two static SVG charts drawn here with matplotlib; a pair page gets the normalised curves of its
own maps, which pair.js draws for the selected map.
"""

from __future__ import annotations

import math
from pathlib import Path

from .charts import pyplot, save_svg

BASELINES = {"random": "Random map", "centre": "Centre map"}
# methods get these in manifest order (matplotlib's tab10 without its grey, kept for baselines)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"]
BASE_STYLE = {"random": ("#333333", (0, (5, 3))), "centre": ("#8a8a8a", (0, (2, 2)))}
PAIR_METHODS_BASELINE = "random"  # the pair page compares each map with this baseline's map of the same target


def _num(v):
    """A finite float, else None (JSON has no NaN)."""
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


# -- index page ------------------------------------------------------------------------------------
def index_view(summary: dict | None, methods: list[dict], assets: Path) -> dict | None:
    """The index's faithfulness section: table rows, the charts written into ``assets``, the
    settings it was run with. None when the report has no faithfulness results."""
    summary = summary or {}
    table, sanity = summary.get("faithfulness") or {}, summary.get("sanity") or {}
    if not table and not sanity:
        return None
    rows = []
    for m in methods:
        if m["name"] in table or m["name"] in sanity:
            rows.append(_row(m["name"], m["label"], table, sanity, base=False, itm=m.get("target") == "itm"))
    for name, label in BASELINES.items():
        if name in table:
            rows.append(_row(name, label, table, sanity, base=True, itm=False))
    colours = {m["name"]: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    labels = {m["name"]: m["label"] for m in methods} | BASELINES
    charts = {}
    curves = summary.get("faithfulness_curves") or {}
    if any((c or {}).get("deletion") for c in (curves.get("methods") or {}).values()):
        curves_chart(curves, labels, colours, assets / "faithfulness.svg")
        charts["curves"] = "assets/faithfulness.svg"
    if any((s or {}).get("randomisation") for s in sanity.values()):
        cascade_chart(sanity, labels, colours, assets / "randomisation.svg",
                      _num((summary.get("checks") or {}).get("randomisation_flag_above")))
        charts["cascade"] = "assets/randomisation.svg"
    return {"rows": rows, "charts": charts, "settings": summary.get("checks") or {},
            "itm": [m["label"] for m in methods if m.get("target") == "itm" and m["name"] in table]}


def _row(name, label, table, sanity, base: bool, itm: bool) -> dict:
    f, s = table.get(name) or {}, sanity.get(name) or {}
    r = s.get("randomisation") or []
    return {"name": name, "label": label, "base": base, "itm": itm,
            **{k: _num(f.get(k)) for k in ("deletion_auc", "insertion_auc", "drop", "increase")},
            "shuffle_r": _num(s.get("caption_shuffle_corr")), "caption_blind": s.get("caption_blind"),
            # the last depth: every stage randomised
            "randomised": _num(r[-1]) if r else None, "randomisation_flag": s.get("randomisation_flag")}


def _style(name: str, colours: dict) -> dict:
    if name in BASE_STYLE:
        colour, dash = BASE_STYLE[name]
        return {"color": colour, "linestyle": dash, "linewidth": 1.6}
    return {"color": colours.get(name, "#000"), "linestyle": "-", "linewidth": 1.6}


def curves_chart(curves: dict, labels: dict, colours: dict, path: Path) -> None:
    """Deletion and insertion side by side: the mean normalised curve of each method and baseline."""
    plt = pyplot()
    x = curves["fractions"]
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.6), dpi=100, sharey=False)
    shown = [(n, c) for n, c in curves["methods"].items() if c and c.get("deletion")]
    for ax, kind, title in zip(axes, ("deletion", "insertion"),
                               ("Deletion: hide patches, highest first (lower is better)",
                                "Insertion: reveal patches, highest first (higher is better)")):
        ax.axhline(1, color="#bbb", lw=0.8)
        ax.axhline(0, color="#bbb", lw=0.8)
        for name, c in shown:
            ax.plot(x, c[kind], label=labels.get(name, name), **_style(name, colours))
        ax.set_title(title, fontsize=9.5)
        ax.set_xlabel("fraction of patches " + ("hidden" if kind == "deletion" else "revealed"), fontsize=9)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_ylabel("score / full-image score", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=min(len(names), 3), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06 * math.ceil(len(names) / 3) + 0.02, 1, 1))
    save_svg(fig, path)


def depth_axis(sanity: dict) -> list[str]:
    """Every depth label of every method, in cascade order (each method's list is a run of this one)."""
    axis: list[str] = []
    for s in sanity.values():
        prev = -1
        for label in (s or {}).get("randomisation_depths") or []:
            if label in axis:
                prev = axis.index(label)
            else:
                prev += 1
                axis.insert(prev, label)
    return axis


def cascade_chart(sanity: dict, labels: dict, colours: dict, path: Path, flag: float | None) -> None:
    """Spearman with the original map after randomising the weights from the top down, per method;
    ``flag``: the value above which a method is flagged (a line), if known."""
    plt = pyplot()
    axis = depth_axis(sanity)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.axhline(0, color="#bbb", lw=0.8)
    for name, s in sanity.items():
        r, depths = (s or {}).get("randomisation"), (s or {}).get("randomisation_depths")
        if not r or not depths:
            continue
        ax.plot([axis.index(d) for d in depths], r, marker="o", ms=3.5, label=labels.get(name, name),
                **_style(name, colours))
    if flag is not None:
        ax.axhline(flag, color="#b91c1c", lw=1, ls=(0, (1, 2)), label=f"flagged above {flag:g}")
    ax.set_xticks(range(len(axis)), [d.replace("_block_", " block ").replace("mm ", "multimodal ") for d in axis],
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Spearman with the original map", fontsize=9)
    ax.set_xlabel("weights randomised down to (top first)", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    save_svg(fig, path)


# -- pair page -------------------------------------------------------------------------------------
def pair_view(entry: dict, names: list[str], itm: list[str]) -> dict | None:
    """What a pair page needs to draw the selected map's curves: for each method in ``names``
    with a record here, and the random baseline, per target (0 the caption, 1.. the phrases)
    the curves divided by the full-image score (None where that score is <= 0) and the AUCs.
    None when the pair has no faithfulness record."""
    rec = (entry.get("checks") or {}).get("faithfulness")
    if not rec:
        return None

    def r4(a):
        return [None if v is None else round(v, 4) for v in map(_num, a)]

    def per_full(rows, full):
        # MapFaithfulness.deletion_norm without importing torch into rendering (a test pins the two equal)
        return [r4([v / f if v is not None else None for v in row]) if _num(f) is not None and f > 0
                else [None] * len(row) for row, f in zip(rows, full)]

    out = {}
    for name in [*names, PAIR_METHODS_BASELINE]:
        d = rec["methods"].get(name)
        if d is None:
            continue
        out[name] = {"deletion": per_full(d["deletion"], d["full"]), "insertion": per_full(d["insertion"], d["full"]),
                     "deletion_auc": r4(d["deletion_auc"]), "insertion_auc": r4(d["insertion_auc"])}
    return {"fractions": r4(rec["fractions"]), "methods": out, "baseline": PAIR_METHODS_BASELINE,
            "itm": [n for n in itm if n in out]}
