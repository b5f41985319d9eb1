"""Synthetic grounding scenes: flat shapes on grey, each named by a phrase with its box.

A scene is fully determined by its seed, so the demo set, the training stream and the
held-out evaluation set are reproducible and disjoint by construction (different seeds).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import UserError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 220, 20),
    "purple": (140, 40, 180),
    "orange": (250, 140, 10),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
DISPLAY_SIZE = 256
TRAIN_SEED_BASE = 0  # training scenes use seeds [0, 10**8)
HELDOUT_SEED_BASE = 10**9  # evaluation scenes: a range training never touches
DEMO_SEED_BASE = 2 * 10**9  # the bundled gallery scenes
VALIDATION_OFFSET = 100_000  # held-out "val" scenes, for choosing among trained models; "test" starts at 0


def phrase_text(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def join_phrases(phrases: list[str]) -> str:
    parts = [with_article(p) for p in phrases]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


ALL_PHRASES = [phrase_text(c, s) for c in COLOURS for s in SHAPES]


@dataclass
class SceneObject:
    colour: str
    shape: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive

    @property
    def phrase(self) -> str:
        return phrase_text(self.colour, self.shape)


@dataclass
class Scene:
    seed: int
    image: Image.Image
    objects: list[SceneObject] = field(default_factory=list)
    caption: str = ""


def _shape_points(shape: str, x0: float, y0: float, s: float) -> list[tuple[float, float]]:
    cx, cy, r = x0 + s / 2, y0 + s / 2, s / 2
    if shape == "triangle":
        return [(cx, y0), (x0 + s, y0 + s), (x0, y0 + s)]
    if shape == "star":
        pts = []
        for k in range(10):
            ang = -math.pi / 2 + k * math.pi / 5
            rad = r if k % 2 == 0 else r * 0.42
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
        return pts
    if shape == "cross":
        a = s / 3  # arm width: a third of the shape's width
        l, m1, m2, rr = x0, x0 + a, x0 + 2 * a, x0 + s
        t, n1, n2, b = y0, y0 + a, y0 + 2 * a, y0 + s
        return [(m1, t), (m2, t), (m2, n1), (rr, n1), (rr, n2), (m2, n2), (m2, b), (m1, b),
                (m1, n2), (l, n2), (l, n1), (m1, n1)]
    raise ValueError(f"unknown shape {shape!r}")


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    s = x1 - x0
    if shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif shape == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
    else:
        draw.polygon(_shape_points(shape, x0, y0, s - 1), fill=fill)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def make_scene(seed: int, n_objects: tuple[int, int] = (1, 4), size: int = DISPLAY_SIZE) -> Scene:
    """Render one scene. ``n_objects`` is an inclusive range; boxes are tight pixel boxes."""
    rng = random.Random(seed)
    n = rng.randint(*n_objects)
    grey = rng.randint(95, 165)
    noise = np.random.default_rng(seed).normal(0, 4, (size, size, 1))
    base = np.clip(grey + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)
    placed: list[tuple[int, int, int, int]] = []
    kinds: list[tuple[str, str]] = []  # (colour, shape) of each placed box; no pair twice
    attempts = 0
    while len(placed) < n and attempts < 500:
        attempts += 1
        side = rng.randint(int(0.17 * size), int(0.33 * size))
        x0, y0 = rng.randint(0, size - side), rng.randint(0, size - side)
        box = (x0, y0, x0 + side, y0 + side)
        gap = 3
        if any(box[0] < b[2] + gap and b[0] < box[2] + gap and box[1] < b[3] + gap and b[1] < box[3] + gap
               for b in placed):
            continue
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        if (colour, shape) in kinds:
            continue
        placed.append(box)
        kinds.append((colour, shape))
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    objects: list[SceneObject] = []
    for box, (colour, shape) in zip(placed, kinds):
        mask_img = Image.new("L", (size, size), 0)
        _draw(ImageDraw.Draw(mask_img), shape, box, 255)
        _draw(draw, shape, box, COLOURS[colour])
        objects.append(SceneObject(colour, shape, _tight_box(np.asarray(mask_img) > 0)))
    order = objects[:]
    rng.shuffle(order)
    return Scene(seed=seed, image=image, objects=order, caption=join_phrases([o.phrase for o in order]))


def heldout_seeds(split: str, n: int) -> list[int]:
    """Seeds of ``n`` held-out scenes: "test" (what the README's scores use) or "val"."""
    if split not in ("test", "val"):
        raise UserError(f"held-out demo scenes come in splits test and val, not {split!r}")
    return [HELDOUT_SEED_BASE + (VALIDATION_OFFSET if split == "val" else 0) + i for i in range(n)]


def write_grounding_jsonl(out_dir: Path, seeds: list[int], n_objects: tuple[int, int] = (1, 4),
                          fmt: str = "png") -> Path:
    """Write scenes as images plus a grounding JSONL (the format any user's data can take).

    Phrases carry their article ("a red circle"), as Flickr30k Entities phrases do.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for seed in seeds:
        scene = make_scene(seed, n_objects)
        rel = f"images/scene_{seed}.{fmt}"
        if fmt == "png":
            scene.image.save(out_dir / rel, optimize=True)
        else:
            scene.image.save(out_dir / rel, quality=90)
        lines.append(json.dumps({
            "image": rel,
            "caption": scene.caption,
            "phrases": [{"text": with_article(o.phrase), "boxes": [list(o.box)]} for o in scene.objects],
        }))
    path = out_dir / "scenes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
