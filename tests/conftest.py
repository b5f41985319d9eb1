"""Shared fixtures: tiny FLAVA checkpoints saved and reloaded through ``from_pretrained``,
and small datasets in every supported format, all built here (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundreport.demo.scenes import COLOURS, SHAPES, make_scene

WORDS = ["a", "an", "the", "and", ",", "in", "red", "green", "blue", "yellow", "purple", "orange",
         "circle", "square", "triangle", "star", "cross", "man", "dog", "jack", "##et", "<", ">", "/", "script"]


def _tiny(path: Path, pretraining: bool, seed: int = 0) -> Path:
    import torch
    from transformers import (BertTokenizer, FlavaConfig, FlavaForPreTraining, FlavaModel, FlavaProcessor)
    from transformers.models.flava.image_processing_pil_flava import FlavaImageProcessorPil

    torch.manual_seed(seed)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    common = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)
    cfg = FlavaConfig(
        image_config=dict(common, num_hidden_layers=2, image_size=32, patch_size=8, vocab_size=8),
        text_config=dict(common, num_hidden_layers=2, vocab_size=len(vocab), max_position_embeddings=40),
        multimodal_config=dict(common, num_hidden_layers=2),
        hidden_size=32, projection_dim=16, init_codebook=False,
        architectures=["FlavaForPreTraining" if pretraining else "FlavaModel"])
    model = (FlavaForPreTraining if pretraining else FlavaModel)(cfg).eval()
    size = {"height": 32, "width": 32}
    proc = FlavaProcessor(image_processor=FlavaImageProcessorPil(size=size, crop_size=size),
                          tokenizer=BertTokenizer(vocab=vocab, model_max_length=40))
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path


# the adapters' tiny checkpoints (tests/test_adapters.py) share these; the CLIP one lives here
# because the browser tests also build a report with it
ADAPTER_WORDS = sorted({"a", "an", "the", "and", "in", "of", "photo", "man", "dog", "jacket", *COLOURS, *SHAPES})
ADAPTER_COMMON = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=2)


def tiny_clip(path: Path) -> Path:
    """Short side to 40, centre crop 32 x 32; BPE vocab: single letters, then each word merged
    left to right (so any lower-case word tokenizes, known words as one token)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from groundreport.demo.model_spec import word_bpe

    vocab, merges = word_bpe(ADAPTER_WORDS, ["<|startoftext|>", "<|endoftext|>", ",", ",</w>"] + [
        c + end for c in "abcdefghijklmnopqrstuvwxyz" for end in ("", "</w>")])
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=16)
    torch.manual_seed(0)
    common = ADAPTER_COMMON
    cfg = CLIPConfig(text_config=dict(common, vocab_size=len(vocab), max_position_embeddings=16,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id),
                     vision_config=dict(common, image_size=32, patch_size=8), projection_dim=16)
    CLIPModel(cfg).eval().save_pretrained(path)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("tiny_flava_pt"), pretraining=True)


@pytest.fixture(scope="session")
def tiny_flavamodel_dir(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("tiny_flava_model"), pretraining=False)


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model_dir):
    from groundreport.models.flava import FlavaAdapter

    return FlavaAdapter.load(str(tiny_model_dir), device="cpu")


def write_scene_images(folder: Path, n: int, ext: str = "jpg", seed0: int = 500) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i in range(n):
        s = make_scene(seed0 + i, (2, 3), size=96)
        s.image.save(folder / f"img{i}.{ext}")
        scenes.append(s)
    return scenes


def scene_grounding_lines(root: Path, n: int) -> list[dict]:
    """``n`` scenes written as ``root/imgs/img{i}.png`` and their grounding-JSONL objects (caption,
    phrases with boxes), paths relative to ``root``."""
    scenes = write_scene_images(root / "imgs", n, "png")
    return [{"image": f"imgs/img{i}.png", "caption": s.caption,
             "phrases": [{"text": o.phrase, "boxes": [list(o.box)]} for o in s.objects]} for i, s in enumerate(scenes)]


@pytest.fixture
def flickr_csv(tmp_path) -> Path:
    """Notebook layout: Images/ + captions.txt, five captions per image."""
    scenes = write_scene_images(tmp_path / "Images", 3)
    rows = ["image,caption"]
    for i, s in enumerate(scenes):
        rows += [f"img{i}.jpg,{s.caption}" if "," not in s.caption else f'img{i}.jpg,"{s.caption}"']
        rows += [f"img{i}.jpg,a {o.phrase} in the square" for o in s.objects]
    (tmp_path / "captions.txt").write_text("\n".join(rows) + "\n")
    return tmp_path / "captions.txt"


@pytest.fixture
def grounding_jsonl(tmp_path) -> Path:
    scenes = write_scene_images(tmp_path / "imgs", 3, "png")
    lines = [json.dumps({"image": f"imgs/img{i}.png", "caption": s.caption,
                         "phrases": [{"text": o.phrase, "boxes": [[v * 1.0 for v in o.box]]} for o in s.objects]})
             for i, s in enumerate(scenes)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path
