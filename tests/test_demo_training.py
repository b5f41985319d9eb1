"""The demo trainer's caption negatives: each one must really not describe the scene."""

from __future__ import annotations

import random
from collections import Counter

from groundreport.demo.scenes import HELDOUT_SEED_BASE, make_scene
from groundreport.demo.train import binding_negative, hard_negative


def _scenes(n=300):
    for i in range(n):
        yield [(o.colour, o.shape) for o in make_scene(HELDOUT_SEED_BASE + 50_000 + i, (1, 4)).objects]


def test_binding_negative_keeps_colours_and_shapes_but_not_their_pairing():
    rng = random.Random(0)
    made = 0
    for objs in _scenes():
        neg = binding_negative(objs, rng)
        if neg is None:
            # only when no two objects differ in both colour and shape, or a swap would repeat one
            assert len(objs) < 2 or not any(
                a[0] != b[0] and a[1] != b[1] and (b[0], a[1]) not in objs and (a[0], b[1]) not in objs
                for a in objs for b in objs)
            continue
        made += 1
        assert Counter(c for c, _ in neg) == Counter(c for c, _ in objs)
        assert Counter(s for _, s in neg) == Counter(s for _, s in objs)
        assert len(set(neg)) == len(neg)  # no colour+shape twice, as in a real scene
        assert set(neg) != set(objs)
        assert len(set(neg) - set(objs)) == 2  # exactly two objects re-paired
    assert made > 100


def test_hard_negative_changes_one_attribute_of_one_object():
    rng = random.Random(1)
    for objs in _scenes():
        neg = hard_negative(objs, rng)
        changed = [(a, b) for a, b in zip(objs, neg) if a != b]
        assert len(changed) == 1
        (c0, s0), (c1, s1) = changed[0]
        assert (c0 == c1) != (s0 == s1)
        assert changed[0][1] not in objs


def test_hide_patches_hides_whole_cells_at_the_given_rate():
    import torch

    from groundreport.demo.train import hide_patches

    torch.manual_seed(0)
    x = torch.randn(64, 3, 64, 64) + 5  # never 0 by chance
    out = hide_patches(x, 0.25, 8)
    cells = out.reshape(64, 3, 8, 8, 8, 8).permute(0, 2, 4, 1, 3, 5).reshape(64, 8, 8, -1)
    hidden = (cells == 0).all(-1)
    kept = (cells != 0).all(-1)
    assert (hidden | kept).all()  # a cell is hidden whole or not at all
    kept_pixels = kept.repeat_interleave(8, 1).repeat_interleave(8, 2).unsqueeze(1).expand_as(x)
    assert torch.equal(out[kept_pixels], x[kept_pixels])
    assert 0.22 < hidden.float().mean() < 0.28
    assert torch.equal(hide_patches(x, 0.0, 8), x)


def test_ema_update_is_the_warmed_up_moving_average():
    import torch

    from groundreport.demo.train import ema_update

    ema, expected = [torch.zeros(3)], torch.zeros(3)
    for step in range(1, 60):
        w = torch.full((3,), float(step))
        ema_update(ema, [w], 0.9, step)
        d = min(0.9, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * w
    assert torch.allclose(ema[0], expected)
    assert 50 < ema[0][0] < 59  # lags the last weights (59), as a decay of 0.9 should


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


def test_ema_run_keeps_raw_weights_and_minimal_pairs_change_the_batches(tmp_path):
    from safetensors.torch import load_file

    _tiny_run(tmp_path / "plain")
    _tiny_run(tmp_path / "ema", ema_decay=0.99)
    _tiny_run(tmp_path / "pairs", minimal_pair_rate=0.25)
    plain, raw = load_file(tmp_path / "plain" / "model.safetensors"), load_file(tmp_path / "ema" / "raw" / "model.safetensors")
    ema = load_file(tmp_path / "ema" / "model.safetensors")
    assert all(plain[k].equal(raw[k]) for k in plain)  # the average never feeds back into training
    changed = [k for k in ema if not ema[k].equal(raw[k])]
    assert changed and all(k.startswith(("flava.", "itm_head.")) for k in changed)
    pairs = load_file(tmp_path / "pairs" / "model.safetensors")
    assert not all(pairs[k].equal(plain[k]) for k in plain)  # the minimal-pair path trains too, on other batches


def test_minimal_pair_batches_hold_scenes_and_their_partners():
    import torch

    from groundreport.demo.train import batch_indices, render_pool

    objs, part = render_pool(40, 16, workers=1)[1], render_pool(40, 16, workers=1, leave_out=True)[1]
    pool_objs = objs + part
    torch.manual_seed(0)
    for _ in range(20):
        idx = batch_indices(pool_objs, 40, 16, 4).tolist()
        assert len(idx) == 16 and all(i < 40 for i in idx[:12])
        partners = [i for i in idx[12:] if i >= 40]
        assert len(partners) >= 2  # most scenes have two objects or more
        for i in partners:
            assert i - 40 in idx[:12] and len(pool_objs[i]) == len(pool_objs[i - 40]) - 1
            assert set(pool_objs[i]) < set(pool_objs[i - 40])  # its caption matches the scene too
    torch.manual_seed(0)
    plain = batch_indices(pool_objs, 40, 16, 0)
    assert len(plain) == 16 and plain.max() < 40
