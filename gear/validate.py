"""Load and validate a HEAR 2021 submission before GEAR stores anything it computed.

A HEAR 2021 submission is a pip-installable module (see :mod:`embeddings.base`). GEAR loads
it by import name and checks it the way the HEAR validator (``hear-validator``) does, then
runs the GEAR-specific checks:

1. the module imports; ``load_model``, ``get_scene_embeddings`` and
   ``get_timestamp_embeddings`` exist and are callable; ``load_model`` accepts the weights
   path (or no argument when there are no weights);
2. the model is a ``torch.nn.Module`` or a ``tf.Module`` (the official validator accepts
   nothing else) with int attributes ``sample_rate`` (one of 16 000, 22 050, 44 100,
   48 000 Hz), ``scene_embedding_size`` and ``timestamp_embedding_size``;
3. ``get_timestamp_embeddings`` on two sounds of white noise of 1.07 s, 1.98 s and 4.0 s
   returns float32 embeddings ``(n_sounds, n_timestamps, timestamp_embedding_size)`` and
   timestamps ``(n_sounds, n_timestamps)`` in milliseconds: increasing, regular (no hop
   deviating by more than 1e-3 ms from the mean hop, as the official validator checks), inside the audio, and reaching to within
   two hops of its end; no NaN/Inf;
4. ``get_scene_embeddings`` on four sounds of 2.74 s of white noise returns float32
   ``(n_sounds, scene_embedding_size)``; no NaN/Inf;
5. (GEAR) the tones of the GEAR dataset, synthesised at the model's own rate, give valid
   scene embeddings; tones shorter than the model's shortest window are zero-padded by the
   rule of :func:`find_effective_duration`;
6. (GEAR) an embedding does not depend on which other sounds share the call
   (:func:`check_batch_dependence`; a :class:`BatchDependenceWarning` otherwise).

Every failure raises :class:`SubmissionError` (a :class:`~synth.errors.ParameterError`) whose
message names the function, what was expected, what came back and the likely fix. The soft
checks of the HEAR validator (hop above 50 ms, first timestamp after one hop, last
timestamp more than one hop before the end) issue :class:`HEARComplianceWarning`.

Weights are only ever passed, as a path, to the submission's own ``load_model``: GEAR
itself never unpickles a file.

Input tensors are ``torch.Tensor`` (float32, on the CPU), or ``tf.Tensor`` when the model
is a ``tf.Module`` (as the HEAR validator does). Outputs must be float32 tensors of the
model's framework, timestamps included: the official validator compares the embeddings'
dtype with ``torch.float32`` (``tf.float32``) and takes ``torch.diff`` of the timestamps, so a
NumPy array, or a TensorFlow tensor from a torch model, is not HEAR-compliant and is rejected
(``SubmissionError`` of kind ``"type"``) rather than converted.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import logging
import numbers
import re
import os
import sys
import traceback
import types
import warnings
from types import ModuleType
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from embeddings.base import HEAR_SAMPLE_RATES
from gear.errors import ParameterError, SubmissionError

__all__ = [
    "SubmissionError",
    "BatchDependenceWarning",
    "HEARComplianceWarning",
    "ValidationReport",
    "Padding",
    "BatchDependence",
    "PAD_LADDER_S",
    "HEAR_FUNCTIONS",
    "import_submission",
    "load_submission",
    "check_model",
    "call_scene_embeddings",
    "call_timestamp_embeddings",
    "validate_submission",
    "render_tones",
    "find_effective_duration",
    "check_batch_dependence",
]

log = logging.getLogger(__name__)

#: The three functions of the HEAR 2021 API.
HEAR_FUNCTIONS = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
#: Total durations (s) tried, in order, when the native tone is too short for a model.
PAD_LADDER_S = (0.1, 0.25, 0.5, 1.0, 2.0)
#: White-noise durations (s) of the HEAR validator's timestamp and scene checks.
TIMESTAMP_TEST_DURATIONS_S = (1.07, 1.98, 4.0)
SCENE_TEST_DURATION_S = 2.74
#: Largest deviation (ms) of one hop from the mean hop (the HEAR validator's limit).
MAX_HOP_DEVIATION_MS = 1e-3  # the official hear-validator's test (its message says 1 ms; its code checks 1e-3 ms)
#: Hop (ms) above which the HEAR validator warns.
MAX_SUGGESTED_HOP_MS = 50.0
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class BatchDependenceWarning(UserWarning):
    """A submission's embedding of a sound depends on the other sounds in the call."""


class HEARComplianceWarning(UserWarning):
    """A soft check of the HEAR validator failed (the submission still runs in GEAR)."""


