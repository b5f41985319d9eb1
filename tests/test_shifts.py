"""Shift averaging (explainers/shifts.py): the image explained on copies moved by a fraction of a
patch, each map realigned onto the original grid, all averaged. Checked against a plain
re-implementation on a grid n times finer, and through the suite on the tiny FLAVA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from groundreport.demo.scenes import make_scene
from groundreport.explainers import make_methods
from groundreport.explainers.normalise import normalise
from groundreport.explainers.shifts import moved, offsets, realign
from groundreport.explainers.suite import Suite


def _fine_then_pooled(m: np.ndarray, ky: int, kx: int, n: int) -> np.ndarray:
    """A moved copy's map written out on the fine grid, then pooled back: original fine cell u
    lies, in a copy moved by k n-ths of a patch, in that copy's patch (u + k) // n (the last
    patch where that runs off the grid)."""
    gh, gw = m.shape
    fine = np.zeros((n * gh, n * gw))
    for u in range(n * gh):
        for v in range(n * gw):
            fine[u, v] = m[min((u + ky) // n, gh - 1), min((v + kx) // n, gw - 1)]
    return fine.reshape(gh, n, gw, n).mean(axis=(1, 3))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_realign_equals_the_fine_grid_written_out(n):
    rng = np.random.default_rng(n)
    m = rng.random((5, 7)).astype(np.float32)
    for ky, kx in [(ky, kx) for ky in range(n) for kx in range(n)]:
        np.testing.assert_allclose(realign(m, ky, kx, n), _fine_then_pooled(m, ky, kx, n), atol=1e-6)
    np.testing.assert_array_equal(realign(m, 0, 0, n), m)
    stacked = np.stack([m, 2 * m])  # leading dims (words, phrases) ride along
    np.testing.assert_allclose(realign(stacked, 1, 1, n)[1], 2 * realign(m, 1, 1, n), atol=1e-6)


def test_offsets_name_the_moved_copies_in_halves_of_a_patch():
    assert offsets(1) == []
    assert offsets(2) == [(1, 1)]
    assert offsets(4) == [(0, 1), (1, 0), (1, 1)]
    with pytest.raises(ValueError, match="1 \\(off\\), 2 or 4"):
        offsets(3)


def test_moved_takes_the_content_down_and_right_repeating_the_edge():
    px = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).reshape(2, 3, 6, 5)
    out = moved(px, 2, 1)
    assert out.shape == px.shape
    torch.testing.assert_close(out[..., 2:, 1:], px[..., :4, :4])
    torch.testing.assert_close(out[..., :2, 1:], px[..., :1, :4].expand(2, 3, 2, 4))
    torch.testing.assert_close(out[..., 2:, :1], px[..., :4, :1])


def _moved_by_hand(px: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    if dy:
        px = torch.cat([px[..., :1, :].expand(*px.shape[:-2], dy, px.shape[-1]), px[..., :-dy, :]], dim=-2)
    if dx:
        px = torch.cat([px[..., :, :1].expand(*px.shape[:-1], dx), px[..., :, :-dx]], dim=-1)
    return px


def test_suite_shift_average_equals_the_copies_explained_one_by_one(tiny_adapter):
    """shifts=4: each averaging method's caption, phrase and word maps are the normalised mean of
    its plain maps on the 4 copies (moved by hand here), realigned by the fine-grid rule above
    (the multimodal masked-word maps too: the copies' image tokens go into the multimodal encoder);
    a method that does not average (raw attention) keeps its plain maps; one pair or a batch."""
    a = tiny_adapter
    scene = make_scene(5)
    px = a.pixel_values([scene.image])
    caption = "a red circle and a blue square"
    phrases = [("a red circle", (0, 12)), ("a blue square", (17, 30))]
    names = ["relevancy", "gradcam", "mm-masked", "attention"]
    plain = Suite(make_methods(names))
    got = Suite(make_methods(names), shifts=4).run(a, px, caption, phrases)
    cell = px.shape[-1] // a.grid[1]
    copies = {(ky, kx): plain.run(a, _moved_by_hand(px, ky * cell // 2, kx * cell // 2), caption, phrases)
              for ky in (0, 1) for kx in (0, 1)}
    for name in ("relevancy", "gradcam", "mm-masked"):
        for kind in ("caption", "phrases", "words"):
            want = normalise(sum(_fine_then_pooled_stack(getattr(r.maps[name], kind), ky, kx)
                                 for (ky, kx), r in copies.items()) / 4)
            np.testing.assert_allclose(getattr(got.maps[name], kind), want, atol=1e-5, err_msg=f"{name} {kind}")
    for kind in ("caption", "layers"):
        np.testing.assert_array_equal(getattr(got.maps["attention"], kind), getattr(copies[(0, 0)].maps["attention"], kind))
    assert got.score == copies[(0, 0)].score
    batch = Suite(make_methods(names), shifts=4).run_batch(a, torch.cat([px, px]), [caption, caption], [phrases, phrases])
    for r in batch:
        for name in ("relevancy", "mm-masked"):
            np.testing.assert_allclose(r.maps[name].words, got.maps[name].words, atol=5e-4)  # batch rounding
    # shifts=2: the unmoved copy and the diagonal one
    two = Suite(make_methods(["relevancy"]), shifts=2).run(a, px, caption, phrases).maps["relevancy"].phrases
    want = normalise(copies[(0, 0)].maps["relevancy"].phrases
                     + _fine_then_pooled_stack(copies[(1, 1)].maps["relevancy"].phrases, 1, 1))
    np.testing.assert_allclose(two, want, atol=1e-5)


def _fine_then_pooled_stack(maps: np.ndarray, ky: int, kx: int) -> np.ndarray:
    flat = maps.reshape(-1, *maps.shape[-2:])
    return np.stack([_fine_then_pooled(m, ky, kx, 2) for m in flat]).reshape(maps.shape)


def test_shifts_out_of_range_are_refused():
    for bad in (0, 3, 8):
        with pytest.raises(ValueError, match="shifts must be 1"):
            Suite(make_methods(["relevancy"]), shifts=bad)
