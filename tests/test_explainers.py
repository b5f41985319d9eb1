"""Explainers against independent facts: text conditioning, a second computation, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from groundreport.demo.scenes import make_scene
from groundreport.explainers import DEFAULT_METHODS, REGISTRY, make_methods
from groundreport.explainers.gradients import batched_grads
from groundreport.explainers.normalise import normalise
from groundreport.explainers.suite import Suite

CAPTION_A = "a red circle and a blue square"
CAPTION_B = "the man in the green jacket"


@pytest.fixture(scope="module")
def pixels(tiny_adapter):
    return tiny_adapter.pixel_values([make_scene(11, (3, 3), size=96).image])


def test_two_captions_give_different_maps(tiny_adapter, pixels):
    suite = Suite(make_methods(list(REGISTRY)))
    a = suite.run(tiny_adapter, pixels, CAPTION_A)
    b = suite.run(tiny_adapter, pixels, CAPTION_B)
    for name, method in REGISTRY.items():
        diff = np.abs(a.maps[name].caption - b.maps[name].caption).max()
        if method.caption_blind:
            # rollout and image-CLS attention never see the text: identical by construction
            assert diff < 1e-6, name
        else:
            assert diff > 1e-3, f"{name} ignores the caption"


def test_word_maps_differ_between_words(tiny_adapter, pixels):
    res = Suite(make_methods(["mm-relevancy", "mm-gradcam", "mm-attention"])).run(tiny_adapter, pixels, CAPTION_A)
    words = [w.text for w in res.words]
    assert words == ["a", "red", "circle", "and", "a", "blue", "square"]
    for name in ("mm-relevancy", "mm-gradcam", "mm-attention"):
        w = res.maps[name].words
        assert w.shape == (7, 4, 4)
        assert np.abs(w[1] - w[5]).max() > 1e-3, name  # "red" vs "blue"


def test_word_pieces_merge_into_words(tiny_adapter, pixels):
    res = Suite(make_methods(["mm-attention"])).run(tiny_adapter, pixels, "a man in a jacket")
    assert res.tokens == ["[CLS]", "a", "man", "in", "a", "jack", "##et", "[SEP]"]
    assert [w.text for w in res.words] == ["a", "man", "in", "a", "jacket"]
    assert res.words[-1].tokens == [5, 6]


def _plain_text_embeds(adapter, texts):
    """Unit text embeddings straight from the HF modules (not through the adapter), [K, E]."""
    flava = adapter.flava
    enc = adapter.tokenize(texts)
    with torch.no_grad():
        t = flava.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[:, 0]
        return torch.nn.functional.normalize(flava.text_projection(t), dim=-1)


def test_gradcam_matches_captum(tiny_adapter, pixels):
    """Our hooked Grad-CAM equals Captum's LayerGradCam on the same layer and target."""
    captum_attr = pytest.importorskip("captum.attr", reason="captum is a test dependency: pip install -e .[test]")
    flava = tiny_adapter.flava
    txt = _plain_text_embeds(tiny_adapter, [CAPTION_A])
    gh, gw = tiny_adapter.grid

    class Probe(torch.nn.Module):  # channels-first view of the patch tokens, for Captum to hook
        def forward(self, x):
            return x

    probe = Probe()
    layers = flava.image_model.encoder.layer

    def score(px):
        h = flava.image_model.embeddings(px)
        for blk in layers[:-1]:
            h = blk(h)[0]
        last = layers[-1]  # FlavaLayer's forward, written out so the probe sits after layernorm_before
        normed = last.layernorm_before(h)
        cls, patches = normed[:, :1], normed[:, 1:]
        grid = probe(patches.transpose(1, 2).reshape(h.shape[0], -1, gh, gw))
        normed = torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)
        h = last.attention(normed)[0] + h
        h = last.output(last.intermediate(last.layernorm_after(h)), h)
        h = flava.image_model.layernorm(h)
        img = torch.nn.functional.normalize(flava.image_projection(h[:, 0]), dim=-1)
        return (img * txt).sum(-1, keepdim=True)

    ref = captum_attr.LayerGradCam(score, probe).attribute(pixels, target=0, relu_attributions=True)
    ref = normalise(ref[0, 0].detach().numpy())
    ours = Suite(make_methods(["gradcam"])).run(tiny_adapter, pixels, CAPTION_A).maps["gradcam"].caption
    assert ref.max() > 0
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_occlusion_matches_captum(tiny_adapter, pixels):
    """Occlusion's caption and phrase maps equal Captum's ``Occlusion`` with patch-sized windows."""
    captum_attr = pytest.importorskip("captum.attr", reason="captum is a test dependency: pip install -e .[test]")
    flava = tiny_adapter.flava
    txt = _plain_text_embeds(tiny_adapter, [CAPTION_A, "a red circle", "a blue square"])

    def scores(px):
        img = torch.nn.functional.normalize(flava.image_projection(flava.image_model(pixel_values=px).last_hidden_state[:, 0]), dim=-1)
        return img @ txt.T  # [B, 3]

    gh, gw = tiny_adapter.grid
    ph = pixels.shape[-2] // gh
    occ = captum_attr.Occlusion(scores)
    res = Suite(make_methods(["occlusion"])).run(tiny_adapter, pixels, CAPTION_A,
                                                  [("a red circle", (0, 12)), ("a blue square", (17, 30))])
    ours = [res.maps["occlusion"].caption, *res.maps["occlusion"].phrases]
    for k in range(3):
        with torch.no_grad():
            attr = occ.attribute(pixels, sliding_window_shapes=(3, ph, ph), strides=(3, ph, ph), baselines=0.0, target=k)
        per_patch = attr[0, 0].reshape(gh, ph, gw, ph).mean(dim=(1, 3)).numpy()  # constant inside a window
        assert np.abs(per_patch).max() > 1e-4
        np.testing.assert_allclose(ours[k], normalise(per_patch), atol=1e-4)


