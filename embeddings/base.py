"""The one model interface of the project: the HEAR 2021 API.

Every model GEAR runs is a *HEAR module*: an importable module exposing

``load_model(model_file_path: str = "") -> model``
    ``model`` has int attributes ``sample_rate`` (Hz), ``scene_embedding_size`` and
    ``timestamp_embedding_size``.
``get_scene_embeddings(audio, model) -> Tensor``
    ``audio`` is a float32 ``torch.Tensor`` of shape ``(n_sounds, n_samples)`` in [-1, 1]
    at ``model.sample_rate``; returns float32 ``(n_sounds, scene_embedding_size)``.
``get_timestamp_embeddings(audio, model) -> (Tensor, Tensor)``
    embeddings float32 ``(n_sounds, n_timestamps, timestamp_embedding_size)`` and
    timestamps in milliseconds ``(n_sounds, n_timestamps)``, frame centres.

The adapters in this package (one module per model) follow that contract, and so does any
third-party HEAR 2021 submission. :class:`ModelSpec` describes one registered model:
where its code lives, where its weights come from, and whether it can run here.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Callable, Optional, Tuple, Union

from embeddings.errors import EmbeddingError

__all__ = [
    "EmbeddingError",
    "ModelSpec",
    "WeightsStatus",
    "models_dir",
    "HEAR_SAMPLE_RATES",
]

#: Sample rates allowed by the HEAR 2021 rules.
HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)  # those the official hear-validator accepts

#: Environment variable naming the directory where model files are looked up.
MODELS_DIR_ENV = "GEAR_MODELS_DIR"


def models_dir(path: Optional[os.PathLike] = None) -> Optional[Path]:
    """Directory holding model files (layout as ``shared/models/``: one folder per model).

    Parameters
    ----------
    path : path-like, optional
        Explicit directory (``--models-dir`` on the CLI). Takes precedence over the
        ``GEAR_MODELS_DIR`` environment variable.

    Returns
    -------
    Path or None
        ``None`` when neither is set.

    Raises
    ------
    EmbeddingError
        If the directory given does not exist.
    """
    chosen = path if path is not None else os.environ.get(MODELS_DIR_ENV) or None
    if chosen is None:
        return None
    chosen = Path(chosen).expanduser()
    if not chosen.is_dir():
        source = "models_dir" if path is not None else MODELS_DIR_ENV
        raise EmbeddingError(
            f"{source}={str(chosen)!r} is not a directory. Point it at a folder laid out like "
            f"shared/models/ (one sub-folder per model, e.g. yamnet/), or unset it."
        )
    return chosen


@dataclasses.dataclass(frozen=True)
class WeightsStatus:
    """Whether a model's weights are present on this machine, and where they were found."""

    available: bool
    where: str  #: a path, "in the <pkg> wheel", or why they are missing
    real: bool = True  #: False for weights that are random by design (e.g. the naive baseline)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes
    ----------
    name : str
        Registry name used on the CLI and in result files (``naive``, ``crepe-full``, ...).
    module : str
        Import path of the HEAR module implementing it (``embeddings.naive``,
        ``hearbaseline.naive``, ...).
    description : str
        One line for ``gear models`` and the report.
    requires : tuple of str
        Import names that must be importable for the model to run.
    find_weights : callable(models_dir) -> WeightsStatus
        Locates the weights file; its result's ``where`` is passed to ``load_model``
        when it is a path.
    default : bool
        Part of the default ``gear run`` when it can run here.
    load_kwargs : tuple of (str, object)
        Extra keyword arguments of the adapter's ``load_model``.
    layers : tuple of str, or callable(weights_path) -> tuple of str
        Named layers of the loaded model that ``gear run --layers`` can probe, ordered by depth
        (first = closest to the audio): each a path in the model's ``taps`` (identity modules
        the adapter's forward pass runs its intermediate outputs through, in GEAR's layout) or a
        sub-module path (``model.get_submodule(name)``). Empty: the model has no probed layers.
        A callable reads them from the weights' configuration at the path ``find_weights`` gives
        (checkpoints of one architecture differ in depth); see :meth:`layer_names`.
    layer_branches : bool
        The model joins several networks: a layer's branch is its name up to the first ``"."``
        and its depth counts within that branch (GURA: ``hubert.*``, ``wav2vec2.*``, ``crepe.*``).
    """

    name: str
    module: str
    description: str
    requires: Tuple[str, ...] = ()
    find_weights: Optional[Callable[[Optional[Path]], WeightsStatus]] = None
    default: bool = False
    load_kwargs: Tuple[Tuple[str, object], ...] = ()
    layers: Union[Tuple[str, ...], Callable[[Path], Tuple[str, ...]]] = ()
    layer_branches: bool = False

    def layer_names(self, models_dir_path: Optional[Path] = None) -> Tuple[str, ...]:
        """The probed layers, by depth (:attr:`layers`, read from the weights when it is callable).

        Raises
        ------
        EmbeddingError
            The layers depend on weights that are not on this machine, or cannot be read.
        """
        if not callable(self.layers):
            return tuple(self.layers)
        status = self.weights(models_dir_path)
        if not status.available:
            raise EmbeddingError(f"model {self.name!r}: its layers are read from its weights, which are not "
                                 f"here ({status.where})")
        return tuple(self.layers(Path(status.where)))

    def missing_requirements(self) -> Tuple[str, ...]:
        """Import names in :attr:`requires` (and the adapter module) that cannot be found here."""
        missing = []
        for name in self.requires + (self.module,):
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(name)
        return tuple(missing)

    def weights(self, models_dir_path: Optional[Path] = None) -> WeightsStatus:
        if self.find_weights is None:
            return WeightsStatus(True, "none needed (deterministic signal processing)", real=True)
        return self.find_weights(models_dir_path)

    def can_run(self, models_dir_path: Optional[Path] = None) -> Tuple[bool, str]:
        """``(True, where-weights-are)`` or ``(False, why-not)``."""
        missing = self.missing_requirements()
        if missing:
            return False, "missing Python packages: " + ", ".join(missing)
        status = self.weights(models_dir_path)
        if not status.available:
            return False, status.where
        return True, status.where

    def import_module(self) -> ModuleType:
        return importlib.import_module(self.module)

    def load(self, models_dir_path: Optional[Path] = None):
        """Import the HEAR module and call its ``load_model``. Returns ``(module, model)``."""
        ok, where = self.can_run(models_dir_path)
        if not ok:
            raise EmbeddingError(f"model {self.name!r} cannot run on this machine: {where}")
        module = self.import_module()
        # Weights that ship inside a wheel are found by the adapter itself: pass a path only
        # when the weights are a file or folder on disk.
        path = where if (self.find_weights is not None and Path(where).exists()) else ""
        return module, module.load_model(path, **dict(self.load_kwargs))
