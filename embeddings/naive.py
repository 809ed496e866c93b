"""The HEAR 2021 naive baseline, reimplemented: log-mel spectrum -> fixed random projection.

Numerically the same model as ``hearbaseline.naive`` (Turian et al., HEAR 2021): 44.1 kHz
audio is cut into 4 096-sample Hann-windowed frames (the sound zero-padded by half a frame
on each side, so frame k is centred at ``k * hop``), each frame's power spectrum goes
through 256 Slaney mel filters (``librosa.filters.mel``, 0 - 22.05 kHz), ``log(. + 1e-4)``,
and a fixed matrix of shape (256, 4 096) drawn as ``torch.rand(256, 4096) / 16`` right after
seeding torch with 0. Timestamp embeddings use a 50 ms hop; the scene embedding is the mean
of the frames taken with a 250 ms hop (for GEAR's 64 ms tones: one frame, centred on the
tone's first sample).

Differences from ``hearbaseline.naive``, none of which changes a number: frames of every
sound are embedded in one batched pass (no per-frame Python loop); the projection is
drawn from a private ``torch.Generator`` seeded with 0 (same stream as
``torch.manual_seed(0)``, without resetting the global torch RNG as the original does);
``librosa.filters.mel`` is called with keyword arguments (librosa >= 0.10); weight files
are read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Tuple

import librosa
import torch

from embeddings.audio import as_audio_batch
from embeddings.errors import EmbeddingError
from embeddings.hear_model import make_taps

__all__ = [
    "RandomProjectionMelEmbedding",
    "TIMESTAMP_HOP_SIZE_MS",
    "SCENE_HOP_SIZE_MS",
    "frame_audio",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

#: Hop of the timestamp embeddings, in milliseconds (as hearbaseline.naive).
TIMESTAMP_HOP_SIZE_MS = 50.0
#: Hop of the frames averaged into the scene embedding, in milliseconds (as hearbaseline.naive).
SCENE_HOP_SIZE_MS = 250.0
#: Frames per forward pass (bounds memory: one chunk is ~ chunk * 4096 * 12 bytes).
_CHUNK_FRAMES = 1024


class RandomProjectionMelEmbedding(torch.nn.Module):
    """Log-mel spectrum (256 bands) followed by a fixed random projection to 4 096 dimensions.

    Its ``state_dict`` has the keys of ``hearbaseline.naive.RandomProjectionMelEmbedding``
    (``window``, ``mel_scale``, ``projection``), so weight files saved from either load in
    the other.

    Attributes
    ----------
    sample_rate : int
        44 100 Hz.
    scene_embedding_size, timestamp_embedding_size : int
        4 096.
    n_fft : int
        Frame length, 4 096 samples (92.9 ms).
    n_mels : int
        256 mel bands.
    window : torch.Tensor, shape (4096,), float32
        Periodic Hann window.
    mel_scale : torch.Tensor, shape (256, 2049), float32
        Mel filter bank.
    projection : torch.nn.Parameter, shape (256, 4096), float32
        ``U[0, 1) / sqrt(256)`` from seed 0.
    """

    sample_rate = 44100
    embedding_size = 4096
    scene_embedding_size = embedding_size
    timestamp_embedding_size = embedding_size
    n_fft = 4096
    n_mels = 256
    seed = 0
    epsilon = 1e-4

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(self.n_fft))
        mel = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        self.register_buffer("mel_scale", torch.tensor(mel))
        generator = torch.Generator().manual_seed(self.seed)
        projection = torch.rand(self.n_mels, self.embedding_size, generator=generator)
        self.projection = torch.nn.Parameter(projection / math.sqrt(self.n_mels), requires_grad=False)
        # identity taps read by `gear run --layers`: power spectrum (2 049), log-mel (256), projection (4 096)
        self.taps = make_taps(("power", "log_mel", "projection"))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Embed frames.

        Parameters
        ----------
        frames : torch.Tensor, shape (..., 4096), float32

        Returns
        -------
        torch.Tensor, shape (..., 4096), float32
        """
        power = self.taps["power"](torch.abs(torch.fft.rfft(frames * self.window)) ** 2.0)
        log_mel = self.taps["log_mel"](torch.log(torch.matmul(power, self.mel_scale.transpose(0, 1)) + self.epsilon))
        return self.taps["projection"](log_mel.matmul(self.projection))


