"""Reference maths for every explainer: each test fails on a wrong index, order or sign.

Three kinds of check, none of which re-runs the code's own loop:

1. Hand-built attention and gradient stacks (S = 3..6 tokens) whose right answer is worked out
   by hand and written out as a matrix in the test.
2. Planted signals: a hand-built ``ForwardRecord`` served by a stand-in adapter gives each text
   token, each target and each caption-blind map a signal on its own patch; the suite's word,
   phrase and caption maps must light up exactly there and nowhere else. The grid is 3 x 4
   (not square), so a transposed patch order lands on other cells.
3. The multimodal row/column layout (``mm_text_start``, ``mm_patch_cols``) against the sequence
   that transformers' own ``FlavaModel.forward`` assembles.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from groundreport.explainers import REGISTRY, make_methods
from groundreport.explainers.attention import ImageAttention, MultimodalAttention
from groundreport.explainers.base import head_mean_positive, propagated_rows, relevancy_propagate
from groundreport.explainers.gradcam import GradCAM
from groundreport.explainers.mm_gradcam import MultimodalGradCAM
from groundreport.explainers.relevancy import ImageRelevancy, MultimodalRelevancy
from groundreport.explainers.rollout import Rollout
from groundreport.explainers.suite import Suite, _phrase_token_rows
from groundreport.models.flava import ForwardRecord, Word, flava_layout

T = torch.tensor


def _record(grid, *, image_attn=(), image_norm=None, mm_attn=None, tokens=(), words=()) -> ForwardRecord:
    """A ForwardRecord holding only what the explainer under test reads."""
    z = torch.zeros(1, 1)
    return ForwardRecord(image_hidden=(), image_norm=image_norm, image_attn=tuple(image_attn), mm_attn=mm_attn,
                         image_embed=z, text_embed=z, score=torch.zeros(1), itm=None, grid=grid,
                         tokens=list(tokens), words=list(words), layout=flava_layout(grid))


def _heads(*mats) -> torch.Tensor:
    """Per-head [S, S] matrices -> one block's [1, H, S, S]."""
    return torch.stack([torch.as_tensor(m, dtype=torch.float32) for m in mats])[None]


# -- 1. hand-computed references ------------------------------------------------------------

def test_head_mean_positive_is_relu_per_head_then_mean_over_heads():
    attn = _heads([[.5, .5, 0], [.25, .75, 0], [0, 0, 1]],
                  [[1, 0, 0], [0, .5, .5], [0, 0, 1]])
    g0 = _heads([[2, 4, 0], [0, -4, 0], [0, 0, 0]],
                [[-2, 0, 0], [0, 2, 6], [0, 0, -1]])
    grad = torch.stack([g0, -g0])  # [K=2, 1, H, S, S]: the second target is the first negated
    # target 0, grad*attn per head: h0 [[1,2,0],[0,-3,0],[0,0,0]], h1 [[-2,0,0],[0,1,3],[0,0,-1]]
    # relu then mean: [[.5,1,0],[0,.5,1.5],[0,0,0]]  (mean-then-relu would give [[0,1,0],[0,0,1.5],..])
    # target 1, relu(-product): h0 [[0,0,0],[0,3,0],[0,0,0]], h1 [[2,0,0],[0,0,0],[0,0,1]]
    expected = T([[[.5, 1, 0], [0, .5, 1.5], [0, 0, 0]],
                  [[1, 0, 0], [0, 1.5, 0], [0, 0, .5]]])
    torch.testing.assert_close(head_mean_positive(attn, grad), expected)


def _relevancy_stack():
    """Two blocks, S = 3 (CLS, patch 0, patch 1), 2 heads. By hand:

    block 1 (first): token 2 -> token 1: head 0 grad*attn = 2 * .5 = 1, head 1 = -2 * .5 = -1
                     (relu -> 0), so cam1[2, 1] = .5; all else 0.
    block 2 (later): CLS -> token 2: both heads 2 * .5 = 1, so cam2[0, 2] = 1; cam2[0, 0]: both
                     heads -4 * .5 = -2, relu -> 0.
    R = (I + cam2)(I + cam1) = I + cam1 + cam2 + cam2 @ cam1, and (cam2 @ cam1)[0, 1] = 1 * .5:
    the CLS reaches patch 0 through token 2. Multiplying the other way round loses that term.
    """
    a1 = _heads([[1, 0, 0], [0, 1, 0], [0, .5, .5]], [[1, 0, 0], [0, 1, 0], [0, .5, .5]])
    g1 = _heads([[0, 0, 0], [0, 0, 0], [0, 2, 0]], [[0, 0, 0], [0, 0, 0], [0, -2, 0]])
    a2 = _heads([[.5, 0, .5], [0, 1, 0], [0, 0, 1]], [[.5, 0, .5], [0, 1, 0], [0, 0, 1]])
    g2 = _heads([[-4, 0, 2], [0, 0, 0], [0, 0, 0]], [[-4, 0, 2], [0, 0, 0], [0, 0, 0]])
    return (a1, a2), [g1[None], g2[None]]  # grads: [K=1, 1, H, S, S]


