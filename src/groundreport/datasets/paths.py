"""Resolve a path named inside a dataset file without ever leaving the images folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import BadInput


def resolve_inside(root: Path, name: str) -> Path:
    """``root/name``; refuses absolute paths and any ``..`` that would escape ``root``."""
    name = name.strip()
    if not name:
        raise BadInput("empty image name")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise BadInput(f"absolute image path refused: {name!r}")
    root_r = root.resolve()
    path = (root_r / name).resolve()
    if root_r != path and root_r not in path.parents:
        raise BadInput(f"image path escapes the images folder: {name!r}")
    return path