@dataclasses.dataclass
class ValidationReport:
    """What :func:`validate_submission` found.

    Attributes
    ----------
    module : str
        Import name.
    sample_rate : int
        Hz.
    scene_embedding_size, timestamp_embedding_size : int
    timestamp_hop_ms : float or None
        Mean hop of the timestamps on the longest test sound (None with one timestamp).
    framework : str
        ``"torch"`` or ``"tensorflow"``: the kind of tensor the submission is fed.
    warnings : list of str
        Soft findings (also issued as :class:`HEARComplianceWarning`).
    """

    module: str
    sample_rate: int
    scene_embedding_size: int
    timestamp_embedding_size: int
    timestamp_hop_ms: Optional[float]
    framework: str
    warnings: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Padding:
    """How the GEAR tones are fed to a model: native length, or zero-padded symmetrically.

    Attributes
    ----------
    sample_rate : int
        The model's rate (Hz); tones are synthesised at it.
    native_n_samples : int
        Samples of a tone as synthesised.
    n_samples : int
        Samples fed to the model (``>= native_n_samples``).
    pad_left, pad_right : int
        Zeros before and after the tone (``pad_left = (n_samples - native) // 2``).
    reason : str
        Why this length was chosen.
    """

    sample_rate: int
    native_n_samples: int
    n_samples: int
    pad_left: int
    pad_right: int
    reason: str = ""

    @property
    def native_duration_s(self) -> float:
        return self.native_n_samples / self.sample_rate

    @property
    def duration_s(self) -> float:
        """Effective duration (s) of the audio fed to the model."""
        return self.n_samples / self.sample_rate

    @property
    def padded(self) -> bool:
        return self.n_samples != self.native_n_samples

    @classmethod
    def to_length(cls, sample_rate: int, native_n_samples: int, n_samples: int, reason: str = "") -> "Padding":
        if n_samples < native_n_samples:
            raise ParameterError(
                f"n_samples={n_samples} is shorter than the tone ({native_n_samples} samples); "
                f"GEAR pads tones, it never cuts them"
            )
        left = (n_samples - native_n_samples) // 2
        return cls(int(sample_rate), int(native_n_samples), int(n_samples), left, n_samples - native_n_samples - left, reason)

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(duration_s=self.duration_s, native_duration_s=self.native_duration_s)
        return out


@dataclasses.dataclass(frozen=True)
class BatchDependence:
    """Result of :func:`check_batch_dependence`.

    Attributes
    ----------
    max_difference : float
        Largest distance between the two embeddings of a sound, divided by the median
        distance between the embeddings of different sounds (``inf`` when one call gave
        NaN/Inf).
    tolerance : float
    batch_dependent : bool
        ``max_difference > tolerance``.
    indices : tuple of int
        The tones that were embedded twice.
    """

    max_difference: float
    tolerance: float
    batch_dependent: bool
    indices: Tuple[int, ...]

    def message(self, name: str) -> str:
        return (
            f"{name}: the embedding of a sound depends on the other sounds in the same call "
            f"(tones {list(self.indices)} embedded in two batch compositions differ by "
            f"{self.max_difference:.3g} x the median distance between sounds; tolerance "
            f"{self.tolerance:g}). The submission probably normalises over the batch (e.g. a "
            f"BatchNorm layer left in training mode, or a per-batch standardisation): its "
            f"GEAR scores then depend on --batch-size. Fix the submission (call model.eval(), "
            f"normalise per sound), or compare models at the same --batch-size"
        )


# ----------------------------------------------------------------------------- loading
def _check_module_name(module_name) -> str:
    if not isinstance(module_name, str) or not _MODULE_NAME.match(module_name):
        raise SubmissionError(
            "import",
            "a Python import name such as 'hearbaseline.naive'",
            repr(module_name),
            "pass the name you would write after `import` (not a file path)", kind="import",
        )
    return module_name


def _positional_mel_shim(module: ModuleType) -> Optional[str]:
    """Let ``module``'s own ``librosa.filters.mel(sr, n_fft, ...)`` calls run on librosa >= 0.10.

    Why here, and why this small: ``hearbaseline.naive`` (HEAR 2021's naive baseline, and the
    code many 2021 submissions copied) builds its mel filters with
    ``librosa.filters.mel(self.sample_rate, n_fft=..., n_mels=...)``. librosa 0.10 made every
    argument of ``mel`` keyword-only, so that constructor raises ``TypeError`` on any librosa
    that runs with NumPy 2. We cannot pin an old librosa (it needs NumPy 1), must not edit
    the user's installed package, and must not patch ``librosa.filters.mel`` process-wide
    (every other library would see a changed librosa). So GEAR rebinds the name ``librosa``
    *in that one module's namespace* to a thin proxy whose ``filters.mel`` turns the legacy
    positional arguments (``sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype``: the order of
    librosa 0.8/0.9) into keywords and calls the real function; every other attribute is
    librosa's own. The numbers are those of the original call. Nothing is done when the
    installed librosa still takes positional arguments.
    """
    real = getattr(module, "librosa", None)
    if not isinstance(real, ModuleType) or getattr(real, "__name__", "") != "librosa":
        return None
    mel = real.filters.mel
    try:
        parameter = inspect.signature(mel).parameters.get("sr")
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return None
    if parameter is None or parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
        return None
    legacy_order = ("sr", "n_fft", "n_mels", "fmin", "fmax", "htk", "norm", "dtype")

    def mel_accepting_positional(*args, **kwargs):
        if len(args) > len(legacy_order):
            raise TypeError(f"mel() takes at most {len(legacy_order)} positional arguments")
        for key, value in zip(legacy_order, args):
            if key in kwargs:
                raise TypeError(f"mel() got multiple values for argument {key!r}")
            kwargs[key] = value
        return mel(**kwargs)

    filters = types.ModuleType(f"{real.filters.__name__}[gear-compat]")
    filters.__dict__.update(real.filters.__dict__)
    filters.mel = mel_accepting_positional
    proxy = types.ModuleType(f"librosa[gear-compat for {module.__name__}]")
    proxy.__dict__.update({k: v for k, v in real.__dict__.items() if not k.startswith("__") or k == "__version__"})
    proxy.__getattr__ = lambda name: getattr(real, name)  # lazily loaded librosa submodules
    proxy.filters = filters
    module.librosa = proxy
    return "librosa.filters.mel accepts positional arguments (librosa >= 0.10 compatibility)"


