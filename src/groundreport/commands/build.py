"""``groundreport build``: compute every sampled pair into report/, then render site/."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import UserError
from .tables import print_flat, print_inputs, print_summaries


def run(cfg, site: Path, strict: bool, progress: bool) -> None:
    from ..compute import compute
    from ..datasets import load_dataset
    from ..render.site import render

    t0 = time.perf_counter()
    cfg.validate()
    skipped: list[tuple[str, str]] = []
    fmt, examples = load_dataset(Path(cfg.captions), Path(cfg.images) if cfg.images else None, cfg.dataset,
                                 cfg.split, skipped)
    manifest = compute(cfg, examples, fmt, skipped, progress=progress)
    if manifest is None:  # a torchrun rank other than 0: its pairs are written, rank 0 merges and renders
        return
    info = render(Path(cfg.report), site)
    timings = dict(manifest["timings"], rendering=info["seconds"], total=time.perf_counter() - t0)
    typer.echo(f"explained {len(manifest['pairs'])} pairs ({manifest['reused_pairs']} reused from an earlier run), "
               f"skipped {len(manifest['skipped'])}")
    if cfg.world_size > 1:
        made = [p["rank"] for p in manifest["pairs"]]
        typer.echo(f"  {cfg.world_size} processes; pairs by the rank that explained them: "
                   + ", ".join(f"rank {r} {made.count(r)}" for r in range(cfg.world_size)))
    for note in manifest["batch"]["notes"]:
        typer.echo(f"  note: {note}")
    # methods a model cannot run (no ITM head, no multimodal encoder, an untrained MMM head): once per model
    for model, note in dict.fromkeys((p.get("model", ""), n) for p in manifest["pairs"] for n in p.get("notes", [])):
        typer.echo(f"  note: {model}: {note}")
    print_inputs(manifest)
    for p in manifest["pairs"]:
        for w in p.get("warnings", []):
            typer.echo(f"  note: {p['image_id']} #{p['caption_index']}: {w}")
    print_flat(manifest)
    print_summaries(manifest)
    typer.echo("\ntime per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    typer.echo(f"site: {site / 'index.html'}")
    if strict and manifest["skipped"]:
        raise StrictFailure(f"--strict: {len(manifest['skipped'])} input(s) skipped")


class StrictFailure(UserError):
    """--strict and something was skipped: exit 3, not 2."""
