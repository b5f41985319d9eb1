"""Opening user images safely: every odd mode becomes RGB, every broken file a one-line reason."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadInput

MAX_PIXELS = 64_000_000  # refuse decompression bombs well before they eat memory


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return Image.fromarray((arr * 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def load_rgb(path: Path) -> Image.Image:
    """Decode fully, apply EXIF orientation, return RGB. Raises ``BadInput`` with a reason."""
    path = Path(path)
    if not path.is_file():
        raise BadInput("image file missing")
    if path.stat().st_size == 0:
        raise BadInput("image file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise BadInput(f"image too large ({w}x{h} pixels; limit {MAX_PIXELS:,})")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except BadInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInput("image too large: refused as a possible decompression bomb") from None
    except UnidentifiedImageError:
        raise BadInput("not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadInput(f"corrupt image ({str(e).splitlines()[0][:120] or type(e).__name__})") from None
