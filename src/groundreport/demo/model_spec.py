"""The bundled demo model: architecture, vocabulary and processor, built from nothing.

The same classes as facebook/flava-full (FlavaForPreTraining + FlavaProcessor), just small,
so the demo exercises exactly the code path a real checkpoint does.
"""

from __future__ import annotations

from .scenes import COLOURS, SHAPES

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["a", "an", "and", ",", *COLOURS, *SHAPES]
IMAGE_SIZE = 64
PATCH_SIZE = 8


def demo_vocab() -> dict[str, int]:
    return {tok: i for i, tok in enumerate(SPECIAL_TOKENS + WORDS)}


def demo_config(hidden: int = 128, heads: int = 4, mlp: int = 512, image_layers: int = 4,
                text_layers: int = 2, mm_layers: int = 2, image_size: int = IMAGE_SIZE,
                patch_size: int = PATCH_SIZE, image_act: str = "gelu", projection_dim: int | None = None):
    from transformers import FlavaConfig

    common = dict(hidden_size=hidden, num_attention_heads=heads, intermediate_size=mlp)
    return FlavaConfig(
        image_config=dict(common, num_hidden_layers=image_layers, image_size=image_size,
                          patch_size=patch_size, vocab_size=8, hidden_act=image_act),
        text_config=dict(common, num_hidden_layers=text_layers, vocab_size=len(demo_vocab()),
                         max_position_embeddings=64),
        multimodal_config=dict(common, num_hidden_layers=mm_layers),
        hidden_size=hidden,
        projection_dim=projection_dim or hidden,
        init_codebook=False,
        architectures=["FlavaForPreTraining"],
    )


def demo_processor(image_size: int = IMAGE_SIZE):
    from transformers import BertTokenizer, FlavaProcessor
    from transformers.models.flava.image_processing_pil_flava import FlavaImageProcessorPil

    tokenizer = BertTokenizer(vocab=demo_vocab(), model_max_length=64)
    size = {"height": image_size, "width": image_size}
    return FlavaProcessor(image_processor=FlavaImageProcessorPil(size=size, crop_size=size), tokenizer=tokenizer)


# -- the second demo model: a small CLIP (two towers, no multimodal encoder) -----------------------
def word_bpe(words, tokens: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-pair vocabulary and merges in CLIP's form: ``tokens`` first (specials, single
    characters), then each of ``words`` merged left to right into one token (``</w>`` ending a
    word), a longer word's merges first so that a shorter word's ("an") cannot split it ("orange")."""
    vocab: dict[str, int] = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    merges: list[tuple[str, str]] = []
    for w in sorted(words, key=len, reverse=True):
        cur = w[0] if len(w) > 1 else w + "</w>"
        for i, ch in enumerate(w[1:], start=1):
            piece = ch + ("</w>" if i == len(w) - 1 else "")
            if (cur, piece) not in merges:
                merges.append((cur, piece))
            cur += piece
            vocab.setdefault(cur, len(vocab))
    return vocab, merges


def demo_clip_tokenizer():
    """CLIP's byte-pair tokenizer over single characters, each demo word merged into one token
    (so any lower-case word still tokenizes, the demo words as one token each)."""
    from transformers import CLIPTokenizer

    # an unknown token of its own: CLIP's default one is <|endoftext|>, where the text tower
    # pools, so one odd character would cut the caption there
    chars = [c + end for c in "abcdefghijklmnopqrstuvwxyz0123456789,.'-!?:;\"()&/" for end in ("", "</w>")]
    vocab, merges = word_bpe(WORDS, ["<|startoftext|>", "<|endoftext|>", "<|unk|>"] + chars)
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=64, unk_token="<|unk|>")
    assert all(len(tok.tokenize(w)) == 1 for w in WORDS), "a demo word is split"
    return tok


def demo_clip_config(tokenizer, hidden: int = 128, heads: int = 4, mlp: int = 512, image_layers: int = 4,
                     text_layers: int = 2, image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE):
    from transformers import CLIPConfig

    common = dict(hidden_size=hidden, num_attention_heads=heads, intermediate_size=mlp)
    return CLIPConfig(
        text_config=dict(common, num_hidden_layers=text_layers, vocab_size=len(tokenizer),
                         max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(common, num_hidden_layers=image_layers, image_size=image_size, patch_size=patch_size),
        projection_dim=hidden,
        architectures=["CLIPModel"],
    )


def demo_clip_processor(image_size: int = IMAGE_SIZE):
    """CLIP's own preprocessing: the short side to ``image_size``, then a centre crop (a user's
    non-square picture is cropped, as real CLIP checkpoints crop it)."""
    from transformers import CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPProcessor(image_processor=CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                                            crop_size={"height": image_size, "width": image_size}),
                         tokenizer=demo_clip_tokenizer())
