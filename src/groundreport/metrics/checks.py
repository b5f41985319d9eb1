"""``--faithfulness``: the faithfulness and sanity checks of a build or eval run.

Per pair: deletion/insertion curves and confidence drop/increase of every method's caption
and phrase maps, next to a random map and a centre map (metrics/faithfulness.py), and the
caption shuffle: the same image explained once more with another pair's caption
(metrics/sanity.py). Per run: cascading weight randomisation on the first
``RANDOMISATION_PAIRS`` pairs (8 suite runs each on the demo model).

Every target is scored with the contrastive score (the image-text cosine), whatever a method
differentiates: the ITM methods' maps are therefore judged against a score they do not explain.
"""

from __future__ import annotations

import numpy as np

RANDOMISATION_PAIRS = 16
STEPS = 16


class FaithfulnessRun:
    def __init__(self, adapter, suite, captions: list[str], seed: int = 0, steps: int | None = STEPS,
                 randomisation_pairs: int = RANDOMISATION_PAIRS):
        from .sanity import other_captions

        self.adapter, self.suite, self.seed, self.steps = adapter, suite, seed, steps
        self.others = other_captions(captions, seed) if len(set(captions)) > 1 else [None] * len(captions)
        self.randomisation_pairs = randomisation_pairs
        self.kept: list[tuple] = []  # (pixels, caption, phrases) of the first pairs, for randomisation

    def keep(self, pixels, caption: str, phrases, image_size=None) -> None:
        """``image_size`` is accepted for symmetry with ``pair``; randomisation needs no region."""
        if len(self.kept) < self.randomisation_pairs:
            self.kept.append((pixels, caption, phrases))

    def pair(self, index: int, pixels, caption: str, phrases, result, image_size=None) -> dict:
        """The entry's ``checks``: ``{faithfulness: PairFaithfulness.to_json(), caption_shuffle:
        {method: Pearson r of the caption maps for the true and another caption}, other_caption}``."""
        from . import faithfulness as fa
        from .sanity import shuffle_correlations

        k = 1 + len(phrases)
        maps = {n: m.caption[None] if m.phrases is None else np.concatenate([m.caption[None], m.phrases])
                for n, m in result.maps.items()}
        maps.update(fa.baseline_maps(self.adapter.grid, k, seed=self.seed + index))
        texts = self.adapter.text_embeds([caption] + [p for p, _ in phrases])
        out = {"faithfulness": fa.evaluate_pair(self.adapter, pixels, texts, maps, steps=self.steps).to_json()}
        other = self.others[index]
        if other is not None:
            shuffled = self.suite.run(self.adapter, pixels, other, image_size=image_size)
            out["caption_shuffle"] = shuffle_correlations({n: m.caption for n, m in result.maps.items()},
                                                          {n: m.caption for n, m in shuffled.maps.items()})
            out["other_caption"] = other
        return out

    def summary(self, entries: list[dict]) -> dict:
        """``{faithfulness, faithfulness_curves, sanity, checks}`` for the manifest's summary."""
        from . import faithfulness as fa
        from . import sanity as sa

        records = [e["checks"]["faithfulness"] for e in entries if e.get("checks")]
        out = dict(fa.summarise(records) or {})
        shuffle = [e["checks"]["caption_shuffle"] for e in entries if e.get("checks", {}).get("caption_shuffle")]
        # the cascade's stages are written out per family (sanity.flava_stages); others skip it, and say so
        can_randomise = self.adapter.family == "flava" and self.kept
        randomised = sa.randomisation(self.adapter, self.suite.methods, self.kept, seed=self.seed,
                                      caption_target=self.suite.caption_target) if can_randomise else None
        out["sanity"] = sa.summarise(shuffle or None, randomised)
        out["checks"] = {"score": "contrastive cosine for every method (ITM methods are judged against a score "
                                  "they do not explain)",
                         "steps": self.steps, "pairs": len(records), "caption_shuffle_pairs": len(shuffle),
                         "randomisation_pairs": len(self.kept) if can_randomise else 0,
                         "randomisation_note": None if can_randomise else
                         f"weight randomisation is written for FLAVA only; not run for {self.adapter.family}",
                         "caption_blind_above": sa.CAPTION_BLIND_THRESHOLD,
                         "randomisation_flag_above": sa.RANDOMISATION_FLAG_THRESHOLD}
        return out
