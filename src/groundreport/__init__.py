"""groundreport: text-conditioned grounding maps for multimodal transformers, as a static gallery.

The Python API (``load_model``, ``explain``, ``explain_many``) is imported lazily so that ``import groundreport``
and ``groundreport --help`` stay fast (no torch import until a model is needed).
"""

__version__ = "0.1.0"
__all__ = ["load_model", "explain", "explain_many", "__version__"]


def __getattr__(name):
    if name in ("load_model", "explain", "explain_many", "Explanation"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'groundreport' has no attribute {name!r}")
