"""YAMNet (Plakal & Ellis, Google 2020) as a HEAR 2021 module.

Two ways to run it:

* **TFLite** (tested here with real weights): a ``.tflite`` conversion of YAMNet, run with
  ``ai-edge-litert`` (works with numpy 2) or ``tflite-runtime``. The 1 024-d embedding is
  an *internal* tensor of the graph, read with the interpreter option that preserves all
  intermediate tensors and found **by name**, never by index:

  - the official TF-Hub model converted with dynamic-range quantisation:
    ``yamnet_frames/global_average_pooling2d/Mean`` (float32, ``[1, 1024]``);
  - Google's mobile int8 variant: the tensor whose name ends in ``reduce_mean``
    (int8, ``[1, 1, 1, 1024]``), dequantised with its scale and zero point.

* **TensorFlow Hub** (for users who have TensorFlow): ``tensorflow_hub.load`` of a local
  SavedModel directory (or a Hub handle already in the user's Hub cache); the model's call
  returns ``(scores, embeddings, log_mel_spectrogram)``. No network is used by GEAR: pass a
  local directory.

Framing and padding
-------------------
YAMNet sees 0.975 s patches (15 600 samples at 16 kHz) with a 0.48 s hop (7 680 samples).
A sound of ``n`` samples gives ``1 + ceil(max(0, n - 15600) / 7680)`` patches, the last
zero-padded at the end (as YAMNet's own ``pad_waveform``). A sound **shorter than one
patch** is padded to one patch by the rule :data:`PAD_MODES` names (``pad_mode`` of
:func:`load_model`, default ``"center"``):

``"center"``
    zeros on both sides, the sound in the middle (the model hears the tone in silence);
``"repeat"``
    the sound tiled end to end until the patch is full (a steady tone; note the period
    of the tiling adds a ``sample_rate / n`` Hz modulation).

Timestamps are patch centres in milliseconds, in the coordinates of the unpadded sound (a
padded short sound gets one timestamp, at its own centre). The scene embedding is the mean
of the patch embeddings.

Input checks, padding and patching come from :mod:`embeddings.audio`, which the other adapters
of this package share.
"""
from __future__ import annotations

import csv
import importlib
import importlib.util
import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from embeddings.audio import PAD_MODES, as_audio_array, frame_patches, pad_to_window
from embeddings.base import EmbeddingError, models_dir
from embeddings.hear_model import HEARModel

__all__ = [
    "SAMPLE_RATE",
    "PATCH_SAMPLES",
    "PATCH_HOP_SAMPLES",
    "EMBEDDING_SIZE",
    "OFFICIAL_EMBEDDING_TENSOR",
    "MOBILE_EMBEDDING_TENSOR",
    "TFLITE_FILES",
    "find_tensor_by_name",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
    "get_class_scores",
]

SAMPLE_RATE = 16000
#: One YAMNet patch: 96 frames of 10 ms + the 25 ms window (0.975 s).
PATCH_SAMPLES = 15600
#: Hop between patches (0.48 s).
PATCH_HOP_SAMPLES = 7680
EMBEDDING_SIZE = 1024
N_CLASSES = 521
#: Rules for padding a sound shorter than the model's window.

OFFICIAL_EMBEDDING_TENSOR = "yamnet_frames/global_average_pooling2d/Mean"
MOBILE_EMBEDDING_TENSOR = "reduce_mean"

#: File names looked up under ``<models_dir>/yamnet/``, in order of preference.
TFLITE_FILES = {
    "official": "yamnet_official_dynamic_int8.tflite",
    "mobile": "yamnet_mobile_int8_with_metadata.tflite",
}
CLASS_MAP_FILE = "yamnet_class_map.csv"


