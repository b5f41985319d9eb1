"""The command line end to end on tiny models saved and reloaded through from_pretrained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from groundreport.cli import app

runner = CliRunner()


def _build(args, tmp_path):
    report, site = tmp_path / "report", tmp_path / "site"
    res = runner.invoke(app, ["build", *args, "--report", str(report), "--site", str(site), "--no-progress"])
    assert res.exit_code == 0, res.output
    return report, site, res.output


def _check_site(report: Path, site: Path) -> dict:
    manifest = json.loads((report / "manifest.json").read_text())
    assert manifest["schema_version"] == 2
    assert (site / "index.html").is_file() and (site / ".nojekyll").is_file()
    for p in manifest["pairs"]:
        assert (site / "pairs" / f"{p['id']}.html").is_file()
        assert (report / p["maps"]["file"]).is_file()
        with np.load(report / p["maps"]["file"]) as z:
            for method, keys in p["maps"]["keys"].items():
                cap = z[keys["caption"]]
                assert cap.dtype == np.float16 and np.isfinite(cap).all()
    return manifest


def test_build_notebook_layout(tiny_model_dir, flickr_csv, tmp_path):
    report, site, out = _build(["--images", str(flickr_csv.parent / "Images"), "--captions", str(flickr_csv),
                                "--sample", "2", "--captions-per-image", "2", "--model", str(tiny_model_dir)], tmp_path)
    m = _check_site(report, site)
    assert len(m["pairs"]) == 4 and m["dataset"]["format"] == "csv"
    assert m["model"]["revision"].startswith("sha256:")
    assert {"model load", "explainers", "image encoding"} <= set(m["timings"])
    p = m["pairs"][0]
    assert p["words"] and p["tokens"][0] == "[CLS]" and isinstance(p["score"], float)
    assert "time per stage" in out


def test_build_grounding_jsonl_scores_phrases(tiny_model_dir, grounding_jsonl, tmp_path):
    report, site, out = _build(["--captions", str(grounding_jsonl), "--model", str(tiny_model_dir)], tmp_path)
    m = _check_site(report, site)
    s = m["summary"]
    assert s["phrases"] == sum(len(p["phrases"]) for p in m["pairs"])
    assert set(s["methods"]) == {x["name"] for x in m["methods"]}
    assert 0 < s["baselines"]["random_object"] < 1
    assert "chance: random object" in out
    index = (site / "index.html").read_text()
    assert "Random annotated object" in index and "methods.svg" in index
    assert m["config"]["shifts"] == 4  # build's default; the index says what was averaged
    averaged = [x["label"] for x in m["methods"] if x["shift_average"]]
    assert {x["name"] for x in m["methods"] if x["shift_average"]} == {"relevancy", "gradcam", "legrad", "mm-masked"}
    assert f"{', '.join(averaged)}: maps averaged over 4 copies of the image moved by half a patch" in index
    # smoothing is on by default for the methods that peak on a few patches; the index says so
    assert {x["name"]: x["smooth"] for x in m["methods"] if x["smooth"]} == {"relevancy": 1.0, "mm-masked": 1.0}
    assert "Relevancy (image encoder) (&sigma; 1.0 patch), Masked word (multimodal, per word) (&sigma; 1.0 patch)" in index


def test_shifts_other_than_1_2_4_are_one_line_errors(tiny_model_dir, grounding_jsonl, tmp_path):
    res = runner.invoke(app, ["build", "--captions", str(grounding_jsonl), "--model", str(tiny_model_dir),
                              "--shifts", "3", "--report", str(tmp_path / "r"), "--site", str(tmp_path / "s")])
    assert res.exit_code == 2 and "--shifts must be 1 (off), 2 or 4 copies of the image, not 3" in res.output
    assert not (tmp_path / "r").exists()
    res = runner.invoke(app, ["explain", "missing.png", "a red star", "--shifts", "0", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--shifts must be 1 (off), 2 or 4 copies of the image, not 0" in res.output


def test_build_karpathy_and_model_without_itm(tiny_flavamodel_dir, tmp_path):
    from conftest import write_scene_images

    write_scene_images(tmp_path / "imgs", 2)
    data = {"images": [{"filename": f"img{i}.jpg", "split": "test", "sentences": [{"raw": "a red star"}]}
                       for i in range(2)]}
    (tmp_path / "k.json").write_text(json.dumps(data))
    report, site, _ = _build(["--captions", str(tmp_path / "k.json"), "--images", str(tmp_path / "imgs"),
                              "--model", str(tiny_flavamodel_dir)], tmp_path)
    m = _check_site(report, site)
    assert m["model"]["has_itm"] is False
    assert "mm-relevancy" not in m["pairs"][0]["maps"]["keys"]
    # no MMM head: mm-masked skipped, so the manifest and the index do not call its maps averaged
    averaged = {x["name"] for x in m["methods"] if x["shift_average"]}
    assert "mm-masked" not in m["pairs"][0]["maps"]["keys"] and averaged == {"relevancy", "gradcam", "legrad"}
    assert "Masked word" not in (site / "index.html").read_text().split("Shift averaging")[1].split("</dd>")[0]


def test_rerun_reuses_pairs_and_changed_settings_do_not(tiny_model_dir, grounding_jsonl, tmp_path):
    args = ["--captions", str(grounding_jsonl), "--model", str(tiny_model_dir)]
    report, _, _ = _build(args, tmp_path)
    first = json.loads((report / "manifest.json").read_text())
    _, _, out = _build(args, tmp_path)
    assert "(3 reused" in out
    second = json.loads((report / "manifest.json").read_text())
    assert [p["id"] for p in first["pairs"]] == [p["id"] for p in second["pairs"]]
    _, _, out = _build(args + ["--methods", "gradcam,rollout"], tmp_path)
    assert "(0 reused" in out


def test_render_needs_only_the_report(tiny_model_dir, grounding_jsonl, tmp_path):
    report, site, _ = _build(["--captions", str(grounding_jsonl), "--model", str(tiny_model_dir)], tmp_path)
    (site / "index.html").unlink()
    res = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; "
                          "sys.modules['transformers'] = None; from groundreport.cli import main; main()",
                          "render", "--report", str(report), "--site", str(site)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (site / "index.html").is_file()
    # a report from before methods[].shift_average still renders; one whose methods average nothing says so
    manifest = json.loads((report / "manifest.json").read_text())
    for flags, row in (({}, "<dd>maps averaged over 4 copies of the image moved by half a patch</dd>"),
                       ({"shift_average": False}, "4 copies asked for, but no method of this report averages")):
        for x in manifest["methods"]:
            x.pop("shift_average", None)
            x.update(flags)
        (report / "manifest.json").write_text(json.dumps(manifest))
        res = runner.invoke(app, ["render", "--report", str(report), "--site", str(site)])
        assert res.exit_code == 0, res.output
        assert row in (site / "index.html").read_text()


def test_explain_one_pair(tiny_model_dir, tmp_path):
    from conftest import write_scene_images

    write_scene_images(tmp_path, 1)
    res = runner.invoke(app, ["explain", str(tmp_path / "img0.jpg"), "a man in a red jacket", "--out",
                              str(tmp_path / "out"), "--model", str(tiny_model_dir), "--phrase", "a red jacket"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "out" / "maps.npz") as z:
        assert z["gradcam/caption"].shape == (4, 4)
        assert z["mm-relevancy/words"].shape == (6, 4, 4)
        assert z["gradcam/phrases"].shape == (1, 4, 4)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    by_text = {(m["method"], m["level"], m["text"]): m for m in index["maps"]}
    phrase = by_text[("gradcam", "phrase", "a red jacket")]
    assert phrase["image"] == "gradcam/phrase-00-a-red-jacket.png" and phrase["array"] == "gradcam/phrases"
    assert by_text[("mm-relevancy", "word", "jacket")]["row"] == 5
    for m in index["maps"]:
        assert (tmp_path / "out" / m["image"]).is_file()


@pytest.mark.parametrize("args, message", [
    (["build", "--captions", "nowhere.txt", "--model", "demo"], "not found"),
    (["build", "--demo", "--model", "/nonexistent/model/dir", "--offline"], "could not be loaded"),
    (["build", "--demo", "--methods", "gradcam,magic"], "unknown method"),
    (["build", "--demo", "--device", "cuda:7"], None),
    (["render", "--report", "no-such-report"], "run 'groundreport build' first"),
    (["eval", "--split", "train", "--scenes", "2"], "splits test and val"),
    (["demo", "train", "--device", "gpu", "--out", "m"], "unknown --device"),
    (["demo", "train", "--split", "all", "--out", "m"], "splits test and val"),
    (["demo", "train", "--steps", "-5", "--out", "m"], "--steps must be >= 0"),
    (["demo", "train", "--minutes", "0", "--out", "m"], "--minutes > 0"),
])
def test_user_mistakes_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = subprocess.run([sys.executable, "-m", "groundreport", *args], capture_output=True, text=True)
    if args[-1] == "cuda:7":
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA; the cpu-only error path cannot be shown")
        message = "CUDA is not available"
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert "Traceback" not in res.stderr
    assert lines[-1].startswith("groundreport: error:") and message in lines[-1]


def test_help_does_not_import_torch():
    code = ("import sys; from groundreport.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.split() == ["False", "False"], res.stderr


def test_eval_scores_heldout_scenes_next_to_chance(tiny_model_dir, tmp_path):
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--scenes", "4", "--report",
                              str(tmp_path / "ev"), "--no-progress", "--methods", "relevancy,rollout"])
    assert res.exit_code == 0, res.output
    assert "Relevancy (image encoder)" in res.output and "chance: random object" in res.output
    m = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert m["summary"]["phrases"] >= 8  # 4 scenes of 2-4 objects


def test_eval_of_data_without_boxes_is_refused_before_anything_is_written(tiny_model_dir, tmp_path):
    """No phrase with a box: one line, exit 2, and an existing report is left as it was; rows the
    loader rejects are named in the error with the first reason."""
    from conftest import write_scene_images

    write_scene_images(tmp_path / "imgs", 1)
    report = tmp_path / "ev"
    report.mkdir()
    (report / "manifest.json").write_text('{"kept": true}')
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"image": "img0.jpg", "caption": "a red star", "phrases": []}) + "\n")
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--captions", str(data), "--images",
                              str(tmp_path / "imgs"), "--report", str(report), "--no-progress"])
    assert res.exit_code == 2 and "nothing to score: no phrase in this data has a box" in res.output
    assert [p.name for p in report.iterdir()] == ["manifest.json"]
    assert json.loads((report / "manifest.json").read_text()) == {"kept": True}
    data.write_text(json.dumps({"image": "img0.jpg", "caption": "a red star",
                                "phrases": [{"text": "a red star", "boxes": [[10, 0, 5, 9]]}]}) + "\n")
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--captions", str(data), "--images",
                              str(tmp_path / "imgs"), "--report", str(tmp_path / "ev2"), "--no-progress"])
    assert res.exit_code == 2 and "no usable image-caption pairs (1 rows skipped; first: " in res.output
    assert "x1" in res.output.split("first: ")[1] and not (tmp_path / "ev2").exists()


def test_eval_names_what_it_skipped(tiny_model_dir, grounding_jsonl, tmp_path):
    """A bad line among good ones: eval scores the rest and says, as build does, what it skipped and why."""
    data = tmp_path / "d.jsonl"
    data.write_text(grounding_jsonl.read_text() + "{not json\n")
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--captions", str(data), "--images",
                              str(grounding_jsonl.parent), "--report", str(tmp_path / "ev"), "--no-progress",
                              "--methods", "gradcam", "--shifts", "1"])
    assert res.exit_code == 0, res.output
    assert "  skipped " in res.output and "invalid JSON" in res.output


def test_damaged_report_render_error_then_build_repairs(tiny_model_dir, grounding_jsonl, tmp_path):
    report, site, _ = _build(["--captions", str(grounding_jsonl), "--model", str(tiny_model_dir)], tmp_path)
    m = json.loads((report / "manifest.json").read_text())
    (report / m["pairs"][1]["maps"]["file"]).unlink()
    res = runner.invoke(app, ["render", "--report", str(report), "--site", str(site)])
    assert res.exit_code == 2 and "maps.npz is missing" in res.output
    assert (site / "index.html").is_file() and not (tmp_path / ".site.building").exists()  # old site kept
    _, _, out = _build(["--captions", str(grounding_jsonl), "--model", str(tiny_model_dir)], tmp_path)
    assert "(2 reused" in out
    _check_site(report, site)


def test_cli_method_lists_match_the_registry():
    from groundreport import cli
    from groundreport.explainers import DEFAULT_METHODS, REGISTRY

    assert cli.DEFAULT_METHODS.split(",") == DEFAULT_METHODS
    assert sorted(cli.ALL_METHODS.split(",")) == sorted(REGISTRY)


def test_eval_faithfulness_writes_the_summary_keys_and_prints_the_table(tiny_model_dir, tmp_path):
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--scenes", "3", "--report",
                              str(tmp_path / "ev"), "--no-progress", "--methods", "relevancy,rollout,mm-relevancy",
                              "--faithfulness"])
    assert res.exit_code == 0, res.output
    assert "Faithfulness on 3 pairs" in res.output and "baseline: random map" in res.output
    m = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    s = m["summary"]
    for name in ("relevancy", "rollout", "mm-relevancy", "random", "centre"):
        assert set(s["faithfulness"][name]) == {"deletion_auc", "insertion_auc", "drop", "increase"}
    for name in ("relevancy", "rollout", "mm-relevancy"):
        assert set(s["sanity"][name]) >= {"caption_shuffle_corr", "caption_blind", "randomisation"}
        assert s["sanity"][name]["randomisation"][0] == 1.0  # depth 0: the model itself
    assert s["sanity"]["rollout"]["caption_blind"] is True  # (a random tiny model may blur the others too)
    assert s["checks"]["pairs"] == 3 and s["checks"]["randomisation_pairs"] == 3
    p = m["pairs"][0]
    k = 1 + len(p["phrases"])
    assert len(p["checks"]["faithfulness"]["methods"]["relevancy"]["deletion_auc"]) == k
    assert p["checks"]["other_caption"] != p["caption"]
    # the same run without --faithfulness has other pair ids: checks are part of a pair's settings
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--scenes", "3", "--report",
                              str(tmp_path / "ev"), "--no-progress", "--methods", "relevancy,rollout,mm-relevancy"])
    assert res.exit_code == 0, res.output
    m2 = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert "faithfulness" not in m2["summary"] and "checks" not in m2["pairs"][0]
    assert {p["id"] for p in m2["pairs"]}.isdisjoint({p["id"] for p in m["pairs"]})
