"""Every bad input is one line and exit 2; files honour the umask; a failed load leaves nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import write_scene_images


def _run(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "groundreport", *args], capture_output=True, text=True, cwd=cwd,
                          **kw)


def _one_line_error(res, message):
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "\u2500" not in res.stderr, res.stderr  # no trace, no rich box
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("groundreport: error:") and message in lines[0], res.stderr


@pytest.mark.parametrize("args, message", [
    (["build", "--demo", "--sample", "-1"], "--sample must be 0 (all) or a positive"),
    (["eval", "--sample", "-1", "--scenes", "2"], "--sample must be 0 (all) or a positive"),
    (["build", "--demo", "--target", "bogus"], "unknown target 'bogus'; choose from contrastive, itm"),
    (["eval", "--target", "bogus", "--scenes", "2"], "unknown target 'bogus'"),
    (["build", "--demo", "--captions-per-image", "9"], "--captions-per-image must be between 1 and 5"),
    (["build", "--demo", "--captions-per-image", "0"], "--captions-per-image must be between 1 and 5"),
    (["eval", "--scenes", "0"], "--scenes must be at least 1"),
    (["build", "--demo", "--methods", ","], "--methods is empty"),
    (["explain", "img.png", "   ", "--model", "demo"], "the caption is empty"),
    (["explain", "img.png", "a red star", "--model", "demo", "--target", "bogus"], "unknown target"),
    (["explain", "img.png", "a red star", "--model", "demo", "--methods", "nope"], "unknown method(s) nope"),
    (["explain", "missing.png", "a red star", "--model", "demo"], "image file missing"),
    (["download", "flickr30k", "--source", "hf", "--limit", "-3"], "--limit must be 0"),
])
def test_bad_inputs_are_one_line(args, message, tmp_path):
    write_scene_images(tmp_path, 1)
    (tmp_path / "img0.jpg").rename(tmp_path / "img.png")
    res = _run(args, tmp_path)
    _one_line_error(res, message)
    assert not (tmp_path / "report").exists() and not (tmp_path / "report-eval").exists()


def test_target_is_validated_in_the_api(tiny_adapter, tmp_path):
    from groundreport.api import explain
    from groundreport.errors import UserError

    write_scene_images(tmp_path, 1)
    with pytest.raises(UserError, match="unknown target 'bogus'"):
        explain(tiny_adapter, tmp_path / "img0.jpg", "a red star", methods=["gradcam"], target="bogus")
    with pytest.raises(UserError, match="the caption is empty"):
        explain(tiny_adapter, tmp_path / "img0.jpg", "", methods=["gradcam"])


def test_failed_model_load_leaves_no_report_folder_and_no_hub_noise(tmp_path):
    res = _run(["build", "--demo", "--model", str(tmp_path / "no-model"), "--offline"], tmp_path)
    _one_line_error(res, "could not be loaded")
    assert not (tmp_path / "report").exists()


def test_phrase_not_in_caption_warns_and_is_explained_as_its_own_text(tiny_model_dir, tmp_path):
    write_scene_images(tmp_path, 1)
    res = _run(["explain", "img0.jpg", "a red star and a blue circle", "--model", str(tiny_model_dir),
                "--phrase", "a green cross", "--methods", "relevancy,mm-attention", "--out", "out"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "warning: phrase 'a green cross' is not in the caption: explained as its own text" in res.stderr
    assert "Loading weights" not in res.stderr and "Traceback" not in res.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert any(m["level"] == "phrase" and m["text"] == "a green cross" for m in index["maps"])


def test_files_honour_the_umask(tiny_model_dir, grounding_jsonl, tmp_path):
    args = ["build", "--captions", str(grounding_jsonl), "--model", str(tiny_model_dir), "--report", "r",
            "--site", "s", "--no-progress", "--methods", "gradcam"]
    res = _run(args, tmp_path, preexec_fn=lambda: os.umask(0o022))
    assert res.returncode == 0, res.stderr
    files = [p for d in ("r", "s") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert len(files) > 10
    modes = {oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert modes == {"0o644"}, modes
    res = _run(["explain", str(grounding_jsonl.parent / "imgs" / "img0.png"), "a red star", "--model",
                str(tiny_model_dir), "--out", "o", "--methods", "gradcam"], tmp_path,
               preexec_fn=lambda: os.umask(0o022))
    assert res.returncode == 0, res.stderr
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in (tmp_path / "o").rglob("*") if p.is_file()} == {"0o644"}


def test_show_takes_a_phrase_or_a_word_and_names_bad_choices(tiny_adapter, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from groundreport.api import explain
    from groundreport.errors import UserError

    write_scene_images(tmp_path, 1)
    ex = explain(tiny_adapter, tmp_path / "img0.jpg", "a red star and a blue circle",
                 methods=["relevancy", "mm-attention"], phrases=["a blue circle"])
    assert ex.show(phrase="a blue circle")._suptitle.get_text().startswith("relevancy, phrase")
    assert ex.show(word="blue")._suptitle.get_text().startswith("relevancy, word \u201cblue\u201d")
    assert ex.show("mm-attention", word=5)._suptitle.get_text().startswith("mm-attention, word \u201cblue\u201d")
    for kwargs, message in [(dict(method="nope"), "unknown method 'nope'; methods run: relevancy, mm-attention"),
                            (dict(word="green"), "word 'green' is not in the caption"),
                            (dict(method="rollout", word="red"), "method .rollout. has no word maps"),
                            (dict(phrase="a red star"), "phrase 'a red star' was not explained")]:
        with pytest.raises(UserError, match=message):
            ex.show(**kwargs)
