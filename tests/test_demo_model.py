"""The bundled demo model really grounds: checked against boxes, a re-initialised twin, and
the README's commands run as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from groundreport.cli import app
from groundreport.demo.scenes import HELDOUT_SEED_BASE, make_scene, with_article
from groundreport.explainers import make_methods
from groundreport.explainers.suite import Suite
from groundreport.metrics.grounding import score_map
from groundreport.models.flava import FlavaAdapter, bundled_demo_path

README = Path(__file__).resolve().parents[1] / "README.md"
N_SCENES = 60


@pytest.fixture(scope="module")
def demo():
    return FlavaAdapter.load("demo", device="cpu")


def _pointing(adapter, method: str, n: int = N_SCENES) -> tuple[float, float]:
    """(pointing accuracy, random-object chance) over n held-out 2-4 object scenes."""
    suite = Suite(make_methods([method]))
    hits, chance = [], []
    for i in range(n):
        s = make_scene(HELDOUT_SEED_BASE + 7000 + i, (2, 4))
        phrases = [with_article(o.phrase) for o in s.objects]
        spans = [(p, (s.caption.index(p), s.caption.index(p) + len(p))) for p in phrases]
        res = suite.run(adapter, adapter.pixel_values([s.image]), s.caption, spans)
        for k, o in enumerate(s.objects):
            hits.append(score_map(res.maps[method].phrases[k], s.image.size, [o.box]).pointing_hit)
            chance.append(1 / len(s.objects))
    return float(np.mean(hits)), float(np.mean(chance))


def test_bundled_model_is_small_and_complete():
    path = bundled_demo_path()
    files = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= files
    assert (path / "model.safetensors").stat().st_size <= 20 * 2**20
    assert json.loads((path / "config.json").read_text())["architectures"] == ["FlavaForPreTraining"]


def test_two_phrases_in_one_scene_give_different_maps(demo):
    suite = Suite(make_methods(["gradcam", "relevancy"]))
    corrs = []
    for i in range(10):
        s = make_scene(HELDOUT_SEED_BASE + 1 + i, (3, 3))
        phrases = [(with_article(o.phrase), None) for o in s.objects]
        res = suite.run(demo, demo.pixel_values([s.image]), s.caption, phrases)
        c = np.corrcoef(res.maps["relevancy"].phrases.reshape(3, -1))
        corrs += [c[0, 1], c[0, 2], c[1, 2]]
        for name in ("gradcam",):  # a weaker method still changes with the phrase
            m = res.maps[name].phrases
            assert max(np.abs(m[i] - m[j]).max() for i in range(3) for j in range(i + 1, 3)) > 0.1, name
    # the best method: phrases of one scene get clearly different maps (mostly other objects)
    assert np.mean(corrs) < 0.3, corrs


def test_trained_model_points_and_a_reinitialised_one_does_not(demo, demo_random):
    trained, chance = _pointing(demo, "relevancy")
    random, _ = _pointing(demo_random, "relevancy")
    assert trained >= 0.70, f"trained relevancy pointing {trained:.2f}"
    assert random <= chance + 0.15, f"re-initialised model still points: {random:.2f} vs chance {chance:.2f}"


def test_bundled_clip_is_complete_and_reads_with_the_current_tokenizer():
    from groundreport.demo.model_spec import demo_clip_tokenizer
    from groundreport.models import load_adapter

    path = bundled_demo_path("demo-clip")
    assert json.loads((path / "config.json").read_text())["architectures"] == ["CLIPModel"]
    assert (path / "model.safetensors").stat().st_size <= 20 * 2**20
    clip = load_adapter("demo-clip", device="cpu")
    want = demo_clip_tokenizer()
    assert len(clip.tokenizer) == len(want) and clip.tokenizer.unk_token == want.unk_token == "<|unk|>"
    assert clip.tokenizer.tokenize("a Red circle!") == want.tokenize("a Red circle!")


def test_bundled_clip_points_at_the_named_object():
    from groundreport.models import load_adapter

    pointing, chance = _pointing(load_adapter("demo-clip", device="cpu"), "relevancy", n=30)
    assert pointing >= chance + 0.3, f"demo-clip relevancy pointing {pointing:.2f} vs chance {chance:.2f}"


@pytest.fixture(scope="module")
def demo_random(demo):
    from transformers import FlavaForPreTraining

    torch.manual_seed(0)
    fresh = FlavaForPreTraining(demo.model.config).eval()
    return FlavaAdapter(fresh, demo.processor, torch.device("cpu"), torch.float32, "demo-reinit", "random")


def test_readme_main_command_runs_offline(tmp_path, monkeypatch):
    commands = re.findall(r"```\n(pip install[^\n]*)\n```", README.read_text())
    assert commands[0] == "pip install -e . && groundreport build --demo"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = CliRunner().invoke(app, ["build", "--demo", "--no-progress"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "report" / "manifest.json").read_text())
    # the two bundled models explain the same 48 scenes into one report, side by side
    assert [x["id"] for x in m["models"]] == ["demo", "demo-clip"] and m["model"]["id"] == "demo"
    assert len(m["pairs"]) == 2 * 48
    for model in m["models"]:
        s = model["summary"]
        assert max(v["pointing"] for v in s["methods"].values()) > s["baselines"]["random_object"] + 0.2, model["id"]
    # the bundled FLAVA's MMM head was trained: its masked-word maps land above chance, per word too
    flava = m["models"][0]["summary"]
    chance = flava["baselines"]["random_object"]
    assert flava["methods"]["mm-masked"]["pointing"] > chance + 0.1
    assert flava["words"]["methods"]["mm-masked"]["pointing"] > chance + 0.1
    assert "occlusion" not in flava["methods"]  # --demo runs the default methods
    # caption-blind raw attention lands on other objects: the table says so
    assert any(line.lstrip().startswith("Raw attention (multimodal, per word)") and "(below chance: phrases" in line
               for line in res.output.splitlines()), res.output
    assert "(below chance: phrases" in (tmp_path / "site" / "index.html").read_text()
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_python_section_runs_as_written(monkeypatch):
    text = README.read_text()
    section = text[text.index("## Use it from Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(README.parent)
    import matplotlib

    matplotlib.use("Agg")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["gradcam"].shape == scope["circle"].shape == scope["phrase"].shape == tuple(scope["m"].grid)
    assert scope["gradcam"].dtype == np.float32
    assert scope["fig"] is not None
