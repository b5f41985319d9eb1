"""Train the bundled demo FLAVA on synthetic scenes, from captions only (no boxes).

Losses (all image-level; boxes are never seen):
- contrastive InfoNCE, image->text over the batch's captions plus one hard negative per
  image (one object's shape changed with its colour kept, or its colour changed with its
  shape kept), text->image over the batch; pairs that truly match (a one-phrase caption
  naming an object that another scene also has) are masked out rather than punished;
- a "phrase" loss: sigmoid multi-label between each image and all 30 phrase texts;
- ITM on the multimodal encoder: the true caption vs its hard negative.

Recipe changes that were tried and did not help (colour-swap negatives, a patch-level phrase
loss, ITM on another image's CLS, hidden patches, minimal pairs, a moving average of the
weights, easy ITM negatives) were removed; docs/demo-model.md keeps their results and names
the last commit with their code (a2c024c).

Runs on CUDA when present (``device``); the random draws stay on the CPU.
"""

from __future__ import annotations

import math
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model_spec import IMAGE_SIZE, PATCH_SIZE
from .scenes import ALL_PHRASES, COLOURS, SHAPES, TRAIN_SEED_BASE, join_phrases, make_scene, phrase_text

PHRASE_INDEX = {p: i for i, p in enumerate(ALL_PHRASES)}


@dataclass
class TrainSettings:
    out_dir: Path
    minutes: float = 30.0  # a cap; with ``steps`` set, the schedule is in steps (reproducible)
    steps: int | None = None
    pool_size: int = 24000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    phrase_caption_rate: float = 0.3
    phrase_loss_weight: float = 1.0
    itm_loss_weight: float = 1.0
    itm_pairs: int = 128  # ITM on this many of the batch's images (their caption and its hard negative each)
    mmm_loss_weight: float = 0.0  # masked multimodal modelling: one colour/shape word of each caption masked,
    # predicted by FLAVA's mmm_text_head from the multimodal encoder (image + the rest of the caption)
    mmm_rows: int = 128  # MMM on this many of the batch's captions (the multimodal pass is a step's dearest part)
    varied_drawing: bool = False  # draw training scenes with varied size, rotation, shade, blur, noise, JPEG
    image_size: int = IMAGE_SIZE  # model input; tried 96 (with 8 px patches, a 12x12 grid)
    patch_size: int = PATCH_SIZE  # ViT patch side in model-input pixels
    family: str = "flava"  # or "clip": the second demo model (two towers; no ITM, no MMM)
    init_from: Path | None = None  # start from these weights (a saved model of the same family), not at random
    image_tower_from: Path | None = None  # FLAVA only: a saved CLIP whose vision tower becomes the image
    # encoder, frozen (demo/transplant.py); the text and multimodal encoders learn against it
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # CUDA when present; the random draws stay on the CPU either way


def _render_chunk(args):
    seeds, sizes, varied = args
    from PIL import Image

    from .augment import vary_drawing

    images, objects = {size: [] for size in sizes}, []
    for s in seeds:
        scene = make_scene(s)
        img = vary_drawing(scene.image, s) if varied else scene.image
        for size in sizes:
            images[size].append(np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8))
        objects.append([(o.colour, o.shape) for o in scene.objects])
    return {size: np.stack(v) for size, v in images.items()}, objects


def render_pools(n: int, sizes, seed_base: int = TRAIN_SEED_BASE, workers: int = 2, varied: bool = False):
    """Scenes resized as the processor does (bicubic) to each of ``sizes``, each scene drawn once:
    ({size: [n, size, size, 3] uint8}, objects). Normalisation happens per batch."""
    chunks = [(list(range(seed_base + i, seed_base + min(i + 1000, n))), tuple(sizes), varied)
              for i in range(0, n, 1000)]
    with ProcessPoolExecutor(workers) as ex:
        parts = list(ex.map(_render_chunk, chunks))
    return {size: np.concatenate([p[0][size] for p in parts]) for size in sizes}, [o for p in parts for o in p[1]]


