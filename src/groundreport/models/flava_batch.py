"""FLAVA's forward for B pairs at once, split into per-pair records the explainers read unchanged.

One image forward for the B images, one text forward for the B captions (right-padded to the
longest), one multimodal forward for the B pairs, through the adapter's own ``encode_*`` hooks
(the contract's ``Adapter.forward`` with B rows). Each pair then gets a ``ForwardRecord`` whose
tensors are slices of the batched ones (row b, text and multimodal sequences cut to the pair's
own length), so they stay in the batched graph: a target computed from a pair's record is
differentiable through the batch. Padding changes nothing a pair's record holds: padded text
tokens are masked as keys (their attention weight is exactly 0), so no real token, and neither
CLS, reads them.

FLAVA only: the cut relies on its multimodal layout (``[mm CLS, image CLS, patches, text]``,
text last, so a pair's part of a padded sequence is its leading block). Other families have no
batched forward yet; ``Suite.run_batch`` runs them pair by pair (``supports_batch``).
"""

from __future__ import annotations

import torch

from .base import ForwardRecord


def supports_batch(adapter) -> bool:
    """Whether ``forward_batch`` can run this adapter (FLAVA; others go pair by pair)."""
    return getattr(adapter, "family", None) == "flava"


def forward_batch(adapter, pixel_values: torch.Tensor, captions: list[str], need_mm: bool = True,
                  image_sizes: list[tuple[int, int] | None] | None = None
                  ) -> tuple[ForwardRecord, list[ForwardRecord]]:
    """``pixel_values`` [B, C, H, W] and B captions -> (the batched record, B per-pair records).

    The batched record holds the padded [B, ...] tensors (its ``tokens``/``words`` are empty);
    gradients are taken with respect to its tensors and cut per pair (``explainers.gradients.cut``).
    ``image_sizes``: each original image's (W, H), for the records' ``region`` (None: unknown)."""
    if not supports_batch(adapter):
        raise ValueError(f"no batched forward for {getattr(adapter, 'family', '?')!r} models (FLAVA only)")
    sizes = list(image_sizes) if image_sizes is not None else [None] * len(captions)
    enc = adapter.tokenize(captions)
    ids = enc["input_ids"].to(adapter.device)
    mask = enc["attention_mask"].to(adapter.device)
    image, txt, mm_attn, itm = adapter.encode_pair(pixel_values, ids, mask, need_mm)
    with torch.enable_grad():
        score = adapter.score_of(image.embed, txt)
    batch = ForwardRecord(
        image_hidden=image.hidden, image_norm=image.norm, image_attn=image.attn, mm_attn=mm_attn,
        image_embed=image.embed, text_embed=txt, score=score, itm=itm, grid=adapter.grid,
        tokens=[], words=[], input_ids=ids, attention_mask=mask, layout=adapter.layout,
        pool_attn=image.pool_attn)

    full_lens = [len(ids_) for ids_ in adapter.tokenizer(captions)["input_ids"]]
    p = adapter.grid[0] * adapter.grid[1]
    views = []
    for b, caption in enumerate(captions):
        tokens, words = adapter.words_of(caption, enc, row=b)
        t = int(mask[b].sum())
        s = 2 + p + t  # mm CLS, image CLS, patches, the pair's text tokens
        views.append(ForwardRecord(
            image_hidden=tuple(h[b:b + 1] for h in image.hidden), image_norm=image.norm[b:b + 1],
            image_attn=tuple(a[b:b + 1] for a in image.attn),
            mm_attn=None if mm_attn is None else tuple(a[b:b + 1, :, :s, :s] for a in mm_attn),
            image_embed=image.embed[b:b + 1], text_embed=txt[b:b + 1], score=score[b:b + 1],
            itm=None if itm is None else itm[b:b + 1], grid=adapter.grid, tokens=tokens, words=words,
            truncated=full_lens[b] > t, input_ids=ids[b:b + 1, :t], attention_mask=mask[b:b + 1, :t],
            layout=adapter.layout, region=None if sizes[b] is None else adapter.region(sizes[b]),
            pool_attn=None if image.pool_attn is None else image.pool_attn[b:b + 1]))
    return batch, views
