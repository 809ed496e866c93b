"""embeddings: one model interface (the HEAR 2021 API), one adapter per model, DSP
representations, and the on-disk embedding cache."""
from embeddings.errors import EmbeddingError
from embeddings.base import ModelSpec, WeightsStatus, models_dir
from embeddings.registry import REGISTRY, default_models, get_spec, list_models, register

__all__ = [
    "EmbeddingError",
    "ModelSpec",
    "WeightsStatus",
    "models_dir",
    "REGISTRY",
    "default_models",
    "get_spec",
    "list_models",
    "register",
]
