"""Generic grounding JSONL, one object per line (documented in the README):

``{"image": "rel/path.png", "caption": "...", "phrases": [{"text": "red circle", "boxes": [[x0, y0, x1, y1]]}]}``

Pixel coordinates of the original image, x1/y1 exclusive; ``phrases`` optional. Image paths
are relative to ``images`` (default: the JSONL's folder). Lines naming the same image are
grouped into one example with several captions.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

from ..errors import BadInput
from ..records import Caption, Example, Phrase, locate_phrase
from .paths import resolve_inside
from .text import read_text


def _phrases(caption: str, raw) -> list[Phrase]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadInput("'phrases' must be a list")
    out, cursor = [], 0
    for p in raw:
        if not isinstance(p, dict) or not isinstance(p.get("text"), str) or not p["text"].strip():
            raise BadInput("each phrase needs a non-empty 'text'")
        boxes = []
        for b in p.get("boxes", []) or []:
            if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)):
                raise BadInput(f"bad box {b!r} (want [x0, y0, x1, y1])")
            if not (b[2] > b[0] and b[3] > b[1]):
                raise BadInput(f"empty box {b!r} (x1 must exceed x0, y1 exceed y0)")
            boxes.append(tuple(float(v) for v in b))
        span = locate_phrase(caption, p["text"], cursor) or locate_phrase(caption, p["text"])
        if span:
            cursor = span[1]
        out.append(Phrase(p["text"], tuple(boxes), span))
    return out


def load_grounding_jsonl(path: Path, images: Path, skipped: list[tuple[str, str]]) -> list[Example]:
    grouped: OrderedDict[str, tuple[Path, list[Caption]]] = OrderedDict()
    for line_no, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{line_no}"
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise BadInput("line is not a JSON object")
            name, caption = obj.get("image"), obj.get("caption")
            if not isinstance(name, str) or not isinstance(caption, str):
                raise BadInput("needs string fields 'image' and 'caption'")
            if not caption.strip():
                raise BadInput("empty caption")
            image_path = resolve_inside(images, name)
            cap = Caption(caption.strip(), _phrases(caption.strip(), obj.get("phrases")))
        except json.JSONDecodeError as e:
            skipped.append((where, f"invalid JSON ({e.msg})"))
            continue
        except BadInput as e:
            skipped.append((where, str(e)))
            continue
        grouped.setdefault(name, (image_path, []))[1].append(cap)
    return [Example(Path(n).stem, p, caps) for n, (p, caps) in grouped.items()]
