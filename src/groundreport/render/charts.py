"""Static charts for the site: matplotlib without a display, saved as SVG."""

from __future__ import annotations

import io
from pathlib import Path

from .. import atomic


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_svg(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` as SVG (atomically) and close it."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    pyplot().close(fig)
    atomic.write_text(path, buf.getvalue())
