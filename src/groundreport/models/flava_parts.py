"""FLAVA forward pieces, called module by module so that nothing is hidden from explainers.

`FlavaModel.forward` neither passes `output_attentions` to the multimodal encoder nor lets
us reuse one image encoding for several texts; these helpers do both. Training (the demo
model) and explaining share them, so the score the explainers differentiate is exactly the
score the demo model was trained on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def encode_image(flava, pixel_values: torch.Tensor, output_attentions: bool = False,
                 output_hidden_states: bool = True):
    """Image encoder. Returns the HF output; ``hidden_states`` has L+1 entries [B, 1+P, D]."""
    return flava.image_model(pixel_values=pixel_values, output_attentions=output_attentions,
                             output_hidden_states=output_hidden_states, return_dict=True)


def encode_text(flava, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False):
    return flava.text_model(input_ids=input_ids, attention_mask=attention_mask,
                            output_attentions=output_attentions, output_hidden_states=True, return_dict=True)


def image_embedding(flava, image_out) -> torch.Tensor:
    """Unit-norm projected image CLS, [B, E]."""
    return F.normalize(flava.image_projection(image_out.last_hidden_state[:, 0]), dim=-1)


def text_embedding(flava, text_out) -> torch.Tensor:
    """Unit-norm projected text CLS, [B, E]."""
    return F.normalize(flava.text_projection(text_out.last_hidden_state[:, 0]), dim=-1)


def encode_multimodal(flava, image_states: torch.Tensor, text_states: torch.Tensor,
                      text_mask: torch.Tensor, output_attentions: bool = False):
    """Multimodal encoder over ``[mm CLS, image CLS, patches..., text tokens...]``.

    ``image_states``/``text_states`` are the unimodal encoders' last hidden states before
    their final LayerNorm (what FlavaModel feeds it). Returns the HF output; its sequence
    is one longer than the concatenated input because of the mm CLS.
    """
    mm = flava.multimodal_model
    image_proj = flava.image_to_mm_projection(image_states)
    text_proj = flava.text_to_mm_projection(text_states)
    b, n_img, _ = image_proj.shape
    n_prefix = n_img + (1 if mm.use_cls_token else 0)
    mask = torch.cat([torch.ones(b, n_prefix, device=text_mask.device, dtype=text_mask.dtype), text_mask], dim=1)
    return mm(torch.cat([image_proj, text_proj], dim=1), attention_mask=mask,
              output_attentions=output_attentions, output_hidden_states=False, return_dict=True)


def itm_logit(itm_head, mm_out) -> torch.Tensor:
    """Match-minus-no-match logit of FLAVA's ITM head, [B]."""
    logits = itm_head(mm_out.last_hidden_state)
    return logits[:, 1] - logits[:, 0]
