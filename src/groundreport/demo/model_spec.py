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
                patch_size: int = PATCH_SIZE):
    from transformers import FlavaConfig

    common = dict(hidden_size=hidden, num_attention_heads=heads, intermediate_size=mlp)
    return FlavaConfig(
        image_config=dict(common, num_hidden_layers=image_layers, image_size=image_size,
                          patch_size=patch_size, vocab_size=8),
        text_config=dict(common, num_hidden_layers=text_layers, vocab_size=len(demo_vocab()),
                         max_position_embeddings=64),
        multimodal_config=dict(common, num_hidden_layers=mm_layers),
        hidden_size=hidden,
        projection_dim=hidden,
        init_codebook=False,
        architectures=["FlavaForPreTraining"],
    )


def demo_processor(image_size: int = IMAGE_SIZE):
    from transformers import BertTokenizer, FlavaProcessor
    from transformers.models.flava.image_processing_pil_flava import FlavaImageProcessorPil

    tokenizer = BertTokenizer(vocab=demo_vocab(), model_max_length=64)
    size = {"height": image_size, "width": image_size}
    return FlavaProcessor(image_processor=FlavaImageProcessorPil(size=size, crop_size=size), tokenizer=tokenizer)
