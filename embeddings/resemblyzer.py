"""Resemblyzer (Resemble AI; the GE2E speaker encoder of Wan et al. 2018) as a HEAR 2021 module.

Weights and code ship in the ``resemblyzer`` wheel (``pip install --no-deps resemblyzer``: it
declares the obsolete ``typing`` backport; it really needs torch, librosa, scipy, numpy and
``webrtcvad``, which its package ``__init__`` imports: install the binary ``webrtcvad-wheels``).

The model is upstream's ``VoiceEncoder`` (3-layer LSTM over 40-band mel power spectra, 25 ms
windows, 10 ms hop, 16 kHz; last hidden state -> linear -> ReLU -> L2 norm, 256-d), and the
embedding follows upstream's ``VoiceEncoder.embed_utterance`` step by step: partial utterances
of 160 frames (1.6 s) at 1.3 partials per second (``compute_partial_slices(rate=1.3,
min_coverage=0.75)``), the waveform zero-padded at the end to cover the last partial, one
embedding per partial, and the utterance embedding = the L2-normalised mean of the partials.

What is bypassed: upstream's ``preprocess_wav`` (volume normalisation to -30 dBFS and
``trim_long_silences``, a WebRTC voice-activity detector). Its VAD finds no voice in a pure
or harmonic tone and trims it to **zero samples**, so GEAR feeds the waveform to the encoder
as it is.

Batched: sounds of equal length share their partial slicing, so all partials of all sounds go
through the LSTM in one batch (``batch_size`` partials at a time).

Padding: a sound shorter than one partial (:data:`WINDOW_SAMPLES` = 25 600 samples) is padded
to one partial by ``pad_mode`` (``"center"`` zeros both sides, or ``"repeat"``), as in
:mod:`embeddings.yamnet`; upstream would zero-pad it at the end instead. Timestamps are
partial centres in ms (a padded short sound: its own centre). The scene embedding is
upstream's utterance embedding.

Layers (``gear run --layers``, :data:`LAYERS`), per partial, averaged over a sound's partials:
``lstm1`` .. ``lstm3``, the final hidden state of each LSTM layer (256 values; the embedding
reads ``lstm3``'s), from the ``h_n`` the LSTM returns (a forward hook on ``encoder.lstm``: torch runs
the three layers as one module), and ``projection``, the linear layer after its ReLU (the partial
embedding before its L2 norm).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from embeddings.base import EmbeddingError
from embeddings.audio import PAD_MODES, as_audio_array, pad_to_window
from embeddings.hear_model import HEARModel, make_taps

__all__ = [
    "SAMPLE_RATE",
    "EMBEDDING_SIZE",
    "WINDOW_SAMPLES",
    "LAYERS",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 16000
EMBEDDING_SIZE = 256
HOP_SAMPLES = 160
WINDOW_FFT = 400
N_MELS = 40
PARTIAL_FRAMES = 160
#: Shortest sound embedded without padding: one partial utterance.
WINDOW_SAMPLES = PARTIAL_FRAMES * HOP_SAMPLES
#: upstream embed_utterance defaults
RATE_PER_S = 1.3
MIN_COVERAGE = 0.75
#: The probed layers, by depth (module doc).
LAYERS = ("lstm1", "lstm2", "lstm3", "projection")


def _wheel_weights() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            "Resemblyzer needs the resemblyzer package: pip install --no-deps resemblyzer==0.1.4 "
            "webrtcvad-wheels"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"


class _ToTaps:
    """Forward hook of the encoder's LSTM (each layer's final hidden state ``h_n[k]`` to tap
    ``lstmK``) or of its ReLU (the output to tap ``projection``)."""

    def __init__(self, taps: torch.nn.ModuleDict, *, lstm: bool):
        self.taps = taps
        self.lstm = lstm

    def __call__(self, _module, _inputs, output) -> None:
        if not self.lstm:
            self.taps["projection"](output)
            return
        _, (hidden, _) = output
        for k, state in enumerate(hidden, start=1):
            self.taps[f"lstm{k}"](state)  # (partials, 256)


class ResemblyzerModel(HEARModel):
    """Upstream's ``VoiceEncoder`` with a batched front end; see :func:`load_model`.

    A :class:`~embeddings.hear_model.HEARModel`: the encoder is a registered sub-module, so
    ``model.to(device)`` moves it; the mel front end runs on the CPU and the partials are fed
    to the encoder on its device (embeddings come back on the CPU).
    """

    sample_rate = SAMPLE_RATE
    scene_embedding_size = EMBEDDING_SIZE
    timestamp_embedding_size = EMBEDDING_SIZE

    def __init__(self, weights: Path, *, pad_mode: str, batch_size: int):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise EmbeddingError(f"pad_mode={pad_mode!r} is not one of {PAD_MODES}; pick one of them.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise EmbeddingError(f"batch_size={batch_size!r} must be a positive int.")
        try:
            from resemblyzer.voice_encoder import VoiceEncoder
        except ImportError as error:  # webrtcvad is imported by resemblyzer/__init__.py
            raise EmbeddingError(
                f"cannot import resemblyzer ({error}); pip install --no-deps resemblyzer==0.1.4 "
                f"webrtcvad-wheels"
            ) from error
        self.weights = Path(weights)
        self.pad_mode = pad_mode
        self.batch_size = batch_size
        self.window_samples = WINDOW_SAMPLES
        # VoiceEncoder loads its checkpoint with torch.load(map_location="cpu"): under
        # torch >= 2.6 that is weights_only=True, and the file (a dict of tensors and an int
        # step) loads fine that way.
        self.encoder = VoiceEncoder(device="cpu", verbose=False, weights_fpath=self.weights).eval()
        self._slicer = VoiceEncoder.compute_partial_slices
        self.taps = make_taps(LAYERS)  # read by `gear run --layers` (module doc)
        self.encoder.lstm.register_forward_hook(_ToTaps(self.taps, lstm=True))
        self.encoder.relu.register_forward_hook(_ToTaps(self.taps, lstm=False))

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """Upstream's ``wav_to_mel_spectrogram`` for a batch: ``(n, frames, 40)`` float32."""
        import librosa

        mel = librosa.feature.melspectrogram(
            y=audio, sr=SAMPLE_RATE, n_fft=WINDOW_FFT, hop_length=HOP_SAMPLES, n_mels=N_MELS
        )
        return np.ascontiguousarray(mel.astype(np.float32).transpose(0, 2, 1))

    def slices(self, n_samples: int):
        """Upstream's partial-utterance slicing: ``(wav_slices, mel_slices)``."""
        return self._slicer(n_samples, RATE_PER_S, MIN_COVERAGE)

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        device = next(self.encoder.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, mels.shape[0], self.batch_size):
                out.append(self.encoder(mels[start : start + self.batch_size].to(device)).cpu())
        return torch.cat(out).float()


