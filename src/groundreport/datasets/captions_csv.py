"""Kaggle/notebook layout: ``Images/*.jpg`` + ``captions.txt`` (CSV, header ``image,caption``)."""

from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path

from ..errors import BadInput, UserError
from ..records import Caption, Example
from .paths import resolve_inside
from .text import read_text


def load_captions_csv(captions: Path, images: Path, skipped: list[tuple[str, str]]) -> list[Example]:
    rows = list(csv.reader(read_text(captions).splitlines()))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["image", "caption"]:
        raise UserError(f"{captions}: expected a CSV header 'image,caption'")
    grouped: OrderedDict[str, list[str]] = OrderedDict()
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            skipped.append((f"{captions.name}:{line_no}", "row has one column, expected image,caption"))
            continue
        # a caption with unquoted commas spills into extra columns: join them back
        name, text = row[0].strip(), ",".join(row[1:]).strip()
        if not text:
            skipped.append((f"{captions.name}:{line_no}", "empty caption"))
            continue
        texts = grouped.setdefault(name, [])
        if text not in texts:
            texts.append(text)
    out = []
    for name, texts in grouped.items():
        try:
            path = resolve_inside(images, name)
        except BadInput as e:
            skipped.append((name, str(e)))
            continue
        out.append(Example(Path(name).stem, path, [Caption(t) for t in texts]))
    return out
