"""Does the demo FLAVA's multimodal encoder ground words better when it must read the patches?
An experiment (docs/evaluation.md): from the shipped weights, only the multimodal encoder, the
projections into it and the MMM/ITM heads are trained further, with masked multimodal modelling
and ITM as in demo/train.py, the image CLS hidden from the multimodal encoder in a share of the
rows (``--cls-drop``). Text and image encoders stay frozen, so every image-encoder map is unchanged.
Score the result with ``groundreport eval --model OUT --split val --methods mm-masked``.

    python scripts/mm_finetune.py /tmp/mmft-cls05 --steps 500 --batch 64 --itm 16 --cls-drop 0.5
"""
import argparse, math, random, shutil, time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import FlavaForPreTraining

from groundreport.demo.model_spec import demo_processor
from groundreport.demo.scenes import COLOURS, SHAPES, join_phrases, phrase_text
from groundreport.demo.train import hard_negative, render_pool
from groundreport.models.base import bundled_demo_path, weights_hash
from groundreport.models.flava_parts import encode_image, encode_text, itm_logit



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--pool", type=int, default=6000)
    ap.add_argument("--cls-drop", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--itm", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", default=None)
    a = ap.parse_args()
    torch.manual_seed(a.seed); torch.set_num_threads(2); rng = random.Random(a.seed)
    src = Path(a.init) if a.init else bundled_demo_path("demo")
    model = FlavaForPreTraining.from_pretrained(src); flava = model.flava
    proc = demo_processor(128); tok = proc.tokenizer
    mean = torch.tensor(proc.image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(proc.image_processor.image_std).view(1, 3, 1, 1)
    cache = Path(f"/tmp/mmpool_{a.pool}_{weights_hash(src).split(':')[1]}.pt")  # image states of these weights
    if cache.exists():
        states, objs_all = torch.load(cache)
    else:
        t0 = time.time()
        pool, objs_all = render_pool(a.pool, 128, varied=True)
        pt = torch.from_numpy(pool).permute(0, 3, 1, 2)
        flava.eval()
        with torch.no_grad():
            states = torch.cat([encode_image(flava, (pt[i:i + 256].float() / 255 - mean) / std).hidden_states[-1].half()
                                for i in range(0, len(pt), 256)])
        torch.save((states, objs_all), cache)
        print(f"pool {a.pool} in {time.time() - t0:.0f}s", flush=True)
    heads = ("flava.multimodal_model.", "flava.image_to_mm_projection.", "flava.text_to_mm_projection.",
             "mmm_text_head.", "itm_head.")
    params = []
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(heads))
        if n.startswith(heads):
            params.append(p)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.05)
    content = {tok.convert_tokens_to_ids(w) for w in (*COLOURS, *SHAPES)}

    def mm_forward(img, text_states, text_mask, drop):
        mm = flava.multimodal_model
        ip = flava.image_to_mm_projection(img)
        tp = flava.text_to_mm_projection(text_states)
        b, n_img, _ = ip.shape
        m = torch.cat([torch.ones(b, n_img + 1, dtype=text_mask.dtype), text_mask], 1)
        m[drop, 1] = 0  # the image CLS hidden from the multimodal encoder
        return mm(torch.cat([ip, tp], 1), attention_mask=m, return_dict=True)

    model.train(); flava.image_model.eval()
    t0 = time.time()
    for step in range(1, a.steps + 1):
        idx = torch.randint(0, len(states), (a.batch,))
        pos, neg = [], []
        for i in idx.tolist():
            objs = list(objs_all[i]); rng.shuffle(objs)
            if rng.random() < 0.3:
                objs = [rng.choice(objs)]
            pos.append(objs); neg.append(hard_negative(objs, rng))
        caps = [join_phrases([phrase_text(*o) for o in ob]) for ob in pos]
        enc = tok(caps, padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"].clone(), enc["attention_mask"]
        labels = torch.full_like(ids, -100)
        for i, row in enumerate(ids.tolist()):
            cands = [t for t, v in enumerate(row) if v in content]
            t = cands[rng.randrange(len(cands))]
            labels[i, t] = row[t]; ids[i, t] = tok.mask_token_id
        img = states[idx].float()
        drop = torch.rand(a.batch) < a.cls_drop
        with torch.no_grad():
            ts = encode_text(flava, ids, mask).hidden_states[-1]
        out = mm_forward(img, ts, mask, drop)
        logits = model.mmm_text_head(out.last_hidden_state[:, -ids.shape[1]:])
        loss_mmm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
        sel = labels != -100
        acc = (logits.argmax(-1)[sel] == labels[sel]).float().mean()
        loss = loss_mmm
        if a.itm:
            m = a.itm
            caps2 = caps[:m] + [join_phrases([phrase_text(*o) for o in ob]) for ob in neg[:m]]
            e2 = tok(caps2, padding=True, return_tensors="pt")
            with torch.no_grad():
                ts2 = encode_text(flava, e2["input_ids"], e2["attention_mask"]).hidden_states[-1]
            o2 = mm_forward(img[:m].repeat(2, 1, 1), ts2, e2["attention_mask"], drop[:m].repeat(2))
            itm = itm_logit(model.itm_head, o2)
            tgt = torch.cat([torch.ones(m), torch.zeros(m)])
            loss_itm = F.binary_cross_entropy_with_logits(itm, tgt)
            loss = loss + loss_itm
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        f = min(1.0, step / 50) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = a.lr * f
        opt.step()
        if step % 50 == 0 or step == 1:
            print(f"step {step} {time.time() - t0:.0f}s mmm {loss_mmm.item():.3f} acc {acc.item():.3f}"
                  + (f" itm {loss_itm.item():.3f}" if a.itm else ""), flush=True)
    model.eval()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for f in src.iterdir():
        if f.is_file() and f.suffix != '.safetensors' and f.name != 'config.json':
            shutil.copy(f, out / f.name)
    print("saved", out, f"{(time.time() - t0) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