def test_occlusion_with_a_larger_occluder_matches_captum(tiny_adapter, pixels):
    """A 2 x 2-patch occluder (what grids over 15 x 15 get): Captum's windowed ``Occlusion``."""
    captum_attr = pytest.importorskip("captum.attr", reason="captum is a test dependency: pip install -e .[test]")
    from groundreport.explainers.occlusion import Occlusion

    flava = tiny_adapter.flava
    txt = _plain_text_embeds(tiny_adapter, [CAPTION_A])

    def scores(px):
        img = torch.nn.functional.normalize(flava.image_projection(flava.image_model(pixel_values=px).last_hidden_state[:, 0]), dim=-1)
        return img @ txt.T

    gh, gw = tiny_adapter.grid
    ph = pixels.shape[-2] // gh
    ours = Occlusion(batch_size=3, window=2).drops(tiny_adapter, pixels, txt)[0].reshape(gh, gw).numpy()
    with torch.no_grad():
        attr = captum_attr.Occlusion(scores).attribute(pixels, sliding_window_shapes=(3, 2 * ph, 2 * ph),
                                                        strides=(3, 2 * ph, 2 * ph), baselines=0.0, target=0)
    per_patch = attr[0, 0].reshape(gh, ph, gw, ph).mean(dim=(1, 3)).numpy()
    assert np.abs(per_patch).max() > 1e-4 and len(np.unique(ours.round(6))) > 1
    np.testing.assert_allclose(ours, per_patch, atol=1e-5)
    np.testing.assert_array_equal(ours[0::2, 0::2], ours[1::2, 1::2])  # constant under each occluder


def test_occluder_window_grows_only_past_15_patches():
    from groundreport.explainers.occlusion import occluder_window

    assert [occluder_window((g, g)) for g in (7, 8, 14, 15, 16, 24)] == [1, 1, 1, 1, 2, 3]


