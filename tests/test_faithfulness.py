"""Faithfulness metrics and sanity checks against independent computations and planted signals.

Deletion: Quantus's PixelFlipping (a test-only dependency) around the same image-text score.
Insertion, confidence drop/increase: a plain loop in this file, one image per forward.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from groundreport.demo.scenes import HELDOUT_SEED_BASE, make_scene, with_article
from groundreport.explainers import make_methods
from groundreport.explainers.suite import Suite
from groundreport.metrics import faithfulness as fa
from groundreport.metrics import sanity as sa
from groundreport.models.flava import FlavaAdapter

SEED0 = HELDOUT_SEED_BASE + 8000  # held-out scenes no other test reads
TOL = 1e-5  # absolute, on cosines and normalised AUCs: the same fp32 forwards, batched differently


@pytest.fixture(scope="module")
def demo():
    return FlavaAdapter.load("demo", device="cpu")


def _pair(adapter, i: int = 0):
    s = make_scene(SEED0 + i, (2, 4))
    phrases = [with_article(o.phrase) for o in s.objects]
    return s, adapter.pixel_values([s.image]), phrases


class _Score(torch.nn.Module):
    """The image-text score as a one-class model: [N, C, H, W] -> [N, 1] cosine with one text."""

    def __init__(self, adapter, text):
        super().__init__()
        self.adapter, self.text = adapter, text

    def forward(self, x):
        return self.adapter.image_embeds(x) @ self.text.T


# -- against independent implementations --------------------------------------------------------
def test_deletion_curve_and_auc_match_quantus_pixel_flipping(demo):
    quantus = pytest.importorskip(
        "quantus", reason="Quantus is installed by .ci/run without its dependencies (it would add opencv-python "
        "beside opencv-python-headless): pip install --no-deps quantus pandas scikit-image scikit-learn cachetools")
    s, px, phrases = _pair(demo)
    gh, gw = demo.grid
    ph = px.shape[-1] // gw
    relevancy = Suite(make_methods(["relevancy"])).run(demo, px, s.caption, [(phrases[0], None)])
    maps = {"relevancy": relevancy.maps["relevancy"].phrases[:1], "random": fa.random_map(demo.grid, 1, 3)}
    text = demo.text_embeds([phrases[0]])
    ours = fa.evaluate_pair(demo, px, text, maps, steps=None)
    names = list(maps)
    for name in names:
        assert len(np.unique(maps[name])) == gh * gw, f"{name}: Quantus breaks ties its own way; needs distinct values"
    # Quantus sorts the map broadcast over the channels (C*ph*pw equal entries per patch) and
    # hides ph*pw entries per step: a patch is fully hidden after every C-th step. Both maps
    # go in as one batch of two instances (one forward per step for both).
    metric = quantus.PixelFlipping(features_in_step=ph * ph, perturb_baseline=0.0, normalise=False,
                                   disable_warnings=True)
    a_batch = np.stack([np.kron(maps[n][0], np.ones((ph, ph)))[None] for n in names]).astype(np.float32)
    curves = np.array(metric(model=_Score(demo, text).eval(), x_batch=px.repeat(len(names), 1, 1, 1).numpy(),
                             y_batch=np.zeros(len(names), dtype=int), a_batch=a_batch, softmax=False,
                             device="cpu", channel_first=True, batch_size=len(names)))
    for name, curve in zip(names, curves):
        per_patch = curve[px.shape[1] - 1::px.shape[1]]
        r = ours.methods[name]
        np.testing.assert_allclose(r.deletion[0, 1:], per_patch, atol=TOL, err_msg=name)
        full = r.full[0]
        theirs = np.r_[full, per_patch] / full  # Quantus's curve starts after the first step
        auc = ((theirs[1:] + theirs[:-1]) / 2).sum() / (gh * gw)
        assert abs(r.deletion_auc[0] - auc) < TOL, name


def _plain(adapter, px, texts, maps, counts):
    """One image per forward: insertion curves by slicing patches in, the soft map by cv2.resize."""
    gh, gw = adapter.grid
    _, _, h, w = px.shape
    ph, pw = h // gh, w // gw

    def score(img, k):
        return float(adapter.image_embeds(img) @ texts[k])

    full, ins, masked = [], [], []
    for k, m in enumerate(maps):
        order = sorted(range(gh * gw), key=lambda i: (-m.ravel()[i], i))
        full.append(score(px, k))
        row = []
        for n in counts:
            img = torch.zeros_like(px)
            for cell in order[:n]:
                r, c = divmod(cell, gw)
                img[..., r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = px[..., r * ph:(r + 1) * ph, c * pw:(c + 1) * pw]
            row.append(score(img, k))
        ins.append(row)
        soft = (m - m.min()) / (m.max() - m.min())
        up = cv2.resize(soft.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        masked.append(score(px * torch.from_numpy(up), k))
    return np.array(full), np.array(ins), np.array(masked)


def test_insertion_and_confidence_change_match_a_plain_loop(demo):
    s, px, phrases = _pair(demo, 1)
    texts = demo.text_embeds([s.caption] + phrases[:2])
    maps = fa.random_map(demo.grid, 3, 5)
    ours = fa.evaluate_pair(demo, px, texts, {"random": maps}, steps=16).methods["random"]
    counts = fa.step_counts(demo.grid[0] * demo.grid[1], 16)
    full, ins, masked = _plain(demo, px, texts, maps, counts)
    np.testing.assert_allclose(ours.full, full, atol=TOL)
    np.testing.assert_allclose(ours.insertion, ins, atol=TOL)
    np.testing.assert_allclose(ours.masked, masked, atol=TOL)
    x = counts / counts[-1]
    norm = ins / full[:, None]
    np.testing.assert_allclose(ours.insertion_auc, (np.diff(x) * (norm[:, 1:] + norm[:, :-1]) / 2).sum(1), atol=TOL)
    np.testing.assert_allclose(ours.drop, np.maximum(0, full - masked) / full, atol=TOL)
    np.testing.assert_array_equal(ours.increase, masked > full)
    assert ours.drop.min() >= 0


def test_batching_and_deduplication_do_not_change_scores(demo):
    s, px, phrases = _pair(demo, 2)
    texts = demo.text_embeds([s.caption] + phrases[:2])
    maps = {"random": fa.random_map(demo.grid, 3, 1), "centre": fa.centre_map(demo.grid, 3)}
    a = fa.evaluate_pair(demo, px, texts, maps, batch_size=7)
    b = fa.evaluate_pair(demo, px, texts, {"random": maps["random"]}, batch_size=64)
    np.testing.assert_allclose(a.methods["random"].deletion, b.methods["random"].deletion, atol=1e-6)
    per_map = fa.forwards_per_map(64, 16)
    assert per_map == 31
    # the full and the all-hidden image once; the centre map's three equal rows once
    assert a.forwards == 2 + 3 * per_map + per_map
    assert b.forwards == 2 + 3 * per_map


# -- definitions -------------------------------------------------------------------------------------
def test_order_ties_and_steps():
    np.testing.assert_array_equal(fa.patch_order(np.zeros((1, 2, 3))), [[0, 1, 2, 3, 4, 5]])
    np.testing.assert_array_equal(fa.patch_order(np.array([[[0.5, 1.0], [0.5, 0.2]]])), [[1, 0, 2, 3]])
    assert set(fa.patch_order(fa.centre_map((8, 8)))[0, :4]) == {27, 28, 35, 36}  # the four middle patches
    np.testing.assert_array_equal(fa.step_counts(64, 16), np.arange(17) * 4)
    c = fa.step_counts(196, 16)
    assert c[0] == 0 and c[-1] == 196 and (np.diff(c) > 0).all()
    np.testing.assert_array_equal(fa.step_counts(6, None), np.arange(7))
    with pytest.raises(ValueError):
        fa.step_counts(64, 0)


def test_full_score_at_or_below_zero_is_left_out():
    x = np.linspace(0, 1, 3)
    r = fa.MapFaithfulness(x, np.array([0.5, -0.2, 0.0]), np.array([[0.5, 0.25, 0.0]] * 3),
                           np.array([[0.0, 0.25, 0.5]] * 3), np.array([0.25, 0.1, 0.1]))
    assert r.deletion_auc[0] == pytest.approx(0.5)
    assert r.insertion_auc[0] == pytest.approx(0.5)
    assert r.drop[0] == pytest.approx(0.5)
    assert np.isnan(r.deletion_auc[1:]).all() and np.isnan(r.drop[1:]).all()
    np.testing.assert_array_equal(r.increase, [0, 1, 1])  # defined whatever the sign
    rec = {"fractions": x.tolist(), "methods": {"m": r.to_json()}}
    out = fa.summarise([json.loads(json.dumps(rec))])
    assert out["faithfulness"]["m"] == pytest.approx({"deletion_auc": 0.5, "insertion_auc": 0.5, "drop": 0.5,
                                                      "increase": 2 / 3})
    assert out["faithfulness_curves"]["methods"]["m"]["skipped"] == 2
    none = fa.MapFaithfulness(x, np.array([-1.0]), np.zeros((1, 3)), np.zeros((1, 3)), np.zeros(1))
    out = fa.summarise([{"fractions": x.tolist(), "methods": {"m": none.to_json()}}])
    assert out["faithfulness"]["m"]["deletion_auc"] is None
    assert fa.summarise([]) is None


def test_summary_shape_and_mean_curves(demo):
    records = []
    for i in range(2):
        s, px, phrases = _pair(demo, i)
        maps = fa.baseline_maps(demo.grid, 1 + len(phrases), seed=i)
        maps["flat"] = np.ones((1 + len(phrases), *demo.grid), dtype=np.float32)  # order = row-major, soft mask hides all
        texts = demo.text_embeds([s.caption] + phrases)
        records.append(json.loads(json.dumps(fa.evaluate_pair(demo, px, texts, maps).to_json())))
    out = fa.summarise(records)
    assert set(out) == {"faithfulness", "faithfulness_curves"}
    assert list(out["faithfulness"]) == ["random", "centre", "flat"]
    for v in out["faithfulness"].values():
        assert set(v) == {"deletion_auc", "insertion_auc", "drop", "increase"}
    curves = out["faithfulness_curves"]
    assert len(curves["fractions"]) == 17
    for name, c in curves["methods"].items():
        if c["skipped"] == 0:  # the mean curve's area is the mean AUC
            x = np.array(curves["fractions"])
            y = np.array(c["deletion"])
            area = (np.diff(x) * (y[1:] + y[:-1]) / 2).sum()
            assert area == pytest.approx(out["faithfulness"][name]["deletion_auc"], abs=1e-5)
    records[1]["fractions"] = records[1]["fractions"][:-1]
    with pytest.raises(ValueError):
        fa.summarise(records)
    with pytest.raises(ValueError):
        fa.evaluate_pair(demo, px, texts, {"bad": np.zeros((1, 8, 8))})


# -- planted signal --------------------------------------------------------------------------------
def _object_map(scene, obj, grid, size) -> np.ndarray:
    """Fraction of each patch covered by the object's box, with a tiny seeded jitter for ties."""
    gh, gw = grid
    mask = np.zeros((size, size))
    x0, y0, x1, y1 = obj.box
    mask[y0:y1, x0:x1] = 1
    cover = mask.reshape(gh, size // gh, gw, size // gw).mean((1, 3))
    return cover + 1e-3 * np.random.default_rng(scene.seed).random(grid)


def test_object_map_deletes_faster_than_its_reverse_and_random(demo):
    dele = {"object": [], "reverse": [], "random": []}
    for i in range(6):
        s, px, phrases = _pair(demo, 10 + i)
        obj = s.objects[0]
        m = _object_map(s, obj, demo.grid, s.image.size[0])[None]
        maps = {"object": m, "reverse": -m, "random": fa.random_map(demo.grid, 1, i)}
        res = fa.evaluate_pair(demo, px, demo.text_embeds([with_article(obj.phrase)]), maps)
        for k in dele:
            dele[k].append(res.methods[k].deletion_auc[0])
    mean = {k: float(np.mean(v)) for k, v in dele.items()}
    assert mean["object"] < mean["random"] < mean["reverse"], mean


# -- sanity checks --------------------------------------------------------------------------------
def test_rank_and_linear_correlations():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 64).astype(float)  # many ties
    b = a + rng.normal(0, 2, 64)
    assert sa.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)
    assert sa.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert sa.spearman(a, np.exp(a)) == pytest.approx(1.0)  # monotone, not linear
    assert sa.pearson(np.zeros(4), np.zeros(4)) == 1.0
    assert sa.pearson(np.zeros(4), np.arange(4)) == 0.0


