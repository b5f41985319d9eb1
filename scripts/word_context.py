"""Read a word in its phrase or in the whole caption? Scores the image-encoder word maps of a model
under both contexts (``suite.WORD_CONTEXT``), on held-out demo scenes or a grounding JSONL.
Choose on ``--split val``; the test split and other renderers are for reporting
(docs/evaluation.md).

    python scripts/word_context.py demo 150 relevancy,gradcam val
    python scripts/word_context.py demo 300 relevancy,gradcam,occlusion test /tmp/indep/scenes.jsonl
"""

from __future__ import annotations

import sys
import tempfile
import time

from groundreport.commands.evaluate import evaluate
from groundreport.compute import BuildConfig
from groundreport.explainers import suite


def main(model: str, scenes: int, methods: list[str], split: str, captions: str | None) -> None:
    for context in ("caption", "phrase"):
        suite.WORD_CONTEXT = context
        start = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = BuildConfig(captions=captions, dataset="jsonl", split=split, sample=None, model=model, offline=True,
                              device="cpu", methods=methods, report=tmp)
            summary = evaluate(cfg, scenes, progress=False)["summary"]
        print(f"{context:8s} {time.time() - start:.0f} s  phrases "
              + "  ".join(f"{m} {v['pointing']:.3f}" for m, v in summary["methods"].items()) + "  | words "
              + "  ".join(f"{m} {v['pointing']:.3f}" for m, v in summary["words"]["methods"].items()), flush=True)
    suite.WORD_CONTEXT = "phrase"


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4] if len(sys.argv) > 4 else "val",
         sys.argv[5] if len(sys.argv) > 5 else None)
