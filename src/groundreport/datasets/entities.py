"""Flickr30k Entities: ``Sentences/<id>.txt`` (bracketed phrases) + ``Annotations/<id>.xml`` (boxes)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from ..errors import BadInput, UserError
from ..records import Box, Caption, Example, Phrase
from .paths import resolve_inside
from .text import read_text

PHRASE_RE = re.compile(r"\[/EN#(\d+)/(\S+) ([^\]]*)\]")


def parse_sentence(line: str) -> tuple[str, list[tuple[int, str, tuple[int, int]]]]:
    """Plain caption plus (chain id, phrase text, character span) for each marked phrase."""
    out, phrases, pos = [], [], 0
    length = 0
    for m in PHRASE_RE.finditer(line):
        before = line[pos:m.start()]
        out.append(before)
        length += len(before)
        words = m.group(3)
        phrases.append((int(m.group(1)), words, (length, length + len(words))))
        out.append(words)
        length += len(words)
        pos = m.end()
    out.append(line[pos:])
    return "".join(out).strip(), phrases


def parse_boxes(xml_path: Path) -> dict[int, list[Box]]:
    """Chain id -> boxes, converted from 1-based inclusive to 0-based exclusive pixels."""
    try:
        root = ET.fromstring(read_text(xml_path))
    except ET.ParseError as e:
        raise BadInput(f"{xml_path.name}: unreadable annotation XML ({e})") from None
    boxes: dict[int, list[Box]] = defaultdict(list)
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue  # nobndbox / scene: no box to score against
        try:
            x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            continue
        for name in obj.iter("name"):
            if name.text and name.text.strip().isdigit():
                boxes[int(name.text)].append((x0 - 1, y0 - 1, x1, y1))
    return boxes


def load_entities(root: Path, images: Path, split: str, skipped: list[tuple[str, str]]) -> list[Example]:
    sentences, annotations = root / "Sentences", root / "Annotations"
    if not sentences.is_dir() or not annotations.is_dir():
        raise UserError(f"{root}: expected Flickr30k Entities folders Sentences/ and Annotations/")
    ids = sorted(p.stem for p in sentences.glob("*.txt"))
    split_file = root / f"{split}.txt"
    if split != "all" and split_file.is_file():
        wanted = set(read_text(split_file).split())
        ids = [i for i in ids if i in wanted]
    out = []
    for image_id in ids:
        try:
            boxes = parse_boxes(annotations / f"{image_id}.xml") if (annotations / f"{image_id}.xml").is_file() else {}
            image_path = resolve_inside(images, f"{image_id}.jpg")
        except BadInput as e:
            skipped.append((image_id, str(e)))
            continue
        captions = []
        for line in read_text(sentences / f"{image_id}.txt").splitlines():
            if not line.strip():
                continue
            text, marked = parse_sentence(line)
            phrases = [Phrase(words, tuple(boxes.get(chain, ())), span)
                       for chain, words, span in marked if chain != 0]
            captions.append(Caption(text, phrases))
        if captions:
            out.append(Example(image_id, image_path, captions))
        else:
            skipped.append((image_id, "no captions"))
    return out
