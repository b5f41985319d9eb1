"""The terminal's score table, shared by build and eval."""

from __future__ import annotations

import typer


def print_summary(summary: dict | None, methods: list[dict]) -> None:
    """The phrase table, and beside it the per-word table (content words against their phrase's boxes)."""
    if not summary:
        return
    words = summary.get("words") or {"methods": {}, "baselines": {}, "words": 0}
    typer.echo(f"\nGrounding on {summary['phrases']} phrases and {words['words']} content words "
               "(pointing game: argmax inside a box; box acc: IoU>=0.5)")
    typer.echo(f"  {'method':<44} {'phrases':>17}  {'words':>17}")
    typer.echo(f"  {'':<44} pointing  box-acc  pointing  box-acc")

    def cells(s):
        return f"{s['pointing']:8.3f} {s['box_accuracy']:8.3f}" if s else f"{'-':>8} {'-':>8}"

    for m in methods:
        s, w = summary["methods"].get(m["name"]), words["methods"].get(m["name"])
        if s or w:
            blind = "  (ignores caption)" if m["caption_blind"] else ""
            typer.echo(f"  {m['label']:<44} {cells(s)}  {cells(w)}{blind}")
    for key, label in (("random_object", "chance: random object"), ("random_point", "chance: random point"),
                       ("centre", "chance: image centre")):
        b, wb = summary["baselines"].get(key), words["baselines"].get(key)
        typer.echo(f"  {label:<44} {b if b is not None else float('nan'):8.3f} {'':8}  "
                   + (f"{wb:8.3f}" if wb is not None else f"{'-':>8}"))


def print_flat(manifest: dict) -> None:
    """Say which methods found no evidence on some pairs (their maps are constant)."""
    flat = {k: v for k, v in manifest.get("flat", {}).items() if v}
    if flat:
        n = len(manifest["pairs"])
        typer.echo("flat caption maps (the method found no evidence): "
                   + ", ".join(f"{k} {v} of {n}" for k, v in sorted(flat.items())))
