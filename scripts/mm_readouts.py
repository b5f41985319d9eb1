"""Which multimodal readout grounds words? An experiment over a grounding JSONL (FLAVA models).

For every content word of every boxed phrase, each readout below gives a patch-grid map; its
pointing hit is scored against the phrase's boxes exactly as `eval` scores it. Used to choose
the default per-word multimodal method on the *val* split of the training renderer's held-out
scenes; the test split and the independent renderer are only reported, never chosen on.

    python scripts/mm_readouts.py --model demo --split val --scenes 200
    python scripts/mm_readouts.py --model demo --captions /tmp/indep/scenes.jsonl

Readouts (T: text-token rows of the multimodal encoder, P: its patch columns, b: a block):
- ``attn-b``: the word's tokens' attention to P at block b, heads averaged (b = "mean": all blocks);
- ``itm-gradcam-b``: attn x relu(d ITM / d attn) at block b, the word's rows (today's mm-gradcam);
- ``mask-attn-b``: the caption with the word masked; the masked row's attention to P at block b;
- ``mask-gradcam-b``: the same masked caption; the MMM head's log-probability of the true word
  at the masked position is the target; attn x relu(grad) at block b, every query row summed;
- ``mask-inputgrad``: that target's gradient x input on the image tokens entering the
  multimodal encoder, summed over channels, ReLU;
- ``mask-chain``: mask-gradcam summed over blocks, read at every image token (image CLS
  included), carried through the image encoder's relevancy matrix for the same target (Chefer
  et al.'s chain for an encoder on top of an encoder); ``mask-imgrel-cls`` / ``-rows``: that
  matrix alone, its CLS row / all rows;
- ``maskc-*``: the same with the word's MMM logit minus the mean logit of the caption's other
  (single-token) content words as the target, the contrast the image-side word target uses.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from groundreport.explainers.base import relevancy_propagate
from groundreport.explainers.gradients import batched_grads
from groundreport.metrics.grounding import score_map
from groundreport.models import load_adapter
from groundreport.models import flava_parts as parts
from groundreport.words import is_content_word


def word_maps(adapter, pixels, caption: str) -> tuple[list, dict[str, np.ndarray]]:
    """(words, {readout: [W, gh, gw]}) for one pair."""
    flava, model = adapter.flava, adapter.model
    enc = adapter.tokenize([caption])
    _, words = adapter.words_of(caption, enc)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    lay, grid = adapter.layout, adapter.grid
    n_w = len(words)
    out: dict[str, np.ndarray] = {}

    def grid_of(rows: torch.Tensor) -> np.ndarray:
        return rows.detach().float().reshape(-1, *grid).numpy()

    with torch.enable_grad():
        image = adapter.encode_image(pixels)
        text_out = parts.encode_text(flava, ids, mask)
        mm = parts.encode_multimodal(flava, image.last, text_out.hidden_states[-1], mask, output_attentions=True)
        itm = parts.itm_logit(adapter.itm_head, mm)
        n_blocks = len(mm.attentions)
        grads = torch.autograd.grad(itm.sum(), mm.attentions, allow_unused=True)
    for b in range(n_blocks):
        a = mm.attentions[b][0].mean(0)[lay.mm_text_rows, lay.mm_patch_cols]  # [T, P]
        out[f"attn-{b}"] = grid_of(torch.stack([a[w.tokens].mean(0) for w in words]))
        g = grads[b]
        if g is not None:
            cam = (mm.attentions[b][0] * g[0].clamp(min=0)).mean(0)[lay.mm_text_rows, lay.mm_patch_cols]
            out[f"itm-gradcam-{b}"] = grid_of(torch.stack([cam[w.tokens].mean(0) for w in words]))
    out["attn-mean"] = np.mean([out[f"attn-{b}"] for b in range(n_blocks)], axis=0)

    # every word masked in its own copy of the caption, all W copies in one batch
    mids = ids.repeat(n_w, 1)
    true = ids[0]
    for i, w in enumerate(words):
        mids[i, w.tokens] = adapter.tokenizer.mask_token_id
    mmask = mask.repeat(n_w, 1)
    with torch.enable_grad():
        img_in = image.last.detach().repeat(n_w, 1, 1).requires_grad_(True)
        t_out = parts.encode_text(flava, mids, mmask)
        mm2 = parts.encode_multimodal(flava, img_in, t_out.hidden_states[-1], mmask, output_attentions=True)
        n_text = ids.shape[1]
        logp = model.mmm_text_head(mm2.last_hidden_state[:, -n_text:]).log_softmax(-1)  # [W, T, V]
        target = torch.stack([logp[i, w.tokens, true[w.tokens]].sum() for i, w in enumerate(words)])
        grads2 = torch.autograd.grad(target.sum(), [*mm2.attentions, img_in])
    text0 = lay.mm_text_rows.start
    for b in range(n_blocks):
        a = mm2.attentions[b].mean(1)  # [W, S, S]
        out[f"mask-attn-{b}"] = grid_of(torch.stack([a[i, [text0 + t for t in w.tokens]][:, lay.mm_patch_cols].mean(0)
                                                    for i, w in enumerate(words)]))
        cam = (mm2.attentions[b] * grads2[b].clamp(min=0)).mean(1)  # [W, S, S]
        out[f"mask-gradcam-{b}"] = grid_of(cam.sum(1)[:, lay.mm_patch_cols])
    out["mask-attn-mean"] = np.mean([out[f"mask-attn-{b}"] for b in range(n_blocks)], axis=0)
    out["mask-gradcam-sum"] = np.sum([out[f"mask-gradcam-{b}"] for b in range(n_blocks)], axis=0)
    gi = (grads2[-1] * img_in).sum(-1).clamp(min=0)  # [W, 1 + P]: image CLS, then patches
    out["mask-inputgrad"] = grid_of(gi[:, 1:])

    # the same target carried on down through the image encoder (Chefer et al.'s chain for an
    # encoder on top of encoders): each image token's multimodal relevance (mask-gradcam-sum over
    # the image columns, image CLS included) times the image encoder's relevancy matrix, whose
    # blocks are weighted by the same target's gradients
    with torch.enable_grad():
        img_graph = image.last.repeat(n_w, 1, 1)
        mm3 = parts.encode_multimodal(flava, img_graph, t_out.hidden_states[-1].detach(), mmask,
                                      output_attentions=True)
        logp3 = model.mmm_text_head(mm3.last_hidden_state[:, -n_text:]).log_softmax(-1)
        target3 = torch.stack([logp3[i, w.tokens, true[w.tokens]].sum() for i, w in enumerate(words)])
        g_img = batched_grads(target3, list(image.attn))  # W x [W, 1, H, N, N]
        g_mm = torch.autograd.grad(target3.sum(), mm3.attentions, retain_graph=True)
        # contrast: the word's logit against the mean logit of the caption's other content words
        # (single-token words), as the image-side word target swaps them in
        logits3 = model.mmm_text_head(mm3.last_hidden_state[:, -n_text:])
        others = sorted({int(true[w.tokens[0]]) for w in words if is_content_word(w.text) and len(w.tokens) == 1})
        tc = []
        for i, w in enumerate(words):
            alt = [o for o in others if o != int(true[w.tokens[0]])]
            row = logits3[i, w.tokens[0]]
            tc.append(row[true[w.tokens[0]]] - (row[alt].mean() if alt else row.logsumexp(-1)))
        target_c = torch.stack(tc)
        gc_img = batched_grads(target_c, list(image.attn))
        gc_mm = torch.autograd.grad(target_c.sum(), mm3.attentions, retain_graph=True)
    vc = sum((a * g.clamp(min=0)).mean(1) for a, g in zip(mm3.attentions, gc_mm)).sum(1)
    out["maskc-gradcam-sum"] = grid_of(vc[:, lay.mm_patch_cols])
    rc_img = relevancy_propagate(image.attn, gc_img)
    n_img0 = rc_img.shape[-1]
    cols0 = slice(lay.mm_patch_cols.start - 1, lay.mm_patch_cols.start - 1 + n_img0)
    out["maskc-chain"] = grid_of(torch.bmm(vc[:, cols0].unsqueeze(1).float(), rc_img)[:, 0, lay.image_patches])
    r_img = relevancy_propagate(image.attn, g_img)  # [W, N, N]
    n_img = r_img.shape[-1]
    img_cols = slice(lay.mm_patch_cols.start - 1, lay.mm_patch_cols.start - 1 + n_img)
    v = sum((a * g.clamp(min=0)).mean(1) for a, g in zip(mm3.attentions, g_mm)).sum(1)[:, img_cols]  # [W, N]
    chain = torch.bmm(v.unsqueeze(1).float(), r_img)[:, 0, lay.image_patches]
    out["mask-chain"] = grid_of(chain)
    out["mask-imgrel-cls"] = grid_of(r_img[:, lay.image_cls, lay.image_patches])
    out["mask-imgrel-rows"] = grid_of(r_img[:, :, lay.image_patches].sum(1))
    out["mask-chain-noimgcls"] = grid_of(torch.bmm(v[:, 1:].unsqueeze(1).float(),
                                                   r_img[:, lay.image_patches])[:, 0, lay.image_patches])
    return words, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--captions", type=Path, help="a grounding JSONL; default: held-out demo scenes")
    ap.add_argument("--split", default="val")
    ap.add_argument("--scenes", type=int, default=200)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    adapter = load_adapter(args.model, device="cpu")
    if args.captions is None:
        from groundreport.demo.scenes import heldout_seeds, write_grounding_jsonl

        tmp = Path(tempfile.mkdtemp())
        args.captions = write_grounding_jsonl(tmp, heldout_seeds(args.split, args.scenes), (2, 4))
    rows = [json.loads(x) for x in args.captions.read_text().splitlines() if x.strip()][:args.scenes]
    hits: dict[str, list[bool]] = defaultdict(list)
    kinds: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    from groundreport.demo.scenes import COLOURS

    for row in rows:
        image = Image.open(args.captions.parent / row["image"]).convert("RGB")
        caption = row["caption"]
        words, maps = word_maps(adapter, adapter.pixel_values([image]), caption)
        pos = 0
        for ph in row["phrases"]:
            start = caption.find(ph["text"], pos)
            if start < 0:
                continue
            end = start + len(ph["text"])
            pos = end
            for i, w in enumerate(words):
                if start <= w.span[0] and w.span[1] <= end and is_content_word(w.text):
                    kind = "colour" if w.text in COLOURS else "shape"
                    for name, m in maps.items():
                        hit = score_map(m[i], image.size, ph["boxes"]).pointing_hit
                        hits[name].append(hit)
                        kinds[name][kind].append(hit)
    n = len(next(iter(hits.values())))
    print(f"{len(rows)} scenes, {n} content words ({args.captions})")
    print(f"{'readout':22s} pointing  colours  shapes")
    for name in sorted(hits, key=lambda k: -np.mean(hits[k])):
        print(f"{name:22s} {np.mean(hits[name]):.3f}     {np.mean(kinds[name]['colour']):.3f}    "
              f"{np.mean(kinds[name]['shape']):.3f}")


if __name__ == "__main__":
    main()