def frame_audio(
    audio: torch.Tensor, *, frame_size: int, hop_size_ms: float, sample_rate: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cut sounds into frames centred every ``hop_size_ms`` (the HEAR baseline framing).

    The sounds are zero-padded with ``frame_size // 2`` samples before and
    ``frame_size - frame_size // 2`` after; frame k starts at ``round(k * hop)`` samples of
    the padded sound (round half to even), ``hop = hop_size_ms * sample_rate / 1000``, and
    frames are taken while they fit in the padded sound.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples)
    frame_size : int
        Samples per frame.
    hop_size_ms : float
        Hop between frame centres, in milliseconds (> 0).
    sample_rate : int
        Sample rate of ``audio`` in Hz.

    Returns
    -------
    frames : torch.Tensor, shape (n_sounds, n_frames, frame_size)
    timestamps : torch.Tensor, shape (n_sounds, n_frames), float32
        Frame centres in milliseconds.
    """
    if not (isinstance(hop_size_ms, (int, float)) and math.isfinite(hop_size_ms) and hop_size_ms > 0):
        raise EmbeddingError(f"hop_size_ms must be a positive number of milliseconds, got {hop_size_ms!r}")
    padded = torch.nn.functional.pad(audio, (frame_size // 2, frame_size - frame_size // 2))
    n_padded = padded.shape[-1]
    hop = hop_size_ms / 1000.0 * sample_rate
    starts, times_ms = [], []
    k = 0
    while True:
        start = int(round(k * hop))
        if start + frame_size > n_padded:
            break
        starts.append(start)
        times_ms.append(k * hop / sample_rate * 1000.0)
        k += 1
    index = torch.tensor(starts, device=audio.device)[:, None] + torch.arange(frame_size, device=audio.device)
    frames = padded[:, index]  # (n_sounds, n_frames, frame_size)
    timestamps = torch.tensor(times_ms, dtype=torch.float32, device=audio.device)
    return frames, timestamps.expand(audio.shape[0], -1).contiguous()


def load_model(model_file_path: str = "") -> RandomProjectionMelEmbedding:
    """Build the naive baseline, optionally with weights from a state-dict file.

    Parameters
    ----------
    model_file_path : str
        ``""`` (default): the fixed seed-0 projection. Otherwise a file written by
        ``torch.save(model.state_dict(), path)`` from this class or from
        ``hearbaseline.naive``; it is read with ``torch.load(weights_only=True)``, so it can
        hold tensors only (no pickled objects are ever executed).

    Returns
    -------
    RandomProjectionMelEmbedding
        In eval mode, on the CPU.

    Raises
    ------
    EmbeddingError
        If the file is missing, is not a state dict of tensors, or its keys or shapes do not
        match this model.
    """
    model = RandomProjectionMelEmbedding()
    if model_file_path not in ("", None):
        path = os.fspath(model_file_path)
        if not os.path.isfile(path):
            raise EmbeddingError(f"model_file_path={path!r} is not a file; pass '' for the seed-0 weights")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for non-tensor pickles
            raise EmbeddingError(
                f"model_file_path={path!r} is not a tensor-only state dict readable with "
                f"torch.load(weights_only=True): {exc}"
            ) from None
        if not isinstance(state, Mapping):
            raise EmbeddingError(
                f"model_file_path={path!r} holds a {type(state).__name__}, not a state dict; save "
                f"one with torch.save(model.state_dict(), path)"
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise EmbeddingError(
                f"model_file_path={path!r} does not match the naive baseline "
                f"(keys window, mel_scale, projection (256, 4096)): {exc}"
            ) from None
    return model.eval()


def _check_model(model) -> RandomProjectionMelEmbedding:
    if not isinstance(model, RandomProjectionMelEmbedding):
        raise EmbeddingError(
            f"model must be a RandomProjectionMelEmbedding from embeddings.naive.load_model, "
            f"got {type(model).__name__}"
        )
    return model


def _embed_frames(frames: torch.Tensor, model: RandomProjectionMelEmbedding) -> torch.Tensor:
    device = model.projection.device
    n_sounds, n_frames, frame_size = frames.shape
    flat = frames.reshape(n_sounds * n_frames, frame_size)
    out = torch.empty((flat.shape[0], model.embedding_size), dtype=torch.float32, device=device)
    with torch.inference_mode():
        for start in range(0, flat.shape[0], _CHUNK_FRAMES):
            chunk = flat[start:start + _CHUNK_FRAMES].to(device)
            out[start:start + _CHUNK_FRAMES] = model(chunk)
    return out.reshape(n_sounds, n_frames, model.embedding_size).to(frames.device)


def get_timestamp_embeddings(
    audio, model: RandomProjectionMelEmbedding, *, hop_size_ms: float = TIMESTAMP_HOP_SIZE_MS
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of frames centred every ``hop_size_ms``.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 44.1 kHz, in [-1, 1].
    model : RandomProjectionMelEmbedding
    hop_size_ms : float
        Hop between frame centres, in milliseconds (default 50, as hearbaseline).

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_frames, 4096), float32
    timestamps : torch.Tensor, shape (n_sounds, n_frames), float32
        Frame centres in milliseconds (0, 50, 100, ...).
    """
    model = _check_model(model)
    audio = as_audio_batch(audio, model_name="naive")
    frames, timestamps = frame_audio(
        audio, frame_size=model.n_fft, hop_size_ms=hop_size_ms, sample_rate=model.sample_rate
    )
    return _embed_frames(frames, model), timestamps


def get_scene_embeddings(audio, model: RandomProjectionMelEmbedding) -> torch.Tensor:
    """Mean of the frame embeddings taken every 250 ms.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 44.1 kHz, in [-1, 1].
    model : RandomProjectionMelEmbedding

    Returns
    -------
    torch.Tensor, shape (n_sounds, 4096), float32
    """
    embeddings, _ = get_timestamp_embeddings(audio, model, hop_size_ms=SCENE_HOP_SIZE_MS)
    return embeddings.mean(dim=1)
