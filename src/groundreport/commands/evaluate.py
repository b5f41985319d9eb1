"""``groundreport eval``: score every method's maps against boxes next to chance.

Without ``--captions`` it scores held-out demo scenes (seeds training never used)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import UserError
from .tables import print_flat, print_inputs, print_summaries

NOTHING_TO_SCORE = "nothing to score: no phrase in this data has a box"


def evaluate(cfg, scenes: int, progress: bool) -> dict | None:
    """The manifest of a scored run (None on a torchrun rank other than 0).
    ``cfg.captions`` None: ``scenes`` held-out demo scenes."""
    from ..compute import compute
    from ..datasets import load_dataset

    cfg.validate()
    if cfg.captions is None and scenes < 1:
        raise UserError(f"--scenes must be at least 1, not {scenes}")
    with tempfile.TemporaryDirectory() as tmp:
        if cfg.captions is None:
            from ..demo.scenes import heldout_seeds, write_grounding_jsonl

            cfg.captions = str(write_grounding_jsonl(Path(tmp), heldout_seeds(cfg.split, scenes), (2, 4)))
            cfg.dataset = "jsonl"
        skipped: list[tuple[str, str]] = []
        fmt, examples = load_dataset(Path(cfg.captions), Path(cfg.images) if cfg.images else None, cfg.dataset,
                                     cfg.split, skipped)
        if not cfg.faithfulness and not any(p.boxes for ex in examples for c in ex.captions for p in c.phrases):
            raise UserError(NOTHING_TO_SCORE)  # before any report is written (or an old one replaced)
        return compute(cfg, examples, fmt, skipped, progress=progress)


def run(cfg, scenes: int, progress: bool) -> dict | None:
    held_out = cfg.captions is None
    manifest = evaluate(cfg, scenes, progress)
    if manifest is None:  # a torchrun rank other than 0: rank 0 prints the table
        return None
    if held_out:
        manifest["config"]["captions"] = f"held-out demo scenes ({cfg.split}, {scenes})"
    if not (manifest["summary"] or {}).get("methods") and not cfg.faithfulness:
        raise UserError(NOTHING_TO_SCORE + " (among the sampled pairs)")
    print_inputs(manifest)
    print_flat(manifest)
    print_summaries(manifest)
    return manifest