def render_pool(n: int, image_size: int, seed_base: int = TRAIN_SEED_BASE, workers: int = 2, varied: bool = False):
    pools, objects = render_pools(n, (image_size,), seed_base, workers, varied)
    return pools[image_size], objects


def hard_negative(objs: list[tuple[str, str]], rng: random.Random) -> list[tuple[str, str]]:
    """Change one object: keep its colour and change its shape, or the reverse."""
    present = set(objs)
    k = rng.randrange(len(objs))
    colour, shape = objs[k]
    if rng.random() < 0.5:
        options = [(colour, s) for s in SHAPES if (colour, s) not in present]
    else:
        options = [(c, shape) for c in COLOURS if (c, shape) not in present]
    out = list(objs)
    out[k] = rng.choice(options)
    return out


def multi_hot(objs) -> np.ndarray:
    v = np.zeros(len(ALL_PHRASES), dtype=np.float32)
    for c, s in objs:
        v[PHRASE_INDEX[phrase_text(c, s)]] = 1
    return v


def _mmm_loss(model, image_out, enc, b: int, content_ids, tok, rng):
    """Masked multimodal modelling on the batch's own captions: one colour or shape word of each
    is masked and predicted from the multimodal encoder's output at its position, which can
    only be answered by looking at the object the rest of the caption names."""
    import torch
    import torch.nn.functional as F

    from ..models.flava_parts import encode_multimodal, encode_text

    mask = enc["attention_mask"][:b]
    ids = enc["input_ids"][:b].cpu().clone()  # chosen on the CPU: one copy, not a GPU sync per token
    labels = torch.full_like(ids, -100)
    for i, row in enumerate(ids.tolist()):
        cands = [t for t, v in enumerate(row) if v in content_ids]
        t = cands[rng.randrange(len(cands))]
        labels[i, t] = row[t]
        ids[i, t] = tok.mask_token_id
    ids, labels = ids.to(mask.device), labels.to(mask.device)
    text_out = encode_text(model.flava, ids, mask)
    mm_out = encode_multimodal(model.flava, image_out.hidden_states[-1][:b], text_out.hidden_states[-1], mask)
    text_states = mm_out.last_hidden_state[:, -ids.shape[1]:]  # [mm CLS, image..., text...]: the text rows
    logits = model.mmm_text_head(text_states)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def _check_input(settings: TrainSettings, image_size: int) -> None:
    if image_size != settings.image_size:  # the scene pool and the processor follow settings.image_size
        raise ValueError(f"{settings.init_from} takes {image_size} px input, not {settings.image_size}")


