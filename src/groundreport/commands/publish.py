"""``groundreport publish``: site/ onto the gh-pages branch (ghp-import), then push."""

from __future__ import annotations

from pathlib import Path

import typer


def run(site: Path, repo: Path, remote: str, branch: str, message: str, push: bool, cname: str | None) -> None:
    from ..publish import publish

    publish(site, repo, remote, branch, message, push, cname)
    typer.echo(f"published {site} to {branch}" + (f" and pushed to {remote}" if push else " (not pushed)"))
