"""Model adapters: one file per model family."""