@pytest.mark.parametrize("g", [16, 17])
def test_occlusion_on_a_large_grid_hides_2x2_blocks_at_its_defaults(g):
    """A stand-in whose image embedding is each 2 x 2 px patch's mean (one dimension per patch):
    with text k one-hot on patch k, an occluder drops text k's score by patch k's mean exactly
    when it covers patch k, so every patch's map is its block's, and a 17 x 17 grid's last row
    and column are blocks of their own."""
    from groundreport.explainers.occlusion import Occlusion

    class GridAdapter:
        grid = (g, g)
        encoded = 0

        def image_embeds(self, px):
            self.encoded += px.shape[0]
            return px[:, 0].reshape(px.shape[0], g, 2, g, 2).mean(dim=(2, 4)).reshape(px.shape[0], g * g)

    adapter = GridAdapter()
    pixels = torch.rand(1, 3, 2 * g, 2 * g) + 0.5
    drops = Occlusion().drops(adapter, pixels, torch.eye(g * g))  # [K = P, P]
    blocks = (g + 1) // 2
    assert adapter.encoded == 1 + blocks * blocks
    means = pixels[0, 0].reshape(g, 2, g, 2).mean(dim=(1, 3)).reshape(-1)
    block = torch.tensor([(r // 2) * blocks + c // 2 for r in range(g) for c in range(g)])
    want = means[:, None] * (block[:, None] == block[None, :])
    torch.testing.assert_close(drops, want)


def _naive_relevancy(adapter, pixels, caption, minus: list[str] | None = None):
    """Chefer relevancy by the book: retain_grad on each attention map, one .backward().
    ``minus``: the target is the caption's cosine minus the mean cosine of these other texts
    (a word in context against its baseline)."""
    flava = adapter.flava
    out = flava.image_model(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
    for a in out.attentions:
        a.retain_grad()
    img = torch.nn.functional.normalize(flava.image_projection(out.last_hidden_state[:, 0]), dim=-1)
    txt = _plain_text_embeds(adapter, [caption])[0]
    if minus is not None:
        txt = txt - torch.stack([_plain_text_embeds(adapter, [m])[0] for m in minus]).mean(0)
    (img * txt).sum().backward()
    n = out.attentions[0].shape[-1]
    r = torch.eye(n)
    for a in out.attentions:
        cam = (a.grad[0] * a[0]).clamp(min=0).mean(0).detach()
        r = r + cam @ r
    flava.zero_grad(set_to_none=True)
    return normalise(r[0, 1:].reshape(adapter.grid).numpy())


def test_relevancy_matches_naive_backward(tiny_adapter, pixels):
    ours = Suite(make_methods(["relevancy"])).run(tiny_adapter, pixels, CAPTION_A).maps["relevancy"].caption
    np.testing.assert_allclose(ours, _naive_relevancy(tiny_adapter, pixels, CAPTION_A), atol=1e-5)


def _swapped(caption: str, i: int) -> list[str]:
    """The caption with word i swapped for each other content word of it, written out by hand."""
    words = caption.split()
    content = [w for w in dict.fromkeys(words) if w not in ("a", "an", "the", "and", "in")]
    return [" ".join(alt if j == i else w for j, w in enumerate(words)) for alt in content if alt != words[i]]


def test_word_in_context_relevancy_matches_naive_backward_against_swapped_captions(tiny_adapter, pixels):
    """Word w's map: relevancy of cos(image, caption) minus the mean cosine of the caption with
    w swapped for each of its other content words ("a blue circle ...", "a circle circle ...").
    Tolerance 5e-4: the swapped captions are encoded as one batch here and one by one in the
    reference, and the target is a small difference of cosines, so float32 rounding shows at
    ~1e-4 after min-max normalisation."""
    res = Suite(make_methods(["relevancy"])).run(tiny_adapter, pixels, CAPTION_A)
    assert _swapped(CAPTION_A, 1) == ["a circle circle and a blue square", "a blue circle and a blue square",
                                      "a square circle and a blue square"]
    for i in (1, 2, 5):  # red, circle, blue
        np.testing.assert_allclose(res.maps["relevancy"].words[i], _naive_relevancy(
            tiny_adapter, pixels, CAPTION_A, minus=_swapped(CAPTION_A, i)), atol=5e-4)
    assert np.abs(res.maps["relevancy"].words[1] - res.maps["relevancy"].words[5]).max() > 1e-3


def test_a_word_with_no_other_content_word_is_measured_against_the_mask(tiny_adapter, pixels):
    """"a circle" has one content word: its baseline is the caption with it as [MASK]."""
    res = Suite(make_methods(["relevancy"])).run(tiny_adapter, pixels, "a circle")
    np.testing.assert_allclose(res.maps["relevancy"].words[1], _naive_relevancy(
        tiny_adapter, pixels, "a circle", minus=["a [MASK]"]), atol=5e-4)


@pytest.mark.parametrize("vmap", [True, False])
def test_batched_phrase_gradients_equal_one_at_a_time(tiny_adapter, pixels, vmap):
    """K phrase targets in one backward call (vmapped, CUDA's way) or a loop of them (the CPU's)
    == K separate backwards, each from a fresh forward (atol 1e-6)."""
    rec = tiny_adapter.forward(pixels, CAPTION_A)
    phrases = ["a red circle", "a blue square", "the man", "a green jacket"]
    inputs = list(rec.image_attn) + [rec.image_norm]
    batched = batched_grads(tiny_adapter.phrase_scores(rec, phrases), inputs, vmap=vmap)
    for k, p in enumerate(phrases):
        fresh = tiny_adapter.forward(pixels, CAPTION_A)
        single = torch.autograd.grad(tiny_adapter.phrase_scores(fresh, [p])[0],
                                     list(fresh.image_attn) + [fresh.image_norm])
        for b, s in zip(batched, single):
            torch.testing.assert_close(b[k], s, atol=1e-6, rtol=1e-5)


def test_phrase_maps_come_from_batched_targets(tiny_adapter, pixels):
    phrases = [("a red circle", (0, 12)), ("a blue square", (17, 30))]
    res = Suite(make_methods(["gradcam", "relevancy", "mm-relevancy"])).run(tiny_adapter, pixels, CAPTION_A, phrases)
    for name in ("gradcam", "relevancy", "mm-relevancy"):
        ph = res.maps[name].phrases
        assert ph.shape == (2, 4, 4)
        assert np.abs(ph[0] - ph[1]).max() > 1e-3, name


def test_model_without_itm_head_skips_itm_methods(tiny_flavamodel_dir, pixels):
    from groundreport.models.flava import FlavaAdapter

    adapter = FlavaAdapter.load(str(tiny_flavamodel_dir), device="cpu")
    assert adapter.itm_head is None
    res = Suite(make_methods(DEFAULT_METHODS)).run(adapter, pixels, CAPTION_A)
    assert "mm-relevancy" not in res.maps and "mm-gradcam" not in res.maps
    assert "mm-attention" in res.maps and "gradcam" in res.maps
    assert any("no ITM head" in n for n in res.notes)


@pytest.mark.parametrize("value", [0.0, 3.5, np.nan])
def test_constant_or_nan_maps_normalise_to_zero(value):
    out = normalise(np.full((2, 4, 4), value, dtype=np.float32))
    assert np.isfinite(out).all() and (out == 0).all()


def test_normalise_scales_to_unit_range():
    m = np.arange(16, dtype=np.float32).reshape(4, 4) - 3
    out = normalise(m)
    assert out.min() == 0 and out.max() == 1
