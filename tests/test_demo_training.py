"""The demo trainer's caption negatives: each one must really not describe the scene."""

from __future__ import annotations

import random

import pytest

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


def test_a_cap_too_short_for_the_schedule_is_said_after_20_steps(tmp_path, monkeypatch):
    import groundreport.demo.train as demo_train

    from types import SimpleNamespace

    clock = iter(range(0, 10**6, 2))  # every look at the training loop's clock: 2 s later
    monkeypatch.setattr(demo_train, "time", SimpleNamespace(time=lambda: float(next(clock))))
    lines = []
    res = _tiny_run(tmp_path / "slow", log=lines.append, steps=40, minutes=1.0)
    early = [m for m in lines if "need ~" in m]
    assert len(early) == 1 and "raise --minutes" in early[0] and res["steps"] < 40
    assert lines.index(early[0]) < len(lines) - 2  # said during the run, not at its end


def test_init_from_continues_from_saved_weights(tmp_path):
    """``init_from``: zero steps save the weights it started from; two more steps move them."""
    from safetensors.torch import load_file

    _tiny_run(tmp_path / "a")
    _tiny_run(tmp_path / "same", steps=0, init_from=tmp_path / "a")
    _tiny_run(tmp_path / "more", steps=2, init_from=tmp_path / "a")
    a, same, more = (load_file(tmp_path / n / "model.safetensors") for n in ("a", "same", "more"))
    assert all(a[k].equal(same[k]) for k in a)
    assert not all(a[k].equal(more[k]) for k in a)
    with pytest.raises(ValueError, match="64 px input, not 96"):
        _tiny_run(tmp_path / "bad", steps=0, init_from=tmp_path / "a", image_size=96)


def test_input_and_patch_size_set_the_saved_model_and_processor(tmp_path):
    from groundreport.models.flava import FlavaAdapter

    _tiny_run(tmp_path / "p12", image_size=96, patch_size=12)
    adapter = FlavaAdapter.load(str(tmp_path / "p12"), device="cpu", offline=True)
    assert adapter.grid == (8, 8)  # 96 px in 12 px patches
    assert adapter.processor.image_processor.size["height"] == 96


def test_masked_multimodal_modelling_masks_one_colour_or_shape_word_and_trains_the_head(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import torch
    from safetensors.torch import load_file
    from transformers import FlavaForPreTraining

    from groundreport.demo import train as trainer
    from groundreport.demo.model_spec import demo_config, demo_processor
    from groundreport.models import flava_parts

    tok = demo_processor().tokenizer
    content = {tok.convert_tokens_to_ids(w) for w in ("red", "blue", "circle", "square")}
    enc = tok(["a red circle and a blue square", "a blue square"], padding=True, return_tensors="pt")
    seen = {}
    real_encode_text = flava_parts.encode_text

    def encode_text(flava, ids, mask):
        seen["ids"] = ids.clone()
        return real_encode_text(flava, ids, mask)

    def head(states):  # the loss must read the text rows of the multimodal output
        seen["states"] = states
        return torch.zeros(*states.shape[:2], len(tok.get_vocab()), requires_grad=True)

    monkeypatch.setattr(flava_parts, "encode_text", encode_text)
    flava = FlavaForPreTraining(demo_config()).flava
    image_out = flava_parts.encode_image(flava, torch.zeros(2, 3, 64, 64))
    loss = trainer._mmm_loss(SimpleNamespace(flava=flava, mmm_text_head=head), image_out, enc, 2, content, tok,
                             random.Random(0))
    assert torch.isfinite(loss) and seen["states"].shape[1] == enc["input_ids"].shape[1]
    changed = seen["ids"] != enc["input_ids"]
    assert changed.sum(1).tolist() == [1, 1]  # one word per caption
    assert (seen["ids"][changed] == tok.mask_token_id).all()
    assert all(int(t) in content for t in enc["input_ids"][changed])  # a colour or a shape, never "a"/"and"
    monkeypatch.undo()
    # the same seeded short run with and without the loss: only with it does the head move
    _tiny_run(tmp_path / "off", seed=0, varied_drawing=True)
    _tiny_run(tmp_path / "on", seed=0, mmm_loss_weight=1.0, varied_drawing=True)
    key = "mmm_text_head.transform.dense.weight"
    off, on = (load_file(str(tmp_path / d / "model.safetensors"))[key] for d in ("off", "on"))
    assert not torch.equal(off, on)


def test_varied_drawing_is_seeded_and_keeps_the_image_size():
    import numpy as np

    from groundreport.demo.augment import vary_drawing
    from groundreport.demo.scenes import make_scene

    img = make_scene(3).image
    a, b, c = vary_drawing(img, 3), vary_drawing(img, 3), vary_drawing(img, 4)
    assert a.size == img.size and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_the_clip_family_trains_a_clip_that_loads_and_reads_demo_words_as_one_token(tmp_path):
    from safetensors.torch import load_file

    from groundreport.demo.model_spec import WORDS
    from groundreport.models import load_adapter
    from groundreport.models.clip import ClipAdapter

    _tiny_run(tmp_path / "a", family="clip")
    _tiny_run(tmp_path / "b", family="clip")
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in "ab")
    assert all(a[k].equal(b[k]) for k in a)  # seeded
    adapter = load_adapter(str(tmp_path / "a"), device="cpu", offline=True)
    assert isinstance(adapter, ClipAdapter) and adapter.grid == (8, 8)
    assert all(len(adapter.tokenizer.tokenize(w)) == 1 for w in WORDS)
    assert adapter.tokenizer.tokenize("orange")[0].startswith("orange")  # "an" must not split it
    # CLIP's own preprocessing: the short side resized, then a centre crop
    assert adapter.region((128, 64)) == (32.0, 0.0, 96.0, 64.0)


def test_an_unknown_family_is_refused(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="unknown family"):
        _tiny_run(tmp_path / "x", family="siglip")
