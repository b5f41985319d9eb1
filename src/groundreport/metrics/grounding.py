"""Scoring a map against ground-truth boxes, the way the field does.

- Pointing game, phrase-grounding form (as in WWbL): resize the map to the original image,
  take its argmax; a hit when that pixel lies inside any of the phrase's boxes. No tolerance.
  Ties: bilinear resizing leaves a plateau wherever the top patch lies on the image border
  (the map is flat from that patch's centre out to the edge). The point is the tied pixel
  nearest the plateau's centroid, not its first pixel in row order, which always sat on the
  image edge. A map with no peak at all (constant) is a miss.
- Box accuracy: threshold the resized map at ``BOX_THRESHOLD`` of its max, keep the largest
  connected region, take its bounding box; a hit when IoU >= 0.5 with the union box of the
  phrase's boxes. A constant map (no peak) misses both.
- Geometry: a map covers the region of the image the model saw (``region``, original pixels;
  the whole image unless the processor centre-crops). It is resized onto that region and the
  rest of the image is "not seen": the point is searched inside the region only (an object
  wholly outside the crop is always a miss), and unseen pixels count as zero for the box.
- Baselines for the same phrases: a random point (expected hit = box-area fraction), the image
  centre, and a random annotated object of the caption (expected hit = 1 / #objects).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BOX_THRESHOLD = 0.5


def resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Patch-grid map -> (H, W) float map for an image of ``size`` = (W, H), bilinear."""
    w, h = size
    return cv2.resize(np.asarray(m, dtype=np.float32), (int(w), int(h)), interpolation=cv2.INTER_LINEAR)


def pixel_region(image_size: tuple[int, int], region=None) -> tuple[int, int, int, int]:
    """``region`` (x0, y0, x1, y1; None: the whole image) rounded to whole pixels, at least one wide."""
    w, h = int(image_size[0]), int(image_size[1])
    if region is None:
        return 0, 0, w, h
    x0, y0, x1, y1 = (int(round(float(v))) for v in region)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def place_map(m: np.ndarray, image_size: tuple[int, int], region=None) -> tuple[np.ndarray, np.ndarray]:
    """Patch-grid map -> ((H, W) map over the image, (H, W) bool mask of the pixels the model saw).

    The map is resized onto ``region`` (the whole image when None) and is 0 elsewhere."""
    w, h = int(image_size[0]), int(image_size[1])
    x0, y0, x1, y1 = pixel_region(image_size, region)
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return resize_map(m, (w, h)), np.ones((h, w), dtype=bool)
    part = resize_map(m, (x1 - x0, y1 - y0))
    full = np.zeros((h, w), dtype=np.float32)
    seen = np.zeros((h, w), dtype=bool)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 > cx0 and cy1 > cy0:
        full[cy0:cy1, cx0:cx1] = part[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        seen[cy0:cy1, cx0:cx1] = True
    return full, seen


def in_view(image_size: tuple[int, int], boxes, region=None) -> bool:
    """Whether any of ``boxes`` overlaps the part of the image the model saw."""
    x0, y0, x1, y1 = pixel_region(image_size, region)
    return any(min(b[2], x1) > max(b[0], x0) and min(b[3], y1) > max(b[1], y0) for b in boxes)


def _inside(x: float, y: float, box) -> bool:
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def union_box(boxes) -> tuple[float, float, float, float]:
    b = np.asarray(boxes, dtype=np.float64)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def peak(full: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's maximum; among tied pixels, the one nearest their centroid."""
    ys, xs = np.nonzero(full == full.max())
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(xs[k]), int(ys[k])


def map_to_box(full: np.ndarray, threshold: float = BOX_THRESHOLD) -> tuple[int, int, int, int]:
    """Largest connected region above ``threshold * max``; its bounding box (x1/y1 exclusive)."""
    top = float(full.max())
    if top <= 0:
        h, w = full.shape
        return 0, 0, w, h
    mask = (full >= threshold * top).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    return x, y, x + bw, y + bh


@dataclass
class PhraseScore:
    point: tuple[int, int]
    pointing_hit: bool
    box: tuple[int, int, int, int]
    box_iou: float

    @property
    def box_hit(self) -> bool:
        return self.box_iou >= 0.5


def score_map(m: np.ndarray, image_size: tuple[int, int], boxes, region=None) -> PhraseScore:
    """Pointing and box scores of a patch-grid map against ``boxes`` (original pixels);
    ``region``: what the grid covers (None: the whole image)."""
    full, seen = place_map(m, image_size, region)
    if seen.all():
        x, y = peak(full)
        has_peak = bool(full.max() > full.min())
    else:  # the point is one the model could have pointed at: inside the region
        x, y = peak(np.where(seen, full, -np.inf))
        has_peak = bool(seen.any() and full[seen].max() > full[seen].min())
    box = map_to_box(full)  # a constant map's region is the whole image: it names no region, so it misses
    return PhraseScore((x, y), has_peak and any(_inside(x + 0.5, y + 0.5, b) for b in boxes), box,
                       iou(box, union_box(boxes)) if has_peak else 0.0)


def baselines(image_size: tuple[int, int], boxes, n_objects: int) -> dict[str, float]:
    """Expected hit rates for one phrase: random point, centre point, random object."""
    w, h = image_size
    mask = np.zeros((int(h), int(w)), dtype=bool)
    for b in boxes:
        x0, y0 = max(0, int(np.floor(b[0]))), max(0, int(np.floor(b[1])))
        mask[y0:int(np.ceil(b[3])), x0:int(np.ceil(b[2]))] = True
    return {
        "random_point": float(mask.mean()),
        "centre": float(any(_inside(w / 2, h / 2, b) for b in boxes)),
        "random_object": 1.0 / max(1, n_objects),
        "box_area": float(mask.mean()),
    }
