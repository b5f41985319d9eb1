"""Where the Jinja2 templates live: inside the wheel, or at the repository's top level."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    installed = Path(__file__).resolve().parent.parent / "templates"  # wheel: groundreport/templates
    if installed.is_dir():
        return installed
    repo = Path(__file__).resolve().parents[3] / "templates"  # editable install / source checkout
    if repo.is_dir():
        return repo
    raise FileNotFoundError("groundreport templates not found (broken install?)")