def load_model(model_file_path: str = "", *, pad_mode: str = "center", batch_size: int = 256) -> ResemblyzerModel:
    """Load Resemblyzer's ``VoiceEncoder``.

    Parameters
    ----------
    model_file_path : str
        A ``.pt`` checkpoint in Resemblyzer's format; ``""`` uses ``pretrained.pt`` from the wheel.
    pad_mode : {"center", "repeat"}
        Rule for sounds shorter than one 1.6 s partial.
    batch_size : int
        Partials per LSTM pass.

    Returns
    -------
    ResemblyzerModel
        ``sample_rate`` 16 000; ``scene_embedding_size`` = ``timestamp_embedding_size`` = 256.
    """
    path = Path(model_file_path).expanduser() if model_file_path else _wheel_weights()
    if not path.is_file():
        raise EmbeddingError(f"model_file_path={str(path)!r} is not a file; pass a VoiceEncoder .pt or ''.")
    return ResemblyzerModel(path, pad_mode=pad_mode, batch_size=batch_size)


def _run(audio, model: ResemblyzerModel, function: str) -> Tuple[torch.Tensor, torch.Tensor]:
    array = as_audio_array(audio, model_name=function)
    n_sounds, n_samples = array.shape
    padded, offset = pad_to_window(array, WINDOW_SAMPLES, mode=model.pad_mode)
    wav_slices, mel_slices = model.slices(padded.shape[1])
    stop = wav_slices[-1].stop
    if stop >= padded.shape[1]:
        padded = np.pad(padded, ((0, 0), (0, stop - padded.shape[1])))
    mel = model.mel(padded)
    partials = np.stack([mel[:, s] for s in mel_slices], axis=1)  # (n, partials, 160, 40)
    n_partials = partials.shape[1]
    embeddings = model.embed_partials(torch.from_numpy(partials.reshape(-1, PARTIAL_FRAMES, N_MELS)))
    embeddings = embeddings.reshape(n_sounds, n_partials, EMBEDDING_SIZE)
    if n_samples < WINDOW_SAMPLES:
        centres = np.full(1, n_samples / 2.0)
    else:
        centres = np.array([(s.start + s.stop) / 2.0 for s in wav_slices]) - offset
    timestamps = np.broadcast_to(centres * 1000.0 / SAMPLE_RATE, (n_sounds, n_partials))
    return embeddings.contiguous(), torch.from_numpy(np.ascontiguousarray(timestamps, dtype=np.float32))


def get_timestamp_embeddings(audio: torch.Tensor, model: ResemblyzerModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """Partial-utterance embeddings (each L2-normalised) and partial centres.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples), float32, 16 kHz

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_partials, 256), float32
    timestamps : torch.Tensor, shape (n_sounds, n_partials), float32, ms
    """
    return _run(audio, model, "get_timestamp_embeddings")


def get_scene_embeddings(audio: torch.Tensor, model: ResemblyzerModel) -> torch.Tensor:
    """Utterance embedding (L2-normalised mean of the partials), ``(n_sounds, 256)`` float32."""
    embeddings, _ = _run(audio, model, "get_scene_embeddings")
    mean = embeddings.double().mean(dim=1)
    return (mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-12)).float()
