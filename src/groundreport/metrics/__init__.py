"""Metrics: grounding (pointing game, box accuracy, chance baselines), faithfulness (deletion,
insertion, confidence change) and sanity checks (caption shuffle, weight randomisation)."""
