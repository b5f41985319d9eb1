"""Pointing game and box accuracy on maps whose right answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from groundreport.metrics.grounding import baselines, iou, map_to_box, resize_map, score_map
from groundreport.metrics.summary import below_chance, summarise


def test_pointing_hit_and_miss():
    m = np.zeros((4, 4), dtype=np.float32)
    m[0, 3] = 1.0  # top-right patch of a 4x4 grid on a 100x100 image: pixels x 75..99, y 0..24
    assert score_map(m, (100, 100), [(70, 0, 100, 30)]).pointing_hit
    assert not score_map(m, (100, 100), [(0, 0, 50, 50)]).pointing_hit
    # any box of the phrase counts
    assert score_map(m, (100, 100), [(0, 0, 10, 10), (70, 0, 100, 30)]).pointing_hit


def test_resize_follows_image_aspect():
    m = np.zeros((4, 4), dtype=np.float32)
    m[3, 0] = 1.0
    full = resize_map(m, (200, 40))  # W=200, H=40
    assert full.shape == (40, 200)
    y, x = np.unravel_index(np.argmax(full), full.shape)
    assert x < 50 and y >= 30


def test_map_to_box_recovers_a_rectangle():
    full = np.zeros((100, 100), dtype=np.float32)
    full[20:60, 30:90] = 1.0
    full[0:5, 0:5] = 0.9  # a smaller second region is ignored
    assert map_to_box(full) == (30, 20, 90, 60)


def test_box_accuracy_uses_union_of_boxes():
    m = np.zeros((10, 10), dtype=np.float32)
    m[2:6, 2:8] = 1.0
    s = score_map(m, (10, 10), [(2, 2, 5, 6), (5, 2, 8, 6)])
    assert s.box == (2, 2, 8, 6) and s.box_iou == pytest.approx(1.0) and s.box_hit


def test_iou_basic():
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_constant_map_does_not_crash():
    s = score_map(np.zeros((4, 4), dtype=np.float32), (64, 64), [(0, 0, 16, 16)])
    assert s.box == (0, 0, 64, 64)


def test_baselines():
    b = baselines((100, 100), [(0, 0, 50, 50)], n_objects=4)
    assert b["random_point"] == pytest.approx(0.25)
    assert b["centre"] == 0.0  # centre (50, 50) is outside [0, 50)
    assert b["random_object"] == 0.25
    assert baselines((100, 100), [(40, 40, 60, 60)], 1)["centre"] == 1.0


def test_summary_averages_over_phrases():
    pairs = [{"phrases": [
        {"scores": {"m": {"pointing": True, "box_iou": 0.7}}, "baselines": {"random_point": 0.2}},
        {"scores": {"m": {"pointing": False, "box_iou": 0.1}}, "baselines": {"random_point": 0.4}},
        {"scores": {}, "baselines": None},  # a phrase without boxes is not scored
    ]}]
    s = summarise(pairs)
    assert s["phrases"] == 2
    assert s["methods"]["m"] == {"pointing": 0.5, "box_accuracy": 0.5, "n": 2}
    assert s["baselines"]["random_point"] == pytest.approx(0.3)
    assert summarise([{"phrases": []}]) is None


def test_border_peak_is_not_pushed_to_the_image_edge():
    # the top patch of an 8x8 grid sits on the top border: bilinear resizing makes the map
    # flat from that patch's centre (y ~ 16) up to y = 0; row-order argmax would say y = 0
    m = np.zeros((8, 8), dtype=np.float32)
    m[0, 2] = 1.0  # pixels x 64..95, y 0..31 of a 256 px image
    s = score_map(m, (256, 256), [(64, 4, 96, 32)])  # an object that stops short of the edge
    assert 64 <= s.point[0] < 96 and 4 <= s.point[1] < 16
    assert s.pointing_hit
    # a unique interior peak is where it always was: the patch centre
    m = np.zeros((8, 8), dtype=np.float32)
    m[3, 5] = 1.0
    assert score_map(m, (256, 256), [(0, 0, 1, 1)]).point == (175, 111)


def test_tied_separate_peaks_point_at_one_of_them():
    m = np.zeros((8, 8), dtype=np.float32)
    m[2, 2] = m[5, 5] = 1.0  # the centroid of the two lies between them, on neither
    x, y = score_map(m, (256, 256), [(0, 0, 1, 1)]).point
    assert (64 <= x < 96 and 64 <= y < 96) or (160 <= x < 192 and 160 <= y < 192)


def test_constant_map_points_nowhere():
    s = score_map(np.full((4, 4), 0.5, dtype=np.float32), (64, 64), [(0, 0, 64, 64)])
    assert not s.pointing_hit  # even a box that covers the whole image
    assert s.box_iou == 0.0  # and its whole-image "region" names no region: a box miss too


def _one_pixel_map(x: int, y: int, size=(100, 80)) -> np.ndarray:
    """A map at the image's own resolution (resizing is then the identity): its peak is (x, y)."""
    m = np.zeros((size[1], size[0]), dtype=np.float32)
    m[y, x] = 1.0
    return m


