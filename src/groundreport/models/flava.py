"""FLAVA behind the adapter interface.

Multimodal sequence layout (FLAVA has no cross-attention): ``[mm CLS, image CLS, patches…,
text tokens…]``; text→image maps are the text-token rows against the patch columns.
``flava_parts`` runs FLAVA module by module (the multimodal encoder's attentions, one image
encoding reused for several texts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import flava_parts as parts
from .base import (DTYPES, Adapter, ForwardRecord, ImageSide, Layout, Word, bundled_demo_path,  # noqa: F401
                   last_norm_hook, resolve_device)


def flava_layout(grid: tuple[int, int]) -> Layout:
    """FLAVA's token positions for a ``grid`` of patches: image ``[CLS, patches]``; multimodal
    ``[mm CLS, image CLS, patches, text]``."""
    p = grid[0] * grid[1]
    return Layout(image_cls=0, image_patches=slice(1, 1 + p), mm_text_rows=slice(2 + p, None),
                  mm_patch_cols=slice(2, 2 + p))


class FlavaAdapter(Adapter):
    family = "flava"
    attn_implementation = None  # FLAVA's attention is eager only

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype, model_id: str, revision: str):
        super().__init__(model, processor, device, dtype, model_id, revision)
        self.flava = model.flava if hasattr(model, "flava") else model
        self.itm_head = getattr(model, "itm_head", None)
        # the MMM head, where it was trained: FlavaForPreTraining always carries one, and a config
        # whose mmm_text_weight is 0 (a demo model trained without MMM) says it is still random
        head = getattr(model, "mmm_text_head", None)
        self.mmm_head = head if head is not None and getattr(model.config, "mmm_text_weight", 1.0) > 0 else None
        self.capabilities = frozenset({"contrastive", "mm_self_attention"} | ({"itm"} if self.itm_head else set())
                                      | ({"mmm"} if self.mmm_head is not None else set()))
        cfg = self.flava.config.image_config
        self.grid = (cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size)
        self.layout = flava_layout(self.grid)
        self.max_text_len = min(self.flava.config.text_config.max_position_embeddings,
                                getattr(processor.tokenizer, "model_max_length", 10**6) or 10**6)

    @classmethod
    def _model_class(cls, config):
        from transformers import FlavaForPreTraining, FlavaModel

        arch = (config.architectures or ["FlavaModel"])[0]
        return FlavaForPreTraining if arch == "FlavaForPreTraining" else FlavaModel

    def encode_image(self, pixel_values):
        store = {}
        hook = last_norm_hook(self.flava.image_model.encoder.layer[-1].layernorm_before, store)
        try:
            out = parts.encode_image(self.flava, pixel_values, output_attentions=True)
        finally:
            hook.remove()
        return ImageSide(hidden=out.hidden_states, attn=out.attentions, norm=store["norm"],
                         embed=parts.image_embedding(self.flava, out), last=out.hidden_states[-1])

    def encode_text(self, input_ids, attention_mask):
        return parts.text_embedding(self.flava, parts.encode_text(self.flava, input_ids, attention_mask))

    def image_embeds(self, pixel_values):
        with torch.no_grad():
            return parts.image_embedding(self.flava, parts.encode_image(self.flava, pixel_values,
                                                                        output_hidden_states=False))

    def encode_multimodal(self, image, input_ids, attention_mask):
        text_out = parts.encode_text(self.flava, input_ids, attention_mask)
        mm_out = parts.encode_multimodal(self.flava, image.last, text_out.hidden_states[-1], attention_mask,
                                         output_attentions=True)
        itm = parts.itm_logit(self.itm_head, mm_out) if self.itm_head is not None else None
        return mm_out.attentions, itm

    def masked_words(self, rec, words: list | None = None, contexts: list | None = None):
        """``words``: a subset of ``rec.words`` (default all), so that a long caption can go in chunks.
        ``contexts``: per word, None (masked in the caption) or ``(text, start, end)``: the word is
        masked in that text (its phrase), at those characters; rows are padded to one length."""
        words = rec.words if words is None else words
        contexts = contexts or [None] * len(words)
        ids, mask = rec.input_ids, rec.attention_mask
        texts = {}  # each context text tokenised once: (ids, mask, {character span: token positions})
        for text in {c[0] for c in contexts if c is not None}:
            enc = self.tokenize([text])
            texts[text] = (enc["input_ids"][0].to(ids.device), enc["attention_mask"][0].to(mask.device),
                           {x.span: list(x.tokens) for x in self.words_of(text, enc)[1]})
        rows_ids, rows_mask, positions = [], [], []
        for w, ctx in zip(words, contexts):
            text_ids, text_mask, spans = texts[ctx[0]] if ctx is not None else (None, None, {})
            pos = spans.get(tuple(ctx[1:])) if ctx is not None else None
            if pos is None:  # masked in the caption (also where the tokenizer split the phrase otherwise)
                text_ids, text_mask, pos = ids[0], mask[0], list(w.tokens)
            rows_ids.append(text_ids), rows_mask.append(text_mask), positions.append(pos)
        n, t = len(words), max((len(r) for r in rows_ids), default=ids.shape[1])
        pad = self.tokenizer.pad_token_id or 0
        true = torch.stack([F.pad(r, (0, t - len(r)), value=pad) for r in rows_ids])
        mask_n = torch.stack([F.pad(r, (0, t - len(r)), value=0) for r in rows_mask])
        masked = true.clone()
        for i, pos in enumerate(positions):
            masked[i, pos] = self.tokenizer.mask_token_id
        with torch.no_grad():  # gradients are read at the multimodal attention: nothing below needs them
            text_states = parts.encode_text(self.flava, masked, mask_n).hidden_states[-1]
        with torch.enable_grad():
            image = rec.image_hidden[-1].detach().expand(n, -1, -1)  # what the multimodal encoder reads
            mm_out = parts.encode_multimodal(self.flava, image, text_states, mask_n, output_attentions=True)
            text_out = mm_out.last_hidden_state[:, -t:]
            # the head only at each copy's masked positions: [positions, vocab], not [W, T, vocab]
            rows = torch.tensor([i for i, pos in enumerate(positions) for _ in pos], device=ids.device)
            cols = torch.tensor([c for pos in positions for c in pos], device=ids.device)
            logp = self.mmm_head(text_out[rows, cols]).float().log_softmax(-1)
            picked = logp[torch.arange(len(cols), device=ids.device), true[rows, cols]]
            own = torch.zeros(n, device=ids.device, dtype=picked.dtype).index_add(0, rows, picked)
        return mm_out.attentions, own
