"""Map smoothing (explainers/smoothing.py) against a plain re-implementation, and the suite's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from groundreport.demo.scenes import make_scene
from groundreport.explainers import make_methods
from groundreport.explainers.smoothing import smooth
from groundreport.explainers.suite import Suite


def _reference(m: np.ndarray, sigma: float) -> np.ndarray:
    """A 2-D Gaussian written out: every output cell a weighted sum over a (2r+1)^2 window of the
    edge-padded map, r = ceil(4 sigma); then min-max to [0, 1]."""
    r = int(np.ceil(4 * sigma))
    x = np.arange(-r, r + 1)
    k = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2))
    k /= k.sum()
    p = np.pad(m.astype(np.float64), r, mode="edge")
    out = np.array([[(p[i:i + 2 * r + 1, j:j + 2 * r + 1] * k).sum() for j in range(m.shape[1])]
                    for i in range(m.shape[0])])
    span = out.max() - out.min()
    return (out - out.min()) / span if span > 0 else np.zeros_like(out)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5])
def test_smooth_equals_a_written_out_gaussian(sigma):
    rng = np.random.default_rng(0)
    maps = rng.random((3, 7, 9)).astype(np.float32) ** 4  # peaky, non-square, several maps
    got = smooth(maps, sigma)
    assert got.shape == maps.shape and got.dtype == np.float32
    for g, m in zip(got, maps):
        np.testing.assert_allclose(g, _reference(m, sigma), atol=1e-5)


def test_smooth_leaves_what_it_should_alone():
    m = np.random.default_rng(1).random((4, 4)).astype(np.float32)
    assert smooth(m, 0) is m and smooth(None, 1.0) is None
    assert not smooth(np.full((2, 5, 5), 0.3, np.float32), 1.0).any()  # a flat map stays flat (zeros)
    assert smooth(np.zeros((0, 5, 5), np.float32), 1.0).shape == (0, 5, 5)  # no words: no maps


def test_a_lone_hot_patch_loses_to_a_cluster():
    m = np.zeros((12, 12), np.float32)
    m[2, 9] = 1.0  # one patch at the top of the raw map
    m[7:9, 2:4] = 0.8  # a 2 x 2 cluster, a little weaker
    assert np.unravel_index(m.argmax(), m.shape) == (2, 9)
    s = smooth(m, 1.0)
    assert np.unravel_index(s.argmax(), s.shape) in {(7, 2), (7, 3), (8, 2), (8, 3)}


def test_the_suite_smooths_only_the_methods_that_ask_and_after_the_copies(tiny_adapter):
    """Suite(smooth=True) == each smoothed method's raw maps from Suite(smooth=False), smoothed by
    its own sigma after shift averaging; the other methods' maps are untouched."""
    px = tiny_adapter.pixel_values([make_scene(5, (3, 3), size=96).image])
    caption, phrases = "a red circle and a blue square", [("a red circle", (0, 12)), ("a blue square", (17, 30))]
    methods = make_methods(["relevancy", "gradcam", "mm-masked"])
    raw = Suite(methods, shifts=2).run(tiny_adapter, px, caption, phrases)
    suite = Suite(methods, shifts=2, smooth=True)
    smoothed = suite.run(tiny_adapter, px, caption, phrases)
    assert suite.smoothing() == {"relevancy": 1.0, "mm-masked": 1.0}
    for name in ("relevancy", "mm-masked"):
        for k in ("caption", "words", "phrases"):
            np.testing.assert_allclose(getattr(smoothed.maps[name], k), smooth(getattr(raw.maps[name], k), 1.0),
                                       atol=1e-5)
        assert not np.allclose(smoothed.maps[name].phrases, raw.maps[name].phrases)
    for k in ("caption", "words", "phrases"):
        np.testing.assert_allclose(getattr(smoothed.maps["gradcam"], k), getattr(raw.maps["gradcam"], k), atol=1e-6)