@pytest.mark.parametrize("x, y, hit", [
    (59, 30, True), (60, 30, False),  # x1 = 60 is exclusive: the last pixel inside is 59
    (20, 30, True), (19, 30, False),  # x0 = 20 is inclusive
    (40, 49, True), (40, 50, False),  # y1 = 50 is exclusive
    (40, 10, True), (40, 9, False),  # y0 = 10 is inclusive
    (74, 30, False), (40, 64, False),  # 14 px outside: no tolerance
])
def test_pointing_hit_is_exact_at_box_edge_pixels_x1_y1_exclusive(x, y, hit):
    s = score_map(_one_pixel_map(x, y), (100, 80), [(20, 10, 60, 50)])
    assert s.point == (x, y)
    assert s.pointing_hit is hit


def test_words_are_scored_against_their_phrase_boxes_and_summarised_beside_phrases():
    from types import SimpleNamespace

    from groundreport.metrics.phrases import phrase_words, score_phrases
    from groundreport.models.flava import Word
    from groundreport.records import Phrase

    caption = "a red circle and a blue square"
    words = [Word(w, [i + 1], (caption.index(w, s), caption.index(w, s) + len(w)))
             for i, (w, s) in enumerate([("a", 0), ("red", 0), ("circle", 0), ("and", 0), ("a", 13), ("blue", 0),
                                         ("square", 0)])]
    phrases = [Phrase("a red circle", ((0, 0, 16, 16),), (0, 12)), Phrase("a blue square", ((16, 16, 32, 32),), (17, 30))]
    assert [phrase_words(p, words) for p in phrases] == [[1, 2], [5, 6]]  # articles and "and" left out
    hot = np.zeros((7, 2, 2), dtype=np.float32)
    hot[1, 0, 0] = hot[2, 1, 1] = hot[5, 1, 1] = hot[6, 1, 1] = 1  # "circle" points at the square: a miss
    maps = {"m": SimpleNamespace(phrases=np.stack([hot[1], hot[6]]), words=hot)}
    entries = score_phrases(phrases, maps, (32, 32), words)
    assert [w["text"] for e in entries for w in e["words"]] == ["red", "circle", "blue", "square"]
    assert [w["scores"]["m"]["pointing"] for e in entries for w in e["words"]] == [True, False, True, True]
    s = summarise([{"phrases": entries}])
    assert s["phrases"] == 2 and s["methods"]["m"]["pointing"] == 1.0
    assert s["words"]["words"] == 4 and s["words"]["methods"]["m"]["pointing"] == 0.75
    assert s["words"]["baselines"]["random_object"] == 0.5


def test_below_chance_needs_more_than_noise():
    def table(pointing, n, chance=0.4):
        return {"methods": {"m": {"pointing": pointing, "box_accuracy": 0.0, "n": n}},
                "baselines": {"random_object": chance}, "n": n}

    # chance 0.4: two standard errors are 0.098 over 100 items and 0.031 over 1,000
    assert below_chance(table(0.29, 100)) == {"m": ["phrases"]}
    assert below_chance(table(0.31, 100)) == {}
    assert below_chance(table(0.36, 1000)) == {"m": ["phrases"]}
    assert below_chance(table(0.41, 1000)) == {}
    s = dict(table(0.5, 100), words=table(0.1, 200))
    assert below_chance(s) == {"m": ["words"]}
    assert below_chance(None) == {} and below_chance({"methods": {}, "baselines": {}}) == {}
