"""Varied drawing for training: the same scene as the training renderer draws it, changed the
ways a user's pictures differ (object size and position, rotation, colour shade, background
level and noise, edge softness, JPEG quality). Captions stay true: nothing is cut off or
recoloured into another colour name. Used by ``demo train`` only; evaluation scenes are
drawn plainly, and the independent renderer (scripts/independent_scenes.py) shares no code
with this."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def vary_drawing(image: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng([seed, 7])
    w, h = image.size
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    bg = np.median(arr.reshape(-1, 3), axis=0)
    # zoom out (objects get smaller, the scene sits somewhere in a larger canvas) or keep
    scale = rng.uniform(0.6, 1.0) if rng.random() < 0.6 else 1.0
    img = image.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR, fillcolor=tuple(int(v) for v in bg))
    if scale < 1.0:
        small = img.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.BILINEAR)
        canvas = Image.new("RGB", (w, h), tuple(int(v) for v in bg))
        canvas.paste(small, (int(rng.integers(0, w - small.width + 1)), int(rng.integers(0, h - small.height + 1))))
        img = canvas
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    x = np.asarray(img, dtype=np.float32)
    # shade: saturation and brightness of everything, a background level shift, noise
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.75, 1.15)
    x = x * rng.uniform(0.8, 1.15) + rng.uniform(-25, 25)
    x = x + rng.normal(0, rng.uniform(0, 8), x.shape[:2] + (1,))
    img = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
    if rng.random() < 0.7:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(35, 96)))
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img
