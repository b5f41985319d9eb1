"""Reading annotation text files that may not be clean UTF-8."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def read_text(path: Path) -> str:
    """UTF-8 (BOM tolerated); undecodable bytes become U+FFFD instead of stopping the run."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    return data.decode("utf-8-sig", errors="replace")
