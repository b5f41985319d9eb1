"""The model-neutral contract: the forward record explainers read, and the adapter every model
family implements.

An adapter hides one model family behind: load, preprocess, one forward that keeps in the graph
what explainers need (image attentions, the last image block's normed tokens, the image-text
score, multimodal attentions and the ITM logit where the model has them), the token ``Layout``
of its sequences, and the ``region`` of the original image its patch grid covers. A family
adds one file with a subclass that implements the ``encode_*`` hooks (see docs/architecture.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from ..errors import UserError
from ..words import is_content_word, is_punctuation
from .geometry import check_processor, grid_region

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# What a model can offer; an explainer names what it needs (Explainer.requires) and the suite
# skips it, with a note, on a model without it.
CAPABILITIES = {
    "contrastive": "image-text contrastive score (cosine of projected embeddings)",
    "itm": "image-text matching (ITM) head",
    "mm_self_attention": "multimodal encoder with self-attention over [.., patches, text]",
    "cross_attention": "cross-attention from text tokens to image patches",
    "mmm": "trained masked multimodal modelling head (predicts a masked caption word from image and text)",
}


@dataclass
class Word:
    text: str
    tokens: list[int]  # indices into the text token sequence (0 = the first token, e.g. [CLS])
    span: tuple[int, int]  # character offsets in the caption
    unknown: bool = False  # a piece of it is the tokenizer's unknown token: the model cannot read it

    @property
    def is_punctuation(self) -> bool:
        return is_punctuation(self.text)

    @property
    def is_content(self) -> bool:
        return is_content_word(self.text)


@dataclass(frozen=True)
class Layout:
    """Where explainers read in a record's sequences.

    Image encoder (sequence of N tokens): ``image_cls`` is the summary token's position, or None
    when the model has none (SigLIP: its attention-pooling head's probe is the summary query,
    and ``ForwardRecord.pool_attn`` holds that query's row); ``image_patches`` the patch tokens,
    row-major over the grid.
    Multimodal attention maps (None: the model has none): ``mm_text_rows`` the text-token rows
    (token 0 first), ``mm_patch_cols`` the patch columns. ``mm_default_block`` is the block
    ALBEF/LAVIS-style Grad-CAM reads unless told otherwise (None: the second to last).
    """

    image_cls: int | None
    image_patches: slice
    mm_text_rows: slice | None = None
    mm_patch_cols: slice | None = None
    mm_default_block: int | None = None


@dataclass
class ForwardRecord:
    """Everything explainers read for ONE image-caption pair (batch dimension 1).

    Shapes: N image-encoder tokens (P = gh*gw of them patches, see ``layout``), T text tokens,
    H heads, D hidden size, E projection size; multimodal maps are [1, H, rows, cols] with the
    text rows and patch columns where ``layout`` says (FLAVA: self-attention over
    ``[mm CLS, image CLS, patches, text]``; BLIP: cross-attention, text rows x image columns).
    """

    image_hidden: tuple[torch.Tensor, ...]  # L_img+1 x [1, N, D]; entry l is the input of block l (may be empty)
    image_norm: torch.Tensor  # [1, N, D] output of the last image block's first LayerNorm (Grad-CAM's layer)
    image_attn: tuple[torch.Tensor, ...]  # L_img x [1, H, N, N]
    mm_attn: tuple[torch.Tensor, ...] | None  # L_mm x [1, H, rows, cols]
    image_embed: torch.Tensor  # [1, E], unit norm
    text_embed: torch.Tensor  # [1, E], unit norm
    score: torch.Tensor  # [1] the image-text score (the adapter's ``score_of``; cosine for most models)
    itm: torch.Tensor | None  # [1] ITM match-minus-mismatch logit, when the model has the head
    grid: tuple[int, int]
    tokens: list[str]
    words: list[Word]
    truncated: bool = False
    input_ids: torch.Tensor | None = None  # [1, T] the caption's token ids (word-in-context targets)
    attention_mask: torch.Tensor | None = None  # [1, T]
    layout: Layout | None = None
    region: tuple[float, float, float, float] | None = None  # what the grid covers, original pixels; None: unknown
    pool_attn: torch.Tensor | None = None  # [1, H, 1, N] attention-pooling head's probe row (no-CLS models)

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def mm_text_start(self) -> int:
        return self.layout.mm_text_rows.start or 0

    @property
    def mm_patch_cols(self) -> slice:
        return self.layout.mm_patch_cols

    def word_token_rows(self) -> list[list[int]]:
        return [w.tokens for w in self.words]


@dataclass
class ImageSide:
    """What an adapter's ``encode_image`` returns on the explaining path (all in the graph)."""

    hidden: tuple[torch.Tensor, ...]
    attn: tuple[torch.Tensor, ...]
    norm: torch.Tensor
    embed: torch.Tensor  # [1, E] unit norm
    last: torch.Tensor  # [1, N, D] what a multimodal encoder reads (model-specific)
    pool_attn: torch.Tensor | None = None


# -- loading helpers ------------------------------------------------------------------------------
BUNDLED_MODELS = {"demo": "weights", "demo-clip": "weights-clip"}  # --model name -> folder in demo/


def bundled_demo_path(name: str = "demo") -> Path:
    """The folder of a bundled demo model: ``demo`` (the small FLAVA) or ``demo-clip``."""
    return Path(__file__).resolve().parent.parent / "demo" / BUNDLED_MODELS[name]


def weights_hash(path: Path) -> str:
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


def quiet_hub() -> None:
    """Our progress bars only: no "Loading weights" bar, no hub retry messages (a failed load
    ends in one line of ours instead)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()
    except ImportError:  # an older hub: its messages stay
        pass


class Checkpoint(NamedTuple):
    """A checkpoint whose config has been read: what ``Adapter.from_checkpoint`` builds from."""

    name: str  # as the user gave it (hub id, folder, "demo")
    source: str  # what from_pretrained reads
    config: object
    kwargs: dict  # from_pretrained keyword arguments (local_files_only)
    local: Path | None
    device: torch.device
    dtype: str


def open_checkpoint(name: str, device: str = "auto", dtype: str = "fp32", offline: bool = False) -> Checkpoint:
    """Check the settings and read the checkpoint's config; one-line errors for every bad input."""
    from transformers import AutoConfig

    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; choose fp32, bf16 or fp16")
    dev = resolve_device(device)
    if dtype == "fp16" and dev.type == "cpu":
        raise UserError("--dtype fp16 needs a GPU; on CPU use fp32 or bf16")
    source = str(bundled_demo_path(name)) if name in BUNDLED_MODELS else name
    local = Path(source).expanduser()
    if local.exists() and not (local / "config.json").is_file():
        raise UserError(f"{local}: not a model folder (no config.json; expected the save_pretrained layout)")
    kwargs = {"local_files_only": True} if offline or local.exists() else {}
    quiet_hub()
    src = str(local) if local.exists() else source
    try:
        config = AutoConfig.from_pretrained(src, **kwargs)
    except (OSError, ValueError) as e:
        hint = ("it is not in the local cache (drop --offline to download it)" if offline
                else "check the name, or pass a local folder saved with save_pretrained, or --model demo")
        raise UserError(f"model {name!r} could not be loaded: {hint} ({str(e).splitlines()[0][:160]})") from None
    return Checkpoint(name, src, config, kwargs, local if local.exists() else None, dev, dtype)


# -- the adapter ----------------------------------------------------------------------------------
class Adapter:
    """One model family behind the interface explainers, compute and the API use.

    A subclass sets ``family`` (the config's ``model_type``), ``layout``, ``capabilities`` and
    implements ``_build`` (model and processor from a checkpoint), ``encode_image``,
    ``encode_text``, ``image_embeds`` and, with a multimodal part, ``encode_multimodal``.
    """

    family: str = ""
    capabilities: frozenset[str] = frozenset({"contrastive"})
    attn_implementation: str | None = "eager"  # attention probabilities must come back, in the graph

    def __init__(self, model, processor, device: torch.device, dtype: torch.dtype, model_id: str, revision: str):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.model_id = model_id
        self.revision = revision

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, name: str, device: str = "auto", dtype: str = "fp32", offline: bool = False) -> "Adapter":
        ckpt = open_checkpoint(name, device, dtype, offline)
        if ckpt.config.model_type != cls.family:
            raise UserError(f"model {name!r} is a {ckpt.config.model_type!r} model; {cls.__name__} reads "
                            f"{cls.family!r} models (groundreport's load_adapter picks by model_type)")
        return cls.from_checkpoint(ckpt)

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint) -> "Adapter":
        from transformers import AutoProcessor

        kwargs = dict(ckpt.kwargs)
        if cls.attn_implementation:
            kwargs["attn_implementation"] = cls.attn_implementation
        try:
            model = cls._model_class(ckpt.config).from_pretrained(ckpt.source, dtype=DTYPES[ckpt.dtype], **kwargs)
            processor = AutoProcessor.from_pretrained(ckpt.source, **ckpt.kwargs)
        except (OSError, ValueError) as e:
            raise UserError(f"model {ckpt.name!r} could not be loaded: {str(e).splitlines()[0][:200]}") from None
        check_processor(processor.image_processor, ckpt.name)
        model.to(ckpt.device).eval()
        revision = getattr(ckpt.config, "_commit_hash", None) or (
            weights_hash(ckpt.local) if ckpt.local is not None else "unknown")
        return cls(model, processor, ckpt.device, DTYPES[ckpt.dtype], ckpt.name, revision)

    @classmethod
    def _model_class(cls, config):
        raise NotImplementedError

    def describe(self) -> dict:
        return {"id": self.model_id, "revision": self.revision, "family": self.family,
                "class": type(self.model).__name__, "has_itm": "itm" in self.capabilities,
                "capabilities": sorted(self.capabilities), "grid": list(self.grid), "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", "")}

    # -- preprocessing -------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def pixel_values(self, images) -> torch.Tensor:
        px = self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return px.to(self.device, self.dtype)

    def region(self, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the original image, in its pixels, that the patch grid covers."""
        return grid_region(self.processor.image_processor, image_size)

    padding: str | bool = True  # how captions are padded in a batch (SigLIP: to max_length, as trained)

    def tokenize(self, texts: list[str]):
        # Python (sentencepiece) tokenizers, e.g. SigLIP's, give no offsets: words_of aligns instead
        offsets = {"return_offsets_mapping": True} if getattr(self.tokenizer, "is_fast", False) else {}
        return self.tokenizer(texts, padding=self.padding, truncation=True, max_length=self.max_text_len,
                              return_tensors="pt", return_attention_mask=True, **offsets)

    def words_of(self, caption: str, enc, row: int = 0) -> tuple[list[str], list[Word]]:
        tok = self.tokenizer
        ids = enc["input_ids"][row].tolist()
        n = int(enc["attention_mask"][row].sum())
        tokens = tok.convert_ids_to_tokens(ids[:n])
        if "offset_mapping" not in enc:
            special = set(tok.all_special_tokens)
            words = align_words(caption, tokens, special - {tok.unk_token}, tok.unk_token)
            for w in words:
                w.unknown = tok.unk_token_id is not None and any(ids[t] == tok.unk_token_id for t in w.tokens)
            return tokens, words
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
            # sentencepiece-style tokenizers (Metaspace: "▁red") count the space before a word in
            # its offsets; a word is its characters only
            s, e = w.span
            while s < e and caption[s].isspace():
                s += 1
            while e > s and caption[e - 1].isspace():
                e -= 1
            w.span, w.text = (s, e), caption[s:e]
            w.unknown = unk is not None and any(ids[t] == unk for t in w.tokens)
        return tokens, [w for w in words if w.text]

    # -- the model-specific hooks ------------------------------------------------------------
    def encode_image(self, pixel_values: torch.Tensor) -> ImageSide:
        """The image encoder with attentions and the Grad-CAM layer kept (grad enabled)."""
        raise NotImplementedError

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit text embeddings [B, E] for the contrastive score (graph kept when grad is on)."""
        raise NotImplementedError

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unit image embeddings, [B, E]; no graph kept (occlusion's many forwards)."""
        raise NotImplementedError

    def encode_multimodal(self, image: ImageSide, input_ids, attention_mask):
        """(multimodal attention maps, ITM logit [1] or None); (None, None) without a multimodal part."""
        return None, None

    def masked_words(self, rec: "ForwardRecord", words: list | None = None, contexts: list | None = None):
        """Each word of the caption masked in its own copy, the W copies through the text and
        multimodal encoders with the record's image: ``(multimodal attentions, L x [W, H, S, S],
        in the graph; [W] log-probability of each word's own tokens at its masked positions)``;
        ``words`` a subset of the record's (default: all); ``contexts``, per word, None (its copy
        of the caption) or ``(text, start, end)``: masked in that text (its phrase) instead. Only a model with a trained masked
        multimodal modelling head ("mmm") has it."""
        raise NotImplementedError(f"{type(self).__name__} has no masked multimodal modelling head")

    def score_of(self, image_embed: torch.Tensor, text_embed: torch.Tensor) -> torch.Tensor:
        """The image-text score of unit embeddings, [B]: their cosine unless the model says otherwise."""
        return (image_embed * text_embed).sum(-1)

    # -- forward ---------------------------------------------------------------------------
    def encode_pair(self, pixel_values: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, need_mm: bool = True):
        """Image, text and (``need_mm``) multimodal encoders in the graph, for one pair or a
        batch: ``(image side, unit text embeddings, multimodal attentions, ITM logit)``."""
        with torch.enable_grad():
            image = self.encode_image(pixel_values)
            txt = self.encode_text(ids, mask)
            mm_attn, itm = self.encode_multimodal(image, ids, mask) if need_mm else (None, None)
        return image, txt, mm_attn, itm

    def forward(self, pixel_values: torch.Tensor, caption: str, need_mm: bool = True,
                image_size: tuple[int, int] | None = None) -> ForwardRecord:
        """One forward pass for one pair, keeping attentions and hidden states in the graph.
        ``image_size`` (W, H) of the original image sets the record's ``region``."""
        enc = self.tokenize([caption])
        tokens, words = self.words_of(caption, enc)
        full_len = len(self.tokenizer(caption)["input_ids"])
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        image, txt, mm_attn, itm = self.encode_pair(pixel_values, ids, mask, need_mm)
        return ForwardRecord(
            image_hidden=image.hidden, image_norm=image.norm, image_attn=image.attn, mm_attn=mm_attn,
            image_embed=image.embed, text_embed=txt, score=self.score_of(image.embed, txt), itm=itm, grid=self.grid,
            tokens=tokens, words=words, truncated=full_len > ids.shape[1], input_ids=ids, attention_mask=mask,
            layout=self.layout, region=None if image_size is None else self.region(image_size),
            pool_attn=image.pool_attn,
        )

    def text_embeds(self, texts: list[str]) -> torch.Tensor:
        """Unit text embeddings, each text encoded on its own, [K, E]; no graph kept."""
        enc = self.tokenize(texts)
        with torch.no_grad():
            return self.encode_text(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))

    def word_baseline_embeds(self, rec: ForwardRecord, swap_in=None, only: set[int] | None = None) -> torch.Tensor:
        """What each word is measured against, [W, E] unit-embedding means; no graph.

        Word w's baseline is the mean embedding of the caption with w swapped for each other
        content word of the same caption ("a red circle and a blue square": "red" against "a
        circle circle ...", "a blue circle ...", "a square circle ..."), so its target asks which
        image evidence makes w fit better than the caption's other words. Unknown words, and a
        last word that truncation may have cut short, are not swapped in. With nothing to swap
        in (no other known content word), w is taken out instead: its tokens become the mask
        token (FLAVA's and BLIP's BERT-style encoders know it), or, with no mask token (CLIP,
        SigLIP), are removed and the rest shifted left. Scores are affine in the text
        embedding, so the mean embedding's score is the mean of the swapped captions' scores.

        ``swap_in``: another rule, word text -> the texts to swap in (scripts/word_baselines.py
        compares rules; an empty list means the mask). ``only``: the words to encode baselines for
        (the others' rows are the caption's own embedding, a zero direction)."""
        if not rec.words:
            return rec.text_embed.new_zeros((0, rec.text_embed.shape[-1]))
        real = rec.input_ids[0, : int(rec.attention_mask[0].sum())].tolist()
        # each other content word once, by its text, as its own tokens
        swaps = {text: [real[t] for t in w.tokens] for text, w in self._swap_words(rec).items()}
        rows, owner = [], []
        for i, w in enumerate(rec.words):
            if only is not None and i not in only:
                continue
            head, tail = real[:w.tokens[0]], real[w.tokens[-1] + 1:]
            if swap_in is None:
                alts = [toks for text, toks in swaps.items() if text != w.text.lower()]
            else:
                alts = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in swap_in(w.text.lower())]
            if not alts:
                alts = [[self.tokenizer.mask_token_id] * len(w.tokens)] if self.tokenizer.mask_token_id is not None else [[]]
            for toks in alts:
                row = head + toks + tail
                if len(row) > self.max_text_len:  # a longer swap in a caption at the length limit: keep its end token
                    row = row[:self.max_text_len - 1] + row[-1:]
                rows.append(row)
                owner.append(i)
        if not rows:
            return rec.text_embed.detach().expand(len(rec.words), -1).clone()
        width = max(rec.input_ids.shape[1], *(len(r) for r in rows))
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=rec.input_ids.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=rec.input_ids.device)
        with torch.no_grad():
            emb = torch.cat([self.encode_text(ids[k:k + 256], mask[k:k + 256]) for k in range(0, len(rows), 256)])
        return _mean_by_owner(emb, owner, rec.text_embed.detach()[0].expand(len(rec.words), -1))

    def word_directions(self, rec: ForwardRecord,
                        phrases: list[tuple[str, tuple[int, int] | None]] = ()) -> torch.Tensor:
        """What each word's target measures, [W, E]: its context's embedding minus its baseline's.

        A word inside a phrase of known span is read in that phrase: the phrase's embedding minus
        the mean embedding of the phrase with the word swapped for each other content word of
        the caption ("square" of "a purple square" in "a green square and a purple square":
        "a purple square" against "a purple green", "a purple purple"), so that the word's map
        asks where the evidence for *this* square is, not for any square the caption names. A
        word in no phrase is read in the whole caption (``word_baseline_embeds``). With nothing
        to swap in, the word is masked (the tokenizer's mask token) or, without one, removed.
        Scores are affine in the text embedding: score(image, context) - score(image, baseline)
        is ``word_scores`` of this difference."""
        swaps = list(self._swap_words(rec))
        texts, owner, context = [], [], {}
        for i, (p, a, b) in word_phrases(rec.words, phrases).items():
            w = rec.words[i]
            alts = [t for t in swaps if t != w.text.lower()] or [self.tokenizer.mask_token or ""]
            texts += [" ".join((p[:a] + alt + p[b:]).split()) for alt in alts]
            owner += [i] * len(alts)
            context[i] = p
        outside = set(range(len(rec.words))) - set(context)
        dirs = rec.text_embed.detach() - self.word_baseline_embeds(rec, only=outside).to(rec.text_embed.dtype)
        if not context:
            return dirs
        unique = sorted(set(context.values()))
        emb = torch.cat([self.text_embeds(texts[k:k + 256]) for k in range(0, len(texts), 256)]
                        + [self.text_embeds(unique)]).to(dirs.dtype)
        base = _mean_by_owner(emb[:len(texts)], owner, torch.zeros_like(dirs))
        rows = sorted(context)
        dirs[rows] = emb[len(texts):][[unique.index(context[i]) for i in rows]] - base[rows]
        return dirs

    @staticmethod
    def _swap_words(rec: ForwardRecord) -> dict:
        """The caption's known content words that can be swapped in, by lower-case text, each
        once (its first occurrence), in caption order; a last word that truncation may have cut
        short is left out."""
        cut = rec.words[-1] if rec.truncated else None  # truncation may have cut the last word short
        swaps: dict = {}
        for w in rec.words:
            if w.is_content and not w.unknown and w is not cut:
                swaps.setdefault(w.text.lower(), w)
        return swaps

    def word_scores(self, rec: ForwardRecord, directions: torch.Tensor | None = None) -> torch.Tensor:
        """Each word in context as a target, [W]: score(image, context) - score(image, baseline)
        for ``directions`` = context - baseline embeddings (default: ``word_directions`` in the
        caption). Gradients flow through the image side only."""
        d = (self.word_directions(rec) if directions is None else directions).to(rec.image_embed.dtype)
        with torch.enable_grad():
            return self.score_of(rec.image_embed, d) - self.score_of(rec.image_embed, torch.zeros_like(d))

    def phrase_scores(self, rec: ForwardRecord, phrases: list[str]) -> torch.Tensor:
        """The score of the pair's image with each phrase encoded as its own text, [K].

        Gradients flow through the image side only: explainers read image activations."""
        emb = self.text_embeds(phrases).to(rec.image_embed.dtype)
        with torch.enable_grad():
            return self.score_of(rec.image_embed, emb)