#: Compatibility shims applied when importing known submissions: (module-name prefix, shim).
#: Each shim changes only the imported module's own namespace and returns a description
#: (recorded with the results) or None when it did not apply.
COMPAT_SHIMS = (("hearbaseline", _positional_mel_shim),)


def _apply_shims(module: ModuleType) -> List[str]:
    applied = getattr(module, "__gear_compat__", None)
    if applied is not None:
        return list(applied)
    applied = []
    for prefix, shim in COMPAT_SHIMS:
        if module.__name__ == prefix or module.__name__.startswith(prefix + "."):
            note = shim(module)
            if note:
                applied.append(note)
    try:
        module.__gear_compat__ = tuple(applied)
    except (AttributeError, TypeError):  # pragma: no cover - read-only module objects
        pass
    return applied


def import_submission(module_name: str) -> ModuleType:
    """Import a HEAR submission by name and check that its three functions exist.

    Parameters
    ----------
    module_name : str
        Import name (``hearbaseline.naive``).

    Returns
    -------
    module
        With the compatibility shims of :data:`COMPAT_SHIMS` applied (listed in its
        ``__gear_compat__`` attribute).

    Raises
    ------
    SubmissionError
        The module is not installed, fails while importing, or lacks a HEAR function.
    """
    _check_module_name(module_name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        if missing == module_name or module_name.startswith(missing + "."):
            fix = f"install the submission's package (pip install ...) in this environment, or check the spelling of {module_name!r}"
        else:
            fix = f"{module_name!r} needs the package {missing!r}: install it (pip install {missing.split('.')[0]})"
        raise SubmissionError(f"import {module_name}", "an importable module", f"ModuleNotFoundError: {error}", fix, kind="import") from error
    except SyntaxError as error:  # the submission's own source cannot be parsed
        where = f"{error.filename}, line {error.lineno}" if error.filename else module_name
        raise SubmissionError(
            f"import {module_name}",
            "the module's source to be valid Python",
            f"{type(error).__name__}: {error.msg} ({where})",
            f"fix the syntax error at {where} (shown in the submission's traceback)",
            kind="import", user_traceback=user_traceback(error),
        ) from error
    except Exception as error:  # the submission's own import-time code failed
        raise SubmissionError(
            f"import {module_name}",
            "the module to import cleanly",
            f"{type(error).__name__}: {error}",
            "the error was raised by the submission's import-time code: read the submission's traceback "
            "(printed with this message) for the line to fix",
            kind="import", user_traceback=user_traceback(error),
        ) from error
    for function in HEAR_FUNCTIONS:
        value = getattr(module, function, None)
        if value is None:
            raise SubmissionError(
                f"{module_name}.{function}",
                f"a function {function!r} (the HEAR 2021 API has {', '.join(HEAR_FUNCTIONS)})",
                "no such attribute",
                f"define {function} at the top level of {module_name!r}, or pass the module that does "
                f"(e.g. 'package.submodule')", kind="attribute",
            )
        if not callable(value):
            raise SubmissionError(
                f"{module_name}.{function}", "a callable", f"a {type(value).__name__}",
                f"make {function} a function", kind="attribute",
            )
    _apply_shims(module)
    return module


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_model_type(model, where: str) -> str:
    """``"torch"`` or ``"tensorflow"``; a :class:`SubmissionError` (kind ``"load"``) for any other model."""
    framework = _framework(model)
    if framework is None:
        kind = type(model)
        raise SubmissionError(
            where,
            "a torch.nn.Module or a tf.Module (the only model types the official HEAR 2021 validator accepts)",
            f"a {kind.__module__}.{kind.__qualname__}, which is not HEAR-compliant",
            "derive the model class from torch.nn.Module (call super().__init__() first; a TFLite, ONNX or "
            "NumPy runtime can stay an attribute of it) or from tf.Module",
            kind="load",
        )
    return framework


def check_model(model, *, module_name: str = "submission") -> Dict[str, int]:
    """Check the model type and the model attributes of the HEAR API.

    Returns
    -------
    dict
        ``sample_rate``, ``scene_embedding_size``, ``timestamp_embedding_size`` (ints).

    Raises
    ------
    SubmissionError
        The model is neither a ``torch.nn.Module`` nor a ``tf.Module`` (kind ``"load"``); an
        attribute is missing, not an int, not positive, or the rate is not a HEAR rate.
    """
    where = f"{module_name}.load_model"
    _check_model_type(model, where)
    out = {}
    fixes = {
        "sample_rate": "set model.sample_rate to the rate (Hz) the model expects, e.g. 16000",
        "scene_embedding_size": "set model.scene_embedding_size to the length of one scene embedding",
        "timestamp_embedding_size": "set model.timestamp_embedding_size to the length of one timestamp embedding",
    }
    for name, fix in fixes.items():
        if not hasattr(model, name):
            raise SubmissionError(
                where, f"the returned model to have an int attribute {name!r}",
                f"a {type(model).__name__} without {name!r}", fix, kind="attribute",
            )
        value = getattr(model, name)
        if not _is_int(value):
            raise SubmissionError(
                where, f"model.{name} to be an int", f"{value!r} ({type(value).__name__})",
                f"store it as a Python int (e.g. model.{name} = int({value!r}))" if isinstance(value, numbers.Real) else fix, kind="attribute",
            )
        if value <= 0:
            raise SubmissionError(where, f"model.{name} > 0", repr(value), fix, kind="attribute")
        out[name] = int(value)
    if out["sample_rate"] not in HEAR_SAMPLE_RATES:
        raise SubmissionError(
            where,
            f"model.sample_rate in {list(HEAR_SAMPLE_RATES)} Hz (the HEAR 2021 rates)",
            f"{out['sample_rate']}",
            "resample inside the submission: declare one of the HEAR rates and convert the audio "
            "to the model's internal rate in get_*_embeddings", kind="sample-rate",
        )
    return out


def load_submission(module_name: str, weights: Optional[str] = None):
    """Import a submission and call its ``load_model``.

    Parameters
    ----------
    module_name : str
        Import name.
    weights : str or path-like, optional
        Passed as a string to the submission's ``load_model`` (GEAR never opens it itself).
        Without it, ``load_model()`` is called with no argument, as the HEAR validator does.

    Returns
    -------
    (module, model)

    Raises
    ------
    SubmissionError
    """
    module = import_submission(module_name)
    where = f"{module_name}.load_model"
    if weights is None and _required_arguments(module.load_model):
        raise SubmissionError(
            where, "load_model() to work without a weights file",
            f"a load_model that requires {', '.join(_required_arguments(module.load_model))}",
            "this submission needs its weights: pass --weights PATH (weights=...)", kind="load",
        )
    try:
        model = module.load_model(str(weights)) if weights is not None else module.load_model()
    except Exception as error:
        fix, kind = _raised_fix(), "load"
        if weights is not None:
            fix = f"check that {str(weights)!r} is a weights file of this submission, in its format; " + fix
            kind = "weights"
        raise SubmissionError(where, f"to return a model{' from ' + repr(str(weights)) if weights is not None else ''}",
                              f"{type(error).__name__}: {error}", fix, kind=kind,
                              user_traceback=user_traceback(error)) from error
    if model is None:
        raise SubmissionError(where, "to return the loaded model", "None", "return the model from load_model", kind="load")
    check_model(model, module_name=module_name)
    return module, model


def _required_arguments(function) -> List[str]:
    """Names of the positional parameters of ``function`` without a default."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty]


def _raised_fix() -> str:
    return "the exception was raised inside the submission: its traceback (printed with this message) shows the line"


#: Folders of GEAR's own code: their frames are left out of a submission's traceback.
_OWN_CODE = tuple(
    str(Path(package).resolve()) + os.sep
    for package in (Path(__file__).parent, Path(importlib.util.find_spec("synth").origin).parent,
                    Path(importlib.util.find_spec("embeddings").origin).parent)
)


def user_traceback(error: BaseException) -> str:
    """The traceback of ``error`` restricted to the submission's own code: the frames outside
    GEAR's packages and Python's import machinery, then the exception line (for a SyntaxError,
    the offending source line with its caret). Empty when no frame is the submission's."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not str(Path(frame.filename).resolve()).startswith(_OWN_CODE) and not frame.filename.startswith("<frozen")]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    if not frames and not isinstance(error, SyntaxError):
        return ""
    return "Traceback of the submission's code (most recent call last):\n" + "".join(lines).rstrip("\n")


# ----------------------------------------------------------------------------- calling
def _framework(model) -> Optional[str]:
    """``"tensorflow"`` for a ``tf.Module``, ``"torch"`` for a ``torch.nn.Module`` (the official
    validator's order), else None."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(model, getattr(tf, "Module", ())):
        return "tensorflow"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    return None


def _as_input(audio: np.ndarray, framework: str):
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(audio)
    import torch

    return torch.from_numpy(audio)


def _dtype_name(value) -> str:
    dtype = getattr(value, "dtype", None)
    return str(getattr(dtype, "name", dtype))


#: Per framework: the tensor type the outputs must have, the model type, how to wrap an array.
_TENSOR_TYPES = {
    "torch": ("torch.Tensor", "torch.nn.Module", "torch.from_numpy(array)"),
    "tensorflow": ("tf.Tensor", "tf.Module", "tf.convert_to_tensor(array)"),
}


def _is_tensor(value, framework: str) -> bool:
    if framework == "torch":
        import torch

        return isinstance(value, torch.Tensor)
    import tensorflow as tf

    return bool(tf.is_tensor(value))


def _check_tensor_type(value, framework: str, where: str, what: str) -> None:
    """The official validator's type rule: an output is a tensor of the model's framework.

    A NumPy array (or another framework's tensor) is rejected, not converted: the official
    ``hear-validator`` fails on it, so the module is not HEAR-compliant (kind ``"type"``).
    """
    if _is_tensor(value, framework):
        return
    tensor, model_type, wrap = _TENSOR_TYPES[framework]
    expected = f"{what} as a {tensor} (the model is a {model_type})"
    if isinstance(value, np.ndarray):
        got = (f"a NumPy array of dtype {value.dtype}: the module is not HEAR-compliant (the official "
               f"hear-validator rejects NumPy outputs)")
        fix = f"return {wrap} instead of the array"
    elif hasattr(value, "dtype") and hasattr(value, "shape"):
        got = (f"a {type(value).__module__}.{type(value).__qualname__}: the module is not HEAR-compliant "
               f"(a {model_type} must return {tensor}s)")
        fix = f"convert it to a {tensor}, or make load_model return a model of the framework the outputs come from"
    else:
        got = f"a {type(value).__name__}"
        fix = f"return a {tensor} of dtype float32"
    raise SubmissionError(where, expected, got, fix, kind="type")


def _to_numpy(value, framework: str, where: str, what: str) -> np.ndarray:
    """A float32 NumPy copy of a returned tensor (checked type and dtype)."""
    _check_tensor_type(value, framework, where, f"float32 {what}")
    if framework == "torch":
        import torch

        if value.dtype != torch.float32:
            raise SubmissionError(where, f"{what} of dtype float32", f"dtype {value.dtype}",
                                  "cast with .float() before returning", kind="dtype")
        return value.detach().cpu().numpy()
    if _dtype_name(value) != "float32":
        raise SubmissionError(where, f"{what} of dtype float32", f"dtype {type(value).__name__} {_dtype_name(value)}",
                              "cast with tf.cast(x, tf.float32) before returning", kind="dtype")
    return np.asarray(value.numpy())


def _call(function_name: str, module: ModuleType, model, audio: np.ndarray, where: str, context: str):
    framework = _check_model_type(model, where.rsplit(".", 1)[0] + ".load_model")
    batch = _as_input(audio, framework)
    function = getattr(module, function_name)
    try:
        if framework == "torch":
            import torch

            with torch.no_grad():
                return function(batch, model)
        return function(batch, model)
    except Exception as error:
        raise SubmissionError(
            where,
            f"embeddings of {context}",
            f"{type(error).__name__}: {error}",
            _raised_fix(), kind="raised", user_traceback=user_traceback(error),
        ) from error


def _check_finite(array: np.ndarray, where: str, what: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        count = int(bad.sum())
        kinds = "NaN" if np.isnan(array).any() else "Inf"
        if np.isnan(array).any() and np.isinf(array).any():
            kinds = "NaN and Inf"
        raise SubmissionError(
            where,
            f"finite {what}",
            f"{count} {kinds} value(s) of {array.size}",
            "look for log(0), division by a zero norm or std, or an empty mean over frames in the submission", kind="non-finite",
        )


def _describe(audio: np.ndarray, sample_rate: int) -> str:
    n, length = audio.shape
    return f"{n} sound(s) of {length} samples ({1000.0 * length / sample_rate:.1f} ms at {sample_rate} Hz)"


def call_scene_embeddings(module: ModuleType, model, audio: np.ndarray, *, module_name: Optional[str] = None) -> np.ndarray:
    """Call ``get_scene_embeddings`` and check its output.

    Parameters
    ----------
    module, model
        The submission and its loaded model.
    audio : np.ndarray, shape (n_sounds, n_samples), float32
        At ``model.sample_rate``.
    module_name : str, optional
        Name used in messages (default: ``module.__name__``).

    Returns
    -------
    np.ndarray, shape (n_sounds, scene_embedding_size), float32

    Raises
    ------
    SubmissionError
    """
    name = module_name or module.__name__
    where = f"{name}.get_scene_embeddings"
    size = int(model.scene_embedding_size)
    rate = int(model.sample_rate)
    output = _call("get_scene_embeddings", module, model, audio, where, _describe(audio, rate))
    if isinstance(output, tuple) and len(output) == 2:
        raise SubmissionError(where, "one tensor (n_sounds, scene_embedding_size)", "a tuple of 2 items",
                              "return only the embeddings (timestamps belong to get_timestamp_embeddings)", kind="type")
    array = _to_numpy(output, _framework(model), where, "scene embeddings")
    expected = (audio.shape[0], size)
    if array.shape != expected:
        hint = "return one embedding per sound, of length model.scene_embedding_size"
        if array.ndim == 3:
            hint = "average (or otherwise pool) the frames over time to one embedding per sound"
        elif array.ndim == 2 and array.shape == expected[::-1]:
            hint = "the output is transposed: return (n_sounds, scene_embedding_size)"
        elif array.ndim == 2 and array.shape[0] == expected[0]:
            hint = f"set model.scene_embedding_size = {array.shape[1]} or fix the output size"
        raise SubmissionError(where, f"shape (n_sounds, scene_embedding_size) = {expected}", f"shape {tuple(array.shape)}", hint, kind="shape")
    _check_finite(array, where, "scene embeddings")
    return array


def call_timestamp_embeddings(
    module: ModuleType,
    model,
    audio: np.ndarray,
    *,
    module_name: Optional[str] = None,
) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Call ``get_timestamp_embeddings`` and check its output as the HEAR validator does.

    Parameters
    ----------
    module, model
        The submission and its loaded model.
    audio : np.ndarray, shape (n_sounds, n_samples), float32
        At ``model.sample_rate``.

    Returns
    -------
    embeddings : np.ndarray, shape (n_sounds, n_timestamps, timestamp_embedding_size), float32
    timestamps_ms : np.ndarray, shape (n_sounds, n_timestamps), float64
    notes : list of str
        Soft findings (each also issued as :class:`HEARComplianceWarning`).

    Raises
    ------
    SubmissionError
        Wrong types, dtypes or shapes, NaN/Inf, no timestamp, timestamps not increasing, not
        regular (a hop more than 1e-3 ms from the mean hop), outside the audio, or ending more
        than two hops before its end.
    """
    name = module_name or module.__name__
    where = f"{name}.get_timestamp_embeddings"
    size = int(model.timestamp_embedding_size)
    rate = int(model.sample_rate)
    n_sounds, n_samples = audio.shape
    duration_ms = 1000.0 * n_samples / rate
    output = _call("get_timestamp_embeddings", module, model, audio, where, _describe(audio, rate))
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        got = f"a {type(output).__name__}" + (f" of {len(output)} items" if isinstance(output, (tuple, list)) else "")
        raise SubmissionError(where, "a tuple (embeddings, timestamps)", got, "return both the embeddings and their timestamps in ms", kind="type")
    framework = _framework(model)
    embeddings = _to_numpy(output[0], framework, where, "timestamp embeddings")
    timestamps = output[1]
    _check_tensor_type(timestamps, framework, where, "timestamps in ms")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(timestamps, torch.Tensor):
        timestamps = timestamps.detach().cpu().numpy()
    elif hasattr(timestamps, "numpy") and not isinstance(timestamps, np.ndarray):
        timestamps = timestamps.numpy()
    timestamps = np.asarray(timestamps)
    if not (np.issubdtype(timestamps.dtype, np.floating) or np.issubdtype(timestamps.dtype, np.integer)):
        raise SubmissionError(where, "numeric timestamps in ms", f"dtype {timestamps.dtype}", "return a float tensor of timestamps", kind="timestamps")
    timestamps = timestamps.astype(np.float64)
    if embeddings.ndim != 3:
        raise SubmissionError(where, "embeddings of shape (n_sounds, n_timestamps, timestamp_embedding_size)",
                              f"shape {tuple(embeddings.shape)}", "return one embedding per sound and frame (3-D)", kind="shape")
    if embeddings.shape[0] != n_sounds:
        raise SubmissionError(where, f"{n_sounds} sounds in the embeddings (one per input sound)",
                              f"{embeddings.shape[0]} (shape {tuple(embeddings.shape)})", "keep the batch axis first", kind="shape")
    if embeddings.shape[2] != size:
        raise SubmissionError(where, f"timestamp_embedding_size = {size} on the last axis", f"shape {tuple(embeddings.shape)}",
                              f"set model.timestamp_embedding_size = {embeddings.shape[2]} or fix the output size", kind="shape")
    if embeddings.shape[1] < 1:
        raise SubmissionError(where, "at least one frame", f"shape {tuple(embeddings.shape)} (no frame)",
                              "pad short audio inside the submission so that it yields a frame", kind="shape")
    if timestamps.shape != embeddings.shape[:2]:
        raise SubmissionError(where, f"timestamps of shape (n_sounds, n_timestamps) = {embeddings.shape[:2]}",
                              f"shape {tuple(timestamps.shape)}", "return one timestamp per sound and frame", kind="timestamps")
    _check_finite(embeddings, where, "timestamp embeddings")
    _check_finite(timestamps, where, "timestamps")
    seconds_hint = ""
    if timestamps.max() <= duration_ms / 1000.0 + 1e-6 and duration_ms > 100.0:
        seconds_hint = " (they look like seconds: multiply by 1000)"
    if timestamps.min() < -1e-3:
        raise SubmissionError(where, "timestamps >= 0 ms (frame centres from the start of the audio)",
                              f"a minimum of {timestamps.min():.3f} ms", "measure frame centres from the start of the audio", kind="timestamps")
    if timestamps.max() > duration_ms + 1e-3:
        raise SubmissionError(where, f"timestamps inside the audio (<= {duration_ms:.2f} ms)", f"a maximum of {timestamps.max():.3f} ms",
                              "give timestamps in milliseconds, as frame centres; drop frames centred past the end", kind="timestamps")
    notes: List[str] = []
    if timestamps.shape[1] > 1:
        steps = np.diff(timestamps, axis=1)
        if np.any(steps <= 0):
            raise SubmissionError(where, "strictly increasing timestamps", f"a step of {steps.min():.3f} ms",
                                  "return the frames in time order", kind="timestamps")
        mean_hop = float(steps.mean())
        deviation = float(np.max(np.abs(steps - mean_hop)))
        if deviation > MAX_HOP_DEVIATION_MS:
            raise SubmissionError(where, f"regular timestamps (each hop within {MAX_HOP_DEVIATION_MS:g} ms of the mean hop)",
                                  f"a hop deviating by {deviation:.3f} ms from the mean {mean_hop:.3f} ms",
                                  "compute centres as k * hop without accumulating rounded hops", kind="timestamps")
        end = float(timestamps.max())
        if end < duration_ms - 2 * mean_hop:
            raise SubmissionError(where, f"timestamps reaching to within two hops ({2 * mean_hop:.1f} ms) of the end of "
                                  f"the {duration_ms:.1f} ms audio", f"a last timestamp at {end:.3f} ms{seconds_hint}",
                                  "give timestamps in milliseconds and embed up to the end of the audio", kind="timestamps")
        if mean_hop > MAX_SUGGESTED_HOP_MS:
            notes.append(f"{where}: mean hop {mean_hop:.1f} ms > {MAX_SUGGESTED_HOP_MS:g} ms (HEAR suggests <= 50 ms)")
        if float(timestamps.min()) > mean_hop:
            notes.append(f"{where}: timestamps begin at {timestamps.min():.1f} ms, after one hop ({mean_hop:.1f} ms)")
        if end < duration_ms - mean_hop or end < duration_ms - 50.0:
            notes.append(f"{where}: timestamps end at {end:.1f} ms for {duration_ms:.1f} ms of audio; the end is not covered")
    for note in notes:
        warnings.warn(note, HEARComplianceWarning, stacklevel=2)
    return embeddings, timestamps, notes


def _white_noise(rng: np.random.Generator, n_sounds: int, duration_s: float, sample_rate: int) -> np.ndarray:
    # As the HEAR validator: uniform white noise in [-1, 1], int(duration * rate) samples.
    return rng.uniform(-1.0, 1.0, size=(n_sounds, int(duration_s * sample_rate))).astype(np.float32)


def validate_submission(
    module: ModuleType,
    model,
    *,
    module_name: Optional[str] = None,
    timestamp_durations_s: Sequence[float] = TIMESTAMP_TEST_DURATIONS_S,
    scene_duration_s: float = SCENE_TEST_DURATION_S,
    random_state: int = 0,
) -> ValidationReport:
    """Run the HEAR validator's checks on a loaded submission.

    Parameters
    ----------
    module, model
        From :func:`load_submission`.
    module_name : str, optional
        Name used in messages.
    timestamp_durations_s : sequence of float
        White-noise durations (s) for ``get_timestamp_embeddings`` (two sounds each).
    scene_duration_s : float
        White-noise duration (s) for ``get_scene_embeddings`` (four sounds).
    random_state : int
        Seed of the white noise.

    Returns
    -------
    ValidationReport

    Raises
    ------
    SubmissionError
    """
    name = module_name or module.__name__
    attributes = check_model(model, module_name=name)
    rate = attributes["sample_rate"]
    rng = np.random.default_rng(random_state)
    notes: List[str] = []
    hop = None
    for duration in timestamp_durations_s:
        _, timestamps, found = call_timestamp_embeddings(module, model, _white_noise(rng, 2, duration, rate), module_name=name)
        notes.extend(note for note in found if note not in notes)
        hop = float(np.diff(timestamps, axis=1).mean()) if timestamps.shape[1] > 1 else None
    call_scene_embeddings(module, model, _white_noise(rng, 4, scene_duration_s, rate), module_name=name)
    return ValidationReport(
        module=name,
        sample_rate=rate,
        scene_embedding_size=attributes["scene_embedding_size"],
        timestamp_embedding_size=attributes["timestamp_embedding_size"],
        timestamp_hop_ms=hop,
        framework=_framework(model),
        warnings=notes,
    )


# ----------------------------------------------------------------------------- GEAR tones
def render_tones(tone_set, padding: Padding, *, indices=None) -> np.ndarray:
    """The tones of ``tone_set`` at ``padding.sample_rate``, zero-padded as ``padding`` says.

    Returns
    -------
    np.ndarray, shape (n, padding.n_samples), float32
    """
    tones = tone_set.render(padding.sample_rate, indices=indices)
    if tones.shape[1] != padding.native_n_samples:
        raise ParameterError(
            f"padding was planned for {padding.native_n_samples}-sample tones, the tone set renders "
            f"{tones.shape[1]} samples at {padding.sample_rate} Hz"
        )
    if not padding.padded:
        return tones
    return np.pad(tones, ((0, 0), (padding.pad_left, padding.pad_right)))


def find_effective_duration(
    module: ModuleType,
    model,
    tone_set,
    *,
    module_name: Optional[str] = None,
    ladder_s: Sequence[float] = PAD_LADDER_S,
    n_probe: int = 2,
) -> Padding:
    """Choose the length at which GEAR's tones are fed to a model (the padding rule).

    Rule: probe ``get_scene_embeddings`` with ``n_probe`` tones of the set (its first and
    last: the extremes of the grid) at their native length. If that call raises, or returns
    NaN/Inf or a wrong shape (what a model does when the audio is shorter than its window,
    e.g. averaging zero frames), zero-pad the tones symmetrically (the tone stays centred;
    an odd extra sample goes at the end) to the first total duration of ``ladder_s`` (0.1,
    0.25, 0.5, 1 and 2 s by default) longer than the tone for which the probe succeeds. A
    wrong output dtype is not a length problem and fails at once.

    Returns
    -------
    Padding
        The length to use (``Padding.duration_s`` is the effective duration).

    Raises
    ------
    SubmissionError
        No length of the ladder works; the message gives the native-length failure.
    """
    name = module_name or module.__name__
    rate = int(model.sample_rate)
    native = tone_set.n_samples(rate)
    n_probe = max(1, min(int(n_probe), tone_set.n_sounds))
    probe = np.unique(np.linspace(0, tone_set.n_sounds - 1, n_probe).round().astype(int))
    candidates = [Padding.to_length(rate, native, native, "the native tone length works")]
    for duration in sorted(ladder_s):
        n_samples = int(round(duration * rate))
        if n_samples > native:
            candidates.append(Padding.to_length(rate, native, n_samples))
    first_error = None
    for padding in candidates:
        try:
            call_scene_embeddings(module, model, render_tones(tone_set, padding, indices=probe), module_name=name)
        except SubmissionError as error:
            if error.kind in ("load", "type", "dtype"):  # a wrong model type, output type or dtype is not a length problem
                raise
            if first_error is None:
                first_error = error
            log.info("%s: %d-sample input failed (%s)", name, padding.n_samples, error.got)
            continue
        if padding.padded:
            reason = (
                f"the native {1000 * padding.native_duration_s:.1f} ms tone failed ({first_error.got}); "
                f"zero-padded symmetrically to {1000 * padding.duration_s:.0f} ms"
            )
            padding = dataclasses.replace(padding, reason=reason)
        return padding
    raise SubmissionError(
        first_error.function,
        f"scene embeddings of GEAR's {1000.0 * native / rate:.1f} ms tones, natively or zero-padded to "
        f"{', '.join(f'{d:g}' for d in sorted(ladder_s))} s",
        f"at native length: {first_error.got}; every padded length failed too",
        first_error.fix,
        kind=first_error.kind,
        user_traceback=first_error.user_traceback,
    ) from first_error


def check_batch_dependence(
    module: ModuleType,
    model,
    tone_set,
    padding: Padding,
    *,
    module_name: Optional[str] = None,
    n_tones: int = 8,
    tolerance: float = 1e-3,
    random_state: int = 0,
) -> Optional[BatchDependence]:
    """Embed a few tones twice, in two batch compositions, and compare.

    Composition A: ``n_tones`` tones drawn at random, in one call. Composition B: the same
    tones in reverse order followed by as many other tones, in one call. A submission whose
    embedding of a sound does not depend on the rest of the batch gives the same embeddings
    up to float round-off. The difference is measured as the largest distance between the
    two embeddings of a tone divided by the median distance between the embeddings of
    different tones in A (the scale GEAR's neighbour graphs live on).

    Parameters
    ----------
    module, model, tone_set, padding
        The submission, its model, GEAR's tones and the length to feed them at.
    n_tones : int
        Tones embedded twice (at most half the set).
    tolerance : float
        Relative difference above which the submission counts as batch-dependent (default
        1e-3: float32 round-off between batch sizes is ~1e-6 of that scale).
    random_state : int
        Seed of the tone draw.

    Returns
    -------
    BatchDependence or None
        None when the set has fewer than 2 tones.

    Warns
    -----
    BatchDependenceWarning
        When the difference exceeds ``tolerance``.
    """
    name = module_name or module.__name__
    if not (isinstance(tolerance, numbers.Real) and tolerance >= 0):
        raise ParameterError(f"tolerance must be a number >= 0, got {tolerance!r}")
    n = tone_set.n_sounds
    if n < 2:
        return None
    m = max(1, min(int(n_tones), n // 2))
    order = np.random.default_rng(random_state).permutation(n)
    subset, others = order[:m], order[m:2 * m]
    first = call_scene_embeddings(module, model, render_tones(tone_set, padding, indices=subset), module_name=name)
    mixed = np.concatenate([subset[::-1], others])
    try:
        second = call_scene_embeddings(module, model, render_tones(tone_set, padding, indices=mixed), module_name=name)[:m][::-1]
        difference = np.linalg.norm(first.astype(np.float64) - second, axis=1)
    except SubmissionError as error:
        if error.kind != "non-finite":
            raise
        difference = np.array([np.inf])
    if m > 1:
        pairs = np.linalg.norm(first[:, None, :].astype(np.float64) - first[None, :, :], axis=-1)[np.triu_indices(m, 1)]
        scale = float(np.median(pairs))
    else:
        scale = 0.0
    if not scale > 0:
        scale = float(np.linalg.norm(first, axis=1).max()) or 1.0
    value = float(np.max(difference) / scale)
    result = BatchDependence(value, float(tolerance), value > tolerance, tuple(int(i) for i in subset))
    if result.batch_dependent:
        warnings.warn(result.message(name), BatchDependenceWarning, stacklevel=2)
    return result
