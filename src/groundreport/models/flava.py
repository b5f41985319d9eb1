"""FLAVA behind the adapter interface: load, preprocess, one forward that keeps what explainers need.

Multimodal sequence layout (FLAVA has no cross-attention): ``[mm CLS, image CLS, patches…,
text tokens…]``; text→image maps are the text-token rows against the patch columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..words import is_content_word, is_punctuation
from . import flava_parts as parts

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Word:
    text: str
    tokens: list[int]  # indices into the text token sequence (0 = [CLS])
    span: tuple[int, int]  # character offsets in the caption
    unknown: bool = False  # a piece of it is the tokenizer's unknown token: the model cannot read it

    @property
    def is_punctuation(self) -> bool:
        return is_punctuation(self.text)

    @property
    def is_content(self) -> bool:
        return is_content_word(self.text)


@dataclass
class ForwardRecord:
    """Everything explainers read for ONE image-caption pair (batch dimension 1).

    Shapes: N = 1 + P image tokens (CLS first), P = gh*gw patches, T text tokens,
    S = 1 + N + T multimodal tokens, H heads, D hidden size, E projection size.
    """

    image_hidden: tuple[torch.Tensor, ...]  # L_img+1 x [1, N, D]; entry l is the input of block l
    image_norm: torch.Tensor  # [1, N, D] output of the last image block's first LayerNorm (Grad-CAM's layer)
    image_attn: tuple[torch.Tensor, ...]  # L_img x [1, H, N, N]
    mm_attn: tuple[torch.Tensor, ...] | None  # L_mm x [1, H, S, S]
    image_embed: torch.Tensor  # [1, E], unit norm
    text_embed: torch.Tensor  # [1, E], unit norm
    score: torch.Tensor  # [1] cosine of image_embed and text_embed (FLAVA's contrastive score)
    itm: torch.Tensor | None  # [1] ITM match-minus-mismatch logit, when the checkpoint has the head
    grid: tuple[int, int]
    tokens: list[str]
    words: list[Word]
    truncated: bool = False
    input_ids: torch.Tensor | None = None  # [1, T] the caption's token ids (word-in-context targets)
    attention_mask: torch.Tensor | None = None  # [1, T]

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def mm_text_start(self) -> int:
        return 2 + self.n_patches  # mm CLS, image CLS, patches

    @property
    def mm_patch_cols(self) -> slice:
        return slice(2, 2 + self.n_patches)

    def word_token_rows(self) -> list[list[int]]:
        return [w.tokens for w in self.words]


def bundled_demo_path() -> Path:
    return Path(__file__).resolve().parent.parent / "demo" / "weights"


def _weights_hash(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16] if files else "unknown"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} asked for, but CUDA is not available here (use --device cpu)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown --device {device!r} (auto, cpu, cuda, cuda:N)") from None


def _check_geometry(image_processor, name: str) -> None:
    """Maps are drawn over the whole image, which holds when the processor resizes to a fixed
    height x width and any centre crop keeps all of it (FLAVA's default). Refuse otherwise
    rather than score maps against the wrong pixels."""
    size = getattr(image_processor, "size", None) or {}
    crop = getattr(image_processor, "crop_size", None) or {}
    resize_ok = not getattr(image_processor, "do_resize", True) or ("height" in size and "width" in size)
    crop_ok = not getattr(image_processor, "do_center_crop", False) or (
        "height" in size and crop.get("height", 0) >= size["height"] and crop.get("width", 0) >= size["width"])
    if not (resize_ok and crop_ok):
        raise UserError(f"model {name!r}: its image processor crops (size={dict(size)}, crop_size={dict(crop)}); "
                        "groundreport needs a processor that keeps the whole image")


def _quiet_hub(hf_logging) -> None:
    """Our progress bars only: no "Loading weights" bar, no hub retry messages (a failed load
    ends in one line of ours instead)."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()
    except ImportError:  # an older hub: its messages stay
        pass


class FlavaAdapter:
    family = "flava"

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype, model_id: str, revision: str):
        self.model = model
        self.flava = model.flava if hasattr(model, "flava") else model
        self.itm_head = getattr(model, "itm_head", None)
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.model_id = model_id
        self.revision = revision
        cfg = self.flava.config.image_config
        self.grid = (cfg.image_size // cfg.patch_size, cfg.image_size // cfg.patch_size)
        self.max_text_len = min(self.flava.config.text_config.max_position_embeddings,
                                getattr(processor.tokenizer, "model_max_length", 10**6) or 10**6)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, name: str, device: str = "auto", dtype: str = "fp32", offline: bool = False) -> "FlavaAdapter":
        from transformers import AutoConfig, AutoProcessor, FlavaForPreTraining, FlavaModel
        from transformers.utils import logging as hf_logging

        if dtype not in DTYPES:
            raise UserError(f"unknown --dtype {dtype!r}; choose fp32, bf16 or fp16")
        dev = resolve_device(device)
        if dtype == "fp16" and dev.type == "cpu":
            raise UserError("--dtype fp16 needs a GPU; on CPU use fp32 or bf16")
        model_id = name
        source = str(bundled_demo_path()) if name == "demo" else name
        local = Path(source).expanduser()
        if local.exists() and not (local / "config.json").is_file():
            raise UserError(f"{local}: not a model folder (no config.json; expected the save_pretrained layout)")
        kwargs = {"local_files_only": True} if offline or local.exists() else {}
        _quiet_hub(hf_logging)
        try:
            config = AutoConfig.from_pretrained(str(local) if local.exists() else source, **kwargs)
        except (OSError, ValueError) as e:
            hint = ("it is not in the local cache (drop --offline to download it)" if offline
                    else "check the name, or pass a local folder saved with save_pretrained, or --model demo")
            raise UserError(f"model {name!r} could not be loaded: {hint} ({str(e).splitlines()[0][:160]})") from None
        if config.model_type != "flava":
            raise UserError(f"model {name!r} is a {config.model_type!r} model; groundreport supports FLAVA")
        arch = (config.architectures or ["FlavaModel"])[0]
        model_cls = FlavaForPreTraining if arch == "FlavaForPreTraining" else FlavaModel
        src = str(local) if local.exists() else source
        try:
            model = model_cls.from_pretrained(src, dtype=DTYPES[dtype], **kwargs)
            processor = AutoProcessor.from_pretrained(src, **kwargs)
        except (OSError, ValueError) as e:
            raise UserError(f"model {name!r} could not be loaded: {str(e).splitlines()[0][:200]}") from None
        _check_geometry(processor.image_processor, name)
        model.to(dev).eval()
        revision = getattr(config, "_commit_hash", None) or (_weights_hash(local) if local.exists() else "unknown")
        return cls(model, processor, dev, DTYPES[dtype], model_id, revision)

    def describe(self) -> dict:
        return {"id": self.model_id, "revision": self.revision, "family": self.family,
                "class": type(self.model).__name__, "has_itm": self.itm_head is not None,
                "grid": list(self.grid), "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}

    # -- preprocessing -------------------------------------------------------------------
    def pixel_values(self, images) -> torch.Tensor:
        px = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return px.to(self.device, self.dtype)

    def tokenize(self, texts: list[str]):
        enc = self.processor.tokenizer(texts, padding=True, truncation=True, max_length=self.max_text_len,
                                       return_tensors="pt", return_offsets_mapping=True)
        return enc

    def words_of(self, caption: str, enc, row: int = 0) -> tuple[list[str], list[Word]]:
        tok = self.processor.tokenizer
        ids = enc["input_ids"][row].tolist()
        n = int(enc["attention_mask"][row].sum())
        tokens = tok.convert_ids_to_tokens(ids[:n])
        offsets = enc["offset_mapping"][row].tolist()[:n]
        word_ids = enc.word_ids(row)[:n]
        words: list[Word] = []
        last = None
        for t, wid in enumerate(word_ids):
            if wid is None:
                continue
            s, e = offsets[t]
            if wid == last:
                words[-1].tokens.append(t)
                words[-1].span = (words[-1].span[0], e)
            else:
                words.append(Word("", [t], (s, e)))
            last = wid
        unk = tok.unk_token_id
        for w in words:
            w.text = caption[w.span[0]:w.span[1]]
            w.unknown = unk is not None and any(ids[t] == unk for t in w.tokens)
        return tokens, words

    # -- forward ---------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor, caption: str, need_mm: bool = True) -> ForwardRecord:
        """One forward pass for one pair, keeping attentions and hidden states in the graph."""
        enc = self.tokenize([caption])
        tokens, words = self.words_of(caption, enc)
        full_len = len(self.processor.tokenizer(caption)["input_ids"])
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        store = {}
        last_norm = self.flava.image_model.encoder.layer[-1].layernorm_before
        hook = last_norm.register_forward_hook(lambda mod, inp, out: store.__setitem__("norm", out))
        try:
            with torch.enable_grad():
                image_out = parts.encode_image(self.flava, pixel_values, output_attentions=True)
        finally:
            hook.remove()
        with torch.enable_grad():
            text_out = parts.encode_text(self.flava, ids, mask)
            img = parts.image_embedding(self.flava, image_out)
            txt = parts.text_embedding(self.flava, text_out)
            mm_attn, itm = None, None
            if need_mm:
                mm_out = parts.encode_multimodal(self.flava, image_out.hidden_states[-1],
                                                 text_out.hidden_states[-1], mask, output_attentions=True)
                mm_attn = mm_out.attentions
                if self.itm_head is not None:
                    itm = parts.itm_logit(self.itm_head, mm_out)
        return ForwardRecord(
            image_hidden=image_out.hidden_states, image_norm=store["norm"], image_attn=image_out.attentions,
            mm_attn=mm_attn,
            image_embed=img, text_embed=txt, score=(img * txt).sum(-1), itm=itm, grid=self.grid,
            tokens=tokens, words=words, truncated=full_len > ids.shape[1], input_ids=ids, attention_mask=mask,
        )

    def text_embeds(self, texts: list[str]) -> torch.Tensor:
        """Unit text embeddings, each text encoded on its own, [K, E]; no graph kept."""
        enc = self.tokenize(texts)
        with torch.no_grad():
            out = parts.encode_text(self.flava, enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
            return parts.text_embedding(self.flava, out)

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings, [B, E]; no graph kept (occlusion's many forwards)."""
        with torch.no_grad():
            return parts.image_embedding(self.flava, parts.encode_image(self.flava, pixel_values,
                                                                        output_hidden_states=False))

    def word_ablated_embeds(self, rec: ForwardRecord) -> torch.Tensor:
        """Unit embeddings of the caption once per word with that word taken out, [W, E]; no graph.

        The word's tokens become the tokenizer's mask token (FLAVA's text encoder was trained
        with masked language modelling, so a masked word is input it knows); a tokenizer with
        no mask token has the word's tokens removed instead."""
        ids, mask = rec.input_ids, rec.attention_mask
        mask_id = self.processor.tokenizer.mask_token_id
        rows, masks = [], []
        for w in rec.words:
            if mask_id is not None:
                row = ids[0].clone()
                row[w.tokens] = mask_id
                rows.append(row)
                masks.append(mask[0])
            else:
                keep = [t for t in range(ids.shape[1]) if t not in set(w.tokens)]
                pad = ids.shape[1] - len(keep)
                pad_id = self.processor.tokenizer.pad_token_id or 0
                rows.append(torch.cat([ids[0, keep], ids.new_full((pad,), pad_id)]))
                masks.append(torch.cat([mask[0, keep], mask.new_zeros(pad)]))
        if not rows:
            return rec.text_embed.new_zeros((0, rec.text_embed.shape[-1]))
        with torch.no_grad():
            out = parts.encode_text(self.flava, torch.stack(rows), torch.stack(masks))
            return parts.text_embedding(self.flava, out)

    def word_scores(self, rec: ForwardRecord) -> torch.Tensor:
        """Each word in context as a target, [W]: the caption's score minus the score of the
        caption without that word. Gradients flow through the image side only."""
        emb = self.word_ablated_embeds(rec).to(rec.image_embed.dtype)
        with torch.enable_grad():
            return rec.score - (rec.image_embed * emb).sum(-1)

    def phrase_scores(self, rec: ForwardRecord, phrases: list[str]) -> torch.Tensor:
        """Cosine of the pair's image embedding with each phrase encoded as its own text, [K].

        Gradients flow through the image side only: explainers read image activations."""
        emb = self.text_embeds(phrases).to(rec.image_embed.dtype)
        with torch.enable_grad():
            return (rec.image_embed * emb).sum(-1)
