"""Which region of the original image a processor's output (so the patch grid) covers.

Processors resize (to a fixed height x width, or the short side to a length keeping the aspect
ratio) and may then centre-crop. The first keeps the whole image; a crop keeps a centred
window of it (CLIP: short side to 224, centre 224 x 224: the sides of a wide image are never
seen). The arithmetic follows transformers' image processors (integer sizes truncated, crop
offsets floored); tests check it against the processor's own output.
"""

from __future__ import annotations

from ..errors import UserError


def _get(size, key):
    if size is None:
        return None
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _resized(image_processor, w: int, h: int) -> tuple[int, int]:
    """(width, height) after the processor's resize; None-safe for processors that do not resize."""
    if not getattr(image_processor, "do_resize", True):
        return w, h
    size = getattr(image_processor, "size", None)
    if _get(size, "height") and _get(size, "width"):
        return int(_get(size, "width")), int(_get(size, "height"))
    short = _get(size, "shortest_edge")
    if short and not _get(size, "longest_edge"):
        if w <= h:
            return int(short), int(short * h / w)
        return int(short * w / h), int(short)
    raise ValueError("unsupported resize")


def check_processor(image_processor, name: str) -> None:
    """Refuse a processor whose output we cannot place on the original image (one line)."""
    size = getattr(image_processor, "size", None)
    crop = getattr(image_processor, "crop_size", None)
    ok = True
    try:
        _resized(image_processor, 640, 480)
    except ValueError:
        ok = False
    if getattr(image_processor, "do_center_crop", False) and not (_get(crop, "height") and _get(crop, "width")):
        ok = False
    if getattr(image_processor, "do_pad", False):
        ok = False
    if not ok:
        shown = {k: v for k, v in (dict(size) if isinstance(size, dict) else vars(size) if size else {}).items() if v}
        raise UserError(f"model {name!r}: its image processor resizes as {shown} (crop {crop}); groundreport "
                        "places maps for processors that resize to height x width or the shortest edge, "
                        "optionally followed by a centre crop")


def grid_region(image_processor, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in original pixels of the processor's output for an image of ``image_size``
    = (W, H). The whole image is exactly (0, 0, W, H); a crop larger than the resized image (the
    processor pads) gives a region reaching past the image's edges."""
    w, h = int(image_size[0]), int(image_size[1])
    rw, rh = _resized(image_processor, w, h)
    left, top, cw, ch = 0, 0, rw, rh
    crop = getattr(image_processor, "crop_size", None)
    if getattr(image_processor, "do_center_crop", False):
        cw, ch = int(_get(crop, "width")), int(_get(crop, "height"))
        left, top = (rw - cw) // 2, (rh - ch) // 2
    # multiply before dividing: a region that is the whole resized image maps to exactly (0, 0, W, H)
    return (left * w / rw, top * h / rh, (left + cw) * w / rw, (top + ch) * h / rh)
