"""OpenL3 (Cramer, Wu, Salamon & Bello, ICASSP 2019) behind the HEAR 2021 API, in PyTorch.

The audio network of OpenL3 is rebuilt layer for layer (the layer names are the ones of the
Keras model of ``marl/openl3`` and of the ``torchopenl3`` port) and loads either weight
format of the upstream projects, read from a local file (nothing is ever downloaded):

* ``openl3_audio_<input_repr>_<content_type>.h5``: the Keras weights shipped by
  ``marl/openl3`` (legacy Keras-2 HDF5 layout: root attribute ``layer_names``, one group per
  layer with attribute ``weight_names``; also accepted under a ``model_weights`` group as
  written by ``model.save``). Read with ``h5py``; TensorFlow and kapre are not needed. The
  weighted layers are taken in the file's layer order: 8 ``BatchNormalization`` layers
  (gamma, beta, moving mean, moving variance) and 8 ``Conv2D`` layers (kernel
  ``(3, 3, in, out)``, bias), the last one being ``audio_embedding_layer``. A kapre 0.1.x
  front-end layer stored in the file (``real_kernels``, ``imag_kernels``, ``freq2mel``) is
  used as the front end.
* ``torchopenl3_<input_repr>_<content_type>_<embedding_size>.pth.tar``: a ``torchopenl3``
  state dict (same keys as :class:`OpenL3Embedding`), read with
  ``torch.load(weights_only=True)``.

Front end (kapre 0.1.4, the one the published weights were trained with, as torchopenl3):
48 kHz frames of 1 s; STFT as a strided convolution with periodic-Hann-windowed DFT kernels,
hop 242 samples; ``mel128``/``mel256``: ``n_dft`` 2048, 'same' padding (982 zeros on each
side of the 48 000 samples, 199 frames), power spectrum through HTK-scale mel filters with
Slaney area normalisation (0 - 24 kHz), square root (``power_melgram=1``); ``linear``:
``n_dft`` 512, no padding, magnitude (197 frames, 257 bins). Then
``10 log10(max(x, 1e-10))``, minus its maximum over each frame's spectrogram, floored at
-80 dB. The network (batch norms in eval mode) ends with a max-pool of the
``audio_embedding_layer`` output whose size sets the embedding: 6 144 (pool (8, 8), or (4, 8)
for mel128) or 512 (pool (32, 24), or (16, 24) for mel128), flattened as Keras does
(frequency, time, channel).

Framing (openl3's ``center=True``: the embedding of time t looks at ``[t - 0.5 s, t + 0.5 s)``,
zeros outside the sound):

* timestamp embeddings: windows centred every ``hop_ms`` (default 50 ms, as
  ``hearbaseline.torchopenl3``) at ``0, hop, ...`` for ``1 + n_samples // hop_samples``
  windows, so the timestamps span the whole sound;
* scene embeddings: a sound of at most 1 s (a GEAR tone) is one window with the sound in its
  middle (``(48000 - n) // 2`` zeros before it, the rest after); a longer sound gives the
  mean of the timestamp windows taken every 250 ms (``hearbaseline.torchopenl3``'s scene hop).

All windows of all sounds go through the network together, ``chunk_frames`` at a time, under
``torch.inference_mode``. Every window is normalised on its own (dB relative to its own
maximum) and the batch norms use stored statistics, so embeddings do not depend on the batch.

Layers (``gear run --layers``, :data:`LAYERS`): ``conv2d_1`` .. ``conv2d_7``, each convolution's
activation after its batch norm and ReLU (before the max-pool of the even ones), and
``audio_embedding_layer``, the last convolution's output before the pooling that makes the
embedding. For mel256 each gives 16 384 values per window after the time mean (64 x 256, 128 x
128, 256 x 64, 512 x 32 channels x mel bins).
"""
from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Dict, Optional, Tuple

import librosa
import numpy as np
import torch
import torch.nn.functional as F

from embeddings.audio import as_audio_batch
from embeddings.errors import EmbeddingError
from embeddings.hear_model import make_taps

