"""Which baseline should a word in context be measured against? Scores the image-encoder word
maps of a demo model on held-out **val** scenes under four rules (docs/evaluation.md):

  caption  the word swapped for each other content word of the caption (the tool's rule)
  mask     the word masked (removed, for a tokenizer with no mask token): the rule before
  kind     swapped for each other demo word of its kind (colours for a colour, shapes for a shape)
  vocab    swapped for each other word of the demo vocabulary

    python scripts/word_baselines.py demo-clip 150 [relevancy,occlusion]
"""

from __future__ import annotations

import sys
import tempfile

from groundreport.demo.scenes import COLOURS, SHAPES
from groundreport.models import base

VOCAB = [*COLOURS, *SHAPES]
RULES = {
    "caption": None,
    "mask": lambda word: [],
    "kind": lambda word: [v for v in (list(COLOURS) if word in COLOURS else SHAPES if word in SHAPES else [])
                          if v != word],
    "vocab": lambda word: [v for v in VOCAB if v != word],
}


def main(model: str, scenes: int, methods: str) -> None:
    from groundreport.commands.evaluate import evaluate
    from groundreport.compute import BuildConfig

    rule_baseline = base.Adapter.word_baseline_embeds
    rows = []
    for name, rule in RULES.items():
        base.Adapter.word_baseline_embeds = lambda self, rec, _r=rule: rule_baseline(self, rec, _r)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = BuildConfig(captions=None, dataset="jsonl", split="val", sample=None, model=model, offline=True,
                              device="cpu", methods=methods.split(","), report=tmp)
            words = evaluate(cfg, scenes, progress=False)["summary"]["words"]
        rows.append((name, {m: v["pointing"] for m, v in words["methods"].items()}, words["words"]))
    base.Adapter.word_baseline_embeds = rule_baseline
    print(f"{model}: pointing on content words of {scenes} val scenes ({rows[0][2]} words)")
    for name, scores, _ in rows:
        print(f"  {name:8s} " + "  ".join(f"{m} {v:.3f}" for m, v in scores.items()))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 150,
         sys.argv[3] if len(sys.argv) > 3 else "relevancy")
