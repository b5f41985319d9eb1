"""CLIP, SigLIP and BLIP-ITM behind the model-neutral contract, on tiny random checkpoints built
here, saved with save_pretrained and loaded back through ``load_adapter`` / ``from_pretrained``.

Tokenizers are built offline: CLIP's byte-level BPE from a hand-written vocab and merge list
(``CLIPTokenizer(vocab=..., merges=...)``, in conftest.tiny_clip); SigLIP's sentencepiece
tokenizer cannot be built without a trained model file, so a ``PreTrainedTokenizerFast`` over a ``tokenizers`` WordLevel
model stands in (saved as tokenizer.json; ``AutoProcessor`` loads it into a ``SiglipProcessor``);
BLIP's is a ``BertTokenizer`` over a small vocab, as the FLAVA fixtures use.

Each adapter is checked against transformers' own forward (the score, the ITM logit, SigLIP's
pooled embedding), runs ``build`` and ``explain`` from the CLI, and gives different maps for two
captions with every text-conditioned method. CLIP's processor resizes the short side to 40 and
centre-crops 32 x 32, so a wide image's sides are never seen: the record's region is checked
against the processor's own pixels, and an object planted outside the crop is never pointed at.
LeGrad is checked against a plain implementation written here (retain_grad on HF's attentions,
one .backward()); BLIP's per-token Grad-CAM against LAVIS's recipe on HF's cross-attention.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from groundreport.cli import app
from groundreport.demo.scenes import COLOURS, make_scene
from groundreport.errors import UserError
from groundreport.explainers import REGISTRY, make_methods
from groundreport.explainers.normalise import normalise
from groundreport.explainers.suite import Suite
from groundreport.metrics.grounding import score_map
from groundreport.models import load_adapter
from conftest import ADAPTER_COMMON as COMMON, ADAPTER_WORDS as WORDS, tiny_clip

CAPTION_A = "a red circle and a blue square"
CAPTION_B = "the man in the green jacket"
FAMILIES = ["clip", "siglip", "blip"]


# -- tiny checkpoints ------------------------------------------------------------------------
def _siglip(path: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import (PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel,
                              SiglipProcessor)

    vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>", ","] + WORDS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                  model_max_length=16)
    torch.manual_seed(0)
    cfg = SiglipConfig(text_config=dict(COMMON, vocab_size=len(vocab), max_position_embeddings=16, projection_size=32,
                                        pad_token_id=0, eos_token_id=1),
                       vision_config=dict(COMMON, image_size=32, patch_size=8))
    model = SiglipModel(cfg).eval()
    with torch.no_grad():  # a visible bias, so that a score without it is caught
        model.logit_scale.fill_(1.5)
        model.logit_bias.fill_(-2.0)
    model.save_pretrained(path)
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                    tokenizer=tok).save_pretrained(path)
    return path


def _blip(path: Path) -> Path:
    from transformers import BertTokenizer, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ","] + WORDS)}
    tok = BertTokenizer(vocab=vocab, model_max_length=16)
    torch.manual_seed(0)
    cfg = BlipConfig(text_config=dict(COMMON, num_hidden_layers=3, vocab_size=len(vocab), max_position_embeddings=16,
                                      encoder_hidden_size=32, bos_token_id=2, sep_token_id=3, pad_token_id=0),
                     vision_config=dict(COMMON, image_size=32, patch_size=8, initializer_range=0.02),
                     image_text_hidden_size=16)  # BLIP's vision default (1e-10) makes every patch token the same
    BlipForImageTextRetrieval(cfg).eval().save_pretrained(path)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(path)
    return path


BUILDERS = {"clip": tiny_clip, "siglip": _siglip, "blip": _blip}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    return {name: build(tmp_path_factory.mktemp(f"tiny_{name}")) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def adapters(model_dirs):
    return {name: load_adapter(str(d), device="cpu") for name, d in model_dirs.items()}


@pytest.fixture(scope="module")
def scene():
    return make_scene(11, (3, 3), size=96)


# -- loading -----------------------------------------------------------------------------------
def test_load_adapter_picks_the_adapter_by_model_type(adapters, tiny_model_dir):
    from groundreport.models.blip import BlipAdapter
    from groundreport.models.clip import ClipAdapter
    from groundreport.models.flava import FlavaAdapter
    from groundreport.models.siglip import SiglipAdapter

    assert type(adapters["clip"]) is ClipAdapter and type(adapters["siglip"]) is SiglipAdapter
    assert type(adapters["blip"]) is BlipAdapter
    assert type(load_adapter(str(tiny_model_dir), device="cpu")) is FlavaAdapter
    caps = {name: set(a.describe()["capabilities"]) for name, a in adapters.items()}
    assert caps == {"clip": {"contrastive"}, "siglip": {"contrastive"},
                    "blip": {"contrastive", "itm", "cross_attention"}}
    assert adapters["blip"].describe()["class"] == "BlipForImageTextRetrieval"


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_models_are_not_degenerate(adapters, scene, family):
    """Maps are min-max normalised, so rounding noise would pass for a map: the random models'
    attention must really vary over the patches."""
    a = adapters[family]
    rec = a.forward(a.pixel_values([scene.image]), CAPTION_A)
    assert rec.image_attn[-1][0].std(dim=-1).mean() > 1e-5  # float rounding is ~1e-9
    if rec.mm_attn is not None:
        assert rec.mm_attn[-1][0].std(dim=-1).mean() > 1e-5


def test_unknown_model_type_is_one_line(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                         vocab_size=30)).save_pretrained(tmp_path)
    with pytest.raises(UserError) as e:
        load_adapter(str(tmp_path), device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "'bert'" in msg and "flava, clip, siglip, blip" in msg


# -- each adapter against transformers' own forward ----------------------------------------------
def _hf_inputs(adapter, scene, caption):
    enc = adapter.tokenize([caption])
    return enc, adapter.pixel_values([scene.image])


def test_clip_score_is_hf_cosine(adapters, scene):
    a = adapters["clip"]
    enc, px = _hf_inputs(a, scene, CAPTION_A)
    with torch.no_grad():
        out = a.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px)
    rec = a.forward(px, CAPTION_A)
    cos = out.logits_per_image[0, 0] / a.model.logit_scale.exp()
    torch.testing.assert_close(rec.score.detach()[0], cos, atol=1e-5, rtol=1e-5)


def test_siglip_pooling_and_score_equal_hf(adapters, scene):
    """The pooling head run module by module equals HF's; the score is SigLIP's logit (bias included)."""
    a = adapters["siglip"]
    enc, px = _hf_inputs(a, scene, CAPTION_A)
    assert enc["input_ids"].shape[1] == 16  # padded to max_length, as SigLIP was trained
    with torch.no_grad():
        out = a.model(input_ids=enc["input_ids"], pixel_values=px)
    rec = a.forward(px, CAPTION_A)
    torch.testing.assert_close(rec.image_embed.detach(), torch.nn.functional.normalize(out.image_embeds, dim=-1),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rec.score.detach()[0], out.logits_per_image[0, 0], atol=1e-5, rtol=1e-5)
    assert rec.pool_attn.shape == (1, 2, 1, 16) and rec.layout.image_cls is None


def test_blip_scores_equal_hf_itc_and_itm(adapters, scene):
    a = adapters["blip"]
    enc, px = _hf_inputs(a, scene, CAPTION_A)
    with torch.no_grad():
        itc = a.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px,
                      use_itm_head=False).itm_score
        itm = a.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px).itm_score
    rec = a.forward(px, CAPTION_A)
    torch.testing.assert_close(rec.score.detach()[0], itc[0, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rec.itm.detach()[0], itm[0, 1] - itm[0, 0], atol=1e-5, rtol=1e-5)
    assert len(rec.mm_attn) == 3 and rec.mm_attn[0].shape == (1, 2, len(rec.tokens), 17)


# -- words from tokenizers without offsets (SigLIP's sentencepiece tokenizer is a Python one) -----
ODD_CAPTIONS = ["a red jacket, the zebra", "The man in the green jacket.", "a  red-circle;blue square!!", "a man's dog"]


@pytest.mark.parametrize("caption", ODD_CAPTIONS)
def test_words_aligned_without_offsets_equal_the_fast_tokenizers_words(adapters, caption):
    """BLIP's word-pieces (with [UNK] for every character outside the tiny vocab) and SigLIP's
    WordLevel tokens, aligned from their strings alone, give the words the offsets give."""
    from groundreport.models.base import align_words

    for family in ("blip", "siglip"):
        a = adapters[family]
        tokens, words = a.words_of(caption, a.tokenize([caption]))
        tok = a.tokenizer
        aligned = align_words(caption, tokens, set(tok.all_special_tokens) - {tok.unk_token}, tok.unk_token)
        assert [(w.text, w.tokens, w.span) for w in aligned] == [(w.text, w.tokens, w.span) for w in words], family


def test_sentencepiece_style_tokens_align_into_words():
    from groundreport.models.base import align_words

    # SigLIP's tokenizer lower-cases and drops punctuation; "▁" marks a word start
    words = align_words("A red jacket, the Zebra!", ["▁a", "▁red", "▁jack", "et", "▁the", "▁", "<unk>", "</s>"],
                        {"</s>", "<pad>"}, "<unk>")
    assert [(w.text, w.tokens, w.span) for w in words] == [
        ("A", [0], (0, 1)), ("red", [1], (2, 5)), ("jacket", [2, 3], (6, 12)), ("the", [4], (14, 17)),
        ("Zebra", [6], (18, 23))]


def test_an_adapter_whose_tokenizer_has_no_offsets_still_finds_its_words(adapters, scene, monkeypatch):
    a = adapters["siglip"]
    fast_tokens, fast_words = a.words_of(CAPTION_A, a.tokenize([CAPTION_A]))
    monkeypatch.setattr(type(a.tokenizer), "is_fast", property(lambda self: False))
    enc = a.tokenize([CAPTION_A])
    assert "offset_mapping" not in enc
    res = Suite(make_methods(["gradcam"])).run(a, a.pixel_values([scene.image]), CAPTION_A)
    assert [(w.text, w.tokens) for w in res.words] == [(w.text, w.tokens) for w in fast_words]
    assert res.maps["gradcam"].words.shape == (7, 4, 4)


# -- text conditioning: every text-conditioned method, every adapter ------------------------------
SKIPPED = {"clip": {"mm-relevancy", "mm-gradcam", "mm-attention", "mm-masked"},
           "siglip": {"mm-relevancy", "mm-gradcam", "mm-attention", "mm-masked"},
           "blip": {"mm-relevancy", "mm-masked"}}  # BLIP-ITM has no MMM head


@pytest.mark.parametrize("family", FAMILIES)
def test_two_captions_give_different_maps(adapters, scene, family):
    a = adapters[family]
    px = a.pixel_values([scene.image])
    suite = Suite(make_methods(list(REGISTRY)))
    ra, rb = suite.run(a, px, CAPTION_A), suite.run(a, px, CAPTION_B)
    assert set(REGISTRY) - set(ra.maps) == SKIPPED[family]
    assert len([n for n in ra.notes if "skipped" in n]) == len(SKIPPED[family])
    for name, mm in ra.maps.items():
        diff = np.abs(mm.caption - rb.maps[name].caption).max()
        if REGISTRY[name].caption_blind:
            assert diff < 1e-6, name
        else:
            assert diff > 1e-3, f"{family}: {name} ignores the caption"
        assert mm.caption.max() == 1, f"{family}: {name} caption map is flat"
        if mm.words is not None and not REGISTRY[name].caption_blind:  # "red" vs "blue" differ
            assert np.abs(mm.words[1] - mm.words[5]).max() > 1e-3, f"{family}: {name}"


# -- LeGrad against a plain implementation --------------------------------------------------------
def _plain_legrad(family, adapter, px, caption) -> np.ndarray:
    """HF's own forward, eager attentions kept with retain_grad, one backward of the image-text
    score; per block relu(grad) averaged over heads and every query row, patch columns; mean
    over blocks; min-max."""
    model = adapter.model
    enc = adapter.tokenize([caption])
    if family == "clip":
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px,
                    output_attentions=True)
        attns, score, first = out.vision_model_output.attentions, (out.image_embeds * out.text_embeds).sum(), 1
    elif family == "siglip":
        out = model(input_ids=enc["input_ids"], pixel_values=px, output_attentions=True)
        attns, score, first = out.vision_model_output.attentions, out.logits_per_image[0, 0], 0
    else:  # BLIP's contrastive path
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=px,
                    use_itm_head=False, output_attentions=True)
        attns, score, first = out.attentions, out.itm_score[0, 0], 1
    for a in attns:
        a.retain_grad()
    score.backward()
    maps = [a.grad[0, :, :, first:].clamp(min=0).mean(dim=(0, 1)) for a in attns]
    return normalise(torch.stack(maps).mean(0).reshape(adapter.grid).numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_legrad_equals_a_plain_implementation(adapters, scene, family):
    a = adapters[family]
    px = a.pixel_values([scene.image])
    res = Suite(make_methods(["legrad"])).run(a, px, CAPTION_A)
    np.testing.assert_allclose(res.maps["legrad"].caption, _plain_legrad(family, a, px, CAPTION_A), atol=1e-5)


def test_siglip_relevancy_carries_the_probe_row_through_the_encoder(adapters, scene):
    """No CLS: relevancy = mean_h relu(grad * attn) of the pooling probe's row times Chefer's
    R = prod_l (I + mean_h relu(grad_l * attn_l)), written out here from HF's attentions."""
    from groundreport.models.siglip import attention_pool

    a = adapters["siglip"]
    px = a.pixel_values([scene.image])
    enc = a.tokenize([CAPTION_A])
    out = a.model.vision_model(pixel_values=px, output_attentions=True)
    pooled, probe = attention_pool(a.model.vision_model.head, out.last_hidden_state)
    for t in (*out.attentions, probe):
        t.retain_grad()
    txt = torch.nn.functional.normalize(a.model.text_model(input_ids=enc["input_ids"]).pooler_output, dim=-1)
    cos = (torch.nn.functional.normalize(pooled, dim=-1) * txt).sum()
    (a.model.logit_scale.exp() * cos + a.model.logit_bias).backward()
    r = torch.eye(16)
    for t in out.attentions:
        r = r + (t.grad * t).clamp(min=0).mean(1)[0] @ r
    row = (probe.grad * probe).clamp(min=0).mean(1)[0] @ r  # [1, 16]
    res = Suite(make_methods(["relevancy", "rollout", "attention"])).run(a, px, CAPTION_A)
    np.testing.assert_allclose(res.maps["relevancy"].caption, normalise(row.detach().reshape(4, 4).numpy()), atol=1e-5)
    # the caption-blind maps read the same probe row, heads averaged: raw, and through the rollout
    probe_mean = probe.detach().mean(1)[0]  # [1, 16]
    roll = torch.eye(16)
    for t in out.attentions:
        step = 0.5 * t.detach()[0].mean(0) + 0.5 * torch.eye(16)
        roll = step / step.sum(-1, keepdim=True) @ roll
    np.testing.assert_allclose(res.maps["attention"].caption, normalise(probe_mean.reshape(4, 4).numpy()), atol=1e-5)
    np.testing.assert_allclose(res.maps["rollout"].caption, normalise((probe_mean @ roll).reshape(4, 4).numpy()),
                               atol=1e-5)


