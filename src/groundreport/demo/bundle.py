"""Where the bundled demo scenes live inside the package (written by ``scripts/make_demo_scenes.py``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

DEMO_SCENES = 48


def demo_jsonl() -> Path:
    path = Path(__file__).resolve().parent / "scenes_data" / "scenes.jsonl"
    if not path.is_file():
        raise UserError(f"bundled demo scenes missing ({path}); reinstall groundreport")
    return path
