"""Gradients of K scalar targets with respect to chosen activations, in one batched call."""

from __future__ import annotations

import torch


def batched_grads(targets: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[K]`` targets -> one ``[K, *x.shape]`` gradient per input ``x``.

    Uses ``is_grads_batched`` (vmap over the backward) so K targets cost one call, and
    differentiates only down to ``inputs``: no parameter gradients are formed. Inputs a
    target does not reach get zeros.
    """
    if not inputs:
        return []
    targets = targets.reshape(-1)
    k = targets.shape[0]
    unique = list({id(x): x for x in inputs}.values())
    if k == 1:
        raw = torch.autograd.grad(targets[0], unique, retain_graph=True, allow_unused=True)
        raw = [None if g is None else g.unsqueeze(0) for g in raw]
    else:
        eye = torch.eye(k, dtype=targets.dtype, device=targets.device)
        raw = torch.autograd.grad(targets, unique, grad_outputs=eye, retain_graph=True,
                                  allow_unused=True, is_grads_batched=True)
    by_id = {id(x): (torch.zeros((k, *x.shape), dtype=x.dtype, device=x.device) if g is None else g)
             for x, g in zip(unique, raw)}
    return [by_id[id(x)] for x in inputs]


def cut(x: torch.Tensor, b: int, like: torch.Tensor, lead: int = 0) -> torch.Tensor:
    """Row ``b`` of batched ``x`` (batch dim ``lead``), every later dim cut to ``like``'s size.

    Padding is always at the end of a dim (text right-padded, multimodal text after the
    patches), so a pair's own part of a padded tensor is its leading block."""
    index = [slice(None)] * lead + [slice(b, b + 1)] + [slice(0, n) for n in like.shape[1:]]
    return x[tuple(index)]
