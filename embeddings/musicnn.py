"""musicnn (Pons & Serra, ISMIR 2019 LBD): music-tagging CNN features as a HEAR 2021 module.

Code and TensorFlow-1 checkpoints ship in the ``musicnn`` wheel (``pip install --no-deps
musicnn``: it pins numpy < 1.17; it really needs TensorFlow with the TF1 layers API, i.e.
``tensorflow`` (or ``tensorflow-cpu``) plus ``tf-keras`` of the same version, and librosa).

Loading follows ``musicnn.extractor.extractor`` (the graph is upstream's
``musicnn.models.define_model`` under ``name_scope('model')``, restored with a TF1 ``Saver``)
with two fixes for its known traps:

* **silent random weights**: upstream wraps ``saver.restore`` in a bare ``except`` and goes on
  with freshly initialised variables when the restore fails. Here the restore is not guarded,
  and :func:`verify_restored` then compares every variable of the session with the
  checkpoint (a ``EmbeddingError`` names the first that differs);
* **float16 overflow**: upstream casts the mel spectrogram to float16 and computes
  ``log10(10000 x + 1)`` *in float16*, which is ``inf`` as soon as a mel value exceeds 6.55 (a
  loud tone does), and the network then outputs NaN. :func:`log_mel` repeats upstream's
  float16 roundings step by step but keeps a value too large for float16 in float32: identical
  to upstream wherever upstream is finite, finite everywhere.

``musicnn.extractor`` is not imported: importing it disables TensorFlow's eager mode for the
whole process. The TF1 layers API (``tf.compat.v1.layers``) is routed to ``tf_keras`` by setting
``TF_USE_LEGACY_KERAS`` while upstream's graph is built (and restoring it afterwards).

Input: 16 kHz, mel spectrogram of 96 bands (n_fft 512, hop 256, librosa's defaults otherwise),
cut into non-overlapping patches of ``input_length_s`` (default 3 s = 187 frames, upstream's
default and the training length). A sound shorter than one patch (:data:`WINDOW_SAMPLES` =
47 616 samples) is padded to one patch by ``pad_mode`` (``"center"`` or ``"repeat"``), as in
:mod:`embeddings.yamnet`; upstream's own code raises on such sounds. Output per patch: the
``layer`` named at load time (``"penultimate"`` 200-d, ``"mean_pool"`` or ``"max_pool"``
753-d); timestamps are patch centres in ms; the scene embedding is the mean over patches.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from embeddings.base import EmbeddingError
from embeddings.audio import PAD_MODES, as_audio_array, pad_to_window
from embeddings.hear_model import HEARModel

__all__ = [
    "SAMPLE_RATE",
    "LAYERS",
    "MODELS",
    "WINDOW_SAMPLES",
    "log_mel",
    "verify_restored",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 16000
FFT_HOP = 256
FFT_SIZE = 512
N_MELS = 96
#: Feature layers of the musicnn models and their sizes.
LAYERS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753}
#: Checkpoints in the wheel and their number of tags.
MODELS = {"MTT_musicnn": 50, "MSD_musicnn": 50}
FLOAT16_MAX = float(np.finfo(np.float16).max)


def _patch_frames(input_length_s: float) -> int:
    """Upstream: ``librosa.time_to_frames(input_length, sr, n_fft, hop) + 1`` (187 for 3 s)."""
    return int(np.floor((input_length_s * SAMPLE_RATE - FFT_SIZE // 2) / FFT_HOP)) + 1


#: Shortest sound giving one 3 s patch with librosa's centred frames (``1 + n // 256`` frames).
WINDOW_SAMPLES = (_patch_frames(3.0) - 1) * FFT_HOP


def _round_float16(values: np.ndarray) -> np.ndarray:
    """Round float32 values to float16 where they fit; keep larger ones as they are (no inf)."""
    fits = np.abs(values) <= FLOAT16_MAX
    return np.where(fits, np.where(fits, values, 0).astype(np.float16).astype(np.float32), values)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """musicnn's input representation, without its float16 overflow.

    Upstream computes ``log10(10000 * mel + 1)`` on a float16 array: each step is a float32
    operation rounded to float16, and ``10000 * mel`` overflows to ``inf`` once ``mel > 6.55``.
    This function performs the same steps with the same roundings, except that a value too
    large for float16 stays in float32 instead of becoming ``inf`` (so it equals upstream
    wherever upstream is finite).

    Parameters
    ----------
    audio : np.ndarray, shape (n_sounds, n_samples), float32, 16 kHz

    Returns
    -------
    np.ndarray, shape (n_sounds, 1 + n_samples // 256, 96), float32
        Values are float16-representable.
    """
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS)
    mel = _round_float16(mel.astype(np.float32))
    scaled = _round_float16(np.float32(10000.0) * mel)
    shifted = _round_float16(scaled + np.float32(1.0))
    out = np.log10(shifted).astype(np.float16).astype(np.float32)
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def _checkpoint_reader(prefix: str):
    import tensorflow as tf

    return tf.compat.v1.train.NewCheckpointReader(prefix)


def verify_restored(session, variables, prefix: str) -> None:
    """Check that every variable of ``session`` holds the checkpoint's value.

    Raises
    ------
    EmbeddingError
        Naming the first variable that is missing from the checkpoint or differs from it
        (e.g. a restore that failed and left random initial values).
    """
    reader = _checkpoint_reader(prefix)
    values = session.run(list(variables))
    for variable, value in zip(variables, values):
        name = variable.op.name
        if not reader.has_tensor(name):
            raise EmbeddingError(f"variable {name!r} of the musicnn graph is not in the checkpoint {prefix!r}.")
        expected = reader.get_tensor(name)
        if expected.shape != value.shape or not np.array_equal(expected, value):
            raise EmbeddingError(
                f"variable {name!r} does not hold the value stored in {prefix!r}: the weights were not "
                f"restored (upstream musicnn hides this behind a bare except and runs random weights). "
                f"Reinstall musicnn or pass the right checkpoint folder."
            )


@contextlib.contextmanager
def _legacy_keras():
    """Route ``tf.compat.v1.layers`` to tf_keras (Keras 3 has no TF1 layers) while in the block.

    TensorFlow hands out a new lazy loader for ``tf.compat.v1.layers`` on every attribute access
    and reads ``TF_USE_LEGACY_KERAS`` when it resolves, so the variable is set while upstream's
    graph is built and restored afterwards.
    """
    if importlib.util.find_spec("tf_keras") is None:
        raise EmbeddingError(
            "musicnn needs TensorFlow's TF1 layers, which Keras 3 lacks: pip install --no-deps "
            "tf-keras==<your tensorflow version>"
        )
    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TF_USE_LEGACY_KERAS"]
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous


def _wheel_folder(model_name: str) -> Path:
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError("musicnn needs the musicnn package: pip install --no-deps musicnn==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / model_name


class MusicnnModel(HEARModel):
    """A musicnn TF1 graph in its own ``tf.Graph`` and session; see :func:`load_model`.

    A :class:`~embeddings.hear_model.HEARModel` (a ``torch.nn.Module``, not a ``tf.Module``: the
    HEAR functions take and return torch tensors like every adapter here; the TF1 session is an
    attribute and runs on the CPU).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, folder: Path, *, model_name: str, layer: str, input_length_s: float,
                 pad_mode: str, batch_size: int):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise EmbeddingError(f"pad_mode={pad_mode!r} is not one of {PAD_MODES}; pick one of them.")
        if layer not in LAYERS:
            raise EmbeddingError(f"layer={layer!r} is not one of {tuple(LAYERS)}.")
        if model_name not in MODELS:
            raise EmbeddingError(f"model_name={model_name!r} is not one of {tuple(MODELS)}.")
        if not (isinstance(input_length_s, (int, float)) and 0.1 <= input_length_s <= 30):
            raise EmbeddingError(f"input_length_s={input_length_s!r} must be a number of seconds in [0.1, 30].")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise EmbeddingError(f"batch_size={batch_size!r} must be a positive int.")
        for name in ("tensorflow", "musicnn"):
            if importlib.util.find_spec(name) is None:
                raise EmbeddingError(f"musicnn needs {name}: pip install tensorflow-cpu tf-keras; "
                                     f"pip install --no-deps musicnn==0.1.0")
        import tensorflow as tf

        from musicnn import models as musicnn_models  # not musicnn.extractor: see module docstring

        self.folder = Path(folder)
        self.prefix = str(self.folder) + os.sep  # upstream: saver.restore(sess, dirname + '/' + model + '/')
        if not Path(self.prefix + ".index").is_file():
            raise EmbeddingError(f"{self.folder} holds no musicnn checkpoint ('.index' file missing).")
        self.model_name, self.layer, self.pad_mode = model_name, layer, pad_mode
        self.batch_size = batch_size
        self.patch_frames = _patch_frames(input_length_s)
        self.window_samples = (self.patch_frames - 1) * FFT_HOP
        self.scene_embedding_size = self.timestamp_embedding_size = LAYERS[layer]
        self._graph = tf.Graph()
        with self._graph.as_default():
            with _legacy_keras(), tf.name_scope("model"):
                self._x = tf.compat.v1.placeholder(tf.float32, [None, self.patch_frames, N_MELS])
                self._is_training = tf.compat.v1.placeholder(tf.bool)
                outputs = musicnn_models.define_model(self._x, self._is_training, model_name, MODELS[model_name])
            # (logits, timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate)
            self._feature = {"mean_pool": outputs[6], "max_pool": outputs[7], "penultimate": outputs[8]}[layer]
            self._session = tf.compat.v1.Session(graph=self._graph)
            variables = tf.compat.v1.global_variables()
            self._session.run(tf.compat.v1.variables_initializer(variables))
            tf.compat.v1.train.Saver().restore(self._session, self.prefix)
            verify_restored(self._session, variables, self.prefix)

    def embed_patches(self, patches: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(patches), self.batch_size):
            feed = {self._x: patches[start : start + self.batch_size], self._is_training: False}
            out.append(self._session.run(self._feature, feed_dict=feed))
        return np.concatenate(out).astype(np.float32)


