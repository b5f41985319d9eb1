"""The demo trainer's caption negatives: each one must really not describe the scene."""

from __future__ import annotations

import random

from groundreport.demo.scenes import HELDOUT_SEED_BASE, make_scene
from groundreport.demo.train import hard_negative


def _scenes(n=300):
    for i in range(n):
        yield [(o.colour, o.shape) for o in make_scene(HELDOUT_SEED_BASE + 50_000 + i, (1, 4)).objects]


def test_hard_negative_changes_one_attribute_of_one_object():
    rng = random.Random(1)
    for objs in _scenes():
        neg = hard_negative(objs, rng)
        changed = [(a, b) for a, b in zip(objs, neg) if a != b]
        assert len(changed) == 1
        (c0, s0), (c1, s1) = changed[0]
        assert (c0 == c1) != (s0 == s1)
        assert changed[0][1] not in objs


def _tiny_run(out, log=lambda m: None, **kw):
    from groundreport.demo.train import TrainSettings, train

    settings = dict(steps=3, pool_size=48, batch_size=8, itm_pairs=8, threads=1, device="cpu") | kw
    return train(TrainSettings(out_dir=out, **settings), log=log)


def test_training_is_seeded_and_saves_a_loadable_model(tmp_path):
    from safetensors.torch import load_file

    from groundreport.models.flava import FlavaAdapter

    assert _tiny_run(tmp_path / "a")["steps"] == 3
    _tiny_run(tmp_path / "b")
    _tiny_run(tmp_path / "c", seed=1)
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert all(a[k].equal(b[k]) for k in a)  # same seed, same weights
    assert not all(a[k].equal(c[k]) for k in a)
    adapter = FlavaAdapter.load(str(tmp_path / "a"), device="cpu", offline=True)
    assert adapter.grid == (8, 8)


def test_a_time_cap_that_cuts_the_schedule_says_so(tmp_path):
    cut, whole = [], []
    res = _tiny_run(tmp_path / "cut", log=cut.append, steps=500, minutes=0.002)
    assert res["steps"] < 500
    assert any(m.startswith("warning:") and f"step {res['steps']} of 500" in m for m in cut)
    _tiny_run(tmp_path / "whole", log=whole.append)
    assert whole and not any(m.startswith("warning:") for m in whole)


def test_input_and_patch_size_set_the_saved_model_and_processor(tmp_path):
    from groundreport.models.flava import FlavaAdapter

    _tiny_run(tmp_path / "p12", image_size=96, patch_size=12)
    adapter = FlavaAdapter.load(str(tmp_path / "p12"), device="cpu", offline=True)
    assert adapter.grid == (8, 8)  # 96 px in 12 px patches
    assert adapter.processor.image_processor.size["height"] == 96
