"""``groundreport demo train``: train the demo FLAVA, then score it on held-out scenes."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError


def run(out: Path, minutes: float, steps: int | None, seed: int, threads: int, device: str, split: str,
        methods: list[str], family: str = "flava") -> None:
    from ..compute import BuildConfig
    from ..demo.scenes import heldout_seeds
    from ..demo.train import RECIPES, recipe, train
    from ..models.base import resolve_device
    from . import evaluate

    # check the arguments before a long run, not after it
    resolve_device(device)
    heldout_seeds(split, 1)
    if family not in RECIPES:
        raise UserError(f"unknown --family {family!r}; choose {', '.join(RECIPES)}")
    if (steps is not None and steps < 0) or minutes <= 0:
        raise UserError("--steps must be >= 0 (0: fill --minutes) and --minutes > 0")
    settings = recipe(family, out_dir=out, minutes=minutes, seed=seed, threads=threads, device=device)
    if steps is not None:
        settings.steps = steps or None
    train(settings, log=typer.echo)
    from ..demo.retrieval import image_to_text_top1
    from ..models import load_adapter

    top1 = image_to_text_top1(load_adapter(str(out), device=device))
    typer.echo(f"held-out image->text retrieval, top-1 of 100 captions: {top1:.2f}")
    cfg = BuildConfig(captions=None, dataset="jsonl", split=split, sample=None, model=str(out), offline=True,
                      device=device, methods=methods, report=str(out.parent / f"{out.name}-eval"))
    evaluate.run(cfg, 300, progress=True)