def load_model(
    model_file_path: str = "",
    *,
    model_name: str = "MTT_musicnn",
    layer: str = "penultimate",
    input_length_s: float = 3.0,
    pad_mode: str = "center",
    batch_size: int = 64,
) -> MusicnnModel:
    """Load a musicnn model.

    Parameters
    ----------
    model_file_path : str
        The checkpoint folder (e.g. ``.../musicnn/MTT_musicnn``); ``""`` uses ``model_name``'s
        folder in the musicnn wheel.
    model_name : {"MTT_musicnn", "MSD_musicnn"}
        Architecture to build (and the wheel folder when ``model_file_path`` is ``""``).
    layer : {"penultimate", "mean_pool", "max_pool"}
        Feature returned as the embedding.
    input_length_s : float
        Patch length (upstream's ``input_length``); 3 s is the training length.
    pad_mode : {"center", "repeat"}
        Rule for sounds shorter than one patch.
    batch_size : int
        Patches per session run.
    """
    folder = Path(model_file_path).expanduser() if model_file_path else _wheel_folder(model_name)
    if not folder.is_dir():
        raise EmbeddingError(f"model_file_path={str(folder)!r} is not a musicnn checkpoint folder.")
    return MusicnnModel(folder, model_name=model_name, layer=layer, input_length_s=input_length_s,
                        pad_mode=pad_mode, batch_size=batch_size)