def test_relevancy_propagate_multiplies_the_later_block_on_the_left():
    attns, grads = _relevancy_stack()
    expected = T([[[1, .5, 1],
                   [0, 1, 0],
                   [0, .5, 1]]])  # r @ cam (or blocks in reverse) gives [0, 1] = 0
    torch.testing.assert_close(relevancy_propagate(attns, grads), expected)


def test_propagated_rows_are_rows_of_the_propagated_matrix():
    """The row-vector form (explainers read one summary row, or the text rows) equals those rows
    of R built the textbook way here, R = I; R += cam @ R block by block, on random blocks."""
    g = torch.Generator().manual_seed(3)
    k, h, s = 2, 3, 6
    attns = [torch.rand(1, h, s, s, generator=g).softmax(-1) for _ in range(4)]
    grads = [torch.randn(k, 1, h, s, s, generator=g) for _ in range(4)]
    r = torch.eye(s).expand(k, s, s)
    for a, gr in zip(attns, grads):
        r = r + ((gr * a).clamp(min=0).mean(2)[:, 0]) @ r
    probe = torch.rand(k, 2, s, generator=g)
    torch.testing.assert_close(propagated_rows(attns, grads, probe), probe @ r)


def test_image_relevancy_is_the_cls_row_over_patch_columns():
    attns, grads = _relevancy_stack()
    rows = ImageRelevancy().rows(_record((1, 2), image_attn=attns), grads)
    torch.testing.assert_close(rows, T([[[.5, 1]]]))  # row 0 of R above, columns 1..2


def test_rollout_averages_heads_adds_identity_and_multiplies_the_later_block_on_the_left():
    # S = 4 (CLS + 3 patches). Block 1: token 3 attends to token 2, all else to itself.
    # Block 2: CLS attends to token 3 in head 0, to itself in head 1; all else to itself.
    # Abar = 0.5 * mean_h(A) + 0.5 * I, rows renormalised:
    #   Abar1 = [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,.5,.5]]
    #   Abar2 = [[.75,0,0,.25],[0,1,0,0],[0,0,1,0],[0,0,0,1]]
    # rollout = Abar2 @ Abar1, row 0 = .75 e0 + .25 * Abar1[3] = [.75, 0, .125, .125]
    # (Abar1 @ Abar2 would give [.75, 0, 0, .25]; a head max [2/3, 0, 1/6, 1/6]).
    eye = np.eye(4)
    b1 = eye.copy()
    b1[3] = [0, 0, 1, 0]
    b2_h0 = eye.copy()
    b2_h0[0] = [0, 0, 0, 1]
    rec = _record((1, 3), image_attn=(_heads(b1, b1), _heads(b2_h0, eye)))
    torch.testing.assert_close(Rollout().rows(rec, None), T([[[0, .125, .125]]]))


def test_gradcam_weights_are_patch_mean_gradients_and_the_map_is_relu():
    # N = 4 (CLS + 3 patches), D = 2 channels. The CLS token carries large values that must
    # neither enter the channel weights nor the map.
    acts = T([[[100., -100], [2, 0], [0, 1], [1, 1]]])  # [1, N, D]
    g = T([[[50., 50], [3, .5], [0, -1], [0, -1]]])  # [1, N, D] for target 0
    grads = [torch.stack([g, -g])]  # [K=2, 1, N, D]
    # target 0: weights = mean over the 3 patches = [1, -.5]
    #   map = relu([2*1, 1*-.5, 1*1 + 1*-.5]) = [2, 0, .5]
    #   (no relu: [2, -.5, .5]; weights as a mean over channels: [3.5, 0, 0])
    # target 1: weights [-1, .5] -> relu([-2, .5, -.5]) = [0, .5, 0]
    rows = GradCAM().rows(_record((1, 3), image_norm=acts), grads)
    torch.testing.assert_close(rows, T([[[2, 0, .5]], [[0, .5, 0]]]))


def test_gradcam_differentiates_the_last_blocks_first_layernorm():
    rec = _record((1, 3), image_norm=torch.zeros(1, 4, 2))
    assert GradCAM().inputs(rec)[0] is rec.image_norm


