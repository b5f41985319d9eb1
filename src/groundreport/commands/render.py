"""``groundreport render``: restyle site/ from a finished report/, no model."""

from __future__ import annotations

from pathlib import Path

import typer


def run(report: Path, site: Path) -> None:
    from ..render.site import render

    info = render(report, site)
    typer.echo(f"rendered {info['pairs']} pairs in {info['seconds']:.1f}s; "
               f"largest pair page {info['largest_pair_page_bytes'] / 1024:.0f} KiB; {site / 'index.html'}")
