"""The offline demo: synthetic scenes and a small FLAVA trained on them."""