def word_phrases(words: list[Word], phrases) -> dict[int, tuple[str, int, int]]:
    """Each known, non-punctuation word inside a phrase of known span -> (the smallest such
    phrase's text, the word's start and end in that text); a phrase whose text is not the
    caption's at its span is passed over."""
    spans = [(p, s) for p, s in phrases if s is not None]
    out = {}
    for i, w in enumerate(words):
        inside = [(p, s) for p, s in spans if s[0] <= w.span[0] and w.span[1] <= s[1]]
        if not inside or w.unknown or w.is_punctuation:
            continue
        p, s = min(inside, key=lambda ps: ps[1][1] - ps[1][0])  # the smallest phrase around it
        a, b = w.span[0] - s[0], w.span[1] - s[0]
        if p[a:b].lower() == w.text.lower():
            out[i] = (p, a, b)
    return out


def _mean_by_owner(rows: torch.Tensor, owner: list[int], fallback: torch.Tensor) -> torch.Tensor:
    """[N, E] rows, each owned by one of ``len(fallback)`` slots -> [slots, E] the mean of each
    slot's rows; ``fallback``'s row where a slot owns none."""
    out = fallback.to(rows.dtype).clone()
    if owner:
        owner_t = torch.tensor(owner, device=rows.device)
        sums = rows.new_zeros(out.shape).index_add_(0, owner_t, rows)
        counts = torch.bincount(owner_t, minlength=len(out)).unsqueeze(1)
        owned = counts[:, 0] > 0
        out[owned] = sums[owned] / counts[owned].to(rows.dtype)
    return out


