"""``groundreport download flickr30k``: fetch the notebook's archive or the HF copy."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError


def run(name: str, dest: Path, base_url: str | None, keep_parts: bool, source: str, split: str, limit: int,
        seed: int, progress: bool) -> None:
    from ..download import FLICKR30K_BASE_URL, download_flickr30k, download_flickr30k_hf

    if name != "flickr30k":
        raise UserError(f"unknown dataset {name!r}; available: flickr30k")
    if source not in ("github", "hf"):
        raise UserError(f"unknown --source {source!r}; choose github or hf")
    if limit < 0:
        raise UserError(f"--limit must be 0 (all) or a positive number of images, not {limit}")
    if source == "hf":
        images, captions = download_flickr30k_hf(dest, split, limit or None, seed, progress=progress)
    else:
        images, captions = download_flickr30k(dest, base_url or FLICKR30K_BASE_URL, progress=progress,
                                              keep_parts=keep_parts)
    typer.echo(f"ready: {images} and {captions}\n"
               f"next: groundreport build --images {images} --captions {captions}")