def _written_out(words, i, alternatives):
    return [" ".join(alt if j == i else w for j, w in enumerate(words)) for alt in alternatives]


@pytest.mark.parametrize("family", FAMILIES)
def test_word_baseline_is_the_caption_with_the_word_swapped_for_its_other_content_words(adapters, scene, family):
    """Each word's baseline: the mean embedding of the caption with the word replaced by each
    other content word of it, the same as those captions written out and encoded alone."""
    a = adapters[family]
    rec = a.forward(a.pixel_values([scene.image]), CAPTION_A)
    base = a.word_baseline_embeds(rec)
    words = CAPTION_A.split()
    for i in (1, 2, 5):  # red, circle, blue
        swapped = _written_out(words, i, [alt for alt in ("red", "circle", "blue", "square") if alt != words[i]])
        torch.testing.assert_close(base[i], a.text_embeds(swapped).mean(0), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_word_baseline_swaps_each_known_content_word_once_whatever_its_tokens(adapters, scene, family):
    """A repeated word is swapped in once; a word of several tokens (CLIP's "circles") whole;
    a word the tokenizer does not know (SigLIP's and BLIP's "zzqx", "circles") not at all."""
    a = adapters[family]
    caption = "a red circles and a zzqx red square"
    rec = a.forward(a.pixel_values([scene.image]), caption)
    words = caption.split()
    assert [w.text for w in rec.words] == words
    known = [w.text for w in rec.words if not w.unknown and w.text not in ("a", "and")]
    if family == "clip":
        assert len(rec.words[2].tokens) > 1 and not rec.words[5].unknown
    else:
        assert rec.words[5].unknown
    base = a.word_baseline_embeds(rec)
    for i in (1, 2, 6, 7):  # red, circles, red again, square
        alts = [t for t in dict.fromkeys(known) if t != words[i]]
        torch.testing.assert_close(base[i], a.text_embeds(_written_out(words, i, alts)).mean(0), atol=1e-5, rtol=1e-4)


def test_word_baseline_of_a_truncated_caption_keeps_its_end_token_and_skips_the_cut_word(adapters, scene):
    """CLIP (16 tokens here): a longer word swapped into a caption at the limit pushes the tail
    out and keeps the end token, as tokenizing the written-out caption would; the last word,
    which truncation may have cut, is not swapped in."""
    a = adapters["clip"]
    caption = "a red circle and a blue squares and a green squares and a red star"
    rec = a.forward(a.pixel_values([scene.image]), caption)
    assert rec.truncated and rec.input_ids.shape[1] == a.max_text_len
    words = caption.split()
    assert rec.words[-1].text not in words  # "squares" cut to its first pieces
    inside = [w.text for w in rec.words[:-1] if w.text not in ("a", "and")]
    assert "squares" in inside
    base = a.word_baseline_embeds(rec)
    alts = [t for t in dict.fromkeys(inside) if t != "red"]
    torch.testing.assert_close(base[1], a.text_embeds(_written_out(words, 1, alts)).mean(0), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_a_lone_content_word_is_removed_without_a_mask_token(adapters, scene, family):
    """CLIP's and SigLIP's tokenizers have no mask token: a caption's only content word is
    measured against the caption with its tokens taken out, the same as that text alone."""
    a = adapters[family]
    assert a.tokenizer.mask_token_id is None
    rec = a.forward(a.pixel_values([scene.image]), "a red")
    torch.testing.assert_close(a.word_baseline_embeds(rec)[1:2], a.text_embeds(["a"]), atol=1e-5, rtol=1e-4)


def test_overlay_draws_outside_the_region_as_not_seen():
    from PIL import Image

    from groundreport.overlays import UNSEEN_GREY, overlay

    img = Image.new("RGB", (100, 50), (200, 100, 50))
    heat, over = overlay(img, np.ones((4, 4), dtype=np.float32), region=(30.0, 5.0, 70.0, 45.0))
    heat, over = np.asarray(heat), np.asarray(over)
    assert (heat[:, :30] == UNSEEN_GREY).all() and (heat[:5] == UNSEEN_GREY).all() and (heat[45:] == UNSEEN_GREY).all()
    assert (heat[5:45, 30:70] != UNSEEN_GREY).any(axis=-1).all()
    assert over[0, 0].sum() < np.asarray(img)[0, 0].sum() / 2  # dimmed


# -- BLIP per-token Grad-CAM against LAVIS's recipe ------------------------------------------------
def test_blip_mm_gradcam_is_lavis_recipe_at_the_default_block(adapters, scene):
    """LAVIS compute_gradcam: one cross-attention block's probabilities times relu(grad of the ITM
    logit), heads averaged, each text token's row over the patch columns (image CLS dropped)."""
    a = adapters["blip"]
    px = a.pixel_values([scene.image])
    block = a.layout.mm_default_block
    assert block == 1  # 3 text blocks: the second to last (LAVIS's block 6 of 12 on BLIP-base)
    enc = a.tokenize([CAPTION_A])
    image = a.model.vision_model(pixel_values=px).last_hidden_state
    out = a.model.text_encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                               encoder_hidden_states=image, output_attentions=True)
    cross = out.cross_attentions[block]
    cross.retain_grad()
    logits = a.model.itm_head(out.last_hidden_state[:, 0])
    (logits[0, 1] - logits[0, 0]).backward()
    cam = (cross * cross.grad.clamp(min=0)).mean(1)[0, :, 1:].detach()  # [T, P]
    res = Suite(make_methods(["mm-gradcam"])).run(a, px, CAPTION_A)
    for i, w in enumerate(res.words):  # every word of this caption is one token
        np.testing.assert_allclose(res.maps["mm-gradcam"].words[i], normalise(cam[w.tokens[0]].reshape(4, 4).numpy()),
                                   atol=1e-5)


# -- geometry: a centre crop ---------------------------------------------------------------------
def test_clip_region_is_the_crop_the_processor_keeps(adapters):
    """A 100 x 50 image whose red channel is its x coordinate and green its y: the processor's
    output columns/rows must span the region the adapter reports (bilinear: within 1.5 px)."""
    from PIL import Image

    a = adapters["clip"]
    w, h = 100, 50
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.arange(w)[None, :] * 2
    arr[..., 1] = np.arange(h)[:, None] * 4
    px = a.pixel_values([Image.fromarray(arr)])[0]
    ip = a.processor.image_processor
    rgb = px * torch.tensor(ip.image_std)[:, None, None] + torch.tensor(ip.image_mean)[:, None, None]
    xs, ys = rgb[0].mean(0) * 255 / 2, rgb[1].mean(1) * 255 / 4  # original x per output column, y per row
    x0, y0, x1, y1 = a.region((w, h))
    assert (x0, y0, x1, y1) == (30.0, 5.0, 70.0, 45.0)
    step_x, step_y = (x1 - x0) / px.shape[2], (y1 - y0) / px.shape[1]
    assert abs(float(xs[0]) - (x0 + step_x / 2)) < 1.5 and abs(float(xs[-1]) - (x1 - step_x / 2)) < 1.5
    assert abs(float(ys[0]) - (y0 + step_y / 2)) < 1.5 and abs(float(ys[-1]) - (y1 - step_y / 2)) < 1.5


def test_a_point_outside_the_crop_is_a_miss():
    m = np.zeros((4, 4), dtype=np.float32)
    m[:, 0] = 1  # the grid's left column: the crop's left edge
    region = (30.0, 5.0, 70.0, 45.0)
    left_object = [(0, 0, 20, 50)]  # wholly outside the crop
    assert score_map(m, (100, 50), left_object).pointing_hit  # stretched over the whole image, it would "hit"
    s = score_map(m, (100, 50), left_object, region=region)
    assert not s.pointing_hit and 30 <= s.point[0] < 40
    assert score_map(m, (100, 50), [(30, 5, 40, 45)], region=region).pointing_hit
    assert not score_map(np.full((4, 4), .5, dtype=np.float32), (100, 50), [(30, 5, 70, 45)], region=region).pointing_hit


def _wide_scene_with_object_outside_the_crop():
    """A 192 x 96 scene: a red circle on the far left, outside CLIP's centre crop (resized to
    80 x 40, crop 32 x 32 at (24, 4): x in [57.6, 134.4) of the original), a blue square inside."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (192, 96), (128, 128, 128))
    d = ImageDraw.Draw(img)
    d.ellipse((4, 30, 36, 62), fill=COLOURS["red"])
    d.rectangle((80, 30, 112, 62), fill=COLOURS["blue"])
    return img, [(4.0, 30.0, 37.0, 63.0)], [(80.0, 30.0, 113.0, 63.0)]


def test_object_outside_the_crop_is_never_pointed_at(adapters):
    a = adapters["clip"]
    img, outside, inside = _wide_scene_with_object_outside_the_crop()
    caption = "a red circle and a blue square"
    res = Suite(make_methods(list(REGISTRY))).run(a, a.pixel_values([img]), caption,
                                                    [("a red circle", (0, 12)), ("a red circle", None)],
                                                    image_size=img.size)
    assert res.region == pytest.approx((57.6, 9.6, 134.4, 86.4))
    for name, mm in res.maps.items():
        maps = [mm.caption, *mm.phrases, *(mm.words if mm.words is not None else [])]
        for m in maps:
            s = score_map(m, img.size, outside, region=res.region)
            assert not s.pointing_hit and 58 <= s.point[0] < 134, name


def test_build_with_a_cropping_model_records_the_region_and_misses_outside(model_dirs, tmp_path):
    img, outside, inside = _wide_scene_with_object_outside_the_crop()
    (tmp_path / "imgs").mkdir()
    img.save(tmp_path / "imgs" / "wide.png")
    line = {"image": "imgs/wide.png", "caption": "a red circle and a blue square",
            "phrases": [{"text": "a red circle", "boxes": [list(outside[0])]},
                        {"text": "a blue square", "boxes": [list(inside[0])]}]}
    (tmp_path / "d.jsonl").write_text(json.dumps(line) + "\n")
    report = tmp_path / "report"
    res = CliRunner().invoke(app, ["build", "--captions", str(tmp_path / "d.jsonl"), "--model", str(model_dirs["clip"]),
                                   "--report", str(report), "--site", str(tmp_path / "site"), "--no-progress"])
    assert res.exit_code == 0, res.output
    pair = json.loads((report / "manifest.json").read_text())["pairs"][0]
    assert pair["maps"]["region"] == [57.6, 9.6, 134.4, 86.4]
    red, blue = pair["phrases"]
    assert red["in_view"] is False and blue["in_view"] is True
    assert red["scores"] and not any(s["pointing"] for s in red["scores"].values())
    assert all(58 <= s["point"][0] < 134 for s in red["scores"].values())


# -- the CLI end to end ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_cli_build_and_explain(model_dirs, grounding_jsonl, tmp_path, family):
    runner = CliRunner()
    report, site = tmp_path / "report", tmp_path / "site"
    res = runner.invoke(app, ["build", "--captions", str(grounding_jsonl), "--model", str(model_dirs[family]),
                              "--methods", ",".join(REGISTRY), "--report", str(report), "--site", str(site),
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    m = json.loads((report / "manifest.json").read_text())
    assert m["model"]["family"] == family and len(m["pairs"]) == 3
    ran = set(m["pairs"][0]["maps"]["keys"])
    assert ran == set(REGISTRY) - SKIPPED[family]
    assert set(m["summary"]["methods"]) == ran
    assert (site / "index.html").is_file()
    img = grounding_jsonl.parent / "imgs" / "img0.png"
    res = runner.invoke(app, ["explain", str(img), CAPTION_A, "--out", str(tmp_path / "out"),
                              "--model", str(model_dirs[family]), "--phrase", "a blue square"])
    assert res.exit_code == 0, res.output
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    with np.load(tmp_path / "out" / "maps.npz") as z:
        assert z["legrad/caption"].shape == (4, 4) and z["legrad/phrases"].shape == (1, 4, 4)
        assert z["legrad/words"].shape == (7, 4, 4)
    # 96 x 96: SigLIP and BLIP resize to 32 x 32 (all of it); CLIP to 40 x 40, then crops 32 x 32 at (4, 4)
    assert index["region"] == pytest.approx([9.6, 9.6, 86.4, 86.4] if family == "clip" else [0, 0, 96, 96])


def test_itm_target_on_a_model_without_itm_head_is_one_line(model_dirs, grounding_jsonl, tmp_path):
    res = CliRunner().invoke(app, ["build", "--captions", str(grounding_jsonl), "--model", str(model_dirs["clip"]),
                                   "--target", "itm", "--report", str(tmp_path / "r"), "--site", str(tmp_path / "s"),
                                   "--no-progress"])
    assert res.exit_code == 2 and "needs an ITM head" in res.output


# -- several models in one report -------------------------------------------------------------------
def test_build_with_two_models_writes_one_manifest_with_both(model_dirs, tiny_model_dir, grounding_jsonl, tmp_path):
    args = ["build", "--captions", str(grounding_jsonl), "--model", str(tiny_model_dir), "--model",
            str(model_dirs["clip"]), "--methods", "gradcam,legrad,mm-gradcam", "--report", str(tmp_path / "r"),
            "--site", str(tmp_path / "s"), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    ids = [str(tiny_model_dir), str(model_dirs["clip"])]
    assert [x["id"] for x in m["models"]] == ids and [x["family"] for x in m["models"]] == ["flava", "clip"]
    assert m["model"]["id"] == ids[0] and m["summary"] == m["models"][0]["summary"]
    assert [p["model"] for p in m["pairs"]] == [ids[0]] * 3 + [ids[1]] * 3
    assert len({p["id"] for p in m["pairs"]}) == 6  # the model is part of every pair's id
    assert set(m["models"][0]["summary"]["methods"]) == {"gradcam", "legrad", "mm-gradcam"}
    assert set(m["models"][1]["summary"]["methods"]) == {"gradcam", "legrad"}  # CLIP: no multimodal encoder
    assert f"model {ids[1]}" in res.output  # a score table per model
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads((tmp_path / "r" / "manifest.json").read_text())["reused_pairs"] == 6


def test_a_second_model_that_cannot_load_fails_before_any_work(tiny_model_dir, grounding_jsonl, tmp_path):
    res = CliRunner().invoke(app, ["build", "--captions", str(grounding_jsonl), "--model", str(tiny_model_dir),
                                   "--model", str(tmp_path / "nothing-here"), "--report", str(tmp_path / "r"),
                                   "--site", str(tmp_path / "s"), "--no-progress", "--offline"])
    assert res.exit_code == 2 and "could not be loaded" in res.output
    assert not (tmp_path / "r").exists()


# -- batches of pairs on the contract ----------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_run_batch_on_other_families_is_run_pair_by_pair(adapters, scene, family, monkeypatch):
    """No batched forward outside FLAVA: run_batch must give exactly run's results, region included."""
    from groundreport.models import flava_batch

    def no_batched_forward(*a, **kw):
        raise AssertionError(f"forward_batch called for {family}")

    monkeypatch.setattr(flava_batch, "forward_batch", no_batched_forward)
    a = adapters[family]
    suite = Suite(make_methods(["gradcam", "relevancy", "attention"]))
    other = make_scene(12, (3, 3), size=80)
    images, captions = [scene.image, other.image], [CAPTION_A, CAPTION_B]
    phrases = [[("a red circle", (0, 12))], []]
    ones = [suite.run(a, a.pixel_values([im]), c, p, image_size=im.size)
            for im, c, p in zip(images, captions, phrases)]
    batched = suite.run_batch(a, torch.cat([a.pixel_values([im]) for im in images]), captions, phrases,
                              image_sizes=[im.size for im in images])
    for x, y in zip(ones, batched):
        assert x.region == y.region and x.region is not None and x.score == y.score and x.notes == y.notes
        for name in x.maps:
            np.testing.assert_array_equal(x.maps[name].caption, y.maps[name].caption)


def test_flava_run_batch_keeps_the_region(tiny_model_dir, scene):
    """FLAVA's batched records carry each pair's region (the contract's ForwardRecord.region)."""
    a = load_adapter(str(tiny_model_dir), device="cpu")
    other = make_scene(12, (3, 3), size=80)
    images = [scene.image, other.image]
    suite = Suite(make_methods(["gradcam"]))
    batched = suite.run_batch(a, torch.cat([a.pixel_values([im]) for im in images]), [CAPTION_A, CAPTION_B],
                              [[], []], image_sizes=[im.size for im in images])
    assert [r.region for r in batched] == [a.region(im.size) for im in images]
    assert batched[0].region != batched[1].region


@pytest.mark.parametrize("family", FAMILIES)
def test_a_word_inside_a_phrase_is_read_in_its_smallest_phrase(adapters, scene, family):
    """``word_directions``: a word inside a phrase of known span is its phrase's embedding minus
    the mean embedding of the phrase with the word swapped for each other content word of the
    caption, all written out and encoded alone; the smallest phrase around it wins over a longer
    one; a word in no phrase keeps the caption-level direction (caption minus its baseline)."""
    a = adapters[family]
    assert CAPTION_A == "a red circle and a blue square"
    rec = a.forward(a.pixel_values([scene.image]), CAPTION_A)
    phrases = [(CAPTION_A, (0, 30)), ("a red circle", (0, 12)), ("a blue square", (17, 30))]
    d = a.word_directions(rec, phrases)
    content = ["red", "circle", "blue", "square"]
    for i, (phrase, local) in {2: ("a red circle", 2), 5: ("a blue square", 1), 6: ("a blue square", 2)}.items():
        words = phrase.split()
        swapped = _written_out(words, local, [t for t in content if t != words[local]])
        want = a.text_embeds([phrase])[0] - a.text_embeds(swapped).mean(0)
        torch.testing.assert_close(d[i], want, atol=1e-5, rtol=1e-4)
    caption_level = rec.text_embed[0] - a.word_baseline_embeds(rec)
    # "and" lies only in the whole caption's phrase: read in it, i.e. in the caption itself
    and_swapped = _written_out(CAPTION_A.split(), 3, content)
    torch.testing.assert_close(d[3], a.text_embeds([CAPTION_A])[0] - a.text_embeds(and_swapped).mean(0),
                               atol=1e-5, rtol=1e-4)
    # with no phrases, and for words outside every phrase, the caption level
    torch.testing.assert_close(a.word_directions(rec), caption_level)
    torch.testing.assert_close(a.word_directions(rec, [("a blue square", (17, 30))])[:4], caption_level[:4])
    # the target is score(image, context) - score(image, baseline), whatever the score's bias
    ctx = a.text_embeds(["a red circle"])
    base = ctx - d[2:3]
    want = a.score_of(rec.image_embed, ctx) - a.score_of(rec.image_embed, base)
    torch.testing.assert_close(a.word_scores(rec, d)[2:3].detach(), want.detach(), atol=1e-5, rtol=1e-4)


def test_the_suite_reads_each_word_in_its_phrase(adapters, scene):
    """The suite hands the pair's phrases to ``word_directions``: occlusion's word maps are the
    drops of those directions, and a gradient method's map of a word inside a phrase changes
    when the phrase is given while a word outside every phrase keeps its map."""
    a = adapters["clip"]
    px = a.pixel_values([scene.image])
    phrases = [("a red circle", (0, 12))]
    rec = a.forward(px, CAPTION_A)
    occ = make_methods(["occlusion"])[0]
    want = normalise(occ.drops(a, px, a.word_directions(rec, phrases)).reshape(-1, *a.grid).numpy())
    with_phrases = Suite(make_methods(["occlusion", "relevancy"])).run(a, px, CAPTION_A, phrases)
    np.testing.assert_allclose(with_phrases.maps["occlusion"].words, want, atol=1e-5)
    alone = Suite(make_methods(["relevancy"])).run(a, px, CAPTION_A).maps["relevancy"].words
    inside = with_phrases.maps["relevancy"].words
    assert not np.allclose(inside[2], alone[2], atol=1e-3)  # "circle", read in "a red circle"
    np.testing.assert_allclose(inside[5], alone[5], atol=1e-5)  # "blue": in no phrase


def test_a_sentencepiece_style_tokenizer_gives_words_without_their_leading_space():
    """Metaspace tokenizers ("\u2581red", as SigLIP's) put the space before a word in its offsets:
    the word is its characters only, so "and"/"the" stay stop words and word maps are keyed by "red"."""
    from types import SimpleNamespace

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from groundreport.models.base import Adapter

    vocab = {"<pad>": 0, "<unk>": 1, **{"\u2581" + w: i + 2 for i, w in enumerate(
        ["the", "red", "circle", "and", "blue", "square"])}}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="<pad>", unk_token="<unk>")
    caption = "the red circle and the blue square"
    enc = tok([caption], return_offsets_mapping=True, return_tensors="pt")
    _, words = Adapter.words_of(SimpleNamespace(tokenizer=tok), caption, enc)
    assert [w.text for w in words] == caption.split()
    assert all(caption[w.span[0]:w.span[1]] == w.text for w in words)
    assert [w.text for w in words if w.is_content] == ["red", "circle", "blue", "square"]
