"""Hand-made audio representations behind the HEAR 2021 API: log-mel, MFCC and timbre
descriptors, each summarised by its mean and standard deviation over frames.

One module, three representations chosen with ``load_model(representation=...)``:

``"logmel"``
    64 mel bands (Slaney mel scale, 0-8 kHz) of the power spectrogram, in dB with an
    absolute floor of -100 dB (``10 log10(max(S, 1e-10))``, no ``top_db``).
``"mfcc"``
    20 MFCCs (orthonormal DCT-II of the ``"logmel"`` dB spectrum, c0 included).
``"descriptors"``
    the timbre descriptors of a MIR course, 11 per frame: spectral centroid (Hz),
    spectral bandwidth (Hz), spectral contrast (peak minus valley, dB) in 6 bands
    (0-200 Hz, the octaves 200-400, 400-800, 800-1 600, 1 600-3 200 Hz, and 3.2-8 kHz: librosa
    ``fmin=200, n_bands=5``; ``n_bands=6`` would put a band edge above Nyquist), spectral
    flatness (of the power spectrum, in [0, 1]), 85 % spectral roll-off (Hz) and
    zero-crossing rate (crossings per sample).

Analysis settings, chosen for GEAR's 64 ms tones (1 024 samples at 16 kHz): sample rate
16 kHz; 512-sample (32 ms) Hann frames, 128-sample (8 ms) hop, frames centred with zero
padding (``librosa`` ``center=True``, ``pad_mode="constant"``), so a 1 024-sample tone gives
9 frames centred at 0, 8, ..., 64 ms. A 512-point FFT resolves partials 187 Hz apart
(31.25 Hz bins) and has no empty mel band at 64 bands.

Timestamp embeddings are the per-frame features (64, 20 or 11 dimensions); scene
embeddings are ``[mean over frames, std over frames]`` (128, 40 or 22 dimensions). Every
sound is analysed on its own: no statistic is shared across a batch, so a sound's
embedding does not depend on which other sounds it is batched with.
"""
from __future__ import annotations

from typing import Tuple

import librosa
import numpy as np
import torch

from embeddings.audio import as_audio_batch
from embeddings.errors import EmbeddingError
from embeddings.hear_model import HEARModel

__all__ = [
    "REPRESENTATIONS",
    "DSPRepresentation",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

#: Names accepted by ``load_model(representation=...)``.
REPRESENTATIONS = ("logmel", "mfcc", "descriptors")

_DESCRIPTOR_NAMES = (
    ("spectral_centroid_hz",)
    + ("spectral_bandwidth_hz",)
    + tuple(f"spectral_contrast_band{k}_db" for k in range(6))
    + ("spectral_flatness", "spectral_rolloff_hz", "zero_crossing_rate")
)


class DSPRepresentation(HEARModel):
    """A deterministic signal-processing representation with the HEAR model attributes.

    A :class:`~embeddings.hear_model.HEARModel` (a ``torch.nn.Module`` without parameters), as
    the official HEAR validator requires; the analysis itself is NumPy/librosa on the CPU.

    Parameters
    ----------
    representation : {"logmel", "mfcc", "descriptors"}

    Attributes
    ----------
    sample_rate : int
        16 000 Hz.
    n_fft, hop_length : int
        Frame length (512 samples, 32 ms) and hop (128 samples, 8 ms).
    n_mels, n_mfcc : int
        64 mel bands, 20 MFCCs.
    frame_feature_names : tuple of str
        Names of the per-frame features (timestamp embedding dimensions), with units.
    feature_names : tuple of str
        Names of the scene embedding dimensions (``mean_<name>`` then ``std_<name>``).
    timestamp_embedding_size, scene_embedding_size : int
    """

    sample_rate = 16000
    n_fft = 512
    hop_length = 128
    n_mels = 64
    n_mfcc = 20
    fmin_hz = 0.0
    fmax_hz = 8000.0
    amin = 1e-10  #: power floor of the dB conversion (-100 dB)
    contrast_fmin_hz = 200.0
    contrast_n_bands = 5
    rolloff_percent = 0.85

    def __init__(self, representation: str = "logmel"):
        super().__init__()
        if representation not in REPRESENTATIONS:
            raise EmbeddingError(
                f"representation={representation!r} is not known; choose one of "
                f"{', '.join(REPRESENTATIONS)}"
            )
        self.representation = representation
        if representation == "logmel":
            names = tuple(f"logmel_band{k}_db" for k in range(self.n_mels))
        elif representation == "mfcc":
            names = tuple(f"mfcc{k}" for k in range(self.n_mfcc))
        else:
            names = _DESCRIPTOR_NAMES
        self.frame_feature_names = names
        self.feature_names = tuple(f"mean_{n}" for n in names) + tuple(f"std_{n}" for n in names)
        self.timestamp_embedding_size = len(names)
        self.scene_embedding_size = 2 * len(names)
        self._mel_basis = librosa.filters.mel(
            sr=self.sample_rate,
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            fmin=self.fmin_hz,
            fmax=self.fmax_hz,
        ).astype(np.float64)

    def __repr__(self) -> str:
        return f"DSPRepresentation(representation={self.representation!r})"

    def frame_features(self, audio) -> Tuple[np.ndarray, np.ndarray]:
        """Per-frame features of a batch.

        Parameters
        ----------
        audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
            At 16 kHz.

        Returns
        -------
        features : np.ndarray, shape (n_sounds, n_frames, timestamp_embedding_size), float64
        timestamps_ms : np.ndarray, shape (n_frames,), float64
            Frame centres, ``k * hop_length / sample_rate`` in ms, k = 0 .. n_samples // hop_length.
        """
        tensor = as_audio_batch(audio, model_name=f"dsp[{self.representation}]")
        y = tensor.cpu().numpy().astype(np.float64)
        n_frames = 1 + y.shape[1] // self.hop_length
        timestamps_ms = np.arange(n_frames) * (1000.0 * self.hop_length / self.sample_rate)
        if y.shape[0] == 0:
            return np.zeros((0, n_frames, self.timestamp_embedding_size)), timestamps_ms
        stft = dict(n_fft=self.n_fft, hop_length=self.hop_length, window="hann", center=True,
                    pad_mode="constant")
        # (n_sounds, 1 + n_fft // 2, n_frames)
        magnitude = np.abs(librosa.stft(y, **stft))
        if self.representation in ("logmel", "mfcc"):
            mel_power = np.matmul(self._mel_basis, magnitude**2)  # (n_sounds, n_mels, n_frames)
            features = librosa.power_to_db(mel_power, ref=1.0, amin=self.amin, top_db=None)
            if self.representation == "mfcc":
                features = librosa.feature.mfcc(S=features, n_mfcc=self.n_mfcc, dct_type=2,
                                                norm="ortho")
        else:
            sr = self.sample_rate
            features = np.concatenate(
                [
                    librosa.feature.spectral_centroid(S=magnitude, sr=sr, **stft),
                    librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, **stft),
                    librosa.feature.spectral_contrast(
                        S=magnitude, sr=sr, fmin=self.contrast_fmin_hz,
                        n_bands=self.contrast_n_bands, **stft,
                    ),
                    librosa.feature.spectral_flatness(S=magnitude, amin=self.amin, power=2.0),
                    librosa.feature.spectral_rolloff(
                        S=magnitude, sr=sr, roll_percent=self.rolloff_percent, **stft
                    ),
                    librosa.feature.zero_crossing_rate(
                        y, frame_length=self.n_fft, hop_length=self.hop_length, center=True
                    ),
                ],
                axis=-2,
            )
        # (n_sounds, n_features, n_frames) -> (n_sounds, n_frames, n_features)
        return np.swapaxes(features, -1, -2), timestamps_ms


