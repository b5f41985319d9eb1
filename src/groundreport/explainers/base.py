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

Positions come from ``rec.layout`` (models.base.Layout), never from constants: the image
CLS (or, without one, the pooling head's probe row ``rec.pool_attn``), the patch tokens, and
the multimodal text rows and patch columns. ``requires`` names the model capabilities a method
needs (models.base.CAPABILITIES); the suite skips it, with a note, on a model without them.
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
    version: int = 1  # bump when the method's maps change: pairs made by an older version are redone
    perturbation: bool = False  # True: maps come from extra forwards (``drops``), not from rows()
    shift_average: bool = False  # True: averaged over patch-fraction moved copies (explainers/shifts.py)
    smooth: float = 0.0  # sigma, in patches, of the Gaussian its maps get (explainers/smoothing.py); 0: none
    description: str = ""
    # capabilities needed, each entry a name or a tuple of alternatives (any one will do)
    requires: tuple = ()

    def missing(self, capabilities) -> str | None:
        """Why this method cannot run on a model with ``capabilities`` (None: it can)."""
        from ..models.base import CAPABILITIES

        for need in self.requires:
            options = (need,) if isinstance(need, str) else tuple(need)
            if not set(options) & set(capabilities):
                return f"the model has no {' or '.join(CAPABILITIES[o] for o in options)}"
        return None

    def inputs(self, rec) -> list[torch.Tensor]:
        return []

    def rows(self, rec, grads: list[torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError


def head_mean_positive(attn: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Chefer's per-block relevance: mean over heads of relu(grad * attn). [K,1,H,S,S] -> [K,S,S]."""
    return (grad * attn).clamp(min=0).mean(dim=2)[:, 0]


def summary_probe(rec, k: int, n: int, pool_cam: torch.Tensor | None = None) -> torch.Tensor:
    """The image summary as a row over the ``n`` image tokens, [k, 1, n]: with a CLS token, that
    token (one-hot); without (SigLIP), the pooling head's probe row ``pool_cam`` [k, 1, n] (its
    attention, or relevance, over the tokens)."""
    if rec.layout.image_cls is None:
        return pool_cam
    probe = torch.zeros(k, 1, n, device=rec.image_attn[0].device)
    probe[:, 0, rec.layout.image_cls] = 1
    return probe


def summary_rows(rec, r: torch.Tensor, pool_cam: torch.Tensor | None = None) -> torch.Tensor:
    """The image summary's row (``summary_probe``) of a propagated image-token matrix ``r``
    [K, N, N], patch columns: -> [K, 1, P]."""
    probe = summary_probe(rec, r.shape[0], r.shape[-1], pool_cam)
    return torch.bmm(probe.to(r.dtype), r)[:, :, rec.layout.image_patches]


def relevancy_propagate(attns, grads) -> torch.Tensor:
    """R = I; R += cam_l @ R for each block (Chefer et al., ICCV 2021). Returns [K, S, S]."""
    k, s = grads[0].shape[0], attns[0].shape[-1]
    return propagated_rows(attns, grads, torch.eye(s, dtype=torch.float32, device=attns[0].device).expand(k, s, s))


def propagated_rows(attns, grads, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` [K, m, S] times ``relevancy_propagate``'s R, without forming R: R is the product
    (I + cam_L) ... (I + cam_1), later blocks on the left, so a row vector goes through the blocks
    from the last to the first, u += u @ cam_l: m x S x S a block instead of S x S x S."""
    u = rows.float()
    for a, g in zip(reversed(list(attns)), reversed(list(grads))):
        u = u + torch.bmm(u, head_mean_positive(a.detach().float(), g.float()))
    return u
