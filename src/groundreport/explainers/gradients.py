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