class _FlavaTowers:
    """The demo FLAVA: contrastive and phrase losses on its two encoders, ITM (and MMM when
    weighted) on its multimodal encoder."""

    def __init__(self, settings: TrainSettings, dev, tok):
        from transformers import FlavaForPreTraining

        from .model_spec import demo_config

        self.settings, self.tok = settings, tok
        self.frozen_image = settings.image_tower_from is not None
        if self.frozen_image and settings.init_from:
            raise ValueError("give init_from or image_tower_from, not both")
        # initialised on the CPU, so seeded alike on every device
        if settings.init_from:
            self.model = FlavaForPreTraining.from_pretrained(settings.init_from)
        elif self.frozen_image:
            from transformers import CLIPModel

            from .transplant import flava_on_clip_vision

            self.model = flava_on_clip_vision(CLIPModel.from_pretrained(settings.image_tower_from))
        else:
            self.model = FlavaForPreTraining(demo_config(image_size=settings.image_size,
                                                         patch_size=settings.patch_size))
        self.model.to(dev)
        _check_input(settings, self.model.config.image_config.image_size)
        heads = ("flava.", "itm_head.") + (("mmm_text_head.",) if settings.mmm_loss_weight > 0 else ())
        frozen = ("flava.image_model.", "flava.image_projection.") if self.frozen_image else ()
        for n, p in self.model.named_parameters():
            if n.startswith(frozen):
                p.requires_grad_(False)
        self.params = [p for n, p in self.model.named_parameters() if n.startswith(heads) and not n.startswith(frozen)]
        self.logit_scale = self.model.flava.logit_scale
        self.content_ids = {tok.convert_tokens_to_ids(w) for w in (*COLOURS, *SHAPES)}

    def image(self, pixels):
        from ..models.flava_parts import encode_image, image_embedding

        out = encode_image(self.model.flava, pixels)
        return out, image_embedding(self.model.flava, out)

    def encode_pool(self, pool_t, normalise, chunk: int = 256):
        """A frozen image encoder's last block output for every pool scene, once: [N, 1+P, D] fp16."""
        import torch

        from ..models.flava_parts import encode_image

        self.model.flava.image_model.eval()
        with torch.no_grad():
            return torch.cat([encode_image(self.model.flava, normalise(pool_t[i:i + chunk])).hidden_states[-1].half().cpu()
                              for i in range(0, len(pool_t), chunk)])

    def image_from_states(self, states):
        """What ``image`` returns, from ``encode_pool``'s states of a batch."""
        from types import SimpleNamespace

        from ..models.flava_parts import image_embedding

        out = SimpleNamespace(hidden_states=(states,), last_hidden_state=self.model.flava.image_model.layernorm(states))
        return out, image_embedding(self.model.flava, out)

    def text(self, ids, mask):
        from ..models.flava_parts import encode_text, text_embedding

        out = encode_text(self.model.flava, ids, mask)
        return out, text_embedding(self.model.flava, out)

    def extra_losses(self, image_out, text_out, enc, b: int, rng) -> tuple[object, dict]:
        """ITM on the first ``itm_pairs`` images with their caption (row i) and its hard negative
        (row b + i); MMM when weighted. Returns (weighted loss, {name: tensor} for the log)."""
        import torch
        import torch.nn.functional as F

        from ..models.flava_parts import encode_multimodal, itm_logit

        s, dev = self.settings, image_out.last_hidden_state.device
        m = min(s.itm_pairs, b)
        rows = torch.tensor(list(range(m)) + [b + i for i in range(m)], device=dev)
        img_states = image_out.hidden_states[-1][:m].repeat(2, 1, 1)
        mm_out = encode_multimodal(self.model.flava, img_states, text_out.hidden_states[-1][rows],
                                   enc["attention_mask"][rows])
        itm = itm_logit(self.model.itm_head, mm_out)
        itm_target = torch.cat([torch.ones(m), torch.zeros(m)]).to(dev)
        loss_itm = F.binary_cross_entropy_with_logits(itm, itm_target)
        loss = s.itm_loss_weight * loss_itm
        parts = {"itm": loss_itm, "itm_acc": ((itm > 0).float() == itm_target).float().mean()}
        if s.mmm_loss_weight > 0:
            loss_mmm = _mmm_loss(self.model, image_out, enc, min(s.mmm_rows, b), self.content_ids, self.tok, rng)
            loss = loss + s.mmm_loss_weight * loss_mmm
            parts["mmm"] = loss_mmm
        return loss, parts

    def finish(self, settings: TrainSettings) -> None:
        # what the MMM head learned from, in the saved config: a head trained with weight 0 is
        # random, and explainers must not read it (FlavaAdapter grants "mmm" only when > 0)
        self.model.config.mmm_text_weight = float(settings.mmm_loss_weight)


class _ClipTowers:
    """The demo CLIP: the same contrastive and phrase losses, on its two towers only."""

    frozen_image = False

    def __init__(self, settings: TrainSettings, dev, tok):
        from transformers import CLIPModel

        from .model_spec import demo_clip_config

        self.model = (CLIPModel.from_pretrained(settings.init_from) if settings.init_from else
                      CLIPModel(demo_clip_config(tok, image_size=settings.image_size,
                                                 patch_size=settings.patch_size))).to(dev)
        _check_input(settings, self.model.config.vision_config.image_size)
        self.params = list(self.model.parameters())
        self.logit_scale = self.model.logit_scale

    def image(self, pixels):
        import torch.nn.functional as F

        out = self.model.vision_model(pixel_values=pixels)
        return out, F.normalize(self.model.visual_projection(out.pooler_output), dim=-1)

    def text(self, ids, mask):
        import torch.nn.functional as F

        out = self.model.text_model(input_ids=ids, attention_mask=mask)
        return out, F.normalize(self.model.text_projection(out.pooler_output), dim=-1)

    def extra_losses(self, image_out, text_out, enc, b: int, rng) -> tuple[object, dict]:
        return 0.0, {}

    def finish(self, settings: TrainSettings) -> None:
        pass


