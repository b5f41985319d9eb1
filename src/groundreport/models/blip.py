"""BLIP image-text retrieval (``BlipForImageTextRetrieval``) behind the adapter interface.

Two scores, as the model has two heads:
- contrastive (ITC, the ``use_itm_head=False`` path): cosine of the projected image CLS and the
  projected text CLS of the text encoder run without the image. The image-encoder methods
  (Grad-CAM, relevancy, LeGrad, occlusion, ...) use it, like every other model's score;
- ITM: the text encoder cross-attends to the image tokens in every block; the ITM head reads the
  text CLS (match minus mismatch logit). The multimodal maps are the cross-attention maps:
  text-token rows over the image columns ``[CLS, patches]`` (``Layout.mm_patch_cols`` drops the
  CLS). Per-token Grad-CAM reads one block, LAVIS's ``compute_gradcam`` default (block 6 of
  BLIP-base's 12; the second to last on a smaller text encoder); ``MultimodalGradCAM(block=k)``
  picks another. Relevancy propagation needs a joint self-attention sequence, which BLIP has
  not: ``mm-relevancy`` is skipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Adapter, ImageSide, Layout, vision_tower_forward

LAVIS_GRADCAM_BLOCK = 6  # lavis.models.blip_models.blip_image_text_matching.compute_gradcam(block_num=6)


class BlipAdapter(Adapter):
    family = "blip"
    capabilities = frozenset({"contrastive", "itm", "cross_attention"})

    def __init__(self, model, processor, device, dtype, model_id, revision):
        super().__init__(model, processor, device, dtype, model_id, revision)
        vc = model.config.vision_config
        self.grid = (vc.image_size // vc.patch_size, vc.image_size // vc.patch_size)
        p = self.grid[0] * self.grid[1]
        n_text = model.config.text_config.num_hidden_layers
        self.layout = Layout(image_cls=0, image_patches=slice(1, 1 + p), mm_text_rows=slice(0, None),
                             mm_patch_cols=slice(1, 1 + p),
                             mm_default_block=min(LAVIS_GRADCAM_BLOCK, max(0, n_text - 2)))
        self.max_text_len = min(model.config.text_config.max_position_embeddings,
                                getattr(processor.tokenizer, "model_max_length", 10**6) or 10**6)

    @classmethod
    def _model_class(cls, config):
        from transformers import BlipForImageTextRetrieval

        return BlipForImageTextRetrieval

    def _image_embedding(self, last_hidden_state) -> torch.Tensor:
        return F.normalize(self.model.vision_proj(last_hidden_state[:, 0]), dim=-1)

    def encode_image(self, pixel_values):
        vision = self.model.vision_model
        out, norm = vision_tower_forward(vision, pixel_values)
        return ImageSide(hidden=out.hidden_states, attn=out.attentions, norm=norm,
                         embed=self._image_embedding(out.last_hidden_state), last=out.last_hidden_state)

    def encode_text(self, input_ids, attention_mask):
        out = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(self.model.text_proj(out.last_hidden_state[:, 0]), dim=-1)

    def image_embeds(self, pixel_values):
        with torch.no_grad():
            return self._image_embedding(self.model.vision_model(pixel_values=pixel_values).last_hidden_state)

    def encode_multimodal(self, image, input_ids, attention_mask):
        states = image.last
        out = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask,
                                      encoder_hidden_states=states,
                                      encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long,
                                                                        device=states.device),
                                      output_attentions=True)
        logits = self.model.itm_head(out.last_hidden_state[:, 0])
        return out.cross_attentions, logits[:, 1] - logits[:, 0]
