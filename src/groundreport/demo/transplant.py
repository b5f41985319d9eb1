"""A trained CLIP vision tower written into a FLAVA image encoder, so that the demo FLAVA starts
from an image encoder that already knows shapes (docs/demo-model.md, "The image encoder from
the demo CLIP").

The two towers are the same pre-LayerNorm ViT blocks under other names, with one difference:
CLIP normalises the patch embeddings (``pre_layrnorm``) before its first block, and FLAVA's
image encoder has no such LayerNorm. It is written as an extra first FLAVA block that does
nothing but that LayerNorm:

- its attention is switched off (query, key, value and output weights zero: it adds 0, and
  every gradient through its attention probabilities is 0, so it adds nothing to a
  relevancy or LeGrad map);
- its MLP is the identity on the LayerNorm's output (``act(x) - act(-x) = x`` for GELU and
  quick-GELU alike: the first 2D hidden units are ``+x`` and ``-x``), and its ``layernorm_after``
  is CLIP's ``pre_layrnorm``;
- the embeddings (patch projection, class token, positions) are CLIP's divided by ``SHRINK``:
  a LayerNorm does not see the scale, and the residual the block keeps is 1/SHRINK of it.

So block ``k + 1`` of the FLAVA is block ``k`` of the CLIP, and the image embedding equals
CLIP's to float precision (``tests/test_demo_transplant.py``).
"""

from __future__ import annotations

import torch

SHRINK = 1000.0  # the embeddings' scale-down; their remainder in the residual is 1/SHRINK of CLIP's
_BLOCK_NAMES = {  # FLAVA image block -> CLIP vision block
    "attention.attention.query": "self_attn.q_proj",
    "attention.attention.key": "self_attn.k_proj",
    "attention.attention.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "layernorm_before": "layer_norm1",
    "layernorm_after": "layer_norm2",
}


def flava_image_settings(clip_config) -> dict:
    """What a FLAVA image config needs to hold ``clip_config``'s vision tower (one block more)."""
    v = clip_config.vision_config
    if v.hidden_act not in ("gelu", "quick_gelu"):
        raise ValueError(f"a CLIP vision tower with {v.hidden_act!r} cannot be written as FLAVA blocks")
    if 2 * v.hidden_size > v.intermediate_size:
        raise ValueError("the LayerNorm block needs an MLP at least twice the hidden size")
    return dict(hidden_size=v.hidden_size, num_attention_heads=v.num_attention_heads,
                intermediate_size=v.intermediate_size, num_hidden_layers=v.num_hidden_layers + 1,
                image_size=v.image_size, patch_size=v.patch_size, hidden_act=v.hidden_act,
                projection_dim=clip_config.projection_dim)


def flava_on_clip_vision(clip):
    """A fresh demo FLAVA (``FlavaForPreTraining``) whose image encoder, image projection and
    logit scale are ``clip``'s (a CLIPModel); its text and multimodal sides are untrained."""
    from transformers import FlavaForPreTraining

    from .model_spec import demo_config

    v = flava_image_settings(clip.config)
    model = FlavaForPreTraining(demo_config(hidden=v["hidden_size"], heads=v["num_attention_heads"],
                                            mlp=v["intermediate_size"], image_layers=v["num_hidden_layers"],
                                            image_size=v["image_size"], patch_size=v["patch_size"],
                                            image_act=v["hidden_act"], projection_dim=v["projection_dim"]))
    clip_vision_into_flava(clip, model.flava)
    return model


@torch.no_grad()
def clip_vision_into_flava(clip, flava) -> None:
    """Overwrite ``flava`` (a FlavaModel built with ``flava_image_settings``)'s image encoder,
    image projection and logit scale with ``clip``'s (a CLIPModel)."""
    cv, fi = clip.vision_model, flava.image_model
    if len(fi.encoder.layer) != len(cv.encoder.layers) + 1:
        raise ValueError("the FLAVA image encoder needs exactly one block more than the CLIP's")
    c = cv.state_dict()
    d = c["pre_layrnorm.weight"].shape[0]
    state = {
        "embeddings.cls_token": c["embeddings.class_embedding"].view(1, 1, d) / SHRINK,
        "embeddings.position_embeddings": c["embeddings.position_embedding.weight"][None] / SHRINK,
        "embeddings.patch_embeddings.projection.weight": c["embeddings.patch_embedding.weight"] / SHRINK,
        "embeddings.patch_embeddings.projection.bias": torch.zeros(d),
        "layernorm.weight": c["post_layernorm.weight"], "layernorm.bias": c["post_layernorm.bias"],
    }
    first = "encoder.layer.0."
    for name in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                 "attention.output.dense"):
        state[first + name + ".weight"] = torch.zeros(d, d)
        state[first + name + ".bias"] = torch.zeros(d)
    state[first + "layernorm_before.weight"], state[first + "layernorm_before.bias"] = torch.ones(d), torch.zeros(d)
    state[first + "layernorm_after.weight"] = c["pre_layrnorm.weight"]
    state[first + "layernorm_after.bias"] = c["pre_layrnorm.bias"]
    mlp = fi.encoder.layer[0].intermediate.dense.weight.shape[0]
    eye = torch.eye(d)
    state[first + "intermediate.dense.weight"] = torch.cat([eye, -eye, torch.zeros(mlp - 2 * d, d)])
    state[first + "intermediate.dense.bias"] = torch.zeros(mlp)
    state[first + "output.dense.weight"] = torch.cat([eye, -eye, torch.zeros(d, mlp - 2 * d)], 1)
    state[first + "output.dense.bias"] = torch.zeros(d)
    for k in range(len(cv.encoder.layers)):
        for ours, theirs in _BLOCK_NAMES.items():
            for part in ("weight", "bias"):
                state[f"encoder.layer.{k + 1}.{ours}.{part}"] = c[f"encoder.layers.{k}.{theirs}.{part}"]
    missing, unexpected = fi.load_state_dict(state, strict=False)
    left = [m for m in missing if not m.startswith(("embeddings.mask_token", "pooler."))]
    if left or unexpected:
        raise ValueError(f"transplant left {left} unset and {unexpected} unused")
    flava.image_projection.weight.copy_(clip.visual_projection.weight)
    flava.image_projection.bias.zero_()
    flava.logit_scale.copy_(clip.logit_scale)