def _piece(token: str) -> str:
    """A token's text: word-piece marks (``▁``, ``Ġ``, ``##``, ``</w>``) stripped, lower case."""
    return token.replace("</w>", "").lstrip("▁Ġ").removeprefix("##").lower()


def align_words(caption: str, tokens: list[str], special: set[str], unk: str | None = None) -> list[Word]:
    """Words of ``caption`` from its token strings alone, for tokenizers without offsets.

    Each token's text is found in the lower-cased caption from where the previous token ended,
    skipping only whitespace and punctuation (a tokenizer may drop punctuation, as SigLIP's
    does); an unknown token takes the letters and digits up to the next token's match (one
    character when it starts at punctuation). A token starts a new word after whitespace or a
    skipped stretch, and at punctuation, as fast tokenizers' pre-tokenizers split words."""
    low, pos = caption.lower(), 0
    words: list[Word] = []
    prev_end, prev_punct = None, False
    for t, tok in enumerate(tokens):
        if tok in special:
            continue
        if tok == unk:
            start = pos + len(low[pos:]) - len(low[pos:].lstrip())
            stop = next((low.find(_piece(x), start + 1) for x in tokens[t + 1:]
                         if x not in special and x != unk and _piece(x)), -1)
            end = start
            while end < len(low) and low[end].isalnum() and (stop < 0 or end < stop):
                end += 1
            if end == start < len(low):
                end = start + 1  # a punctuation mark is a word of its own, as pre-tokenizers split them
            if end == start:
                continue
        else:
            piece = _piece(tok)
            start = low.find(piece, pos) if piece else -1
            if start < 0 or not all(c.isspace() or is_punctuation(c) for c in low[pos:start]):
                continue  # not in the caption as written (a normalised form): no span to give it
            end = start + len(piece)
        punct = is_punctuation(caption[start:end])
        if words and start == prev_end and not punct and not prev_punct:
            words[-1].tokens.append(t)
            words[-1].span = (words[-1].span[0], end)
        else:
            words.append(Word("", [t], (start, end)))
        prev_end, prev_punct, pos = end, punct, end
    for w in words:
        w.text = caption[w.span[0]:w.span[1]]
    return words


def last_norm_hook(module, store: dict):
    """Keep ``module``'s output (the Grad-CAM layer) in ``store["norm"]``; returns the handle."""
    return module.register_forward_hook(lambda mod, inp, out: store.__setitem__("norm", out))


def vision_tower_forward(vision, pixel_values: torch.Tensor):
    """A CLIP-style vision tower (CLIP, SigLIP, BLIP) with attentions and hidden states kept,
    and its last block's first LayerNorm output (Grad-CAM's layer). Returns ``(out, norm)``."""
    store: dict = {}
    hook = last_norm_hook(vision.encoder.layers[-1].layer_norm1, store)
    try:
        out = vision(pixel_values=pixel_values, output_attentions=True, output_hidden_states=True)
    finally:
        hook.remove()
    return out, store["norm"]