def _run(audio, model: MusicnnModel, function: str) -> Tuple[torch.Tensor, torch.Tensor]:
    array = as_audio_array(audio, model_name=function)
    n_sounds, n_samples = array.shape
    padded, offset = pad_to_window(array, model.window_samples, mode=model.pad_mode)
    spec = log_mel(padded)  # (n, frames, 96)
    n_frames = spec.shape[1]
    # upstream batch_data: range(0, frames - patch + 1, patch), non-overlapping
    starts = np.arange(0, n_frames - model.patch_frames + 1, model.patch_frames)
    patches = spec[:, starts[:, None] + np.arange(model.patch_frames)[None, :]]
    embeddings = model.embed_patches(patches.reshape(-1, model.patch_frames, N_MELS))
    embeddings = embeddings.reshape(n_sounds, len(starts), -1)
    if n_samples < model.window_samples:
        centres = np.full(1, n_samples / 2.0)
    else:
        centres = (starts + (model.patch_frames - 1) / 2.0) * FFT_HOP - offset
    timestamps = np.broadcast_to(centres * 1000.0 / SAMPLE_RATE, (n_sounds, len(starts)))
    return torch.from_numpy(embeddings), torch.from_numpy(np.ascontiguousarray(timestamps, dtype=np.float32))


def get_timestamp_embeddings(audio: torch.Tensor, model: MusicnnModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """Patch features and patch centres.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples), float32, 16 kHz

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_patches, size of ``layer``), float32
    timestamps : torch.Tensor, shape (n_sounds, n_patches), float32, ms
    """
    return _run(audio, model, "get_timestamp_embeddings")


def get_scene_embeddings(audio: torch.Tensor, model: MusicnnModel) -> torch.Tensor:
    """Mean patch feature, ``(n_sounds, size of layer)`` float32."""
    embeddings, _ = _run(audio, model, "get_scene_embeddings")
    return embeddings.mean(dim=1)
