"""The one record every dataset loader yields (see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in original-image pixels, x1/y1 exclusive


@dataclass(frozen=True)
class Phrase:
    """A caption span that names something, with its ground-truth boxes (maybe none)."""

    text: str
    boxes: tuple[Box, ...] = ()
    span: tuple[int, int] | None = None  # character offsets in the caption, when known


@dataclass
class Caption:
    text: str
    phrases: list[Phrase] = field(default_factory=list)


@dataclass
class Example:
    image_id: str
    image_path: Path
    captions: list[Caption]


def locate_phrase(caption: str, text: str, start: int = 0) -> tuple[int, int] | None:
    """Character span of ``text`` in ``caption`` (case-insensitive), searching from ``start``, as
    whole words: "man" is not found inside "woman", nor "a red" inside "a reddish" (None)."""
    low, t = caption.lower(), text.lower()
    if not t:
        return None
    i = low.find(t, start)
    while i >= 0:
        j = i + len(t)
        starts_word = i == 0 or not (low[i - 1].isalnum() and t[0].isalnum())
        ends_word = j == len(low) or not (low[j].isalnum() and t[-1].isalnum())
        if starts_word and ends_word:
            return i, j
        i = low.find(t, i + 1)
    return None
