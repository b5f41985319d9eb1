"""Shift averaging variants, relevancy / Grad-CAM pointing on phrases and content words of held-out
demo scenes (docs/evaluation.md): the plain map ("0"), the plain map blurred like the realignment
("blur0"), 4 half-patch moved copies averaged on the patch grid ("coarse", what --shifts 2 does)
and on the 2x grid ("fine"), and the unmoved copy with the diagonal one only ("diag"). Choose
on val only.

    python scripts/shift_variants.py demo val 100 "" relevancy,gradcam
"""
import json, sys, tempfile
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from groundreport.explainers import make_methods
from groundreport.explainers.suite import Suite
from groundreport.metrics.grounding import score_map
from groundreport.models import load_adapter
from groundreport.words import is_content_word
model, split, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cap = (sys.argv[4] or None) if len(sys.argv) > 4 else None
methods = sys.argv[5].split(",") if len(sys.argv) > 5 else ["relevancy"]
a = load_adapter(model, device="cpu")
if cap is None:
    from groundreport.demo.scenes import heldout_seeds, write_grounding_jsonl
    cap = write_grounding_jsonl(Path(tempfile.mkdtemp()), heldout_seeds(split, n), (2, 4))
cap = Path(cap); rows = [json.loads(x) for x in cap.read_text().splitlines() if x.strip()][:n]
suite = Suite(make_methods(methods))
gh, gw = a.grid
H = a.pixel_values([Image.new("RGB", (8, 8))]).shape[-1]; cell = H // gh; half = cell // 2
shifts = [(0, 0), (0, half), (half, 0), (half, half)]
DIAG = [(0, 0), (half, half)]  # the unmoved copy and the one moved half a patch down and right
hits = {}
def fine(maps_by_shift):  # {shift: [K, gh, gw]} -> [K, 2gh, 2gw]
    out = 0
    for (dy, dx), m in maps_by_shift.items():
        iu = np.minimum((np.arange(2 * gh) + dy // half) // 2, gh - 1)
        iv = np.minimum((np.arange(2 * gw) + dx // half) // 2, gw - 1)
        out = out + m[:, iu][:, :, iv]
    return out / len(maps_by_shift)
for row in rows:
    im = Image.open(cap.parent / row["image"]).convert("RGB"); caption = row["caption"]
    px = a.pixel_values([im])
    spans, pos = [], 0
    for ph in row["phrases"]:
        s = caption.find(ph["text"], pos); spans.append((ph["text"], (s, s + len(ph["text"])))); pos = s + len(ph["text"])
    res = {}
    for dy, dx in shifts:
        p = F.pad(px, (dx, 0, dy, 0), mode="replicate")[..., :px.shape[-2], :px.shape[-1]]
        res[(dy, dx)] = suite.run(a, p, caption, spans, image_size=im.size)
    words = res[(0, 0)].words
    for m in methods:
        ph0 = res[(0, 0)].maps[m].phrases; wd0 = res[(0, 0)].maps[m].words
        phf = fine({k: r.maps[m].phrases for k, r in res.items()}); wdf = fine({k: r.maps[m].words for k, r in res.items()})
        wdc = wdf.reshape(wdf.shape[0], gh, 2, gw, 2).mean((2, 4))
        wdb = fine({k: wd0 for k in res}).reshape(wdf.shape[0], gh, 2, gw, 2).mean((2, 4))
        wdd = fine({k: r.maps[m].words for k, r in res.items() if k in DIAG}).reshape(
            wdf.shape[0], gh, 2, gw, 2).mean((2, 4))
        for k, ph in enumerate(row["phrases"]):
            phc = phf.reshape(phf.shape[0], gh, 2, gw, 2).mean((2, 4))
            phb = fine({k: ph0 for k in res}).reshape(phf.shape[0], gh, 2, gw, 2).mean((2, 4))
            phd = fine({k: r.maps[m].phrases for k, r in res.items() if k in DIAG}).reshape(
                phf.shape[0], gh, 2, gw, 2).mean((2, 4))
            for tag, mp in (("0", ph0), ("fine", phf), ("coarse", phc), ("blur0", phb), ("diag", phd)):
                hits.setdefault((m, "phrase", tag), []).append(score_map(mp[k], im.size, ph["boxes"]).pointing_hit)
            s0, s1 = spans[k][1]
            for i, w in enumerate(words):
                if s0 <= w.span[0] and w.span[1] <= s1 and is_content_word(w.text):
                    for tag, mp in (("0", wd0), ("fine", wdf), ("coarse", wdc), ("blur0", wdb), ("diag", wdd)):
                        hits.setdefault((m, "word", tag), []).append(score_map(mp[i], im.size, ph["boxes"]).pointing_hit)
for k, v in sorted(hits.items()):
    print(k, f"{np.mean(v):.3f}", len(v))
