"""Dataset loaders: each turns one annotation format into ``Example`` records."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..records import Example

FORMATS = ("auto", "csv", "karpathy", "entities", "jsonl", "token", "pipe")


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "Sentences").is_dir() and (path / "Annotations").is_dir():
            return "entities"
        raise UserError(f"{path}: a folder, but not Flickr30k Entities (no Sentences/ and Annotations/)")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json":
        return "karpathy"
    if suffix == ".token":
        return "token"
    try:
        with path.open("rb") as f:
            head = f.readline(4096).decode("utf-8-sig", errors="replace").strip().lower()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if head.replace(" ", "").startswith("image,caption"):
        return "csv"
    if head.replace(" ", "").startswith("image_name|comment_number|comment"):
        return "pipe"
    if "\t" in head and "#" in head.split("\t", 1)[0]:
        return "token"
    raise UserError(f"{path}: cannot tell its format; pass --dataset ({', '.join(FORMATS[1:])})")


def default_images_dir(captions: Path, fmt: str) -> Path:
    base = captions if captions.is_dir() else captions.parent
    if fmt == "jsonl":
        return base
    for name in ("Images", "images", "flickr30k-images", "flickr30k_images"):
        if (base / name).is_dir():
            return base / name
    return base


def load_dataset(captions: Path, images: Path | None, fmt: str = "auto", split: str = "test",
                 skipped: list[tuple[str, str]] | None = None) -> tuple[str, list[Example]]:
    """Load any supported format. Unusable rows go to ``skipped`` as (where, reason)."""
    skipped = skipped if skipped is not None else []
    captions = Path(captions)
    if not captions.exists():
        raise UserError(f"captions/annotations not found: {captions}")
    if fmt not in FORMATS:
        raise UserError(f"unknown --dataset {fmt!r}; choose from {', '.join(FORMATS)}")
    fmt = detect_format(captions) if fmt == "auto" else fmt
    images = Path(images) if images is not None else default_images_dir(captions, fmt)
    if not images.is_dir():
        raise UserError(f"images folder not found: {images}")
    if fmt == "csv":
        from .captions_csv import load_captions_csv
        examples = load_captions_csv(captions, images, skipped)
    elif fmt == "karpathy":
        from .karpathy import load_karpathy
        examples = load_karpathy(captions, images, split, skipped)
    elif fmt == "entities":
        from .entities import load_entities
        examples = load_entities(captions, images, split, skipped)
    elif fmt == "jsonl":
        from .grounding_jsonl import load_grounding_jsonl
        examples = load_grounding_jsonl(captions, images, skipped)
    elif fmt == "token":
        from .flickr_token import load_token_file
        examples = load_token_file(captions, images, skipped)
    else:
        from .flickr_token import load_pipe_csv
        examples = load_pipe_csv(captions, images, skipped)
    if not examples:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise UserError(f"{captions}: no usable image-caption pairs ({len(skipped)} rows skipped{first})")
    return fmt, examples