FAMILIES = {"flava": _FlavaTowers, "clip": _ClipTowers}
# what `groundreport demo train [--family F]` trains: the bundled models' recipes, and the previous
# demo FLAVA's. "flava" (the bundled FLAVA): 128 px, its image encoder the bundled CLIP's vision tower,
# frozen, with MMM and ITM. "clip" (the bundled CLIP): 128 px in 8 px patches, a 16 x 16 grid; trained
# on one H200 (docs/demo-model.md); on 2 CPU cores its 3,616 steps take hours: raise --minutes.
# "flava-64": the FLAVA shipped until the FLAVA on the CLIP's tower, 64 px, from scratch.
RECIPES = {
    "flava": dict(steps=1500, image_size=128, varied_drawing=True, pool_size=12000, mmm_loss_weight=1.0,
                  mmm_rows=64, itm_pairs=16, image_tower_from="demo-clip"),
    "clip": dict(family="clip", steps=3616, image_size=128, varied_drawing=True),
    "flava-64": dict(steps=2043),
}


def recipe(name: str, **overrides) -> TrainSettings:
    """The settings the ``name`` recipe trains with (``overrides`` on top)."""
    if name not in RECIPES:
        raise ValueError(f"unknown family {name!r}; choose {', '.join(RECIPES)}")
    settings = RECIPES[name] | overrides
    if settings.get("image_tower_from") == "demo-clip":
        from ..models.base import bundled_demo_path

        settings["image_tower_from"] = bundled_demo_path("demo-clip")
    return TrainSettings(**settings)


