"""Batches of pairs: ``Suite.run_batch`` and ``--batch-size`` give the one-pair maps; out-of-memory halves.

Tolerance: maps are min-max normalised to [0, 1]. A batch pads its captions to the longest, so a
caption's text embedding rounds differently (6e-8) than alone; activations of the image encoder
are bit-equal. A word-in-context target differs from the caption's score by ~1e-3 of it, so that
rounding becomes ~1e-4 of a word's gradient, and normalisation can magnify it further. Measured
worst (batch of 6 against one by one, every method and level): demo model 3.1e-4
(gradcam/words), tiny random model 2.0e-3 (relevancy/words); caption-level maps 2e-5. For
scale, one pair with 1 thread against 2 threads: 1.3e-5 (demo), 2.6e-4 (tiny). The bar:
``MAP_ATOL`` = 1/255, one step of the 8-bit colour map the site draws with; scores within 1e-5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import write_scene_images
from groundreport.cli import app
from groundreport.demo.scenes import make_scene
from groundreport.explainers import REGISTRY, make_methods
from groundreport.explainers.suite import Suite

MAP_ATOL = 1 / 255  # one step of the 8-bit colour map the site draws with
LEVELS = ("caption", "words", "phrases", "layers", "heads")


def _span(caption, phrase):
    i = caption.find(phrase)
    return None if i < 0 else (i, i + len(phrase))


def _pairs(adapter, n=6):
    """Scenes with 1 to 4 objects (captions of different lengths: padding), one pair without
    phrases, one phrase that is not in its caption, one caption past the text limit."""
    scenes = [make_scene(900 + i, (1, 4), size=96) for i in range(n)]
    captions = [s.caption for s in scenes]
    phrases = [[(o.phrase, _span(s.caption, o.phrase)) for o in s.objects] for s in scenes]
    phrases[1] = []
    phrases[2].append(("a dog", None))
    captions[-1] = " and ".join([captions[-1]] * 16)
    pixels = torch.cat([adapter.pixel_values([s.image]) for s in scenes])
    return pixels, captions, phrases


def assert_same_results(ones, batched):
    assert len(ones) == len(batched)
    for a, b in zip(ones, batched):
        assert a.tokens == b.tokens and a.truncated == b.truncated and a.notes == b.notes
        assert [w.text for w in a.words] == [w.text for w in b.words]
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert (a.itm is None) == (b.itm is None) and (a.itm is None or a.itm == pytest.approx(b.itm, abs=1e-5))
        assert set(a.maps) == set(b.maps)
        for name in a.maps:
            for level in LEVELS:
                x, y = getattr(a.maps[name], level), getattr(b.maps[name], level)
                assert (x is None) == (y is None), (name, level)
                if x is not None:
                    assert x.shape == y.shape, (name, level)
                    np.testing.assert_allclose(x, y, atol=MAP_ATOL, rtol=0, err_msg=f"{name}/{level}")


@pytest.fixture(scope="module")
def demo_adapter():
    from groundreport.models.flava import FlavaAdapter

    return FlavaAdapter.load("demo", device="cpu")


@pytest.mark.parametrize("which", ["tiny", "demo"])
def test_run_batch_equals_run_pair_by_pair(which, tiny_adapter, demo_adapter):
    adapter = tiny_adapter if which == "tiny" else demo_adapter
    suite = Suite(make_methods(list(REGISTRY)))
    pixels, captions, phrases = _pairs(adapter)
    ones = [suite.run(adapter, pixels[i:i + 1], captions[i], phrases[i]) for i in range(len(captions))]
    assert any(r.truncated for r in ones) and len({len(r.tokens) for r in ones}) > 2  # padding is exercised
    assert_same_results(ones, suite.run_batch(adapter, pixels, captions, phrases))


def test_run_batch_without_an_itm_head_notes_every_pair(tiny_flavamodel_dir):
    from groundreport.models.flava import FlavaAdapter

    adapter = FlavaAdapter.load(str(tiny_flavamodel_dir), device="cpu")
    suite = Suite(make_methods(["gradcam", "mm-relevancy", "mm-attention"]))
    pixels, captions, phrases = _pairs(adapter, n=4)
    batched = suite.run_batch(adapter, pixels, captions, phrases)
    assert all(r.notes == ["mm-relevancy: skipped, the checkpoint has no ITM head"] for r in batched)
    assert_same_results([suite.run(adapter, pixels[i:i + 1], captions[i], phrases[i]) for i in range(4)], batched)


def test_run_batch_refuses_mismatched_lengths(tiny_adapter):
    pixels, captions, phrases = _pairs(tiny_adapter, n=4)
    with pytest.raises(ValueError, match="one of each per pair"):
        Suite(make_methods(["gradcam"])).run_batch(tiny_adapter, pixels, captions[:1], phrases)


def _dataset(tmp_path, n=7):
    scenes = write_scene_images(tmp_path / "imgs", n, "png")
    lines = [json.dumps({"image": f"imgs/img{i}.png", "caption": s.caption,
                         "phrases": [{"text": o.phrase, "boxes": [[float(v) for v in o.box]]} for o in s.objects]})
             for i, s in enumerate(scenes)]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "data.jsonl"


def _build(model, data, report, *extra):
    res = CliRunner().invoke(app, ["build", "--captions", str(data), "--model", str(model), "--sample", "0",
                                   "--methods", "gradcam,relevancy,mm-relevancy,mm-gradcam,attention,occlusion",
                                   "--report", str(report), "--site", str(report.parent / f"site-{report.name}"),
                                   "--no-progress", "--device", "cpu", *extra])
    assert res.exit_code == 0, res.output
    return json.loads((report / "manifest.json").read_text()), res.output


def assert_same_reports(ra, ma, rb, mb, atol=MAP_ATOL):
    assert [p["id"] for p in ma["pairs"]] == [p["id"] for p in mb["pairs"]]
    for pa, pb in zip(ma["pairs"], mb["pairs"]):
        assert pa["score"] == pytest.approx(pb["score"], abs=1e-4)
        assert [x["text"] for x in pa["phrases"]] == [x["text"] for x in pb["phrases"]]
        with np.load(ra / pa["maps"]["file"]) as za, np.load(rb / pb["maps"]["file"]) as zb:
            assert za.files == zb.files
            for k in za.files:
                np.testing.assert_allclose(za[k].astype(np.float32), zb[k].astype(np.float32), atol=atol, rtol=0,
                                           err_msg=k)


def test_build_batch_size_8_gives_the_maps_of_batch_size_1(tiny_model_dir, tmp_path):
    data = _dataset(tmp_path)
    m1, _ = _build(tiny_model_dir, data, tmp_path / "b1")
    m8, _ = _build(tiny_model_dir, data, tmp_path / "b8", "--batch-size", "8")
    assert m1["config"]["batch_size"] == 1 and m8["config"]["batch_size"] == 8
    assert m8["batch"] == {"size": 8, "final": 8, "notes": []}
    assert_same_reports(tmp_path / "b1", m1, tmp_path / "b8", m8)
    # the batch size is no map setting: a rerun at another size reuses every pair
    _, out = _build(tiny_model_dir, data, tmp_path / "b8", "--batch-size", "3")
    assert f"({len(m8['pairs'])} reused" in out


def _shared_images_dataset(tmp_path, images=3, captions=3):
    """Each image under several captions, so that writers meet on its display copy."""
    scenes = write_scene_images(tmp_path / "imgs", images * captions, "png")
    lines = [json.dumps({"image": f"imgs/img{i % images}.png", "caption": s.caption,
                         "phrases": [{"text": o.phrase, "boxes": [[float(v) for v in o.box]]} for o in s.objects]})
             for i, s in enumerate(scenes)]
    (tmp_path / "shared.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "shared.jsonl"


def test_several_writer_threads_write_the_same_report_as_one(tiny_model_dir, tmp_path, monkeypatch):
    import threading

    import groundreport.compute as compute

    data = _shared_images_dataset(tmp_path)
    writers, real = set(), compute._write_pair_entry

    def watched(*args, **kwargs):
        writers.add(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(compute, "_write_pair_entry", watched)
    monkeypatch.setattr(compute, "writer_threads", lambda: 1)
    m1, _ = _build(tiny_model_dir, data, tmp_path / "w1", "--batch-size", "3", "--captions-per-image", "3")
    assert len(writers) == 1 and len(m1["pairs"]) == 9
    writers.clear()
    monkeypatch.setattr(compute, "writer_threads", lambda: 4)
    m4, _ = _build(tiny_model_dir, data, tmp_path / "w4", "--batch-size", "3", "--captions-per-image", "3")
    assert len(writers) >= 2, "the writes did not spread over the writer threads"
    assert_same_reports(tmp_path / "w1", m1, tmp_path / "w4", m4, atol=0)
    files = lambda r: sorted(str(f.relative_to(r)) for f in r.rglob("*") if f.is_file() and f.name != "manifest.json")
    assert files(tmp_path / "w1") == files(tmp_path / "w4")  # every overlay, no temp file left over


def test_a_failed_write_fails_the_build_and_keeps_the_pairs_written(tiny_model_dir, tmp_path, monkeypatch):
    import groundreport.compute as compute

    data = _shared_images_dataset(tmp_path)
    real, calls = compute._write_pair_entry, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(compute, "_write_pair_entry", failing)
    monkeypatch.setattr(compute, "writer_threads", lambda: 3)
    args = ["build", "--captions", str(data), "--model", str(tiny_model_dir), "--sample", "0", "--captions-per-image",
            "3", "--methods", "gradcam", "--report", str(tmp_path / "r"), "--site", str(tmp_path / "s"),
            "--no-progress", "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0 and "No space left on device" in (res.output + repr(res.exception))
    assert not (tmp_path / "r" / "manifest.json").is_file()
    assert not list((tmp_path / "r").rglob(".*.tmp"))
    # every entry written is whole: a rerun reuses those pairs and redoes the failed one
    done = len(list((tmp_path / "r" / "pairs").glob("*/entry.json")))
    assert 1 <= done <= 8
    monkeypatch.setattr(compute, "_write_pair_entry", real)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"({done} reused" in res.output
    assert len(json.loads((tmp_path / "r" / "manifest.json").read_text())["pairs"]) == 9


def test_out_of_memory_halves_the_batch_and_retries_it(tiny_model_dir, tmp_path, monkeypatch):
    """An injected out-of-memory error for every batch larger than 2: 8 -> 4 -> 2, no pair lost."""
    data = _dataset(tmp_path, n=8)
    real = Suite.run_batch
    sizes = []

    def run_batch_or_oom(self, adapter, pixels, captions, phrases, **kw):
        sizes.append(len(captions))
        if len(captions) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, adapter, pixels, captions, phrases, **kw)

    monkeypatch.setattr(Suite, "run_batch", run_batch_or_oom)
    m, out = _build(tiny_model_dir, data, tmp_path / "oom", "--batch-size", "8")
    assert sizes == [8, 4, 2, 2, 2, 2]  # the failed batch is retried, halved, until it fits
    assert len(m["pairs"]) == 8 and not m["skipped"]
    assert m["batch"] == {"size": 8, "final": 2, "notes": ["out of memory at batch 8: continued at batch 4",
                                                           "out of memory at batch 4: continued at batch 2"]}
    assert "note: out of memory at batch 8: continued at batch 4" in out
    monkeypatch.undo()
    m1, _ = _build(tiny_model_dir, data, tmp_path / "one")
    assert_same_reports(tmp_path / "one", m1, tmp_path / "oom", m)


def test_batcher_skips_a_pair_that_does_not_fit_alone(tiny_adapter):
    from groundreport.compute import Batcher

    class Full:
        def run(self, *a, **kw):
            raise torch.OutOfMemoryError("CUDA out of memory")

        def run_batch(self, *a, **kw):
            raise torch.OutOfMemoryError("CUDA out of memory")

    pixels, captions, phrases = _pairs(tiny_adapter, n=3)
    batcher = Batcher(tiny_adapter, Full(), 4)
    out = batcher.run(list(pixels.split(1)), captions, phrases)
    assert out == ["out of GPU memory for this pair (try --dtype bf16 or fewer --methods)"] * 3
    assert batcher.size == 1


def test_explain_many_equals_explain(tiny_adapter, tmp_path):
    from groundreport.api import explain, explain_many
    from groundreport.errors import UserError

    scenes = write_scene_images(tmp_path, 3)
    items = [(tmp_path / f"img{i}.jpg", s.caption, [s.objects[0].phrase]) for i, s in enumerate(scenes)]
    many = explain_many(tiny_adapter, items, batch_size=3)
    for (image, caption, phrases), b in zip(items, many):
        a = explain(tiny_adapter, image, caption, phrases=phrases)
        assert a.words == b.words and a.warnings == b.warnings
        for name in a.maps:
            np.testing.assert_allclose(a.maps[name], b.maps[name], atol=MAP_ATOL, rtol=0)
        for name in a.phrase_maps:
            for p in a.phrase_maps[name]:
                np.testing.assert_allclose(a.phrase_maps[name][p], b.phrase_maps[name][p], atol=MAP_ATOL, rtol=0)
    with pytest.raises(UserError, match="batch_size must be a positive"):
        explain_many(tiny_adapter, items, batch_size=0)


def test_bad_batch_size_is_one_line(tmp_path):
    res = CliRunner().invoke(app, ["build", "--demo", "--batch-size", "0", "--report", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--batch-size must be a positive number of pairs, not 0" in res.output
    assert not (tmp_path / "r").exists()


def test_faithfulness_with_batches_checks_every_pair_as_one_by_one(tiny_model_dir, tmp_path):
    """--faithfulness with --batch-size: each pair's checks run after its batch, as at batch 1."""
    import json

    checks = {}
    for b in ("1", "3"):
        res = CliRunner().invoke(app, ["eval", "--model", str(tiny_model_dir), "--scenes", "3", "--report",
                                       str(tmp_path / f"ev{b}"), "--no-progress", "--methods", "relevancy,rollout",
                                       "--faithfulness", "--batch-size", b])
        assert res.exit_code == 0, res.output
        m = json.loads((tmp_path / f"ev{b}" / "manifest.json").read_text())
        assert m["batch"]["size"] == int(b) and m["summary"]["checks"]["pairs"] == 3
        checks[b] = [p["checks"]["faithfulness"]["methods"]["relevancy"]["deletion_auc"] for p in m["pairs"]]
    for one, batched in zip(checks["1"], checks["3"]):  # one AUC per target: the caption, then each phrase
        np.testing.assert_allclose(np.array(one, float), np.array(batched, float), atol=1e-3)
