"""The one explainer signature.

An explainer reads a ``ForwardRecord`` and returns patch-grid rows:

- ``inputs(rec)``: the activations it needs gradients for (empty: gradient-free);
- ``rows(rec, grads)``: a float tensor ``[K, Q, P]`` where K is the number of targets the
  gradients were taken for (1 when gradient-free), Q the number of query rows (1 for a
  CLS row on the image encoder, T for text-token rows on the multimodal encoder), and P
  the number of patches. ``grads[i]`` has shape ``[K, *inputs(rec)[i].shape]``.

The suite turns rows into caption-, word- and phrase-level maps of shape ``[gh, gw]``.
A perturbation method (``perturbation = True``) has no rows: its ``drops(adapter, pixels,
text_embeds)`` runs forwards of its own and returns one patch row per text.
"""

from __future__ import annotations

import torch


class Explainer:
    name: str = ""
    label: str = ""
    encoder: str = "image"  # "image": one CLS row per target; "multimodal": one row per text token
    target: str | None = "caption"  # "caption": the run's --target score; "itm"/"contrastive": always that one; None: no score
    caption_blind: bool = False  # True when the map cannot depend on the text at all
    expensive: bool = False  # True: left out of the default suite (e.g. one forward per patch)
    perturbation: bool = False  # True: maps come from extra forwards (``drops``), not from rows()
    description: str = ""

    def inputs(self, rec) -> list[torch.Tensor]:
        return []

    def rows(self, rec, grads: list[torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError


def head_mean_positive(attn: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Chefer's per-block relevance: mean over heads of relu(grad * attn). [K,1,H,S,S] -> [K,S,S]."""
    return (grad * attn).clamp(min=0).mean(dim=2)[:, 0]


def relevancy_propagate(attns, grads) -> torch.Tensor:
    """R = I; R += cam_l @ R for each block (Chefer et al., ICCV 2021). Returns [K, S, S]."""
    k, s = grads[0].shape[0], attns[0].shape[-1]
    r = torch.eye(s, dtype=torch.float32, device=attns[0].device).expand(k, s, s).clone()
    for a, g in zip(attns, grads):
        cam = head_mean_positive(a.detach().float(), g.float())
        r = r + torch.bmm(cam, r)
    return r
