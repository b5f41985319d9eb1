"""SigLIP (``SiglipModel``) behind the adapter interface.

Score: SigLIP's own logit, ``exp(logit_scale) * cos + logit_bias`` (the input of its sigmoid;
positive means "match"). It is affine in the cosine with a positive slope, so every gradient
map equals the cosine's up to a factor that normalisation removes; the sigmoid itself would
saturate (vanishing gradients for confident pairs) and bend word-in-context differences.

No CLS token: the image embedding is an attention-pooling head (MAP) whose learned probe
attends over the patch tokens. That probe is the summary query: its attention row over the
patches (``ForwardRecord.pool_attn``, [1, H, 1, P]) stands in for a CLS row: raw attention
reads it; rollout and relevancy multiply it into the encoder's propagated matrix (the probe
has no residual path of its own). The head is run here module by module because
``torch.nn.MultiheadAttention`` does not return the probabilities it multiplies with.

Text: padded to ``max_length`` and pooled at the last position, as SigLIP was trained; the
tokenizer has no mask token, so a word with no other content word to be swapped for is
scored by removing its tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from .base import Adapter, ImageSide, Layout, vision_tower_forward


def attention_pool(head, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SigLIP's MAP head on ``states`` [B, N, D] -> (pooled [B, D], probe attention [B, H, 1, N])."""
    mha = head.attention
    b, n, d = states.shape
    h = mha.num_heads
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

    def split(x):  # [B, S, D] -> [B, H, S, D/H]
        return x.reshape(b, -1, h, d // h).transpose(1, 2)

    q = split(F.linear(head.probe.expand(b, -1, -1), w_q, b_q))
    k, v = split(F.linear(states, w_k, b_k)), split(F.linear(states, w_v, b_v))
    probs = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)  # [B, H, 1, N]
    pooled = mha.out_proj((probs @ v).transpose(1, 2).reshape(b, 1, d))
    pooled = pooled + head.mlp(head.layernorm(pooled))
    return pooled[:, 0], probs


class SiglipAdapter(Adapter):
    family = "siglip"
    capabilities = frozenset({"contrastive"})
    padding = "max_length"

    def __init__(self, model, processor, device, dtype, model_id, revision):
        super().__init__(model, processor, device, dtype, model_id, revision)
        if not getattr(model.vision_model, "use_head", False):
            raise UserError(f"model {model_id!r}: its vision tower has no attention-pooling head "
                            "(vision_use_head=False), so it has no image embedding to explain")
        vc = model.config.vision_config
        self.grid = (vc.image_size // vc.patch_size, vc.image_size // vc.patch_size)
        self.layout = Layout(image_cls=None, image_patches=slice(0, self.grid[0] * self.grid[1]))
        self.max_text_len = model.config.text_config.max_position_embeddings

    @classmethod
    def _model_class(cls, config):
        from transformers import SiglipModel

        return SiglipModel

    def score_of(self, image_embed, text_embed):
        return self.model.logit_scale.exp() * (image_embed * text_embed).sum(-1) + self.model.logit_bias

    def encode_image(self, pixel_values):
        vision = self.model.vision_model
        out, norm = vision_tower_forward(vision, pixel_values)
        pooled, probs = attention_pool(vision.head, out.last_hidden_state)
        return ImageSide(hidden=out.hidden_states, attn=out.attentions, norm=norm,
                         embed=F.normalize(pooled, dim=-1), last=out.last_hidden_state, pool_attn=probs)

    def encode_text(self, input_ids, attention_mask):
        # no attention mask: SigLIP's text tower was trained attending to its padding
        return F.normalize(self.model.text_model(input_ids=input_ids).pooler_output, dim=-1)

    def image_embeds(self, pixel_values):
        with torch.no_grad():
            return F.normalize(self.model.vision_model(pixel_values=pixel_values).pooler_output, dim=-1)
