"""Write one pair's artifacts into report/: display image, arrays, overlays, entry record.

Layout (documented in docs/report-schema.md):
  images/<sha12>.jpg, images/<sha12>_thumb.webp     display copy and thumbnail of the image
  pairs/<pair_id>/maps.npz                          float16 maps, keys "<method>/<level>"
  pairs/<pair_id>/<method>_heatmap.png|_overlay.jpg caption-level panels
  pairs/<pair_id>/entry.json                        the pair's manifest entry, written LAST
An entry.json therefore only ever exists next to complete artifacts: it is the resume marker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from . import atomic
from .colormap import colourise
from .metrics.grounding import resize_map

DISPLAY_MAX = 512
THUMB_MAX = 256


def write_display_image(report: Path, image: Image.Image, key: str) -> tuple[str, str]:
    rel, thumb_rel = f"images/{key}.jpg", f"images/{key}_thumb.webp"
    if not (report / rel).is_file():
        disp = image.copy()
        disp.thumbnail((DISPLAY_MAX, DISPLAY_MAX), Image.LANCZOS)
        atomic.write_image(report / rel, disp, "JPEG", quality=88)
    if not (report / thumb_rel).is_file():
        th = image.copy()
        th.thumbnail((THUMB_MAX, THUMB_MAX), Image.LANCZOS)
        atomic.write_image(report / thumb_rel, th, "WEBP", quality=80)
    return rel, thumb_rel


def overlay(image: Image.Image, m: np.ndarray, alpha: float = 0.5) -> tuple[Image.Image, Image.Image]:
    """(heatmap, overlay) at the image's size: the map resized, coloured, blended."""
    full = resize_map(m, image.size)
    heat = colourise(np.clip(full, 0, 1))
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    blend = (1 - alpha) * base + alpha * heat.astype(np.float32)
    return Image.fromarray(heat), Image.fromarray(blend.clip(0, 255).astype(np.uint8))


def maps_to_arrays(maps) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]]]:
    """MethodMaps per method -> flat npz dict and the manifest's key index."""
    arrays, index = {}, {}
    for method, mm in maps.items():
        index[method] = {}
        for level in ("caption", "words", "phrases", "layers", "heads"):
            arr = getattr(mm, level)
            if arr is None:
                continue
            key = f"{method}/{level}"
            arrays[key] = arr.astype(np.float16)
            index[method][level] = key
    return arrays, index


def write_pair(report: Path, pair_id: str, image: Image.Image, maps) -> tuple[str, dict, dict]:
    """Arrays and overlays for one pair. Returns (npz path, key index, overlay paths)."""
    pdir = report / "pairs" / pair_id
    arrays, index = maps_to_arrays(maps)
    npz_rel = f"pairs/{pair_id}/maps.npz"
    atomic.write_npz(report / npz_rel, arrays)
    disp = image.copy()
    disp.thumbnail((DISPLAY_MAX, DISPLAY_MAX), Image.LANCZOS)
    overlays = {}
    for method, mm in maps.items():
        heat, over = overlay(disp, mm.caption)
        h_rel, o_rel = f"pairs/{pair_id}/{method}_heatmap.webp", f"pairs/{pair_id}/{method}_overlay.webp"
        atomic.write_image(pdir / f"{method}_heatmap.webp", heat, "WEBP", quality=80)
        atomic.write_image(pdir / f"{method}_overlay.webp", over, "WEBP", quality=80)
        overlays[method] = {"heatmap": h_rel, "overlay": o_rel}
    return npz_rel, index, overlays


def entry_files(entry: dict, with_maps: bool = True) -> list[str]:
    """Every report-relative file a pair entry names (the maps' npz optional)."""
    files = [entry["image"], entry["thumb"]] + [p for o in entry["overlays"].values() for p in o.values()]
    return ([entry["maps"]["file"]] if with_maps else []) + files
