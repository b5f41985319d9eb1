"""Rows of (where, image name, caption) -> one Example per image, captions de-duplicated."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from ..errors import BadInput
from ..records import Caption, Example
from .paths import resolve_inside


def examples_from_rows(rows, images: Path, skipped: list[tuple[str, str]]) -> list[Example]:
    grouped: OrderedDict[str, list[str]] = OrderedDict()
    for where, name, text in rows:
        if not text:
            skipped.append((where, "empty caption"))
            continue
        texts = grouped.setdefault(name, [])
        if text not in texts:
            texts.append(text)
    out = []
    for name, texts in grouped.items():
        try:
            out.append(Example(Path(name).stem, resolve_inside(images, name), [Caption(t) for t in texts]))
        except BadInput as e:
            skipped.append((name, str(e)))
    return out
