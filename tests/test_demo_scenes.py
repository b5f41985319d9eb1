"""The synthetic scene generator: seeded, well-formed, loadable as any user's grounding JSONL."""

from __future__ import annotations

import numpy as np

from groundreport.datasets import load_dataset
from groundreport.demo.scenes import COLOURS, SHAPES, make_scene, write_grounding_jsonl


def test_scenes_are_seeded_and_well_formed():
    for seed in range(60):
        a, b = make_scene(seed), make_scene(seed)
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.caption == b.caption
        assert a.image.size == (256, 256) and 1 <= len(a.objects) <= 4
        pairs = {(o.colour, o.shape) for o in a.objects}
        assert len(pairs) == len(a.objects)  # no colour+shape twice
        for o in a.objects:
            assert o.colour in COLOURS and o.shape in SHAPES
            w, h = o.box[2] - o.box[0], o.box[3] - o.box[1]
            assert 0.15 * 256 <= max(w, h) <= 0.34 * 256
        for i, o in enumerate(a.objects):  # boxes do not overlap
            for p in a.objects[i + 1:]:
                assert o.box[2] <= p.box[0] or p.box[2] <= o.box[0] or o.box[3] <= p.box[1] or p.box[3] <= o.box[1]
        # the caption names the objects in order, with English articles
        assert a.caption.startswith(("a ", "an "))
        positions = [a.caption.index(o.phrase) for o in a.objects]
        assert positions == sorted(positions)
        assert ("an orange" in a.caption) == any(o.colour == "orange" for o in a.objects)


def test_object_pixels_have_their_colour():
    s = make_scene(3, (3, 3))
    arr = np.asarray(s.image)
    for o in s.objects:
        x0, y0, x1, y1 = o.box
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        if o.shape == "triangle":
            cy = (y0 + 3 * y1) // 4  # the apex is thin; look lower
        assert np.abs(arr[cy, cx].astype(int) - COLOURS[o.colour]).max() < 10, o


def test_scenes_load_as_grounding_jsonl(tmp_path):
    path = write_grounding_jsonl(tmp_path, [100, 101, 102])
    fmt, ex = load_dataset(path, None)
    assert fmt == "jsonl" and len(ex) == 3
    cap = ex[0].captions[0]
    assert cap.text == make_scene(100).caption
    for ph, obj in zip(cap.phrases, make_scene(100).objects):
        assert ph.text.endswith(obj.phrase) and ph.boxes == (tuple(float(v) for v in obj.box),)
        assert cap.text[slice(*ph.span)] == ph.text


def test_heldout_splits_are_disjoint_and_never_training_seeds():
    from groundreport.demo.scenes import heldout_seeds

    val, test = heldout_seeds("val", 1000), heldout_seeds("test", 1000)
    assert len(set(val)) == len(set(test)) == 1000 and not set(val) & set(test)
    assert min(val + test) >= 10**8  # training draws its scenes from seeds [0, pool_size)
    assert test[:3] == heldout_seeds("test", 3)  # a smaller set is a prefix: scores stay comparable


def test_the_bundled_demo_scenes_are_what_the_generator_draws(tmp_path):
    """A fingerprint of make_scene: regenerating the 48 bundled scenes gives the shipped JSONL
    (captions, phrases, tight boxes) and, up to JPEG loss, the shipped pixels."""
    from PIL import Image

    from groundreport.demo.bundle import DEMO_SCENES, demo_jsonl
    from groundreport.demo.scenes import DEMO_SEED_BASE

    seeds = [DEMO_SEED_BASE + i for i in range(DEMO_SCENES)]
    fresh = write_grounding_jsonl(tmp_path, seeds, fmt="jpg")
    assert fresh.read_text() == demo_jsonl().read_text()
    for seed in seeds:
        shipped = np.asarray(Image.open(demo_jsonl().parent / f"images/scene_{seed}.jpg").convert("RGB"), int)
        drawn = np.asarray(make_scene(seed).image, int)
        assert np.abs(shipped - drawn).mean() < 3.5, seed  # JPEG at quality 90 leaves ~2.7 on this noise
