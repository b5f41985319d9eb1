"""Gradients of K scalar targets with respect to chosen activations, in one batched call."""

from __future__ import annotations

import torch


def batched_grads(targets: torch.Tensor, inputs: list[torch.Tensor], vmap: bool | None = None) -> list[torch.Tensor]:
    """``[K]`` targets -> one ``[K, *x.shape]`` gradient per input ``x``.

    ``vmap`` (None: on any device but the CPU): ``is_grads_batched``, a vmap over the backward,
    K targets in one call; else a loop of K backward calls through the retained graph, which on
    the 2-core CPU is as fast for one image and faster for a batch of them (3 moved copies of a
    demo scene, 12 targets: 285 ms against 544 ms; benchmarks.md). Either way only ``inputs``
    are differentiated: no parameter gradients are formed. Inputs a target does not reach get
    zeros.
    """
    if not inputs:
        return []
    targets = targets.reshape(-1)
    k = targets.shape[0]
    unique = list({id(x): x for x in inputs}.values())
    if vmap is None:
        vmap = targets.device.type != "cpu"
    if k == 1 or not vmap:
        each = [torch.autograd.grad(t, unique, retain_graph=True, allow_unused=True) for t in targets]
        raw = [None if all(g[i] is None for g in each) else
               torch.stack([torch.zeros_like(x) if g[i] is None else g[i] for g in each])
               for i, x in enumerate(unique)]
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
