"""Does a demo model know colour and shape, before any map is drawn? For every object of the
held-out **val** scenes: is its own phrase ("a red circle") scored above every phrase of the
same colour and another shape absent from the scene (shape), and above every phrase of the
same shape and another colour absent from it (colour)? Chance is well under 0.5 (4 or 5 rivals).

    python scripts/phrase_knowledge.py demo [150]
"""

from __future__ import annotations

import sys

import torch

from groundreport.demo.scenes import COLOURS, SHAPES, heldout_seeds, make_scene, phrase_text, with_article
from groundreport.models import load_adapter


def knowledge(model: str, n: int) -> tuple[float, float, int]:
    adapter = load_adapter(model, device="cpu", offline=True)
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    texts = adapter.text_embeds([with_article(phrase_text(c, s)) for c, s in kinds])
    index = {k: i for i, k in enumerate(kinds)}
    shape = colour = total = 0
    for seed in heldout_seeds("val", n):
        scene = make_scene(seed, (2, 4))
        with torch.no_grad():
            sims = (adapter.image_embeds(adapter.pixel_values([scene.image])) @ texts.T)[0]
        present = {(o.colour, o.shape) for o in scene.objects}
        for o in scene.objects:
            own = sims[index[(o.colour, o.shape)]]
            shape += all(own > sims[index[(o.colour, s)]] for s in SHAPES if (o.colour, s) not in present)
            colour += all(own > sims[index[(c, o.shape)]] for c in COLOURS if (c, o.shape) not in present)
            total += 1
    return shape / total, colour / total, total


if __name__ == "__main__":
    name = sys.argv[1]
    s, c, n = knowledge(name, int(sys.argv[2]) if len(sys.argv) > 2 else 150)
    print(f"{name}: {n} objects; own phrase above every other-shape rival {s:.3f}, every other-colour rival {c:.3f}")
