"""The original Flickr30k caption files.

- ``results_20130124.token``: ``1000092795.jpg#0<TAB>caption``
- Kaggle ``results.csv``: pipe-separated, header ``image_name| comment_number| comment``
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..records import Example
from .grouping import examples_from_rows
from .text import read_text


def load_token_file(path: Path, images: Path, skipped: list[tuple[str, str]]) -> list[Example]:
    pairs = []
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, text = line.partition("\t")
        if not sep:
            skipped.append((f"{path.name}:{line_no}", "no TAB between image#n and caption"))
            continue
        pairs.append((f"{path.name}:{line_no}", key.split("#", 1)[0].strip(), text.strip()))
    return examples_from_rows(pairs, images, skipped)


def load_pipe_csv(path: Path, images: Path, skipped: list[tuple[str, str]]) -> list[Example]:
    lines = read_text(path).splitlines()
    header = [c.strip() for c in lines[0].split("|")] if lines else []
    if header[:3] != ["image_name", "comment_number", "comment"]:
        raise UserError(f"{path}: expected header 'image_name| comment_number| comment'")
    pairs = []
    for line_no, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) < 3:
            skipped.append((f"{path.name}:{line_no}", "row has fewer than 3 '|' columns"))
            continue
        pairs.append((f"{path.name}:{line_no}", cols[0].strip(), "|".join(cols[2:]).strip()))
    return examples_from_rows(pairs, images, skipped)
