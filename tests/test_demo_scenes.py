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


def test_leave_out_draws_the_same_scene_without_one_object():
    import numpy as np

    from groundreport.demo.scenes import make_scene

    for seed in range(30):
        whole = make_scene(seed)
        part = make_scene(seed, leave_out=seed)
        if len(whole.objects) == 1:
            assert part.objects == whole.objects and part.image.tobytes() == whole.image.tobytes()
            continue
        gone = [o for o in whole.objects if o not in part.objects]
        assert len(gone) == 1 and len(part.objects) == len(whole.objects) - 1
        changed = np.nonzero((np.asarray(whole.image, int) != np.asarray(part.image, int)).any(-1))
        x0, y0, x1, y1 = gone[0].box
        assert changed[0].size and x0 <= changed[1].min() and changed[1].max() < x1
        assert y0 <= changed[0].min() and changed[0].max() < y1  # only the left-out object's pixels
        assert gone[0].phrase not in part.caption
