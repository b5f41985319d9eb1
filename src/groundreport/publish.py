"""Publish site/ to a gh-pages branch with the well-kept ghp-import (as mkdocs gh-deploy does)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import UserError


def publish(site: Path, repo: Path, remote: str = "origin", branch: str = "gh-pages",
            message: str = "Update groundreport gallery", push: bool = True, cname: str | None = None) -> None:
    site, repo = Path(site).resolve(), Path(repo).resolve()
    if not (site / "index.html").is_file():
        raise UserError(f"{site} has no index.html: run 'groundreport build' or 'groundreport render' first")
    try:
        from ghp_import import GhpError, ghp_import
    except ImportError:
        raise UserError("publishing needs ghp-import: pip install 'groundreport[publish]'") from None
    git = ["git", "-C", str(repo)]
    if subprocess.run(git + ["rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        raise UserError(f"{repo} is not a git repository (pass --repo)")
    if push and subprocess.run(git + ["remote", "get-url", remote], capture_output=True).returncode != 0:
        raise UserError(f"git remote {remote!r} is not configured in {repo} (git remote add {remote} URL)")
    cwd = os.getcwd()
    os.chdir(repo)  # ghp-import drives git in the current directory
    try:
        ghp_import(str(site), mesg=message, remote=remote, branch=branch, push=push, nojekyll=True, cname=cname)
    except GhpError as e:
        raise UserError(f"ghp-import failed: {e}") from None
    except subprocess.CalledProcessError as e:
        raise UserError(f"git {' '.join(map(str, e.cmd[1:3]))} failed (exit {e.returncode}); "
                        f"check that you can push to {remote!r}") from None
    finally:
        os.chdir(cwd)
