"""Kill a real build with SIGKILL mid-run; the rerun finishes without redoing finished pairs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from conftest import write_scene_images


def _cmd(tiny_model_dir, root, report):
    return [sys.executable, "-m", "groundreport", "build", "--captions", str(root / "captions.txt"),
            "--model", str(tiny_model_dir), "--sample", "0", "--report", str(report),
            "--site", str(root / f"site-{report.name}"), "--no-progress", "--device", "cpu"]


def _write_dataset(root, n: int = 24) -> None:
    scenes = write_scene_images(root / "Images", n)
    rows = ["image,caption"] + [f'img{i}.jpg,"{s.caption}"' for i, s in enumerate(scenes)]
    (root / "captions.txt").write_text("\n".join(rows) + "\n")


def _wait_for_pairs(report, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and len(list(report.glob("pairs/*/entry.json"))) < n:
        time.sleep(0.05)


def test_sigkill_then_resume_equals_uninterrupted(tiny_model_dir, tmp_path):
    _write_dataset(tmp_path)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tiny_model_dir, tmp_path, killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_pairs(killed, 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name for p in killed.glob("pairs/*/entry.json")}
    assert 3 <= len(done_before) < 24, "the kill must land mid-run"
    assert not (killed / "manifest.json").exists()
    mtimes = {d: (killed / "pairs" / d / "maps.npz").stat().st_mtime_ns for d in done_before}

    res = subprocess.run(_cmd(tiny_model_dir, tmp_path, killed), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert f"({len(done_before)} reused" in res.stdout
    for d, t in mtimes.items():  # finished pairs were not recomputed
        assert (killed / "pairs" / d / "maps.npz").stat().st_mtime_ns == t
    assert not list(killed.rglob(".*.tmp"))

    clean = tmp_path / "clean"
    subprocess.run(_cmd(tiny_model_dir, tmp_path, clean), check=True, capture_output=True)
    a = json.loads((killed / "manifest.json").read_text())
    b = json.loads((clean / "manifest.json").read_text())
    assert [p["id"] for p in a["pairs"]] == [p["id"] for p in b["pairs"]]
    for pa, pb in zip(a["pairs"], b["pairs"]):
        assert pa["score"] == pb["score"]
        with np.load(killed / pa["maps"]["file"]) as za, np.load(clean / pb["maps"]["file"]) as zb:
            assert za.files == zb.files
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k])


def test_sigterm_stops_cleanly_and_leaves_a_consistent_report(tiny_model_dir, tmp_path):
    _write_dataset(tmp_path)
    report = tmp_path / "r"
    proc = subprocess.Popen(_cmd(tiny_model_dir, tmp_path, report), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_pairs(report, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    for entry in report.glob("pairs/*/entry.json"):  # every finished pair points at files that exist
        e = json.loads(entry.read_text())
        assert (report / e["maps"]["file"]).is_file() and (report / e["image"]).is_file()
        assert all((report / p).is_file() for o in e["overlays"].values() for p in o.values())