def test_image_attention_is_the_last_blocks_cls_row_over_patches_heads_averaged():
    # N = 4. Block 0's CLS row looks at patch 0; block 1's row 1 looks at patch 2, so reading the
    # wrong block or row 1 instead of the CLS row shows.
    first = _heads([[0, 1, 0, 0]] + [[.25] * 4] * 3, [[0, 1, 0, 0]] + [[.25] * 4] * 3)
    last = _heads([[.1, .6, .3, 0], [0, 0, 0, 1], [.25] * 4, [.25] * 4],
                  [[.3, .2, .1, .4], [0, 0, 0, 1], [.25] * 4, [.25] * 4])
    rec = _record((1, 3), image_attn=(first, last))
    torch.testing.assert_close(ImageAttention().rows(rec, None), T([[[.4, .2, .2]]]))  # mean of .6/.2, .3/.1, 0/.4
    torch.testing.assert_close(ImageAttention().per_layer(rec),
                               T([[[1, 0, 0], [1, 0, 0]], [[.6, .3, 0], [.2, .1, .4]]]))


# Multimodal layout, written out: [mm CLS, image CLS, patch 0, patch 1, text 0, text 1] (S = 6).
MM_GRID, MM_PATCH_COLS, MM_TEXT_ROWS = (1, 2), [2, 3], [4, 5]


def _mm_block(text_x_patch_per_head, fill) -> torch.Tensor:
    """[1, 2, 6, 6]: ``fill`` everywhere (a distinct value per entry), the text-row x patch-column
    block of each head set by hand."""
    a = torch.as_tensor(fill, dtype=torch.float32).expand(1, 2, 6, 6).clone()
    for h, m in enumerate(text_x_patch_per_head):
        a[0, h, 4:6, 2:4] = T(m)
    return a


BACKGROUND = torch.arange(36.).reshape(6, 6) / 100  # every entry different: a shifted row/column reads other numbers


def test_mm_attention_is_the_last_blocks_text_rows_against_patch_columns():
    first = _mm_block([[[9, 9], [9, 9]]] * 2, BACKGROUND)
    last = _mm_block([[[.3, .1], [.1, .1]], [[.1, .3], [.5, .7]]], BACKGROUND)
    rec = _record(MM_GRID, mm_attn=(first, last))
    torch.testing.assert_close(MultimodalAttention().rows(rec, None), T([[[.2, .2], [.3, .4]]]))
    assert MultimodalAttention().per_layer(rec).shape == (2, 2, 2, 2)  # [L, H, T, P]


def test_mm_gradcam_is_attn_times_relu_grad_at_the_second_to_last_block_heads_averaged():
    attn = _mm_block([[[.2, .4], [.5, .1]], [[.6, .2], [.1, .5]]], BACKGROUND)
    grad = _mm_block([[[1, -1], [2, 3]], [[-1, 2], [0, -5]]], torch.ones(6, 6))
    # text 0: head 0 [.2*1, .4*0] = [.2, 0], head 1 [.6*0, .2*2] = [0, .4] -> mean [.1, .2]
    # text 1: head 0 [.5*2, .1*3] = [1, .3], head 1 [0, 0]             -> mean [.5, .15]
    # (without the relu on grad: text 0 -> [-.2, 0])
    other = BACKGROUND * 2  # blocks 0 and 2 hold other numbers: the wrong block shows
    rec = _record(MM_GRID, mm_attn=(other.expand(1, 2, 6, 6), attn, (other + 1).expand(1, 2, 6, 6)))
    m = MultimodalGradCAM()
    assert m.inputs(rec)[0] is rec.mm_attn[1]
    torch.testing.assert_close(m.rows(rec, [grad[None]]), T([[[.1, .2], [.5, .15]]]))


def test_mm_relevancy_is_text_rows_against_patch_columns_of_the_propagated_relevance():
    # block 1 (first): text 0 -> patch 0: head 0 4 * .5 = 2, head 1 -4 * .5 -> relu 0: cam1[4, 2] = 1
    # block 2 (later): text 1 -> text 0: both heads 2 * .5 = 1:                        cam2[5, 4] = 1
    # R = (I + cam2)(I + cam1): R[4, 2] = 1 and R[5, 2] = cam2[5, 4] * cam1[4, 2] = 1 (text 1 sees
    # patch 0 through text 0); the other order gives R[5, 2] = 0.
    a1 = torch.full((1, 2, 6, 6), 1 / 6)
    a1[0, :, 4, 2] = .5
    g1 = torch.zeros(1, 2, 6, 6)
    g1[0, 0, 4, 2], g1[0, 1, 4, 2] = 4, -4
    a2 = torch.full((1, 2, 6, 6), 1 / 6)
    a2[0, :, 5, 4] = .5
    g2 = torch.zeros(1, 2, 6, 6)
    g2[0, :, 5, 4] = 2
    rec = _record(MM_GRID, mm_attn=(a1, a2))
    rows = MultimodalRelevancy().rows(rec, [g1[None], g2[None]])
    torch.testing.assert_close(rows, T([[[1., 0], [1, 0]]]))


