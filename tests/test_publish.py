"""`groundreport publish` against a local bare repository (no network)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("ghp_import", reason="publish needs ghp-import: pip install -e .[test]")


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_publish_pushes_site_to_gh_pages(tmp_path):
    bare = tmp_path / "remote.git"
    git("init", "--bare", "-q", str(bare), cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    site = tmp_path / "site"
    (site / "pairs").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>g</title>")
    (site / "pairs" / "a.html").write_text("<p>a</p>")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    import os

    res = subprocess.run([sys.executable, "-m", "groundreport", "publish", "--site", str(site), "--repo", str(work)],
                         capture_output=True, text=True, env={**os.environ, **env})
    assert res.returncode == 0, res.stderr
    files = git("ls-tree", "-r", "--name-only", "gh-pages", cwd=bare).split()
    assert sorted(files) == [".nojekyll", "index.html", "pairs/a.html"]
    # the user's own branch is untouched
    assert git("ls-tree", "-r", "--name-only", "HEAD", cwd=work) == ""


def test_publish_without_a_site_is_one_line(tmp_path):
    res = subprocess.run([sys.executable, "-m", "groundreport", "publish", "--site", str(tmp_path / "none"),
                          "--repo", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.strip().startswith("groundreport: error:") and "Traceback" not in res.stderr
