"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A reader (or a run killed at any instant) sees either the old file or the new one, never half.
The temp file is created private (0600) and then given the mode an ordinary file would get
under the user's umask (0644 under 022), so that a copied site/ can be served by a web server.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def write_npz(path: Path, arrays: dict) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def write_image(path: Path, image, fmt: str, **params) -> None:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    write_bytes(path, buf.getvalue())
