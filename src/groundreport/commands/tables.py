"""The terminal's score table, shared by build and eval."""

from __future__ import annotations

import typer


def print_summary(summary: dict | None, methods: list[dict]) -> None:
    if not summary:
        return
    b = summary["baselines"]
    typer.echo(f"\nGrounding on {summary['phrases']} phrases (pointing game: argmax inside a box; box acc: IoU>=0.5)")
    typer.echo(f"  {'method':<44} pointing  box-acc")
    for m in methods:
        s = summary["methods"].get(m["name"])
        if s:
            blind = "  (ignores caption)" if m["caption_blind"] else ""
            typer.echo(f"  {m['label']:<44} {s['pointing']:8.3f} {s['box_accuracy']:8.3f}{blind}")
    typer.echo(f"  {'chance: random object':<44} {b.get('random_object', float('nan')):8.3f}")
    typer.echo(f"  {'chance: random point':<44} {b['random_point']:8.3f}")
    typer.echo(f"  {'chance: image centre':<44} {b['centre']:8.3f}")


def print_flat(manifest: dict) -> None:
    """Say which methods found no evidence on some pairs (their maps are constant)."""
    flat = {k: v for k, v in manifest.get("flat", {}).items() if v}
    if flat:
        n = len(manifest["pairs"])
        typer.echo("flat caption maps (the method found no evidence): "
                   + ", ".join(f"{k} {v} of {n}" for k, v in sorted(flat.items())))
