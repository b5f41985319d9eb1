"""The README's test command is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```\n(pip install[^\n]*)\n```", (ROOT / "README.md").read_text())
    assert len(commands) == 2, "the README shows exactly two commands for a fresh machine"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q torch==2.13.0" in ci
    assert ci.strip().splitlines()[-1] == commands[1]
