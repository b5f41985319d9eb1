"""Model adapters: one file per model family, chosen from the checkpoint's ``model_type``.

``base`` holds the contract (``ForwardRecord``, ``Layout``, ``Adapter``); ``geometry`` the
region of the image a processor keeps. Adding a model = one adapter file, one line in
``ADAPTERS``, and its tests.
"""

from __future__ import annotations

# model_type -> "module:class", imported only when that family is loaded
ADAPTERS = {
    "flava": "flava:FlavaAdapter",
    "clip": "clip:ClipAdapter",
    "siglip": "siglip:SiglipAdapter",
    "blip": "blip:BlipAdapter",
}


def adapter_class(model_type: str):
    """The adapter class for a config's ``model_type``; an unknown one is a one-line UserError."""
    from importlib import import_module

    from ..errors import UserError

    if model_type not in ADAPTERS:
        raise UserError(f"model type {model_type!r} is not supported; groundreport reads "
                        f"{', '.join(ADAPTERS)} checkpoints")
    module, cls = ADAPTERS[model_type].split(":")
    return getattr(import_module(f".{module}", __name__), cls)


def resolve_adapter(name: str, device: str = "auto", dtype: str = "fp32", offline: bool = False):
    """(adapter class, checkpoint) for a model name, reading only its config: one-line errors
    for a bad name, folder or model type before any weights load."""
    from ..errors import UserError
    from .base import open_checkpoint

    ckpt = open_checkpoint(name, device, dtype, offline)
    try:
        return adapter_class(ckpt.config.model_type), ckpt
    except UserError as e:
        raise UserError(f"model {name!r}: {e}") from None


def load_adapter(name: str, device: str = "auto", dtype: str = "fp32", offline: bool = False):
    """An adapter for a hub id, a local ``save_pretrained`` folder, or ``"demo"``, picked by the
    checkpoint config's ``model_type``."""
    cls, ckpt = resolve_adapter(name, device, dtype, offline)
    return cls.from_checkpoint(ckpt)
