"""Demo-vocabulary scenes drawn by code independent of groundreport.demo.scenes.

A second renderer for measuring how the demo model carries over to drawings it was not
trained on: OpenCV primitives (not PIL's), its own shape geometry, and wider variation than
training: object size 10-45% of the image, rotation, colour shades jittered in HSV, a
background that is flat, a gradient or a texture at a random level, noise, blurred or hard
edges, several image sizes and JPEG quality 35-95. It never imports the training renderer;
the only shared facts are the words (6 colours x 5 shapes) and the caption form
("a red circle and a blue square").

    python scripts/independent_scenes.py --out /tmp/indep --n 300 --seed 7
    groundreport eval --model demo --captions /tmp/indep/scenes.jsonl

Boxes are the tight boxes of each object's drawn pixels ([x0, y0, x1, y1], x1/y1 exclusive).
Never used for any training choice.
"""

from __future__ import annotations

import argparse
import colorsys
import json
from pathlib import Path

import cv2
import numpy as np

HUES = {"red": (0.0, 0.85, 0.85), "green": (0.33, 0.8, 0.65), "blue": (0.62, 0.85, 0.85),
        "yellow": (0.15, 0.85, 0.95), "purple": (0.78, 0.6, 0.65), "orange": (0.07, 0.9, 0.95)}
SHAPES = ("circle", "square", "triangle", "star", "cross")


def _shade(rng, colour: str) -> tuple[int, int, int]:
    h, s, v = HUES[colour]
    h = (h + rng.uniform(-0.02, 0.02)) % 1.0
    s = float(np.clip(s + rng.uniform(-0.15, 0.1), 0.4, 1.0))
    v = float(np.clip(v + rng.uniform(-0.15, 0.1), 0.45, 1.0))
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(b * 255), int(g * 255), int(r * 255)  # OpenCV is BGR


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(x * 0.8, y * 0.8) for x, y in pts]
    elif shape == "triangle":
        pts = [(np.cos(a), np.sin(a)) for a in np.deg2rad([-90, 30, 150])]
    elif shape == "star":
        pts = [((1.0 if k % 2 == 0 else 0.42) * np.cos(np.deg2rad(-90 + 36 * k)),
                (1.0 if k % 2 == 0 else 0.42) * np.sin(np.deg2rad(-90 + 36 * k))) for k in range(10)]
    elif shape == "cross":
        a, b = 0.3, 1.0
        pts = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
               (-a, -a)]
    else:
        raise ValueError(shape)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts], dtype=np.float64)


def _background(rng, h: int, w: int) -> np.ndarray:
    level = rng.uniform(60, 200)
    kind = rng.integers(3)
    if kind == 0:
        bg = np.full((h, w), level)
    elif kind == 1:
        ramp = np.linspace(-1, 1, w if rng.random() < 0.5 else h)
        bg = level + rng.uniform(15, 40) * (ramp[None, :] if len(ramp) == w else ramp[:, None]) * np.ones((h, w))
    else:
        coarse = rng.normal(0, 1, (max(2, h // 24), max(2, w // 24)))
        bg = level + 18 * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    tint = rng.uniform(-8, 8, 3)
    img = bg[..., None] + tint[None, None, :] + rng.normal(0, rng.uniform(0, 9), (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_scene(rng) -> tuple[np.ndarray, list[dict], str]:
    w, h = (int(v) for v in rng.choice([(160, 160), (224, 224), (320, 240), (240, 320), (384, 288)]))
    img = np.ascontiguousarray(_background(rng, h, w))
    n = int(rng.integers(2, 5))
    taken: list[tuple[float, float, float]] = []
    used: set[tuple[str, str]] = set()
    objects = []
    for _ in range(200):
        if len(objects) == n:
            break
        colour, shape = str(rng.choice(list(HUES))), str(rng.choice(SHAPES))
        if (colour, shape) in used:
            continue
        r = rng.uniform(0.05, 0.22) * min(w, h)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        if any(np.hypot(cx - x, cy - y) < r + rr + 4 for x, y, rr in taken):
            continue
        mask = np.zeros((h, w), np.uint8)
        if shape == "circle":
            cv2.ellipse(mask, (int(round(cx)), int(round(cy))), (int(round(r * 0.9)), int(round(r * rng.uniform(0.8, 0.9)))),
                        float(rng.uniform(0, 180)), 0, 360, 255, -1, lineType=cv2.LINE_AA)
        else:
            pts = _polygon(shape, cx, cy, r, rng.uniform(-0.5, 0.5))
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        if rng.random() < 0.5:  # soft edges
            mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.6, 1.8))
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        img = (img * (1 - alpha) + np.array(_shade(rng, colour), np.float32) * alpha).astype(np.uint8)
        ys, xs = np.nonzero(mask > 127)
        if len(xs) == 0:
            continue
        taken.append((cx, cy, r))
        used.add((colour, shape))
        objects.append({"text": f"a {colour} {shape}",
                        "boxes": [[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]]})
    order = rng.permutation(len(objects))
    objects = [objects[i] for i in order]
    texts = [o["text"] for o in objects]
    caption = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]
    return img, objects, caption


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(args.n):
        rng = np.random.default_rng([args.seed, i])
        img, objects, caption = draw_scene(rng)
        rel = f"images/indep_{args.seed}_{i:04d}.jpg"
        cv2.imwrite(str(args.out / rel), img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 96))])
        lines.append(json.dumps({"image": rel, "caption": caption, "phrases": objects}))
    (args.out / "scenes.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.n} scenes to {args.out / 'scenes.jsonl'}")


if __name__ == "__main__":
    main()