def test_mm_layout_constants_for_a_2_patch_record():
    rec = _record(MM_GRID)
    assert rec.mm_text_start == MM_TEXT_ROWS[0]
    assert list(range(6))[rec.mm_patch_cols] == MM_PATCH_COLS


# -- 2. planted signals through the suite ----------------------------------------------------

GRID = (3, 4)  # row-major: patch p sits at grid cell (p // 4, p % 4)
P = 12
CAPTION = "a jacket, the dog"
TOKENS = ["[CLS]", "a", "jack", "##et", ",", "the", "dog", "[SEP]"]
WORDS = [("a", [1], (0, 1)), ("jacket", [2, 3], (2, 8)), (",", [4], (8, 9)), ("the", [5], (10, 13)),
         ("dog", [6], (14, 17))]
TOKEN_PATCH = [1, 6, 11, 4, 9, 2, 7, 0]  # text token t's row carries a signal on patch TOKEN_PATCH[t] only
CAPTION_PATCH = 6  # the caption score's gradient signal (cell (1, 2))
ATTN_PATCH = 9  # the image CLS attention's signal (cell (2, 1))
PHRASES = [("a jacket", (0, 8)), ("the dog", (10, 17)), ("jacket,", (2, 9)), ("no span", None)]
PHRASE_PATCH = [3, 8, 1, 10]  # phrase k's score signal (cells (0, 3), (2, 0), (0, 1), (2, 2))
WORD_PATCH = [5, 11, 0, 2, 7]  # word w's in-context target signal (word order as in WORDS)
S = 2 + P + len(TOKENS)  # mm CLS, image CLS, patches, text tokens
N = 1 + P


def _cells(*patches) -> np.ndarray:
    """The normalised map that is 1 on the given patches and 0 elsewhere, [3, 4]."""
    m = np.zeros(P, dtype=np.float32)
    m[list(patches)] = 1
    return m.reshape(GRID)


def _linear_target(image_norm, image_attn, patch: int, cls_decoy: int) -> torch.Tensor:
    """A score whose gradient is known: 1 on channel ``patch`` of every patch token (and 100 on
    channel ``cls_decoy`` of the CLS token, which Grad-CAM must ignore), and 1 on the last
    image block's CLS-to-``patch`` attention."""
    w = torch.zeros(1, N, P)
    w[0, 1:, patch] = 1
    w[0, 0, cls_decoy] = 100
    v = torch.zeros_like(image_attn[-1])
    v[0, :, 0, 1 + patch] = 1
    return (image_norm * w).sum() + (image_attn[-1] * v).sum()


