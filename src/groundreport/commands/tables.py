"""The terminal's score table and input report, shared by build and eval."""

from __future__ import annotations

import typer

from ..metrics.summary import below_chance


def print_inputs(manifest: dict) -> None:
    """Each skipped input with its reason, and how many captions the model's text limit cut short."""
    for s in manifest["skipped"]:
        typer.echo(f"  skipped {s['item']}: {s['reason']}")
    truncated = sum(1 for p in manifest["pairs"] if p["truncated"])
    if truncated:
        typer.echo(f"  {truncated} caption(s) were longer than the model's text limit and were truncated "
                   "(their words past the cut have no map and no score)")


def print_summary(summary: dict | None, methods: list[dict]) -> None:
    """The phrase table, and beside it the per-word table (content words against their phrase's boxes)."""
    if not summary or "methods" not in summary:
        return
    words = summary.get("words") or {"methods": {}, "baselines": {}, "words": 0}
    typer.echo(f"\nGrounding on {summary['phrases']} phrases and {words['words']} content words "
               "(pointing game: argmax inside a box; box acc: IoU>=0.5)")
    typer.echo(f"  {'method':<44} {'phrases':>17}  {'words':>17}")
    typer.echo(f"  {'':<44} pointing  box-acc  pointing  box-acc")

    low = below_chance(summary)

    def cells(s):
        return f"{s['pointing']:8.3f} {s['box_accuracy']:8.3f}" if s else f"{'-':>8} {'-':>8}"

    for m in methods:
        s, w = summary["methods"].get(m["name"]), words["methods"].get(m["name"])
        if s or w:
            blind = "  (ignores caption)" if m["caption_blind"] else ""
            under = f"  (below chance: {' and '.join(low[m['name']])})" if m["name"] in low else ""
            typer.echo(f"  {m['label']:<44} {cells(s)}  {cells(w)}{blind}{under}")
    for key, label in (("random_object", "chance: random object"), ("random_point", "chance: random point"),
                       ("centre", "chance: image centre")):
        b, wb = summary["baselines"].get(key), words["baselines"].get(key)
        typer.echo(f"  {label:<44} {b if b is not None else float('nan'):8.3f} {'':8}  "
                   + (f"{wb:8.3f}" if wb is not None else f"{'-':>8}"))


def print_flat(manifest: dict) -> None:
    """Say which methods found no evidence on some pairs (their maps are constant), per model."""
    models = manifest.get("models") or [dict(manifest["model"], flat=manifest.get("flat", {}))]
    for m in models:
        flat = {k: v for k, v in (m.get("flat") or {}).items() if v}
        if flat:
            n = sum(1 for p in manifest["pairs"] if p.get("model", m["id"]) == m["id"])
            who = f" ({m['id']})" if len(models) > 1 else ""
            typer.echo(f"flat caption maps{who} (the method found no evidence): "
                       + ", ".join(f"{k} {v} of {n}" for k, v in sorted(flat.items())))


def print_summaries(manifest: dict) -> None:
    """The score table once per model (once, untitled, for a one-model run)."""
    models = manifest.get("models") or [dict(manifest["model"], summary=manifest["summary"])]
    for m in models:
        if len(models) > 1 and m.get("summary"):
            typer.echo(f"\nmodel {m['id']} ({m['class']})")
        print_summary(m.get("summary"), manifest["methods"])
        print_checks(m.get("summary"), manifest["methods"])


def print_checks(summary: dict | None, methods: list[dict]) -> None:
    """--faithfulness: deletion/insertion AUC, confidence change and the sanity checks per method."""
    if not summary or "faithfulness" not in summary:
        return
    f, sanity, info = summary["faithfulness"], summary.get("sanity") or {}, summary.get("checks", {})
    typer.echo(f"\nFaithfulness on {info.get('pairs', '?')} pairs, caption and phrase targets, contrastive score "
               "(deletion: lower is better; insertion: higher)")
    typer.echo(f"  {'method':<44} deletion insertion   drop  increase  shuffle-r  randomised")
    labels = {m["name"]: m["label"] for m in methods}
    for name in [m["name"] for m in methods if m["name"] in f] + [b for b in ("random", "centre") if b in f]:
        v, s = f[name], sanity.get(name, {})
        cells = " ".join(f"{v[k]:8.3f}" if v[k] is not None else f"{'-':>8}"
                         for k in ("deletion_auc", "insertion_auc", "drop", "increase"))
        corr = s.get("caption_shuffle_corr")
        rand = s.get("randomisation")
        flags = ("  CAPTION-BLIND" if s.get("caption_blind") else "") + \
                ("  UNCHANGED BY RANDOM WEIGHTS" if s.get("randomisation_flag") else "")
        label = labels.get(name, f"baseline: {name} map")
        typer.echo(f"  {label:<44} {cells}  {corr if corr is not None else float('nan'):9.3f}  "
                   f"{rand[-1] if rand else float('nan'):10.3f}{flags}")
