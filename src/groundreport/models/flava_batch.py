"""FLAVA's forward for B pairs at once, split into per-pair records the explainers read unchanged.

One image forward for the B images, one text forward for the B captions (right-padded to the
longest), one multimodal forward for the B pairs. Each pair then gets a ``ForwardRecord``
whose tensors are slices of the batched ones (row b, text and multimodal sequences cut to the
pair's own length), so they stay in the batched graph: a target computed from a pair's record
is differentiable through the batch. Padding changes nothing a pair's record holds: padded
text tokens are masked as keys (their attention weight is exactly 0), so no real token, and
neither CLS, reads them.

Kept beside ``FlavaAdapter.forward`` (not a change to it) while the adapter is reworked; once
the adapter takes batches, ``forward`` is this with B = 1.
"""

from __future__ import annotations

import torch

from . import flava_parts as parts
from .flava import ForwardRecord


def forward_batch(adapter, pixel_values: torch.Tensor, captions: list[str],
                  need_mm: bool = True) -> tuple[ForwardRecord, list[ForwardRecord]]:
    """``pixel_values`` [B, C, H, W] and B captions -> (the batched record, B per-pair records).

    The batched record holds the padded [B, ...] tensors (its ``tokens``/``words`` are empty);
    gradients are taken with respect to its tensors and cut per pair (``explainers.gradients.cut``)."""
    flava = adapter.flava
    enc = adapter.tokenize(captions)
    ids = enc["input_ids"].to(adapter.device)
    mask = enc["attention_mask"].to(adapter.device)
    store = {}
    last_norm = flava.image_model.encoder.layer[-1].layernorm_before
    hook = last_norm.register_forward_hook(lambda mod, inp, out: store.__setitem__("norm", out))
    try:
        with torch.enable_grad():
            image_out = parts.encode_image(flava, pixel_values, output_attentions=True)
    finally:
        hook.remove()
    with torch.enable_grad():
        text_out = parts.encode_text(flava, ids, mask)
        img = parts.image_embedding(flava, image_out)
        txt = parts.text_embedding(flava, text_out)
        mm_attn, itm = None, None
        if need_mm:
            mm_out = parts.encode_multimodal(flava, image_out.hidden_states[-1], text_out.hidden_states[-1], mask,
                                             output_attentions=True)
            mm_attn = mm_out.attentions
            if adapter.itm_head is not None:
                itm = parts.itm_logit(adapter.itm_head, mm_out)
        score = (img * txt).sum(-1)
    batch = ForwardRecord(
        image_hidden=image_out.hidden_states, image_norm=store["norm"], image_attn=image_out.attentions,
        mm_attn=mm_attn, image_embed=img, text_embed=txt, score=score, itm=itm, grid=adapter.grid,
        tokens=[], words=[], input_ids=ids, attention_mask=mask)

    full_lens = [len(ids_) for ids_ in adapter.processor.tokenizer(captions)["input_ids"]]
    views = []
    for b, caption in enumerate(captions):
        tokens, words = adapter.words_of(caption, enc, row=b)
        t = int(mask[b].sum())
        s = 2 + adapter.grid[0] * adapter.grid[1] + t  # mm CLS, image CLS, patches, the pair's text tokens
        views.append(ForwardRecord(
            image_hidden=tuple(h[b:b + 1] for h in image_out.hidden_states), image_norm=store["norm"][b:b + 1],
            image_attn=tuple(a[b:b + 1] for a in image_out.attentions),
            mm_attn=None if mm_attn is None else tuple(a[b:b + 1, :, :s, :s] for a in mm_attn),
            image_embed=img[b:b + 1], text_embed=txt[b:b + 1], score=score[b:b + 1],
            itm=None if itm is None else itm[b:b + 1], grid=adapter.grid, tokens=tokens, words=words,
            truncated=full_lens[b] > t, input_ids=ids[b:b + 1, :t], attention_mask=mask[b:b + 1, :t]))
    return batch, views