def load_model(model_file_path: str = "", *, representation: str = "logmel") -> DSPRepresentation:
    """Return the DSP representation ``representation`` (nothing is loaded from disk).

    Parameters
    ----------
    model_file_path : str
        Must be empty: these representations have no weights.
    representation : {"logmel", "mfcc", "descriptors"}

    Returns
    -------
    DSPRepresentation

    Raises
    ------
    EmbeddingError
        Unknown representation, or a non-empty ``model_file_path``.
    """
    if model_file_path not in ("", None):
        raise EmbeddingError(
            f"model_file_path={str(model_file_path)!r} was given, but the DSP representations "
            f"have no weights; call load_model('') or load_model(representation=...)"
        )
    return DSPRepresentation(representation)


def _check_model(model) -> DSPRepresentation:
    if not isinstance(model, DSPRepresentation):
        raise EmbeddingError(
            f"model must be a DSPRepresentation from embeddings.dsp.load_model, got "
            f"{type(model).__name__}"
        )
    return model


def get_timestamp_embeddings(audio, model: DSPRepresentation) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features, frames centred every 8 ms.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : DSPRepresentation

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_frames, model.timestamp_embedding_size), float32
    timestamps : torch.Tensor, shape (n_sounds, n_frames), float32
        Frame centres in milliseconds; ``n_frames = 1 + n_samples // 128``.
    """
    model = _check_model(model)
    features, timestamps_ms = model.frame_features(audio)
    embeddings = torch.from_numpy(features.astype(np.float32))
    timestamps = torch.from_numpy(timestamps_ms.astype(np.float32)).expand(features.shape[0], -1)
    return embeddings, timestamps.contiguous()


def get_scene_embeddings(audio, model: DSPRepresentation) -> torch.Tensor:
    """Mean and standard deviation of the per-frame features over frames.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : DSPRepresentation

    Returns
    -------
    torch.Tensor, shape (n_sounds, model.scene_embedding_size), float32
        ``[mean over frames, population std over frames]`` of each per-frame feature, in the
        order of ``model.feature_names``.
    """
    model = _check_model(model)
    features, _ = model.frame_features(audio)
    stats = np.concatenate([features.mean(axis=1), features.std(axis=1)], axis=1)
    return torch.from_numpy(stats.astype(np.float32))
