"""CLIP (``CLIPModel``) behind the adapter interface.

Two towers and no multimodal encoder: every method reads the image encoder (sequence
``[CLS, patches]``), targeted at the cosine of the projected image CLS and the projected text
EOS token (CLIP's logit is that cosine times a fixed scale: the same maps). CLIP's processor
resizes the short side and centre-crops, so the grid covers the crop only (``region``).
CLIP's tokenizer has no mask token: a word with no other content word to be swapped for
(``Adapter.word_baseline_embeds``) is scored by removing its tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Adapter, ImageSide, Layout, vision_tower_forward


class ClipAdapter(Adapter):
    family = "clip"
    capabilities = frozenset({"contrastive"})

    def __init__(self, model, processor, device, dtype, model_id, revision):
        super().__init__(model, processor, device, dtype, model_id, revision)
        vc = model.config.vision_config
        self.grid = (vc.image_size // vc.patch_size, vc.image_size // vc.patch_size)
        self.layout = Layout(image_cls=0, image_patches=slice(1, 1 + self.grid[0] * self.grid[1]))
        self.max_text_len = min(model.config.text_config.max_position_embeddings,
                                getattr(processor.tokenizer, "model_max_length", 10**6) or 10**6)

    @classmethod
    def _model_class(cls, config):
        from transformers import CLIPModel

        return CLIPModel

    def _image_embedding(self, out) -> torch.Tensor:
        return F.normalize(self.model.visual_projection(out.pooler_output), dim=-1)

    def encode_image(self, pixel_values):
        vision = self.model.vision_model
        out, norm = vision_tower_forward(vision, pixel_values)
        return ImageSide(hidden=out.hidden_states, attn=out.attentions, norm=norm,
                         embed=self._image_embedding(out), last=out.last_hidden_state)

    def encode_text(self, input_ids, attention_mask):
        out = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(self.model.text_projection(out.pooler_output), dim=-1)

    def image_embeds(self, pixel_values):
        with torch.no_grad():
            return self._image_embedding(self.model.vision_model(pixel_values=pixel_values))