# ----------------------------------------------------------------------------------------
# helpers shared by the adapters
# ----------------------------------------------------------------------------------------
def find_tensor_by_name(tensor_details: Sequence[dict], name: str) -> dict:
    """The one TFLite tensor whose name is ``name`` or ends in ``/name``.

    A converted graph often names a tensor ``"a/b/Mean;StatefulPartitionedCall/.../a/b/Mean"``
    (fused names separated by ``;``): each part is compared.

    Raises
    ------
    EmbeddingError
        If no tensor, or more than one, matches (the message lists near matches).
    """
    matches = []
    for detail in tensor_details:
        parts = detail["name"].split(";")
        if any(part == name or part.endswith("/" + name) for part in parts):
            matches.append(detail)
    if len(matches) == 1:
        return matches[0]
    leaf = name.rsplit("/", 1)[-1].lower()
    near = [d["name"] for d in tensor_details if leaf in d["name"].lower() or "mean" in d["name"].lower()]
    if not matches:
        raise EmbeddingError(
            f"no tensor named {name!r} in this TFLite model, so its embedding cannot be read "
            f"(tensors are matched by name, never by index). Near matches: {near[:8]}. Pass the "
            f"right name with load_model(..., embedding_tensor=NAME), or use a YAMNet file whose "
            f"graph keeps the layer names."
        )
    raise EmbeddingError(
        f"{len(matches)} tensors match the name {name!r}: {[d['name'] for d in matches]}; pass a "
        f"longer, unique name with load_model(..., embedding_tensor=NAME)."
    )


def _read_class_names(directory: Path) -> Optional[List[str]]:
    path = directory / CLASS_MAP_FILE
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return [row[2] for row in rows[1:]]


def _tflite_interpreter_class():
    """``Interpreter`` of ai-edge-litert, else of tflite-runtime."""
    for module_name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        if importlib.util.find_spec(module_name.split(".")[0]) is not None:
            return importlib.import_module(module_name).Interpreter
    raise EmbeddingError(
        "running a .tflite YAMNet needs a TFLite runtime: pip install ai-edge-litert "
        "(works with numpy 2), or tflite-runtime (numpy < 2)."
    )