class PlantedAdapter:
    """Stands in for FlavaAdapter: ``forward`` returns a hand-built record with planted signals.

    - image_norm: patch p's activation is the one-hot channel p (D = P), so Grad-CAM's map for a
      target is 1 exactly where that target's gradient channel is;
    - image_attn: 2 blocks of uniform attention; the last block's CLS row puts half its weight on
      ATTN_PATCH (raw attention and rollout must peak there);
    - mm_attn: 2 identical blocks; text row t puts 1 on patch column TOKEN_PATCH[t]; every other
      row has its own single 1 elsewhere. The ITM logit is the sum of block 0 (the
      second-to-last, mm-gradcam's block), so every mm method's text rows equal the plant;
    - occlusion: the image embedding is the per-patch mean of channel 0, row-major, and each text
      embedding is one-hot on its patch: hiding patch p drops only the score of the text on p.
    """

    grid = GRID
    capabilities = frozenset({"contrastive", "itm", "mm_self_attention", "mmm"})

    def forward(self, pixel_values, caption, need_mm=True, image_size=None):
        assert caption == CAPTION
        norm = torch.zeros(1, N, P)
        norm[0, 1:] = torch.eye(P)
        norm[0, 0, 0] = 50.0
        norm.requires_grad_(True)
        uniform = torch.full((1, 2, N, N), 1 / N)
        last = uniform.clone()
        last[0, :, 0, 1 + ATTN_PATCH] += .5
        image_attn = (uniform.requires_grad_(True), last.requires_grad_(True))
        plant = torch.zeros(S, S)
        for i in range(2 + P):  # mm CLS, image CLS and patch rows: a 1 on some other column
            plant[i, (i + 5) % S] = 1
        for t, p in enumerate(TOKEN_PATCH):
            plant[2 + P + t, 2 + p] = 1
        mm = tuple(plant.expand(1, 2, S, S).clone().requires_grad_(True) for _ in range(2))
        score = _linear_target(norm, image_attn, CAPTION_PATCH, cls_decoy=ATTN_PATCH)[None]
        words = [Word(w, list(toks), span) for w, toks, span in WORDS]
        return ForwardRecord(image_hidden=(), image_norm=norm, image_attn=image_attn, mm_attn=mm,
                             image_embed=torch.zeros(1, P), text_embed=self._one_hot(CAPTION_PATCH),
                             score=score, itm=mm[0].sum()[None], grid=GRID, tokens=list(TOKENS), words=words,
                             layout=flava_layout(GRID))

    def phrase_scores(self, rec, phrases):
        assert [p for p, _ in PHRASES] == phrases
        return torch.stack([_linear_target(rec.image_norm, rec.image_attn, p, cls_decoy=CAPTION_PATCH)
                            for p in PHRASE_PATCH])

    def word_scores(self, rec, directions=None):
        return torch.stack([_linear_target(rec.image_norm, rec.image_attn, p, cls_decoy=CAPTION_PATCH)
                            for p in WORD_PATCH])

    def masked_words(self, rec, words=None, contexts=None):
        """Word i's masked copy: in the last block, the mm CLS row attends to patch WORD_PATCH[i]
        with gradient +1 (the signal), row 1 to another patch with no gradient, row 2 to a third
        with gradient -1 (ReLU must drop it); block 0 adds the same signal from another row
        (blocks are summed) and a decoy with gradient -1 on yet another patch."""
        words = rec.words if words is None else words
        n = len(words)
        last = torch.zeros(n, 2, S, S)
        first = torch.zeros(n, 2, S, S)
        v_last, v_first = torch.zeros_like(last), torch.zeros_like(first)
        for i, w in enumerate(words):
            p = WORD_PATCH[rec.words.index(w)]
            for row, col, grad in ((0, p, 1.0), (1, (p + 3) % P, 0.0), (2, (p + 5) % P, -1.0)):
                last[i, :, row, 2 + col] = 1
                v_last[i, :, row, 2 + col] = grad
            first[i, :, 3, 2 + p] = 1
            v_first[i, :, 3, 2 + p] = 1
            first[i, :, 0, 2 + (p + 1) % P] = 1
            v_first[i, :, 0, 2 + (p + 1) % P] = -1
        last.requires_grad_(True)
        first.requires_grad_(True)
        own = (last * v_last).sum(dim=(1, 2, 3)) + (first * v_first).sum(dim=(1, 2, 3))
        return (first, last), own

    def word_directions(self, rec, phrases=()):
        # word w's context minus its baseline: w's own patch (the caption's patch cancels)
        return torch.cat([self._one_hot(p) for p in WORD_PATCH])

    @staticmethod
    def _one_hot(patch):
        e = torch.zeros(1, P)
        e[0, patch] = 1
        return e

    def text_embeds(self, texts):
        return torch.cat([self._one_hot(PHRASE_PATCH[[p for p, _ in PHRASES].index(t)]) for t in texts])

    def image_embeds(self, pixel_values):
        b, _, h, w = pixel_values.shape
        gh, gw = GRID
        return pixel_values[:, 0].reshape(b, gh, h // gh, gw, w // gw).mean(dim=(2, 4)).reshape(b, P)


@pytest.fixture(scope="module")
def planted():
    pixels = torch.ones(1, 3, 6, 8)  # 2 x 2 pixels per patch
    return Suite(make_methods(list(REGISTRY))).run(PlantedAdapter(), pixels, CAPTION, PHRASES)


MM_METHODS = ["mm-relevancy", "mm-gradcam", "mm-attention"]


def test_planted_adapter_serves_every_method(planted):
    assert set(planted.maps) == set(REGISTRY)


@pytest.mark.parametrize("name", MM_METHODS)
def test_planted_word_map_pools_its_own_word_pieces_only(planted, name):
    words = planted.maps[name].words
    assert words.shape == (5, 3, 4)
    expected = [_cells(*(TOKEN_PATCH[t] for t in toks)) for _, toks, _ in WORDS]
    # "jacket" = mean of its pieces "jack" (patch 11) and "##et" (patch 4): both cells, equally
    np.testing.assert_allclose(words, np.stack(expected), atol=1e-6)


@pytest.mark.parametrize("name", MM_METHODS)
def test_planted_mm_caption_map_averages_content_tokens_not_cls_sep_or_punctuation(planted, name):
    content = [1, 2, 3, 5, 6]  # a, jack, ##et, the, dog
    np.testing.assert_allclose(planted.maps[name].caption, _cells(*(TOKEN_PATCH[t] for t in content)), atol=1e-6)


@pytest.mark.parametrize("name", MM_METHODS)
def test_planted_mm_phrase_map_pools_the_words_inside_its_span(planted, name):
    phrases = planted.maps[name].phrases
    expected = [
        _cells(TOKEN_PATCH[1], TOKEN_PATCH[2], TOKEN_PATCH[3]),  # "a jacket" (0, 8): the comma at 8 is outside
        _cells(TOKEN_PATCH[5], TOKEN_PATCH[6]),  # "the dog"
        _cells(TOKEN_PATCH[2], TOKEN_PATCH[3]),  # "jacket," (2, 9): the comma is punctuation, left out
        planted.maps[name].caption,  # no span: the caption map
    ]
    np.testing.assert_allclose(phrases, np.stack(expected), atol=1e-6)


def test_masked_word_gradcam_reads_the_last_block_relu_grad_times_attn_each_word_its_own_copy(planted):
    maps = planted.maps["mm-masked"]
    np.testing.assert_allclose(maps.words, np.stack([_cells(p) for p in WORD_PATCH]), atol=1e-6)
    # the caption: its content words (not "a", "the" or the comma); a phrase: its content words
    np.testing.assert_allclose(maps.caption, _cells(WORD_PATCH[1], WORD_PATCH[4]), atol=1e-6)
    expected = [_cells(WORD_PATCH[1]), _cells(WORD_PATCH[4]), _cells(WORD_PATCH[1]), maps.caption]
    np.testing.assert_allclose(maps.phrases, np.stack(expected), atol=1e-6)


def test_phrase_token_rows_use_half_open_spans_so_touching_words_stay_out():
    # words with no space between them (CJK text, or a caption split at an apostrophe):
    # "red" is [0, 3), "dog" [3, 6), "run" [6, 9); a phrase span is half-open like a word's
    words = [Word("red", [1], (0, 3)), Word("dog", [2, 3], (3, 6)), Word("run", [4], (6, 9))]
    assert _phrase_token_rows(words, [(0, 3), (3, 6), (2, 7), None]) == [[1], [2, 3], [1, 2, 3, 4], []]


@pytest.mark.parametrize("name", ["gradcam", "relevancy", "occlusion"])
def test_planted_caption_and_phrase_targets_land_on_their_own_patch_row_major(planted, name):
    maps = planted.maps[name]
    np.testing.assert_allclose(maps.caption, _cells(CAPTION_PATCH), atol=1e-6)
    assert maps.caption[1, 2] == 1  # patch 6 of a 3 x 4 grid, row-major
    np.testing.assert_allclose(maps.phrases, np.stack([_cells(p) for p in PHRASE_PATCH]), atol=1e-6)


@pytest.mark.parametrize("name", ["gradcam", "relevancy", "occlusion"])
def test_planted_word_in_context_targets_land_on_their_own_patch_in_word_order(planted, name):
    np.testing.assert_allclose(planted.maps[name].words, np.stack([_cells(p) for p in WORD_PATCH]), atol=1e-6)


@pytest.mark.parametrize("name", ["attention", "rollout"])
def test_planted_cls_attention_lands_on_its_patch_for_caption_blind_maps(planted, name):
    maps = planted.maps[name]
    np.testing.assert_allclose(maps.caption, _cells(ATTN_PATCH), atol=1e-6)
    assert maps.caption[2, 1] == 1
    np.testing.assert_allclose(maps.phrases, np.stack([_cells(ATTN_PATCH)] * len(PHRASES)), atol=1e-6)


@pytest.mark.parametrize("name", ["attention", "mm-attention"])
def test_planted_last_layer_thumbnail_equals_the_caption_map(planted, name):
    maps = planted.maps[name]
    np.testing.assert_allclose(maps.layers[-1], maps.caption, atol=1e-6)


def test_occlusion_hides_patches_in_row_major_order():
    from groundreport.explainers.occlusion import Occlusion

    pixels = torch.arange(48.).reshape(1, 1, 6, 8).expand(1, 3, 6, 8).contiguous() + 1
    texts = torch.eye(P)  # text k scores the mean of patch k
    drops = Occlusion(batch_size=5).drops(PlantedAdapter(), pixels, texts)  # [K, P]
    # hiding patch p removes exactly patch k == p's mean: a diagonal of the patch means
    means = pixels[0, 0].reshape(3, 2, 4, 2).mean(dim=(1, 3)).reshape(P)
    torch.testing.assert_close(drops, torch.diag(means))


# -- 3. the multimodal layout against transformers' own FLAVA forward ------------------------

@contextmanager
def _caught_mm(flava):
    """While open, HF's multimodal encoder is watched: ``seen["x"]`` its input sequence (mm CLS
    included), ``seen["attn"]`` every block's attention probabilities (HF does not return them)."""
    seen: dict = {"attn": []}
    hooks = [flava.multimodal_model.encoder.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))]
    for layer in flava.multimodal_model.encoder.layer:
        sa = layer.attention.attention
        hooks.append(sa.register_forward_pre_hook(lambda m, a, kw: (a, {**kw, "output_attentions": True}),
                                                  with_kwargs=True))
        hooks.append(sa.register_forward_hook(lambda m, a, out: seen["attn"].append(out[1])))
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


