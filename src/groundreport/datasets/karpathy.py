"""Karpathy split file ``dataset_flickr30k.json``: ``images[]`` with filename, split, sentences[].raw."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BadInput, UserError
from ..records import Caption, Example
from .paths import resolve_inside
from .text import read_text


def load_karpathy(path: Path, images: Path, split: str, skipped: list[tuple[str, str]]) -> list[Example]:
    try:
        data = json.loads(read_text(path))
        entries = data["images"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path}: not a Karpathy split file (expected a JSON object with 'images')") from None
    out = []
    for entry in entries:
        if split != "all" and entry.get("split") != split:
            continue
        name = str(entry.get("filename", ""))
        texts = [s.get("raw", "").strip() for s in entry.get("sentences", [])]
        texts = list(dict.fromkeys(t for t in texts if t))
        if not texts:
            skipped.append((name or "?", "no captions"))
            continue
        try:
            image_path = resolve_inside(images, name)
        except BadInput as e:
            skipped.append((name or "?", str(e)))
            continue
        out.append(Example(Path(name).stem, image_path, [Caption(t) for t in texts]))
    if not out and not skipped:
        raise UserError(f"{path}: no images in split {split!r}")
    return out
