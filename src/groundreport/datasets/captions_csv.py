"""Kaggle/notebook layout: ``Images/*.jpg`` + ``captions.txt`` (CSV, header ``image,caption``)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import UserError
from ..records import Example
from .grouping import examples_from_rows
from .text import read_text


def load_captions_csv(captions: Path, images: Path, skipped: list[tuple[str, str]]) -> list[Example]:
    rows = list(csv.reader(read_text(captions).splitlines()))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["image", "caption"]:
        raise UserError(f"{captions}: expected a CSV header 'image,caption'")
    parsed = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            skipped.append((f"{captions.name}:{line_no}", "row has one column, expected image,caption"))
            continue
        # a caption with unquoted commas spills into extra columns: join them back
        parsed.append((f"{captions.name}:{line_no}", row[0].strip(), ",".join(row[1:]).strip()))
    return examples_from_rows(parsed, images, skipped)