@pytest.fixture(scope="module")
def hf_flava_run(tiny_adapter):
    """HF's FlavaModel.forward on one pair, with the multimodal encoder's input sequence and
    every block's attention probabilities captured by hooks (HF does not return them)."""
    from groundreport.demo.scenes import make_scene

    flava = tiny_adapter.flava
    pixels = tiny_adapter.pixel_values([make_scene(3, (3, 3), size=96).image])
    caption = "a man in a jacket"
    enc = tiny_adapter.tokenize([caption])
    with _caught_mm(flava) as seen, torch.no_grad():
        out = flava(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pixels,
                    output_hidden_states=True)
    rec = tiny_adapter.forward(pixels, caption)
    return flava, out, seen, rec


def _positions(seq: torch.Tensor, rows: torch.Tensor) -> list[int]:
    """Index in ``seq`` [S, D] of each of ``rows`` [n, D], found by content."""
    return [int(torch.cdist(r[None], seq).argmin()) for r in rows]


def test_mm_layout_indexes_the_same_tokens_as_hf_flava_forward(hf_flava_run):
    flava, out, seen, rec = hf_flava_run
    seq = seen["x"][0]  # what HF's FlavaModel.forward fed the multimodal encoder, mm CLS included
    with torch.no_grad():
        text_in = flava.text_to_mm_projection(out.text_output.hidden_states[-1])[0]
        image_in = flava.image_to_mm_projection(out.image_output.hidden_states[-1])[0]
    text_pos = _positions(seq, text_in)
    patch_pos = _positions(seq, image_in[1:])
    assert len(text_pos) == len(rec.tokens) and seq.shape[0] == rec.mm_attn[0].shape[-1]
    assert text_pos == list(range(rec.mm_text_start, rec.mm_text_start + len(rec.tokens)))
    assert patch_pos == list(range(seq.shape[0]))[rec.mm_patch_cols]
    torch.testing.assert_close(seq[rec.mm_text_start:], text_in)
    torch.testing.assert_close(seq[rec.mm_patch_cols], image_in[1:])