def train(settings: TrainSettings, log=print) -> dict:
    import torch
    import torch.nn.functional as F

    from ..models.base import resolve_device
    from .model_spec import demo_clip_processor, demo_processor

    if settings.family not in FAMILIES:
        raise ValueError(f"unknown family {settings.family!r}; choose {', '.join(FAMILIES)}")
    dev = resolve_device(settings.device)
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = random.Random(settings.seed)
    processor = (demo_processor if settings.family == "flava" else demo_clip_processor)(settings.image_size)
    tok = processor.tokenizer
    mean = torch.tensor(processor.image_processor.image_mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_processor.image_std, device=dev).view(1, 3, 1, 1)

    t0 = time.time()
    pool, pool_objs = render_pool(settings.pool_size, settings.image_size, workers=settings.threads,
                                  varied=settings.varied_drawing)
    n_pool = len(pool)
    pool_t = torch.from_numpy(pool).permute(0, 3, 1, 2).contiguous()
    log(f"rendered {len(pool)} training scenes in {time.time() - t0:.0f}s; training a demo {settings.family} on {dev}")

    towers = FAMILIES[settings.family](settings, dev, tok)
    model = towers.model
    phrase_scale = torch.nn.Parameter(torch.tensor(math.log(10.0), device=dev))
    phrase_bias = torch.nn.Parameter(torch.tensor(-3.0, device=dev))
    params = towers.params + [phrase_scale, phrase_bias]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    phrase_tokens = tok([with_art for with_art in (join_phrases([p]) for p in ALL_PHRASES)],
                        padding=True, return_tensors="pt").to(dev)

    def normalise(x):
        return (x.to(dev).float() / 255.0 - mean) / std

    def to_pixels(idx):
        x = pool_t[idx]
        return normalise(x.flip(-1) if rng.random() < 0.5 else x)

    states = None
    if towers.frozen_image:  # encoded once, unflipped: no image gradient to train
        t1 = time.time()
        states = towers.encode_pool(pool_t, normalise)
        log(f"encoded the {n_pool} scenes with the frozen image encoder in {time.time() - t1:.0f}s")

    budget = settings.minutes * 60
    start = time.time()
    step = 0
    model.train()
    while True:
        elapsed = time.time() - start
        if elapsed > budget or (settings.steps is not None and step >= settings.steps):
            break
        idx = torch.randint(0, n_pool, (settings.batch_size,))
        pos_objs, neg_objs = [], []
        for i in idx.tolist():
            objs = list(pool_objs[i])
            rng.shuffle(objs)
            if rng.random() < settings.phrase_caption_rate:
                objs = [rng.choice(objs)]
            pos_objs.append(objs)
            neg_objs.append(hard_negative(objs, rng))
        captions = [join_phrases([phrase_text(*o) for o in objs]) for objs in pos_objs + neg_objs]
        enc = tok(captions, padding=True, return_tensors="pt").to(dev)
        if states is not None:
            image_out, img = towers.image_from_states(states[idx].to(dev).float())
        else:
            image_out, img = towers.image(to_pixels(idx))
        text_out, txt = towers.text(enc["input_ids"], enc["attention_mask"])
        b = settings.batch_size
        scale = towers.logit_scale.exp().clamp(max=100)
        # a caption "matches" an image when every object it names is in that image
        scene_hot = torch.from_numpy(np.stack([multi_hot(pool_objs[i]) for i in idx.tolist()]))
        cap_hot = torch.from_numpy(np.stack([multi_hot(o) for o in pos_objs + neg_objs]))
        matches = (cap_hot @ scene_hot.T) == cap_hot.sum(1, keepdim=True)  # [2B texts, B images]
        own = torch.zeros_like(matches)
        own[torch.arange(b), torch.arange(b)] = True
        false_neg = (matches & ~own).to(dev)
        scene_hot = scene_hot.to(dev)
        logits_i2t = (scale * img @ txt.T).masked_fill(false_neg.T, float("-inf"))
        logits_t2i = (scale * txt[:b] @ img.T).masked_fill(false_neg[:b], float("-inf"))
        target = torch.arange(b, device=dev)
        loss_con = (F.cross_entropy(logits_i2t, target) + F.cross_entropy(logits_t2i, target)) / 2

        _, ph = towers.text(phrase_tokens["input_ids"], phrase_tokens["attention_mask"])
        ph_logits = phrase_scale.exp() * img @ ph.T + phrase_bias
        loss_phrase = F.binary_cross_entropy_with_logits(ph_logits, scene_hot)

        loss_extra, parts = towers.extra_losses(image_out, text_out, enc, b, rng)
        loss = loss_con + settings.phrase_loss_weight * loss_phrase + loss_extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        # warm-up, then cosine decay over the step count, or else over the time budget itself
        # (an estimate from the first steps ran out early when those steps were slowed down)
        step += 1
        progress = step / settings.steps if settings.steps is not None else (time.time() - start) / budget
        lr_factor = min(1.0, step / settings.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        for g in opt.param_groups:
            g["lr"] = settings.lr * lr_factor
        opt.step()
        if step == 20 and settings.steps is not None:  # say early when the cap will cut the schedule
            need = elapsed / 19 * settings.steps  # the first step's start-up left out
            if need > budget:
                log(f"warning: at {elapsed / 19:.2f} s a step, {settings.steps} steps need ~{need / 60:.0f} min; "
                    f"the {settings.minutes:g}-minute cap will stop near step {int(budget / need * settings.steps)}: "
                    "raise --minutes, or train on a GPU (--device cuda)")
        if step % 100 == 0:
            extra = "".join(f" {k} {v.item():.3f}" for k, v in parts.items())  # .item() waits for a GPU
            log(f"step {step} ({elapsed / 60:.1f} min) loss {loss.item():.3f} con {loss_con.item():.3f} "
                f"phrase {loss_phrase.item():.3f}{extra} scale {scale.item():.1f}")
    if settings.steps is not None and step < settings.steps:
        log(f"warning: the {settings.minutes:g}-minute cap stopped the run at step {step} of {settings.steps}, "
            "before its schedule ended; these weights are not what the seed and step count give")
    model.eval()
    towers.finish(settings)
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(out)
    processor.save_pretrained(out)
    log(f"saved to {out} after {step} steps, {(time.time() - start) / 60:.1f} min")
    return {"steps": step, "minutes": (time.time() - start) / 60}