def test_other_captions_is_a_seeded_derangement():
    caps = ["a", "b", "c", "b", "d"]
    out = sa.other_captions(caps, seed=3)
    assert out == sa.other_captions(caps, seed=3)
    assert all(o != c for o, c in zip(out, caps))
    with pytest.raises(ValueError):
        sa.other_captions(["x", "x"])


def test_cascade_randomises_one_stage_at_a_time(demo):
    import copy

    model = copy.deepcopy(demo.model)
    stages = sa.flava_stages(model)
    image = [f"image_block_{k}" for k in range(4, -1, -1)]  # 5 blocks: the first is CLIP's input LayerNorm
    assert [s.label for s in stages] == ["heads", "mm_block_1", "mm_block_0", *image]
    assert sa.depth_labels(stages, multimodal=False) == ["original", "heads", *image]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sa.reinitialise(model, stages[4].modules, seed=1)  # image block 3
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("flava.image_model.encoder.layer.3.") for k in changed)
    assert {k for k in before if k.startswith("flava.image_model.encoder.layer.3.") and "weight" in k
            and "layernorm" not in k} <= changed


@pytest.fixture(scope="module")
def sanity_pairs(demo):
    out = []
    for i in range(4):
        s, px, phrases = _pair(demo, 20 + i)
        out.append((px, s.caption, [(p, None) for p in phrases[:2]]))
    return out