def test_mm_attention_rows_equal_hf_flava_attention_at_text_rows_and_patch_columns(hf_flava_run):
    flava, out, seen, rec = hf_flava_run
    seq = seen["x"][0]
    with torch.no_grad():
        text_pos = _positions(seq, flava.text_to_mm_projection(out.text_output.hidden_states[-1])[0])
        patch_pos = _positions(seq, flava.image_to_mm_projection(out.image_output.hidden_states[-1])[0, 1:])
    # the record's multimodal pass (flava_parts.encode_multimodal) is HF's, block by block
    assert len(seen["attn"]) == len(rec.mm_attn)
    for ours, theirs in zip(rec.mm_attn, seen["attn"]):
        torch.testing.assert_close(ours.detach(), theirs, atol=1e-6, rtol=1e-5)
    hf_rows = seen["attn"][-1][0].mean(0)[text_pos][:, patch_pos]  # [T, P] by HF's own positions
    torch.testing.assert_close(MultimodalAttention().rows(rec, None)[0], hf_rows, atol=1e-6, rtol=1e-5)


def _hf_masked_word_cam(adapter, pixels, text: str, k: int) -> np.ndarray:
    """Word k of ``text`` masked, through HF's own FlavaModel.forward: the multimodal blocks'
    attention probabilities caught by hooks (in the graph), the MMM head's log-probability of the
    word's own tokens, Grad-CAM summed over blocks, patch columns, min-max normalised."""
    model, flava = adapter.model, adapter.flava
    enc = adapter.tokenize([text])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    w = adapter.words_of(text, enc)[1][k]
    masked = ids.clone()
    masked[0, w.tokens] = adapter.tokenizer.mask_token_id
    with _caught_mm(flava) as seen, torch.enable_grad():
        out = flava(input_ids=masked, attention_mask=mask, pixel_values=pixels)
        logits = model.mmm_text_head(out.multimodal_output.last_hidden_state[:, -ids.shape[1]:])
        target = logits.log_softmax(-1)[0, w.tokens, ids[0, w.tokens]].sum()
        grads = torch.autograd.grad(target, seen["attn"])
    with torch.no_grad():
        patches = flava.image_to_mm_projection(out.image_output.hidden_states[-1])[0, 1:]
    cols = _positions(seen["x"][0], patches)
    cam = sum((a * g.clamp(min=0)).mean(1)[0].sum(0)[cols].detach() for a, g in zip(seen["attn"], grads))
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    return cam.reshape(adapter.grid).numpy()


