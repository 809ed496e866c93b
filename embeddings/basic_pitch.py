"""Basic Pitch (Bittner et al., ICASSP 2022, Spotify) as a HEAR 2021 module.

The ONNX export of the ICASSP 2022 model ships in the ``basic-pitch`` wheel
(``basic_pitch/saved_models/icassp_2022/nmp.onnx``); it runs with ``onnxruntime``.
``pip install --no-deps basic-pitch``: the wheel requires TensorFlow < 2.15.1 on Linux with
Python 3.11, and resampy < 0.4.3, none of which the ONNX path uses. This adapter does not import
the ``basic_pitch`` package (whose ``__init__`` imports TensorFlow when present); it locates the
ONNX file and follows ``basic_pitch.inference.run_inference``:

* audio at 22 050 Hz, ``overlap_len / 2 = 3 840`` zeros prepended;
* windows of :data:`WINDOW_SAMPLES` = 43 844 samples (2 s minus one hop) with a hop of
  36 164 samples, the last one zero-padded at the end (``window_audio_file``);
* each window -> ``contour`` (172 frames x 264 bins, 3 per semitone), ``note`` (172 x 88) and
  ``onset`` (172 x 88) posteriorgrams; 15 frames dropped at each window edge, windows
  concatenated, cut to ``floor(n_samples * 86 / 22050)`` frames (``unwrap_output``).

Basic Pitch has no embedding layer: the frame embedding is the concatenation of the
posteriorgrams named by ``outputs`` (default all three, 440-d), frame ``i`` centred on sample
``256 i`` (timestamps ``256 i / 22050`` s, in ms). The scene embedding is their mean over
frames.

Padding: none needed beyond upstream's own (any length gives whole windows, zero-padded at the
end); a sound shorter than one frame hop (256 samples) would get no frame, so sounds are padded
to :data:`MIN_SAMPLES` by ``pad_mode`` like the other adapters (:mod:`embeddings.yamnet`).
Windows of all sounds are batched through ONNX Runtime (``batch_size`` at a time).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
import torch

from embeddings.base import EmbeddingError
from embeddings.audio import PAD_MODES, as_audio_array, pad_to_window
from embeddings.hear_model import HEARModel

__all__ = [
    "SAMPLE_RATE",
    "OUTPUT_SIZES",
    "WINDOW_SAMPLES",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 22050
FFT_HOP = 256
ANNOTATIONS_FPS = SAMPLE_RATE // FFT_HOP  # 86, an int in upstream's constants
WINDOW_SAMPLES = SAMPLE_RATE * 2 - FFT_HOP  # 43 844
N_OVERLAPPING_FRAMES = 30
OVERLAP_SAMPLES = N_OVERLAPPING_FRAMES * FFT_HOP
WINDOW_HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_SAMPLES
#: A sound needs ``floor(n * 86 / 22050) >= 1`` to get a frame.
MIN_SAMPLES = int(np.ceil(SAMPLE_RATE / ANNOTATIONS_FPS))
#: ONNX output name and size of each posteriorgram
OUTPUT_NAMES = {"contour": "StatefulPartitionedCall:0", "note": "StatefulPartitionedCall:1",
                "onset": "StatefulPartitionedCall:2"}
OUTPUT_SIZES = {"contour": 264, "note": 88, "onset": 88}
INPUT_NAME = "serving_default_input_2:0"


def _wheel_model() -> Path:
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError("Basic Pitch needs the basic-pitch package: pip install --no-deps basic-pitch==0.4.0")
    return Path(list(spec.submodule_search_locations)[0]) / "saved_models" / "icassp_2022" / "nmp.onnx"


class BasicPitchModel(HEARModel):
    """Basic Pitch's ONNX model in an ONNX Runtime session (on the CPU); see :func:`load_model`.

    A :class:`~embeddings.hear_model.HEARModel`, as the official HEAR validator requires.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, model_file: Path, *, outputs: Sequence[str], pad_mode: str, batch_size: int,
                 num_threads: int):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise EmbeddingError(f"pad_mode={pad_mode!r} is not one of {PAD_MODES}; pick one of them.")
        outputs = tuple(outputs)
        unknown = [name for name in outputs if name not in OUTPUT_NAMES]
        if not outputs or unknown:
            raise EmbeddingError(
                f"outputs={outputs!r}: each must be one of {tuple(OUTPUT_NAMES)} (at least one)."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise EmbeddingError(f"batch_size={batch_size!r} must be a positive int.")
        if importlib.util.find_spec("onnxruntime") is None:
            raise EmbeddingError("Basic Pitch's ONNX model needs onnxruntime: pip install onnxruntime")
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.model_file = Path(model_file)
        self._session = ort.InferenceSession(str(self.model_file), options, providers=["CPUExecutionProvider"])
        self.outputs = outputs
        self.pad_mode = pad_mode
        self.batch_size = batch_size
        self.window_samples = MIN_SAMPLES
        self.scene_embedding_size = self.timestamp_embedding_size = sum(OUTPUT_SIZES[o] for o in outputs)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Posteriorgrams of ``m`` windows ``(m, 43844)``: ``(m, 172, embedding_size)`` float32."""
        names = [OUTPUT_NAMES[o] for o in self.outputs]
        out = []
        for start in range(0, len(windows), self.batch_size):
            batch = np.ascontiguousarray(windows[start : start + self.batch_size, :, None], dtype=np.float32)
            out.append(np.concatenate(self._session.run(names, {INPUT_NAME: batch}), axis=-1))
        return np.concatenate(out)


def load_model(
    model_file_path: str = "",
    *,
    outputs: Sequence[str] = ("contour", "note", "onset"),
    pad_mode: str = "center",
    batch_size: int = 16,
    num_threads: int = 0,
) -> BasicPitchModel:
    """Load Basic Pitch (ICASSP 2022) as an ONNX Runtime session.

    Parameters
    ----------
    model_file_path : str
        ``nmp.onnx``; ``""`` uses the one in the basic-pitch wheel.
    outputs : sequence of {"contour", "note", "onset"}
        Posteriorgrams concatenated, in this order, into the frame embedding.
    pad_mode : {"center", "repeat"}
        Rule for sounds shorter than one frame hop (see the module docstring).
    batch_size : int
        Windows per ONNX run.
    num_threads : int
        ONNX Runtime intra-op threads (0: its default, all cores).

    Returns
    -------
    BasicPitchModel
        ``sample_rate`` 22 050; embedding size 440 with the default ``outputs``.
    """
    path = Path(model_file_path).expanduser() if model_file_path else _wheel_model()
    if not path.is_file():
        raise EmbeddingError(f"model_file_path={str(path)!r} is not a file; pass Basic Pitch's nmp.onnx or ''.")
    return BasicPitchModel(path, outputs=outputs, pad_mode=pad_mode, batch_size=batch_size, num_threads=num_threads)


def _run(audio, model: BasicPitchModel, function: str) -> Tuple[torch.Tensor, torch.Tensor]:
    array = as_audio_array(audio, model_name=function)
    n_sounds, n_samples = array.shape
    padded, offset = pad_to_window(array, MIN_SAMPLES, mode=model.pad_mode)
    length = padded.shape[1]
    # upstream: prepend overlap_len / 2 zeros, cut windows every WINDOW_HOP_SAMPLES, pad the last
    lead = OVERLAP_SAMPLES // 2
    starts = np.arange(0, lead + length, WINDOW_HOP_SAMPLES)
    total = starts[-1] + WINDOW_SAMPLES
    index = starts[:, None] + np.arange(WINDOW_SAMPLES)[None, :]
    n_frames = int(np.floor(length * (ANNOTATIONS_FPS / SAMPLE_RATE)))
    frames = np.arange(n_frames)
    if offset:
        # keep the frames centred inside the unpadded sound (at least the nearest one)
        centre = frames * FFT_HOP - offset
        keep = (centre >= 0) & (centre < n_samples)
        if not keep.any():
            keep = np.abs(centre - n_samples / 2.0) == np.abs(centre - n_samples / 2.0).min()
        frames = frames[keep]
    half = N_OVERLAPPING_FRAMES // 2
    embeddings = np.empty((n_sounds, len(frames), model.timestamp_embedding_size), np.float32)
    # a few sounds at a time: the padded windows of 2 500 short sounds would take ~0.5 GB
    chunk = max(1, model.batch_size // len(starts))
    for first in range(0, n_sounds, chunk):
        part = padded[first : first + chunk]
        shifted = np.zeros((len(part), total), np.float32)
        shifted[:, lead : lead + length] = part
        posteriors = model.predict(shifted[:, index].reshape(-1, WINDOW_SAMPLES))[:, half:-half]
        posteriors = posteriors.reshape(len(part), -1, posteriors.shape[-1])
        embeddings[first : first + chunk] = posteriors[:, frames]
    centres_ms = (frames * FFT_HOP - offset) * 1000.0 / SAMPLE_RATE
    if offset:
        centres_ms = np.clip(centres_ms, 0.0, None)
    timestamps = np.broadcast_to(centres_ms, (n_sounds, len(frames)))
    return torch.from_numpy(embeddings), torch.from_numpy(np.ascontiguousarray(timestamps, dtype=np.float32))


def get_timestamp_embeddings(audio: torch.Tensor, model: BasicPitchModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frame posteriorgrams and frame centres.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples), float32, 22.05 kHz

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_frames, embedding_size), float32
    timestamps : torch.Tensor, shape (n_sounds, n_frames), float32, ms (frame ``i`` at ``256 i`` samples)
    """
    return _run(audio, model, "get_timestamp_embeddings")


def get_scene_embeddings(audio: torch.Tensor, model: BasicPitchModel) -> torch.Tensor:
    """Mean frame posteriorgram, ``(n_sounds, embedding_size)`` float32."""
    embeddings, _ = _run(audio, model, "get_scene_embeddings")
    return embeddings.mean(dim=1)
