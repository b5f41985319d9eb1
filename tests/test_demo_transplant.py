"""A CLIP vision tower written into a FLAVA image encoder: the FLAVA must see what the CLIP sees,
block by block, and training on it must leave it as it is."""

from __future__ import annotations

import pytest
import torch


def _tiny_clip(act="quick_gelu", seed=0):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    common = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, hidden_act=act)
    cfg = CLIPConfig(text_config=dict(common, num_hidden_layers=1, vocab_size=99, max_position_embeddings=16),
                     vision_config=dict(common, num_hidden_layers=2, image_size=32, patch_size=8),
                     projection_dim=24)
    model = CLIPModel(cfg).eval()
    with torch.no_grad():  # not the init values: a LayerNorm or bias left out must show
        for name, p in model.vision_model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.3)
        model.logit_scale.fill_(3.1)  # a trained scale, not FLAVA's initial one
    return model


def _flava_for(clip):
    from groundreport.demo.transplant import flava_on_clip_vision

    return flava_on_clip_vision(clip).eval()


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_the_flava_image_encoder_gives_the_clip_image_embedding_and_block_outputs(act):
    import torch.nn.functional as F

    from groundreport.models.flava_parts import encode_image, image_embedding

    clip = _tiny_clip(act)
    flava = _flava_for(clip)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = clip.vision_model(pixel_values=x, output_hidden_states=True)
        ref_emb = F.normalize(clip.visual_projection(ref.pooler_output), dim=-1)
        out = encode_image(flava.flava, x)
        emb = image_embedding(flava.flava, out)
    assert len(out.hidden_states) == len(ref.hidden_states) + 1
    for k, h in enumerate(ref.hidden_states):  # CLIP's block k is the FLAVA's block k + 1
        assert torch.allclose(out.hidden_states[k + 1], h, atol=2e-3 * h.abs().max().item())
    assert torch.allclose(emb, ref_emb, atol=1e-4)
    assert flava.flava.logit_scale.item() == pytest.approx(clip.logit_scale.item())


def test_the_layernorm_block_adds_nothing_to_attention_gradients():
    from groundreport.models.flava_parts import encode_image, image_embedding

    flava = _flava_for(_tiny_clip())
    out = encode_image(flava.flava, torch.randn(2, 3, 32, 32), output_attentions=True)
    grads = torch.autograd.grad(image_embedding(flava.flava, out).sum(), out.attentions)
    assert grads[0].abs().max() == 0
    assert grads[1].abs().max() > 0


def test_a_tower_that_cannot_be_written_as_flava_blocks_is_refused():
    from groundreport.demo.transplant import flava_image_settings

    with pytest.raises(ValueError, match="cannot be written"):
        flava_image_settings(_tiny_clip(act="relu").config)


def test_training_on_the_frozen_tower_moves_the_text_side_only_and_loads(tmp_path):
    from safetensors.torch import load_file

    from groundreport.demo.train import TrainSettings, train
    from groundreport.models.flava import FlavaAdapter

    clip = _tiny_clip()
    clip.save_pretrained(tmp_path / "clip")
    lines = []
    train(TrainSettings(out_dir=tmp_path / "f", steps=2, pool_size=24, batch_size=8, itm_pairs=4, mmm_loss_weight=1.0,
                        mmm_rows=4, image_size=32, threads=1, device="cpu", image_tower_from=tmp_path / "clip"),
          log=lines.append)
    assert any("frozen image encoder" in m for m in lines)
    saved = load_file(tmp_path / "f" / "model.safetensors")
    fresh = _flava_for(clip).state_dict()
    image = [k for k in saved if k.startswith(("flava.image_model.", "flava.image_projection."))
             and not k.startswith(("flava.image_model.pooler.", "flava.image_model.embeddings.mask_token"))]  # unused, random
    assert image and all(saved[k].equal(fresh[k]) for k in image)
    assert not saved["flava.text_model.embeddings.word_embeddings.weight"].equal(
        fresh["flava.text_model.embeddings.word_embeddings.weight"])
    adapter = FlavaAdapter.load(str(tmp_path / "f"), device="cpu", offline=True)
    assert adapter.grid == (4, 4)
    with pytest.raises(ValueError, match="not both"):
        train(TrainSettings(out_dir=tmp_path / "g", steps=0, pool_size=8, image_size=32,
                            init_from=tmp_path / "f", image_tower_from=tmp_path / "clip"))


def test_the_bundled_flava_recipe_stands_on_the_bundled_clip(tmp_path):
    from transformers import CLIPConfig

    from groundreport.demo.train import recipe
    from groundreport.demo.transplant import flava_image_settings
    from groundreport.models.base import bundled_demo_path

    s = recipe("flava", out_dir=tmp_path)
    assert s.family == "flava" and s.image_tower_from == bundled_demo_path("demo-clip")
    v = flava_image_settings(CLIPConfig.from_pretrained(s.image_tower_from))
    assert v["image_size"] == s.image_size and v["num_hidden_layers"] == 5
    assert recipe("clip", out_dir=tmp_path).family == "clip" and recipe("flava-64", out_dir=tmp_path).image_tower_from is None