def test_masked_word_maps_equal_a_plain_recomputation_through_hf_flava_forward(tiny_adapter):
    """mm-masked against HF's own FlavaModel.forward, word by word: the caption with the word's
    tokens as [MASK] (``_hf_masked_word_cam``)."""
    from groundreport.demo.scenes import make_scene

    pixels = tiny_adapter.pixel_values([make_scene(5, (3, 3), size=96).image])
    caption = "a red circle and a blue dog"
    ours = Suite(make_methods(["mm-masked"])).run(tiny_adapter, pixels, caption).maps["mm-masked"].words
    assert ours.shape[0] == 7
    expected = [_hf_masked_word_cam(tiny_adapter, pixels, caption, k) for k in range(7)]
    np.testing.assert_allclose(ours, np.stack(expected), atol=1e-4)


def test_a_masked_word_inside_a_phrase_is_masked_in_that_phrase_alone(tiny_adapter):
    """With phrases, a word inside one is masked in its smallest phrase's own text ("a red
    [MASK]"), the others in the caption (one batch, rows padded); each row against HF's forward
    of that text, at every chunk size."""
    from groundreport.demo.scenes import make_scene
    from groundreport.explainers.mm_masked import MaskedWordGradCAM

    pixels = tiny_adapter.pixel_values([make_scene(7, (3, 3), size=96).image])
    caption = "a red circle and a blue dog"
    phrases = [("a red circle", (0, 12)), ("a blue dog", (17, 27))]  # "and" in none: its caption row pads the rest
    ours = Suite(make_methods(["mm-masked"])).run(tiny_adapter, pixels, caption, phrases).maps["mm-masked"].words
    where = [("a red circle", k) for k in range(3)] + [(caption, 3)] + [("a blue dog", k) for k in range(3)]
    expected = [_hf_masked_word_cam(tiny_adapter, pixels, text, k) for text, k in where]
    np.testing.assert_allclose(ours, np.stack(expected), atol=1e-4)
    small = Suite([MaskedWordGradCAM(chunk=2)]).run(tiny_adapter, pixels, caption, phrases).maps["mm-masked"].words
    np.testing.assert_allclose(small, ours, atol=1e-5)
    plain = Suite(make_methods(["mm-masked"])).run(tiny_adapter, pixels, caption).maps["mm-masked"].words
    assert not np.allclose(ours[1], plain[1], atol=1e-3)  # "red" read in its phrase is another map


def test_masked_word_maps_do_not_depend_on_the_chunk_size(tiny_adapter):
    from groundreport.demo.scenes import make_scene
    from groundreport.explainers.mm_masked import MaskedWordGradCAM

    rec = tiny_adapter.forward(tiny_adapter.pixel_values([make_scene(6, (3, 3), size=96).image]),
                               "a red circle and a blue dog and a green man")
    whole = MaskedWordGradCAM(chunk=16).word_rows(tiny_adapter, rec)
    torch.testing.assert_close(MaskedWordGradCAM(chunk=3).word_rows(tiny_adapter, rec), whole)
    assert whole.shape == (len(rec.words), rec.n_patches)


def test_an_untrained_mmm_head_is_not_read(tiny_adapter):
    """A config whose mmm_text_weight is 0 (a demo model trained without MMM) has a random head:
    no "mmm" capability, and mm-masked is skipped with a note."""
    from groundreport.models.flava import FlavaAdapter

    tiny_adapter.model.config.mmm_text_weight = 0.0
    try:
        untrained = FlavaAdapter(tiny_adapter.model, tiny_adapter.processor, tiny_adapter.device, tiny_adapter.dtype,
                                 "untrained", "x")
    finally:
        tiny_adapter.model.config.mmm_text_weight = 1.0
    assert "mmm" in tiny_adapter.capabilities and "mmm" not in untrained.capabilities
    res = Suite(make_methods(["mm-masked", "mm-attention"])).run(untrained, untrained.pixel_values(
        [np.zeros((32, 32, 3), dtype=np.uint8)]), "a red circle")
    assert "mm-masked" not in res.maps and any(n.startswith("mm-masked: skipped") for n in res.notes)