__all__ = [
    "SAMPLE_RATE",
    "LAYERS",
    "WINDOW_SAMPLES",
    "INPUT_REPRS",
    "CONTENT_TYPES",
    "EMBEDDING_SIZES",
    "POOL_SIZES",
    "KapreSpectrogram",
    "OpenL3Embedding",
    "read_keras_weights",
    "keras_state_dict",
    "frame_audio",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 48000
WINDOW_SAMPLES = 48000  #: one analysis window: 1 s
HOP_SAMPLES_STFT = 242  #: kapre STFT hop inside a window
TIMESTAMP_HOP_MS = 50.0
SCENE_HOP_MS = 250.0

#: input representation -> (n_dft, n_mels or None for the linear spectrogram)
INPUT_REPRS = {"linear": (512, None), "mel128": (2048, 128), "mel256": (2048, 256)}
CONTENT_TYPES = ("music", "env")
EMBEDDING_SIZES = (512, 6144)
#: final max-pool size per input representation and embedding size (as marl/openl3)
POOL_SIZES = {
    "linear": {6144: (8, 8), 512: (32, 24)},
    "mel128": {6144: (4, 8), 512: (16, 24)},
    "mel256": {6144: (8, 8), 512: (32, 24)},
}
#: (name, in_channels, out_channels) of the Conv2D layers, in order
_CONVS = (
    ("conv2d_1", 1, 64),
    ("conv2d_2", 64, 64),
    ("conv2d_3", 64, 128),
    ("conv2d_4", 128, 128),
    ("conv2d_5", 128, 256),
    ("conv2d_6", 256, 256),
    ("conv2d_7", 256, 512),
    ("audio_embedding_layer", 512, 512),
)
#: The probed layers (``gear run --layers``), by depth: each Keras convolution's activation (after its
#: batch norm and ReLU, before any max-pool; ``audio_embedding_layer``: the convolution's output,
#: before the pooling that makes the embedding), tapped as (frames, channels, time, frequency).
LAYERS = tuple(name for name, _, _ in _CONVS)
_BN_EPS = 1e-3  # Keras BatchNormalization default, used by openl3
_AMIN = 1e-10
_DYNAMIC_RANGE_DB = 80.0


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise EmbeddingError(f"{name}={value!r} is not available; choose one of {', '.join(map(str, choices))}")


class KapreSpectrogram(torch.nn.Module):
    """kapre 0.1.4's ``Spectrogram`` / ``Melspectrogram`` layer (the OpenL3 front end).

    Parameters
    ----------
    input_repr : {"linear", "mel128", "mel256"}

    Attributes
    ----------
    dft_real_kernels, dft_imag_kernels : torch.Tensor, shape (n_dft // 2 + 1, 1, n_dft), float32
        Periodic-Hann-windowed DFT kernels, ``cos(2 pi k n / n_dft) w[n]`` and
        ``-sin(2 pi k n / n_dft) w[n]``.
    mel_basis : torch.Tensor, shape (n_mels, n_dft // 2 + 1), float32
        Only for the mel representations: HTK mel filters, Slaney area normalisation.
    """

    def __init__(self, input_repr: str = "mel256"):
        super().__init__()
        _check_choice("input_repr", input_repr, INPUT_REPRS)
        self.input_repr = input_repr
        self.n_dft, self.n_mels = INPUT_REPRS[input_repr]
        n_bins = self.n_dft // 2 + 1
        n = np.arange(self.n_dft)
        window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.n_dft)  # periodic Hann
        phase = 2.0 * np.pi * np.outer(np.arange(n_bins), n) / self.n_dft
        self.register_buffer("dft_real_kernels", torch.from_numpy((np.cos(phase) * window)[:, None, :].astype(np.float32)))
        self.register_buffer("dft_imag_kernels", torch.from_numpy((-np.sin(phase) * window)[:, None, :].astype(np.float32)))
        if self.n_mels is not None:
            with warnings.catch_warnings():
                # 256 HTK bands over 1 025 bins leave some low bands empty: so did kapre's
                warnings.filterwarnings("ignore", message="Empty filters detected", category=UserWarning)
                mel = librosa.filters.mel(
                    sr=SAMPLE_RATE, n_fft=self.n_dft, n_mels=self.n_mels, fmin=0.0,
                    fmax=SAMPLE_RATE / 2, htk=True, norm="slaney",
                )
            self.register_buffer("mel_basis", torch.from_numpy(mel.astype(np.float32)))
            # Keras 'same' padding of a width-48000 input with stride 242 and filter n_dft
            remainder = WINDOW_SAMPLES % HOP_SAMPLES_STFT
            total = max(self.n_dft - (remainder or HOP_SAMPLES_STFT), 0)
            self.padding = (total // 2, total - total // 2)
        else:
            self.padding = (0, 0)

    @property
    def n_bins(self) -> int:
        """Frequency rows of the output (mel bands or linear bins)."""
        return self.n_mels if self.n_mels is not None else self.n_dft // 2 + 1

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Log spectrograms of 1 s frames.

        Parameters
        ----------
        frames : torch.Tensor, shape (n_frames, 48000), float32

        Returns
        -------
        torch.Tensor, shape (n_frames, 1, n_bins, n_times), float32
            dB relative to each frame's maximum, in [-80, 0].
        """
        x = F.pad(frames[:, None, :], self.padding)
        real = F.conv1d(x, self.dft_real_kernels, stride=HOP_SAMPLES_STFT)
        imag = F.conv1d(x, self.dft_imag_kernels, stride=HOP_SAMPLES_STFT)
        power = real * real + imag * imag  # (n, n_bins, n_times)
        if self.n_mels is not None:
            power = torch.matmul(self.mel_basis, power)
        magnitude = torch.sqrt(power)  # power_melgram = 1 / power_spectrogram = 1
        log_spec = 10.0 * torch.log10(torch.clamp(magnitude, min=_AMIN))
        log_spec = log_spec - log_spec.amax(dim=(1, 2), keepdim=True)
        return torch.clamp(log_spec, min=-_DYNAMIC_RANGE_DB)[:, None]


class OpenL3Embedding(torch.nn.Module):
    """The OpenL3 audio embedding network with the HEAR model attributes.

    Parameters
    ----------
    input_repr : {"mel256", "mel128", "linear"}
    embedding_size : {6144, 512}
    content_type : str, optional
        ``"music"`` or ``"env"`` (which weights were loaded; recorded only: the architecture
        does not depend on it).
    chunk_frames : int
        1 s windows per forward pass (about 60 MB each for mel256).

    Attributes
    ----------
    sample_rate : int
        48 000 Hz.
    scene_embedding_size, timestamp_embedding_size : int
        ``embedding_size``.
    speclayer : KapreSpectrogram
    batch_normalization_1 ... batch_normalization_8 : torch.nn.BatchNorm2d
    conv2d_1 ... conv2d_7, audio_embedding_layer : torch.nn.Conv2d
    weights_file : str
        Path of the weights loaded by :func:`load_model` (``""`` for random weights).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, input_repr: str = "mel256", embedding_size: int = 6144, *,
                 content_type: Optional[str] = None, chunk_frames: int = 8):
        super().__init__()
        _check_choice("input_repr", input_repr, INPUT_REPRS)
        _check_choice("embedding_size", embedding_size, EMBEDDING_SIZES)
        if content_type is not None:
            _check_choice("content_type", content_type, CONTENT_TYPES)
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise EmbeddingError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
        self.input_repr = input_repr
        self.content_type = content_type
        self.embedding_size = embedding_size
        self.scene_embedding_size = embedding_size
        self.timestamp_embedding_size = embedding_size
        self.chunk_frames = chunk_frames
        self.pool_size = POOL_SIZES[input_repr][embedding_size]
        self.weights_file = ""
        self.speclayer = KapreSpectrogram(input_repr)
        for index, (name, n_in, n_out) in enumerate(_CONVS, start=1):
            setattr(self, f"batch_normalization_{index}", torch.nn.BatchNorm2d(n_in, eps=_BN_EPS, momentum=0.01))
            setattr(self, name, torch.nn.Conv2d(n_in, n_out, kernel_size=3, padding=1))
        self.taps = make_taps(LAYERS)  # read by `gear run --layers` (module doc)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Embed 1 s frames.

        Parameters
        ----------
        frames : torch.Tensor, shape (n_frames, 48000), float32

        Returns
        -------
        torch.Tensor, shape (n_frames, embedding_size), float32
        """
        return self.embed_spectrogram(self.speclayer(frames))

    def embed_spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """The network after the front end (the Keras model built with ``include_frontend=False``).

        Parameters
        ----------
        x : torch.Tensor, shape (n_frames, 1, n_bins, n_times), float32
            Output of :attr:`speclayer`.

        Returns
        -------
        torch.Tensor, shape (n_frames, embedding_size), float32
        """
        for index, (name, _, _) in enumerate(_CONVS, start=1):
            # Keras order: batch norm first on the spectrogram, then conv -> BN -> ReLU pairs
            if index == 1:
                x = self.batch_normalization_1(x)
            x = getattr(self, name)(x)
            if name == "audio_embedding_layer":
                self.taps[name](x.transpose(2, 3))
                break
            x = F.relu(getattr(self, f"batch_normalization_{index + 1}")(x))
            self.taps[name](x.transpose(2, 3))  # tapped as (frames, channels, time, frequency)
            if index in (2, 4, 6):
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = F.max_pool2d(x, kernel_size=self.pool_size, stride=self.pool_size)
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


# ----------------------------------------------------------------------------- Keras weights
def _as_str(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras_weights(path) -> list:
    """The weighted layers of a legacy Keras (HDF5) weights file, in the file's layer order.

    Parameters
    ----------
    path : str or Path
        A file written by Keras 2 ``model.save_weights(...h5)`` or ``model.save(...h5)``.

    Returns
    -------
    list of (str, dict)
        ``(layer_name, {weight_short_name: np.ndarray})`` for each layer with weights; the
        short name drops the layer prefix and the ``:0`` suffix (``kernel``, ``gamma``...).

    Raises
    ------
    EmbeddingError
        If h5py is missing or the file is not a legacy Keras weights file.
    """
    try:
        import h5py
    except ImportError:
        raise EmbeddingError(
            "reading OpenL3 Keras weights (.h5) needs h5py: pip install h5py, or pass a "
            "torchopenl3 .pth.tar file instead"
        ) from None
    layers = []
    try:
        with h5py.File(path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in group.attrs:
                raise EmbeddingError(
                    f"{str(path)!r} is an HDF5 file without the 'layer_names' attribute of a legacy "
                    f"Keras weights file; OpenL3 weights are the openl3_audio_*.h5 files of marl/openl3"
                )
            for layer_name in map(_as_str, group.attrs["layer_names"]):
                layer = group[layer_name]
                names = [_as_str(n) for n in layer.attrs.get("weight_names", [])]
                if not names:
                    continue
                weights = {}
                for name in names:
                    short = name.split("/")[-1].split(":")[0]
                    weights[short] = np.asarray(layer[name], dtype=np.float32)
                layers.append((layer_name, weights))
    except OSError as exc:
        raise EmbeddingError(f"{str(path)!r} cannot be read as an HDF5 file: {exc}") from None
    return layers


def keras_state_dict(layers) -> Tuple[Dict[str, torch.Tensor], Optional[str]]:
    """Map the layers of an OpenL3 Keras weights file onto :class:`OpenL3Embedding` keys.

    Parameters
    ----------
    layers : list of (str, dict)
        From :func:`read_keras_weights`.

    Returns
    -------
    state : dict of str -> torch.Tensor
        Batch-norm and convolution tensors (convolution kernels transposed from Keras'
        ``(kh, kw, in, out)`` to PyTorch's ``(out, in, kh, kw)``); front-end buffers when the
        file holds a kapre front-end layer.
    input_repr : str or None
        Deduced from a stored front end, else ``None``.

    Raises
    ------
    EmbeddingError
        If the layers are not the 8 batch norms and 8 convolutions of OpenL3 in order.
    """
    batch_norms, convs, front = [], [], {}
    for name, weights in layers:
        keys = set(weights)
        if keys == {"gamma", "beta", "moving_mean", "moving_variance"}:
            batch_norms.append((name, weights))
        elif keys == {"kernel", "bias"}:
            convs.append((name, weights))
        elif keys & {"real_kernels", "imag_kernels", "freq2mel"}:
            front.update(weights)
        else:
            raise EmbeddingError(
                f"layer {name!r} of the Keras file has weights {sorted(keys)}, which no OpenL3 "
                f"audio layer has; is this an OpenL3 audio (not image) model?"
            )
    if len(batch_norms) != len(_CONVS) or len(convs) != len(_CONVS):
        raise EmbeddingError(
            f"an OpenL3 audio model has {len(_CONVS)} BatchNormalization and {len(_CONVS)} Conv2D "
            f"layers; the Keras file has {len(batch_norms)} and {len(convs)}"
        )
    state: Dict[str, torch.Tensor] = {}
    for index, ((bn_name, bn), (conv_name, conv), (name, n_in, n_out)) in enumerate(
        zip(batch_norms, convs, _CONVS), start=1
    ):
        kernel = conv["kernel"]
        if kernel.shape != (3, 3, n_in, n_out) or bn["gamma"].shape != (n_in,):
            raise EmbeddingError(
                f"Keras layers {bn_name!r}/{conv_name!r} have shapes {bn['gamma'].shape}/"
                f"{kernel.shape}; OpenL3 layer {index} expects ({n_in},)/(3, 3, {n_in}, {n_out})"
            )
        prefix = f"batch_normalization_{index}"
        state[f"{prefix}.weight"] = torch.from_numpy(bn["gamma"])
        state[f"{prefix}.bias"] = torch.from_numpy(bn["beta"])
        state[f"{prefix}.running_mean"] = torch.from_numpy(bn["moving_mean"])
        state[f"{prefix}.running_var"] = torch.from_numpy(bn["moving_variance"])
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"{name}.bias"] = torch.from_numpy(conv["bias"])
    input_repr = None
    if front:
        # kapre 0.1.x stores kernels as (n_dft, 1, 1, n_bins) and freq2mel as (n_bins, n_mels)
        if "real_kernels" in front and "imag_kernels" in front:
            for key, target in (("real_kernels", "dft_real_kernels"), ("imag_kernels", "dft_imag_kernels")):
                kernels = front[key].reshape(front[key].shape[0], -1)  # (n_dft, n_bins)
                state[f"speclayer.{target}"] = torch.from_numpy(np.ascontiguousarray(kernels.T[:, None, :]))
            n_dft = front["real_kernels"].shape[0]
        else:
            n_dft = None
        if "freq2mel" in front:
            state["speclayer.mel_basis"] = torch.from_numpy(np.ascontiguousarray(front["freq2mel"].T))
            input_repr = f"mel{front['freq2mel'].shape[1]}"
        elif n_dft == 512:
            input_repr = "linear"
    return state, input_repr


def _input_repr_from_state(state: Mapping) -> Optional[str]:
    if "speclayer.mel_basis" in state:
        return f"mel{tuple(state['speclayer.mel_basis'].shape)[0]}"
    if "speclayer.dft_real_kernels" in state:
        return "linear" if tuple(state["speclayer.dft_real_kernels"].shape)[-1] == 512 else None
    return None


def _read_state(path: str) -> Tuple[Dict[str, torch.Tensor], Optional[str]]:
    if path.endswith((".h5", ".hdf5")):
        return keras_state_dict(read_keras_weights(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-tensor pickles
        raise EmbeddingError(
            f"{path!r} is neither a Keras .h5 file nor a tensor-only state dict readable with "
            f"torch.load(weights_only=True): {exc}"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise EmbeddingError(f"{path!r} holds a {type(state).__name__}, not a torchopenl3 state dict")
    state = dict(state)
    return state, _input_repr_from_state(state)


def _from_file_name(path: str, choices) -> Optional[str]:
    found = [c for c in choices if re.search(rf"(^|[_\-.]){c}([_\-.]|$)", Path(path).name)]
    return found[0] if len(found) == 1 else None


def _resolve_path(model_file_path) -> str:
    path = os.fspath(model_file_path)
    if os.path.isdir(path):
        files = sorted(
            p for p in Path(path).iterdir()
            if p.suffix in (".h5", ".hdf5") or p.name.endswith((".pth", ".pth.tar", ".pt"))
        )
        if len(files) != 1:
            raise EmbeddingError(
                f"{path!r} is a folder with {len(files)} OpenL3 weight files "
                f"({', '.join(p.name for p in files) or 'none'}); pass one file"
            )
        path = str(files[0])
    if not os.path.isfile(path):
        raise EmbeddingError(
            f"OpenL3 weights file {path!r} not found; pass openl3_audio_<repr>_<content>.h5 "
            f"(marl/openl3) or torchopenl3_<repr>_<content>_<size>.pth.tar"
        )
    return path


def load_model(
    model_file_path: str = "",
    *,
    input_repr: Optional[str] = None,
    content_type: Optional[str] = None,
    embedding_size: int = 6144,
    chunk_frames: int = 8,
) -> OpenL3Embedding:
    """Load OpenL3 with weights from a local file.

    Parameters
    ----------
    model_file_path : str
        A Keras weights file of marl/openl3 (``.h5``) or a torchopenl3 state dict
        (``.pth.tar``), or a folder holding exactly one of them. Required: the weights are
        not downloaded.
    input_repr : {"mel256", "mel128", "linear"}, optional
        Default: read from the file name (``..._mel256_...``) or the stored front end,
        else ``"mel256"``.
    content_type : {"music", "env"}, optional
        Default: read from the file name; only recorded.
    embedding_size : {6144, 512}
    chunk_frames : int
        1 s windows per forward pass.

    Returns
    -------
    OpenL3Embedding
        In eval mode, on the CPU.

    Raises
    ------
    EmbeddingError
        Missing file, unreadable format, layers or shapes that are not OpenL3's, or an
        ``input_repr`` that contradicts the stored front end.
    """
    if model_file_path in ("", None):
        raise EmbeddingError(
            "OpenL3 needs a local weights file (openl3_audio_mel256_music.h5 from marl/openl3, or "
            "a torchopenl3 .pth.tar); put it under <models-dir>/openl3/ or pass its path"
        )
    path = _resolve_path(model_file_path)
    state, stored_repr = _read_state(path)
    named_repr = _from_file_name(path, INPUT_REPRS)
    if input_repr is None:
        input_repr = stored_repr or named_repr or "mel256"
    elif stored_repr is not None and stored_repr != input_repr:
        raise EmbeddingError(
            f"input_repr={input_repr!r} but {path!r} stores a {stored_repr} front end; "
            f"pass input_repr={stored_repr!r}"
        )
    if content_type is None:
        content_type = _from_file_name(path, CONTENT_TYPES)
    model = OpenL3Embedding(input_repr, embedding_size, content_type=content_type, chunk_frames=chunk_frames)
    own = model.state_dict()
    for key, value in own.items():
        # front-end buffers are deterministic: keep ours when a file does not store them;
        # num_batches_tracked is absent from Keras files and from some torch exports
        if key not in state and (key.startswith("speclayer.") or key.endswith("num_batches_tracked")):
            state[key] = value
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EmbeddingError(
            f"{path!r} does not hold OpenL3 {input_repr} audio weights (check input_repr=): {exc}"
        ) from None
    model.weights_file = path
    return model.eval()


def _check_model(model) -> OpenL3Embedding:
    if not isinstance(model, OpenL3Embedding):
        raise EmbeddingError(
            f"model must be an OpenL3Embedding from embeddings.openl3.load_model, got {type(model).__name__}"
        )
    return model


def _hop_samples(hop_ms) -> int:
    if isinstance(hop_ms, bool) or not isinstance(hop_ms, (int, float)) or not math.isfinite(hop_ms) or hop_ms <= 0:
        raise EmbeddingError(f"hop_ms must be a positive number of milliseconds, got {hop_ms!r}")
    hop = int(round(hop_ms * SAMPLE_RATE / 1000.0))
    if hop < 1:
        raise EmbeddingError(f"hop_ms={hop_ms!r} is shorter than one sample at 48 kHz")
    return hop


def frame_audio(audio: torch.Tensor, *, hop_samples: int) -> torch.Tensor:
    """1 s windows centred every ``hop_samples`` (openl3's ``center=True``).

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples)
    hop_samples : int

    Returns
    -------
    torch.Tensor, shape (n_sounds, 1 + n_samples // hop_samples, 48000)
        Window k covers samples ``[k hop - 24000, k hop + 24000)`` of the sound, zeros outside.
    """
    half = WINDOW_SAMPLES // 2
    padded = F.pad(audio, (half, WINDOW_SAMPLES - half))
    n_frames = 1 + audio.shape[-1] // hop_samples
    return padded.unfold(-1, WINDOW_SAMPLES, hop_samples)[:, :n_frames]


def _scene_frames(audio: torch.Tensor) -> torch.Tensor:
    n_samples = audio.shape[-1]
    if n_samples <= WINDOW_SAMPLES:
        before = (WINDOW_SAMPLES - n_samples) // 2
        return F.pad(audio, (before, WINDOW_SAMPLES - n_samples - before))[:, None, :]
    return frame_audio(audio, hop_samples=_hop_samples(SCENE_HOP_MS))


def _embed_frames(frames: torch.Tensor, model: OpenL3Embedding) -> torch.Tensor:
    n_sounds, n_frames, _ = frames.shape
    flat = frames.reshape(n_sounds * n_frames, WINDOW_SAMPLES)
    device = model.conv2d_1.weight.device
    out = torch.empty((flat.shape[0], model.embedding_size), dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, flat.shape[0], model.chunk_frames):
            chunk = flat[start:start + model.chunk_frames].to(device)
            out[start:start + model.chunk_frames] = model(chunk).cpu()
    return out.reshape(n_sounds, n_frames, -1).to(frames.device)


def get_timestamp_embeddings(
    audio, model: OpenL3Embedding, *, hop_ms: float = TIMESTAMP_HOP_MS
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of 1 s windows centred every ``hop_ms``.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 48 kHz, in [-1, 1].
    model : OpenL3Embedding
    hop_ms : float
        Hop between window centres in milliseconds (default 50).

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_samples, embedding_size), float32
    timestamps : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_samples), float32
        Window centres in milliseconds, ``1000 k hop_samples / 48000``.
    """
    model = _check_model(model)
    hop = _hop_samples(hop_ms)
    audio = as_audio_batch(audio, model_name="openl3")
    frames = frame_audio(audio, hop_samples=hop)
    timestamps = torch.arange(frames.shape[1], dtype=torch.float64) * (1000.0 * hop / SAMPLE_RATE)
    timestamps = timestamps.to(torch.float32).expand(audio.shape[0], -1).contiguous()
    return _embed_frames(frames, model), timestamps.to(audio.device)


def get_scene_embeddings(audio, model: OpenL3Embedding) -> torch.Tensor:
    """One embedding per sound (a sound of at most 1 s is one centred window; see module doc).

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 48 kHz, in [-1, 1].
    model : OpenL3Embedding

    Returns
    -------
    torch.Tensor, shape (n_sounds, embedding_size), float32
    """
    model = _check_model(model)
    audio = as_audio_batch(audio, model_name="openl3")
    return _embed_frames(_scene_frames(audio), model).mean(dim=1)