def test_relevancy_does_not_survive_weight_randomisation(demo, sanity_pairs):
    r = sa.randomisation(demo, make_methods(["relevancy", "mm-relevancy"]), sanity_pairs[:3], seed=0)
    rel = r["relevancy"]
    assert rel["depths"] == ["original", "heads", *(f"image_block_{k}" for k in range(4, -1, -1))]
    assert rel["spearman"][0] == 1.0
    assert rel["spearman"][-1] < sa.RANDOMISATION_FLAG_THRESHOLD, rel["spearman"]
    assert r["mm-relevancy"]["depths"][2:4] == ["mm_block_1", "mm_block_0"]
    out = sa.summarise(None, r)
    assert out["relevancy"]["randomisation_flag"] is False
    assert out["relevancy"]["caption_blind"] is None


def test_caption_shuffle_flags_rollout_and_not_relevancy(demo, sanity_pairs):
    suite = Suite(make_methods(["relevancy", "rollout", "attention"]))
    others = sa.other_captions([c for _, c, _ in sanity_pairs], seed=0)
    corrs = []
    for (px, cap, _), other in zip(sanity_pairs, others):
        a, b = suite.run(demo, px, cap), suite.run(demo, px, other)
        corrs.append(sa.shuffle_correlations({n: m.caption for n, m in a.maps.items()},
                                             {n: m.caption for n, m in b.maps.items()}))
    out = sa.summarise(corrs, None)
    assert out["rollout"]["caption_blind"] and out["attention"]["caption_blind"]
    assert not out["relevancy"]["caption_blind"], out["relevancy"]
    assert set(out["rollout"]) == {"caption_shuffle_corr", "caption_blind", "randomisation",
                                   "randomisation_depths", "randomisation_flag"}
