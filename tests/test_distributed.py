"""Several processes, one report: torchrun ranks on CPU (gloo) against a one-process build."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import write_scene_images
from groundreport.distributed import Ranks, ranks_from_env, timeout_s
from groundreport.errors import UserError

IMAGES, CAPTIONS_PER_IMAGE = 7, 2  # 14 pairs; both captions of an image go to different ranks


def _dataset(root):
    scenes = write_scene_images(root / "Images", IMAGES)
    rows = ["image,caption"]
    for i, s in enumerate(scenes):
        rows += [f'img{i}.jpg,"{s.caption}"', f"img{i}.jpg,a {s.objects[0].phrase} in a square"]
    (root / "captions.txt").write_text("\n".join(rows) + "\n")


def _build(tiny_model_dir, root, report, nproc: int | None, batch_size: int = 1):
    launcher = [sys.executable, "-m", "groundreport"] if nproc is None else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        "-m", "groundreport"]
    cmd = launcher + ["build", "--captions", str(root / "captions.txt"), "--model", str(tiny_model_dir),
                      "--sample", "0", "--captions-per-image", str(CAPTIONS_PER_IMAGE), "--report", str(report),
                      "--site", str(root / f"site-{report.name}"), "--no-progress", "--device", "cpu",
                      "--batch-size", str(batch_size)]
    # torchrun gives each rank one thread; so does the one-process run, for bit-equal sums
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads((report / "manifest.json").read_text()), res.stdout


def _maps_mtimes(report, manifest):
    return {p["id"]: (report / p["maps"]["file"]).stat().st_mtime_ns for p in manifest["pairs"]}


def test_two_ranks_give_the_pairs_and_maps_of_one_process_and_resume(tiny_model_dir, tmp_path):
    _dataset(tmp_path)
    one, _ = _build(tiny_model_dir, tmp_path, tmp_path / "one", None)
    two, out = _build(tiny_model_dir, tmp_path, tmp_path / "two", 2)
    n = IMAGES * CAPTIONS_PER_IMAGE
    assert one["config"]["world_size"] == 1 and {p["rank"] for p in one["pairs"]} == {0}
    assert two["config"]["world_size"] == 2
    assert [p["id"] for p in one["pairs"]] == [p["id"] for p in two["pairs"]] and len(two["pairs"]) == n
    # each rank explained its shard, pairs[rank::2]: half each
    assert [p["rank"] for p in two["pairs"]] == [i % 2 for i in range(n)]
    assert f"rank 0 {n // 2}, rank 1 {n // 2}" in out
    for a, b in zip(one["pairs"], two["pairs"]):
        assert a["score"] == b["score"] and a["words"] == b["words"] and a["phrases"] == b["phrases"]
        with np.load(tmp_path / "one" / a["maps"]["file"]) as za, np.load(tmp_path / "two" / b["maps"]["file"]) as zb:
            assert za.files == zb.files
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k], err_msg=k)
    assert two["summary"] == one["summary"]
    assert (tmp_path / "site-two" / "index.html").is_file()
    assert not list((tmp_path / "two").rglob(".*.tmp"))

    # a resumed two-process run reuses every pair, whichever rank made it
    before = _maps_mtimes(tmp_path / "two", two)
    again, out = _build(tiny_model_dir, tmp_path, tmp_path / "two", 2, batch_size=4)
    assert f"({n} reused" in out and again["reused_pairs"] == n
    assert _maps_mtimes(tmp_path / "two", again) == before
    assert [p["rank"] for p in again["pairs"]] == [i % 2 for i in range(n)]  # the rank that made each pair

    # ... also pairs a one-process run made: rank 1 reuses rank 0's work
    before = _maps_mtimes(tmp_path / "one", one)
    resumed, out = _build(tiny_model_dir, tmp_path, tmp_path / "one", 2)
    assert f"({n} reused" in out and _maps_mtimes(tmp_path / "one", resumed) == before
    assert {p["rank"] for p in resumed["pairs"]} == {0} and resumed["config"]["world_size"] == 2


def test_ranks_from_the_environment():
    assert ranks_from_env({}) == Ranks(0, 0, 1)
    assert ranks_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == Ranks(3, 1, 4)
    with pytest.raises(UserError, match="RANK/LOCAL_RANK are missing"):
        ranks_from_env({"WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="RANK 2 is outside WORLD_SIZE 2"):
        ranks_from_env({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="GROUNDREPORT_RANK_TIMEOUT must be a positive number"):
        timeout_s({"GROUNDREPORT_RANK_TIMEOUT": "soon"})
    items = list("abcdefg")
    shards = [Ranks(r, r, 3).shard(items) for r in range(3)]
    assert sorted(x for s in shards for x in s) == list(enumerate(items))  # every pair once
    assert shards[1] == [(1, "b"), (4, "e")]
    assert Ranks(1, 1, 2).device("cpu") == "cpu"


RANK_SCRIPT = """
import os, sys, time
from groundreport.distributed import group, ranks_from_env
from groundreport.errors import UserError
ranks = ranks_from_env()
with group(ranks) as g:
    g.wait("start")
    if ranks.rank == 1:
        if sys.argv[1] == "die":
            os._exit(1)
        time.sleep(60)
    t = time.monotonic()
    try:
        g.wait("all pairs explained")
    except UserError as e:
        print(f"waited {time.monotonic() - t:.1f}: {e}", flush=True)
        os._exit(2)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["die", "hang"])
def test_a_rank_that_dies_or_hangs_is_a_clear_error_not_a_hang(how, tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), GROUNDREPORT_RANK_TIMEOUT="3")
        procs.append(subprocess.Popen([sys.executable, str(script), how], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    t = time.monotonic()
    out, err = procs[0].communicate(timeout=60)
    elapsed = time.monotonic() - t
    procs[1].kill()
    procs[1].wait()
    assert procs[0].returncode == 2, out + err
    assert "rank 0 of 2: another rank died or did not reach 'all pairs explained' in 3 s" in out
    assert "Ranks 1 failed to pass monitoredBarrier" in out  # gloo names the missing rank
    assert "rerun the same command to resume" in out
    assert elapsed < 30
