"""Explainers: one small module per method, one signature (see ``base.Explainer``)."""

from __future__ import annotations

from .attention import ImageAttention, MultimodalAttention
from .base import Explainer
from .gradcam import GradCAM
from .legrad import LeGrad
from .mm_gradcam import MultimodalGradCAM
from .mm_masked import MaskedWordGradCAM
from .occlusion import Occlusion
from .relevancy import ImageRelevancy, MultimodalRelevancy
from .rollout import Rollout

REGISTRY: dict[str, type[Explainer]] = {
    cls.name: cls for cls in (GradCAM, ImageRelevancy, LeGrad, MultimodalRelevancy, MultimodalGradCAM,
                              MaskedWordGradCAM, MultimodalAttention, ImageAttention, Rollout, Occlusion)
}
DEFAULT_METHODS = [n for n, cls in REGISTRY.items() if not cls.expensive]  # fast enough for every pair


def make_methods(names: list[str]) -> list[Explainer]:
    from ..errors import UserError

    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(REGISTRY)}")
    return [REGISTRY[n]() for n in names]
