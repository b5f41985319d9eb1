"""Grounding metrics: pointing game and box accuracy, with chance baselines."""
