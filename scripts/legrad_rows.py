"""LeGrad's query rows, four ways, on held-out val scenes (docs/evaluation.md, "LeGrad: which query rows").

    python scripts/legrad_rows.py demo 40         # or demo-clip; the number of val scenes

Prints phrase pointing for: the shipped `legrad` (one final score, every query row); the
final score with patch rows alone (the rule before) and with the CLS row alone; and the
reference's per-block "logit lens" scores (each block's CLS through the final norm and
projection), every row.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F

from groundreport.demo.scenes import heldout_seeds, make_scene, with_article
from groundreport.explainers import make_methods
from groundreport.explainers.normalise import normalise
from groundreport.explainers.suite import Suite
from groundreport.metrics.grounding import score_map
from groundreport.models import load_adapter


def lens_embed(adapter, name: str, hidden: torch.Tensor) -> torch.Tensor:
    """A block's output -> the unit projected embedding of its CLS (final norm, projection)."""
    if name == "demo":
        flava = adapter.flava
        return F.normalize(flava.image_projection(flava.image_model.layernorm(hidden[:, 0])), dim=-1)
    vision = adapter.model.vision_model
    return F.normalize(adapter.model.visual_projection(vision.post_layernorm(hidden[:, 0])), dim=-1)


def main(name: str, n: int) -> None:
    adapter = load_adapter(name, device="cpu")
    suite = Suite(make_methods(["legrad"]))
    variants = ["legrad (final score, every row)", "final score, patch rows", "final score, CLS row",
                "per-block lens, every row"]
    hits: dict[str, list[bool]] = {v: [] for v in variants}
    chance = []
    for seed in heldout_seeds("val", n):
        scene = make_scene(seed, (2, 4))
        phrases = [with_article(o.phrase) for o in scene.objects]
        spans = [(p, (scene.caption.index(p), scene.caption.index(p) + len(p))) for p in phrases]
        px = adapter.pixel_values([scene.image])
        res = suite.run(adapter, px, scene.caption, spans)
        rec = adapter.forward(px, scene.caption, need_mm=False, image_size=scene.image.size)
        texts = adapter.text_embeds(phrases)
        cols = rec.layout.image_patches
        for k, obj in enumerate(scene.objects):
            final = (rec.image_embed @ texts[k:k + 1].T).sum()
            grads = [g[0].float().clamp(min=0) for g in
                     torch.autograd.grad(final, list(rec.image_attn), retain_graph=True)]  # L x [H, N, N]
            lens = []
            for block, attn in enumerate(rec.image_attn):
                s = (lens_embed(adapter, name, rec.image_hidden[block + 1]) @ texts[k:k + 1].T).sum()
                g = torch.autograd.grad(s, attn, retain_graph=True)[0][0].float().clamp(min=0)
                lens.append(g[:, :, cols].mean(dim=(0, 1)))
            maps = {variants[0]: res.maps["legrad"].phrases[k],
                    variants[1]: torch.stack([g[:, cols, cols].mean(dim=(0, 1)) for g in grads]).mean(0),
                    variants[2]: torch.stack([g[:, 0, cols].mean(dim=0) for g in grads]).mean(0),
                    variants[3]: torch.stack(lens).mean(0)}
            for v, m in maps.items():
                m = m if isinstance(m, np.ndarray) else normalise(m.reshape(rec.grid).detach().numpy())
                hits[v].append(score_map(m, scene.image.size, [obj.box], region=res.region).pointing_hit)
            chance.append(1 / len(scene.objects))
    print(f"{name}: {len(chance)} phrases of {n} val scenes, chance {np.mean(chance):.3f}")
    for v in variants:
        print(f"  {v:<34} {np.mean(hits[v]):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