# ----------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------
class _YamnetBase(HEARModel):
    """YAMNet's HEAR attributes and padding rule; a :class:`~embeddings.hear_model.HEARModel`
    (the interpreter or SavedModel is an attribute; it runs on the CPU)."""

    sample_rate = SAMPLE_RATE
    scene_embedding_size = EMBEDDING_SIZE
    timestamp_embedding_size = EMBEDDING_SIZE

    def __init__(self, pad_mode: str):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise EmbeddingError(f"pad_mode={pad_mode!r} is not one of {PAD_MODES}; pick one of them.")
        self.pad_mode = pad_mode
        #: shortest input the model sees without padding, in samples
        self.window_samples = PATCH_SAMPLES
        self.class_names: Optional[List[str]] = None

    def embed_patches(self, patches: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Embeddings ``(m, 1024)`` float32 and class scores ``(m, 521)`` of ``m`` patches."""
        raise NotImplementedError


class YamnetTFLite(_YamnetBase):
    """YAMNet run by a TFLite interpreter; see :func:`load_model`."""

    def __init__(self, model_file: Path, *, embedding_tensor: Optional[str], pad_mode: str, num_threads: int):
        super().__init__(pad_mode)
        interpreter_class = _tflite_interpreter_class()
        self.model_file = Path(model_file)
        with warnings.catch_warnings():
            # ai-edge-litert warns that preserving all tensors is "for debugging": it is the
            # documented way to read an intermediate tensor, and costs ~1 MB here.
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            self._interpreter = interpreter_class(
                model_path=str(self.model_file),
                experimental_preserve_all_tensors=True,
                num_threads=num_threads,
            )
        self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1 or list(inputs[0]["shape"]) != [PATCH_SAMPLES]:
            raise EmbeddingError(
                f"{self.model_file} is not a YAMNet TFLite model: expected one float32 input of "
                f"shape [{PATCH_SAMPLES}], got {[(d['name'], list(d['shape'])) for d in inputs]}."
            )
        self._input_index = inputs[0]["index"]
        outputs = self._interpreter.get_output_details()
        scores = [d for d in outputs if int(np.prod(d["shape"])) == N_CLASSES]
        if not scores:
            raise EmbeddingError(f"{self.model_file} has no output of {N_CLASSES} class scores; is it YAMNet?")
        self._scores_index = scores[0]["index"]
        details = self._interpreter.get_tensor_details()
        if embedding_tensor is None:
            detail, last_error = None, None
            for candidate in (OFFICIAL_EMBEDDING_TENSOR, MOBILE_EMBEDDING_TENSOR):
                try:
                    detail = find_tensor_by_name(details, candidate)
                    break
                except EmbeddingError as error:
                    last_error = error
            if detail is None:
                raise EmbeddingError(
                    f"{self.model_file}: neither {OFFICIAL_EMBEDDING_TENSOR!r} nor a tensor ending in "
                    f"{MOBILE_EMBEDDING_TENSOR!r} found. {last_error}"
                )
        else:
            detail = find_tensor_by_name(details, embedding_tensor)
        if int(np.prod(detail["shape"])) != EMBEDDING_SIZE:
            raise EmbeddingError(
                f"tensor {detail['name']!r} has shape {list(detail['shape'])}, not {EMBEDDING_SIZE} "
                f"values: it is not YAMNet's embedding; pass embedding_tensor=NAME."
            )
        self.embedding_tensor_name = detail["name"]
        self._embedding_index = detail["index"]
        scale, zero_point = detail["quantization"]
        self._dequantise = (float(scale), int(zero_point)) if scale else None
        self.class_names = _read_class_names(self.model_file.parent)

    def embed_patches(self, patches: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        # The converted graph has a fixed [15600] input (resizing fails in XNNPACK): one
        # invoke per patch, ~5-12 ms each on one core.
        interpreter = self._interpreter
        embeddings = np.empty((len(patches), EMBEDDING_SIZE), np.float32)
        scores = np.empty((len(patches), N_CLASSES), np.float32)
        for i, patch in enumerate(np.ascontiguousarray(patches, dtype=np.float32)):
            interpreter.set_tensor(self._input_index, patch)
            interpreter.invoke()
            raw = interpreter.get_tensor(self._embedding_index).reshape(-1)
            if self._dequantise is not None:
                scale, zero_point = self._dequantise
                embeddings[i] = (raw.astype(np.float32) - zero_point) * scale
            else:
                embeddings[i] = raw
            scores[i] = interpreter.get_tensor(self._scores_index).reshape(-1)
        return embeddings, scores


def _hub_load(handle: str):
    """``tensorflow_hub.load(handle)``; for a local directory, ``tf.saved_model.load`` when
    tensorflow_hub cannot be imported (0.16 imports ``pkg_resources``, gone from setuptools >= 81)
    -- which is what ``hub.load`` does with a local SavedModel."""
    try:
        import tensorflow_hub as hub
    except ImportError as error:
        if not Path(handle).is_dir():
            raise EmbeddingError(
                f"loading the Hub handle {handle!r} needs tensorflow_hub, which failed to import "
                f"({error}); pip install tensorflow-hub 'setuptools<81', or pass a local SavedModel directory."
            ) from error
        import tensorflow as tf

        return tf.saved_model.load(handle)
    return hub.load(handle)


class YamnetHub(_YamnetBase):
    """YAMNet as a TensorFlow SavedModel loaded with ``tensorflow_hub.load``.

    The callable takes a 1-D float32 waveform at 16 kHz and returns
    ``(scores [m, 521], embeddings [m, 1024], log_mel [frames, 64])``, one row per patch.
    """

    def __init__(self, handle: str, *, pad_mode: str):
        super().__init__(pad_mode)
        if importlib.util.find_spec("tensorflow") is None:
            raise EmbeddingError(
                "the TF-Hub YAMNet path needs tensorflow (and tensorflow_hub for Hub handles); "
                "without them use a .tflite file (see shared/models/yamnet/)."
            )
        self.handle = str(handle)
        self._model = _hub_load(self.handle)
        local = Path(self.handle)
        self.class_names = None
        if local.is_dir():
            for candidate in (local / CLASS_MAP_FILE, local / "assets" / CLASS_MAP_FILE):
                if candidate.is_file():
                    self.class_names = _read_class_names(candidate.parent)
        self.embedding_tensor_name = "output 1 of the SavedModel call"

    def embed_patches(self, patches: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        embeddings = np.empty((len(patches), EMBEDDING_SIZE), np.float32)
        scores = np.empty((len(patches), N_CLASSES), np.float32)
        for i, patch in enumerate(patches):
            out_scores, out_embeddings, _ = self._model(tf.constant(patch, dtype=tf.float32))
            out_embeddings = np.asarray(out_embeddings, dtype=np.float32)
            if out_embeddings.shape != (1, EMBEDDING_SIZE):
                raise EmbeddingError(
                    f"the SavedModel at {self.handle!r} returned embeddings of shape "
                    f"{out_embeddings.shape} for one 0.975 s patch, expected (1, {EMBEDDING_SIZE}); "
                    f"is it YAMNet?"
                )
            embeddings[i] = out_embeddings[0]
            scores[i] = np.asarray(out_scores, dtype=np.float32).reshape(-1)[:N_CLASSES]
        return embeddings, scores


def _default_tflite(variant: str) -> Path:
    root = models_dir()
    if root is None:
        raise EmbeddingError(
            "no YAMNet model file given and no models directory set: pass "
            "load_model('/path/to/yamnet.tflite'), --models-dir, or set GEAR_MODELS_DIR to a "
            "folder holding yamnet/" + TFLITE_FILES[variant]
        )
    path = root / "yamnet" / TFLITE_FILES[variant]
    if not path.is_file():
        raise EmbeddingError(f"{path} not found; put the YAMNet TFLite file there or pass its path.")
    return path


def load_model(
    model_file_path: str = "",
    *,
    variant: str = "official",
    embedding_tensor: Optional[str] = None,
    pad_mode: str = "center",
    num_threads: int = 1,
):
    """Load YAMNet.

    Parameters
    ----------
    model_file_path : str
        A ``.tflite`` file (TFLite path); a directory holding a TensorFlow SavedModel, or a
        TF-Hub handle already in the local Hub cache (TF-Hub path); or ``""`` to use
        ``<models_dir>/yamnet/<file of variant>`` (see :func:`embeddings.base.models_dir`).
    variant : {"official", "mobile"}
        Which file of :data:`TFLITE_FILES` ``""`` selects.
    embedding_tensor : str, optional
        Name of the internal embedding tensor (TFLite only). Default: the official
        ``yamnet_frames/global_average_pooling2d/Mean``, else a name ending in ``reduce_mean``.
    pad_mode : {"center", "repeat"}
        Rule for sounds shorter than one 0.975 s patch (see the module docstring).
    num_threads : int
        TFLite interpreter threads.

    Returns
    -------
    model
        With int ``sample_rate`` (16 000), ``scene_embedding_size`` and
        ``timestamp_embedding_size`` (1 024), ``pad_mode``, ``window_samples`` (15 600) and
        ``class_names`` (521 AudioSet names when ``yamnet_class_map.csv`` sits beside the
        model file, else ``None``).
    """
    if variant not in TFLITE_FILES:
        raise EmbeddingError(f"variant={variant!r} is not one of {tuple(TFLITE_FILES)}.")
    if not isinstance(num_threads, int) or num_threads < 1:
        raise EmbeddingError(f"num_threads={num_threads!r} must be a positive int.")
    path_text = str(model_file_path) if model_file_path else ""
    if not path_text:
        return YamnetTFLite(_default_tflite(variant), embedding_tensor=embedding_tensor,
                            pad_mode=pad_mode, num_threads=num_threads)
    path = Path(path_text).expanduser()
    if path.is_file():
        if path.suffix != ".tflite":
            raise EmbeddingError(
                f"{path} is a file but not a .tflite model; pass a .tflite file or a SavedModel directory."
            )
        return YamnetTFLite(path, embedding_tensor=embedding_tensor, pad_mode=pad_mode, num_threads=num_threads)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise EmbeddingError(f"{path} is a directory without saved_model.pb: not a TensorFlow SavedModel.")
        return YamnetHub(str(path), pad_mode=pad_mode)
    if "://" in path_text or path_text.startswith(("google/", "tfhub.dev")):
        # A Hub handle: tensorflow_hub resolves it from its local cache (TFHUB_CACHE_DIR);
        # on a machine without network it fails there with the library's own message.
        return YamnetHub(path_text, pad_mode=pad_mode)
    raise EmbeddingError(f"model_file_path={path_text!r} does not exist.")


# ----------------------------------------------------------------------------------------
# HEAR API
# ----------------------------------------------------------------------------------------
def _run(audio, model, function: str):
    array = as_audio_array(audio, model_name=function)
    n_sounds, n_samples = array.shape
    padded, offset = pad_to_window(array, PATCH_SAMPLES, mode=model.pad_mode)
    patches, starts = frame_patches(padded, PATCH_SAMPLES, PATCH_HOP_SAMPLES)
    n_patches = patches.shape[1]
    embeddings, scores = model.embed_patches(patches.reshape(-1, PATCH_SAMPLES))
    if n_samples < PATCH_SAMPLES:
        # one padded patch per sound, stamped at the sound's own centre
        centres = np.full(1, n_samples / 2.0)
    else:
        centres = starts + PATCH_SAMPLES / 2.0 - offset
    timestamps_ms = np.broadcast_to(centres * 1000.0 / SAMPLE_RATE, (n_sounds, n_patches))
    return (
        embeddings.reshape(n_sounds, n_patches, EMBEDDING_SIZE),
        scores.reshape(n_sounds, n_patches, N_CLASSES),
        np.ascontiguousarray(timestamps_ms, dtype=np.float32),
    )


def get_timestamp_embeddings(audio: torch.Tensor, model) -> Tuple[torch.Tensor, torch.Tensor]:
    """Patch embeddings and their centres.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples), float32, 16 kHz
    model : object returned by :func:`load_model`

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_patches, 1024), float32
    timestamps : torch.Tensor, shape (n_sounds, n_patches), float32
        Patch centres in ms (see the module docstring for short sounds).
    """
    embeddings, _, timestamps = _run(audio, model, "get_timestamp_embeddings")
    return torch.from_numpy(embeddings), torch.from_numpy(timestamps)


def get_scene_embeddings(audio: torch.Tensor, model) -> torch.Tensor:
    """Mean patch embedding of each sound.

    Returns
    -------
    torch.Tensor, shape (n_sounds, 1024), float32
    """
    embeddings, _, _ = _run(audio, model, "get_scene_embeddings")
    return torch.from_numpy(embeddings.mean(axis=1, dtype=np.float64).astype(np.float32))


def get_class_scores(audio: torch.Tensor, model) -> torch.Tensor:
    """AudioSet class scores (sigmoid outputs), averaged over patches.

    Returns
    -------
    torch.Tensor, shape (n_sounds, 521), float32
        Column ``k`` is ``model.class_names[k]`` when the class map was found.
    """
    _, scores, _ = _run(audio, model, "get_class_scores")
    return torch.from_numpy(scores.mean(axis=1, dtype=np.float64).astype(np.float32))
