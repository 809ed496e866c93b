"""BYOL-S and Hybrid BYOL-S (Elbanna et al. 2022; ``serab-byols``) behind the HEAR 2021 API.

The two encoders of the serab-byols checkpoints are rebuilt with the parameter names of
``serab_byols`` / ``byol_a`` so their ``.pth`` state dicts load unchanged (read with
``torch.load(weights_only=True)`` from a local path, never downloaded):

* ``"cvt"``: the convolutional transformer of **Hybrid BYOL-S** (checkpoint
  ``cvt_s1-d1-e64_s2-d1-e256_s3-d1-e512_BYOLAs64x96-osandbyolaloss6373-e100-bs256-lr0003-rs42.pth``):
  three stages (embedding convolution 7/4, 3/2, 3/2 with padding ``kernel // 2``, a channel
  layer norm, transformer blocks whose queries, keys and values are depth-wise convolutional
  projections), heads of 64 dimensions, pooling ``"mean+max"``: the last map
  ``(channels, mel, time)`` is read as ``time`` vectors of ``mel * channels`` values and the
  embedding is their mean plus their maximum over time (2 048-d for the published model);
* ``"default"``: ``AudioNTT2020`` of **BYOL-S** (checkpoint
  ``default2048_BYOLAs64x96-2105311814-e100-bs256-lr0003-rs42.pth``): three conv-BN-ReLU-maxpool
  blocks of 64 channels, two dense layers to ``feature_d`` (2 048), mean plus maximum over time.

The stage widths, depths, heads and MLP ratios of the CvT and ``feature_d`` of AudioNTT2020
are read from the checkpoint's tensor shapes; strides and kernel sizes are serab-byols'.

Front end (``torchaudio.transforms.MelSpectrogram`` as configured by serab-byols'
``config.yaml``, re-implemented with ``torch.stft`` so torchaudio is not needed): 16 kHz,
``n_fft`` 1024, Hann window of 400 samples (periodic, centred in the FFT frame), hop 160,
``center=True`` with reflect padding, power spectrum, 64 HTK mel bands 60 - 7 800 Hz without
area normalisation; then ``log(mel + eps)`` with ``eps`` the float32 machine epsilon.

Normalisation of the log-mel spectrogram (``normalization``):

* ``"batch"`` (serab-byols' HEAR functions, the default): **depends on the other sounds of
  the call**. Scene embeddings: ``(lms - mu) / sigma`` with ``mu`` the mean over the sounds of
  each sound's log-mel mean and ``sigma`` the mean of each sound's (unbiased) standard
  deviation. Timestamp embeddings: serab-byols' ``compute_timestamp_stats``, i.e. the mean and
  the standard deviation over all 1 s frames of the call, *both divided by the number of
  frames* (an upstream quirk, reproduced as is).
* ``"sound"``: each sound (each frame, for timestamps) normalised by its own mean and std;
  embeddings no longer depend on the batch.
* ``norm_stats=(mean, std)``: fixed statistics (e.g. of a training set), batch-independent.

Framing and padding:

* scene embeddings: the whole sound is one spectrogram (serab-byols runs each sound through
  the encoder on its own; here sounds of a call share forward passes, which changes nothing
  since the batch norms are in eval mode). A sound shorter than ``model.min_n_samples`` is
  zero-padded symmetrically (``(min - n) // 2`` zeros before) to it: 513 samples for the CvT
  (reflect padding of the STFT needs more than ``n_fft // 2``), 1 120 samples (8 spectrogram
  frames, 70 ms) for AudioNTT2020, whose three 2x time poolings need 8 frames. GEAR's 64 ms
  tones (1 024 samples, 7 frames) are thus padded for BYOL-S, not for Hybrid BYOL-S.
* timestamp embeddings: serab-byols' framing (as hear-baseline): 1 s frames centred every
  50 ms, at ``0, 50, ...`` ms, ``1 + n_samples // 800`` frames, zeros outside the sound.

Layers (``gear run --layers``), tapped in GEAR's layout ``(sounds, channels, time, mel)``:

* BYOL-S (AudioNTT2020): ``block1`` .. ``block3``, the three (conv, batch norm, ReLU, 2x2 max-pool)
  blocks (64 channels x 32 / 16 / 8 mel bins after the time mean: 2 048 / 1 024 / 512 values), and
  ``fc``, the two-layer MLP's output per frame (2 048; the embedding is its mean + max over time);
* Hybrid BYOL-S (CvT): ``stage1`` .. ``stage3``, each stage's convolutional embedding and
  transformer block (64 x 16, 256 x 8, 512 x 4 mel positions: 1 024 / 2 048 / 2 048 values).
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
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
    "MODEL_NAMES",
    "AUDIONTT_LAYERS",
    "CVT_LAYERS",
    "NORMALIZATIONS",
    "LogMelSpectrogram",
    "AudioNTT2020",
    "CvT",
    "BYOLSEmbedding",
    "cvt_config_from_state_dict",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 16000
N_FFT = 1024
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 64
F_MIN_HZ = 60.0
F_MAX_HZ = 7800.0
LOG_EPS = float(torch.finfo(torch.float32).eps)
TIMESTAMP_FRAME_MS = 1000.0
TIMESTAMP_HOP_MS = 50.0

MODEL_NAMES = ("cvt", "default")
#: The probed layers of each encoder, by depth (module doc).
AUDIONTT_LAYERS = ("block1", "block2", "block3", "fc")
CVT_LAYERS = ("stage1", "stage2", "stage3")
NORMALIZATIONS = ("batch", "sound")


class LogMelSpectrogram(torch.nn.Module):
    """serab-byols' log-mel front end (torchaudio ``MelSpectrogram`` + ``log(. + eps)``).

    Attributes
    ----------
    window : torch.Tensor, shape (400,), float32
        Periodic Hann window.
    mel_fb : torch.Tensor, shape (64, 513), float32
        HTK mel filters, 60 - 7 800 Hz, no normalisation (torchaudio's ``melscale_fbanks``).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN_LENGTH, periodic=True))
        mel = librosa.filters.mel(
            sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN_HZ, fmax=F_MAX_HZ, htk=True, norm=None
        )
        self.register_buffer("mel_fb", torch.from_numpy(mel.astype(np.float32)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel spectrograms.

        Parameters
        ----------
        audio : torch.Tensor, shape (n_sounds, n_samples), float32
            ``n_samples > 512``.

        Returns
        -------
        torch.Tensor, shape (n_sounds, 64, 1 + n_samples // 160), float32
            Natural log of the mel power spectrogram plus float32 epsilon.
        """
        spec = torch.stft(
            audio, n_fft=N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=self.window,
            center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )
        power = spec.real ** 2 + spec.imag ** 2
        return torch.log(torch.matmul(self.mel_fb, power) + LOG_EPS)


# ----------------------------------------------------------------------------- AudioNTT2020
class AudioNTT2020(torch.nn.Module):
    """BYOL-A's encoder as used by BYOL-S (``byol_a.models.audio_ntt.AudioNTT2020``).

    Parameters
    ----------
    n_mels : int
    d : int
        Embedding size (``feature_d``; 2 048 for BYOL-S).
    """

    def __init__(self, n_mels: int = N_MELS, d: int = 2048):
        super().__init__()
        blocks = []
        for n_in in (1, 64, 64):
            blocks += [
                torch.nn.Conv2d(n_in, 64, 3, stride=1, padding=1),
                torch.nn.BatchNorm2d(64),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2, stride=2),
            ]
        self.features = torch.nn.Sequential(*blocks)
        self.taps = make_taps(AUDIONTT_LAYERS)  # read by `gear run --layers` (module doc)
        self.fc = torch.nn.Sequential(
            torch.nn.Linear(64 * (n_mels // 8), d),
            torch.nn.ReLU(),
            torch.nn.Dropout(p=0.3),
            torch.nn.Linear(d, d),
            torch.nn.ReLU(),
        )
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, mel, time) normalised log-mel -> (batch, d) embedding."""
        for k in range(3):  # three (conv, BN, ReLU, max-pool) blocks
            x = self.features[4 * k:4 * k + 4](x)
            self.taps[f"block{k + 1}"](x.transpose(2, 3))  # tapped as (batch, channel, time, mel)
        x = x.permute(0, 3, 2, 1)  # (batch, time, mel, channel)
        x = self.fc(x.reshape(x.shape[0], x.shape[1], -1))
        self.taps["fc"](x.transpose(1, 2))  # (batch, d, time)
        return x.mean(dim=1) + x.amax(dim=1)


# ----------------------------------------------------------------------------- CvT
class _ChannelLayerNorm(torch.nn.Module):
    """Layer norm over the channel axis of a (batch, channel, h, w) map (biased variance;
    ``eps`` added to the standard deviation)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.g = torch.nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = torch.nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        std = x.var(dim=1, unbiased=False, keepdim=True).sqrt()
        return (x - mean) / (std + self.eps) * self.g + self.b


class _PreNorm(torch.nn.Module):
    def __init__(self, dim: int, fn: torch.nn.Module):
        super().__init__()
        self.norm = _ChannelLayerNorm(dim)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.norm(x))


class _FeedForward(torch.nn.Module):
    def __init__(self, dim: int, mult: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(dim, dim * mult, 1), torch.nn.GELU(), torch.nn.Dropout(0.0),
            torch.nn.Conv2d(dim * mult, dim, 1), torch.nn.Dropout(0.0),
        )

    def forward(self, x):
        return self.net(x)


class _DepthWiseConv2d(torch.nn.Module):
    def __init__(self, dim_in: int, dim_out: int, kernel_size: int, stride: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(dim_in, dim_in, kernel_size, padding=kernel_size // 2, groups=dim_in,
                            stride=stride, bias=False),
            torch.nn.BatchNorm2d(dim_in),
            torch.nn.Conv2d(dim_in, dim_out, kernel_size=1, bias=False),
        )

    def forward(self, x):
        return self.net(x)


class _Attention(torch.nn.Module):
    def __init__(self, dim: int, proj_kernel: int, kv_proj_stride: int, heads: int, dim_head: int = 64):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_q = _DepthWiseConv2d(dim, inner, proj_kernel, stride=1)
        self.to_kv = _DepthWiseConv2d(dim, inner * 2, proj_kernel, stride=kv_proj_stride)
        self.to_out = torch.nn.Sequential(torch.nn.Conv2d(inner, dim, 1), torch.nn.Dropout(0.0))

    def forward(self, x):
        batch, _, height, width = x.shape
        q = self.to_q(x)
        k, v = self.to_kv(x).chunk(2, dim=1)

        def heads_first(t):  # (b, h*d, x, y) -> (b*h, x*y, d), channels split head-major
            b, c, hh, ww = t.shape
            return t.reshape(b * self.heads, c // self.heads, hh * ww).transpose(1, 2)

        q, k, v = heads_first(q), heads_first(k), heads_first(v)
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.scale, dim=-1)
        out = torch.bmm(attn, v)  # (b*h, x*y, d)
        out = out.transpose(1, 2).reshape(batch, -1, height, width)
        return self.to_out(out)


class _Transformer(torch.nn.Module):
    def __init__(self, dim: int, proj_kernel: int, kv_proj_stride: int, depth: int, heads: int, mlp_mult: int):
        super().__init__()
        self.layers = torch.nn.ModuleList([
            torch.nn.ModuleList([
                _PreNorm(dim, _Attention(dim, proj_kernel, kv_proj_stride, heads)),
                _PreNorm(dim, _FeedForward(dim, mlp_mult)),
            ])
            for _ in range(depth)
        ])

    def forward(self, x):
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return x


#: serab-byols' CvT stage settings that checkpoints cannot tell (kernel and stride of the
#: stage embedding convolution, kernel and key/value stride of the projections)
_CVT_STAGE_DEFAULTS = (
    dict(emb_kernel=7, emb_stride=4, proj_kernel=3, kv_proj_stride=2),
    dict(emb_kernel=3, emb_stride=2, proj_kernel=3, kv_proj_stride=2),
    dict(emb_kernel=3, emb_stride=2, proj_kernel=3, kv_proj_stride=2),
)


class CvT(torch.nn.Module):
    """serab-byols' convolutional transformer (``byol_a.models.cvt.CvT``), ``"mean+max"`` pooling.

    Parameters
    ----------
    stages : sequence of dict
        Per stage: ``emb_dim``, ``depth``, ``heads``, ``mlp_mult`` and optionally
        ``emb_kernel``, ``emb_stride``, ``proj_kernel``, ``kv_proj_stride``. Hybrid BYOL-S:
        widths 64/256/512, depth 1, heads 1/3/6, MLP ratio 4.
    pool : {"mean+max", "mean"}
    """

    def __init__(self, stages, *, pool: str = "mean+max"):
        super().__init__()
        if pool not in ("mean+max", "mean"):
            raise EmbeddingError(f"pool={pool!r} is not available; choose 'mean+max' or 'mean'")
        self.pool = pool
        self.stages = [dict(_CVT_STAGE_DEFAULTS[i], **stage) for i, stage in enumerate(stages)]
        dim = 1
        layers = []
        for stage in self.stages:
            layers.append(torch.nn.Sequential(
                torch.nn.Conv2d(dim, stage["emb_dim"], kernel_size=stage["emb_kernel"],
                                padding=stage["emb_kernel"] // 2, stride=stage["emb_stride"]),
                _ChannelLayerNorm(stage["emb_dim"]),
                _Transformer(stage["emb_dim"], stage["proj_kernel"], stage["kv_proj_stride"],
                             stage["depth"], stage["heads"], stage["mlp_mult"]),
            ))
            dim = stage["emb_dim"]
        self.layers = torch.nn.Sequential(*layers)
        self.taps = make_taps(tuple(f"stage{k}" for k in range(1, len(layers) + 1)))  # `gear run --layers`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, mel, time) normalised log-mel -> (batch, dim) embedding."""
        for k, stage in enumerate(self.layers, start=1):
            x = stage(x)
            self.taps[f"stage{k}"](x.transpose(2, 3))  # tapped as (batch, channel, time, mel)
        if self.pool == "mean":
            return x.mean(dim=(2, 3))
        x = x.permute(0, 3, 2, 1)  # (batch, time, mel, channel)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        return x.mean(dim=1) + x.amax(dim=1)


def cvt_config_from_state_dict(state: Mapping) -> list:
    """The CvT stage settings that fit a serab-byols CvT state dict.

    Parameters
    ----------
    state : mapping of str -> torch.Tensor

    Returns
    -------
    list of dict
        ``emb_dim``, ``emb_kernel``, ``depth``, ``heads`` (query channels / 64), ``mlp_mult``,
        ``proj_kernel`` per stage.

    Raises
    ------
    EmbeddingError
        If the keys are not those of a three-stage CvT.
    """
    def tensor(key):
        if key not in state:
            raise EmbeddingError(f"the checkpoint has no {key!r}: not a serab-byols CvT state dict")
        return state[key]

    stages = []
    for s in range(3):
        conv = state.get(f"layers.{s}.0.weight")
        if conv is None:
            raise EmbeddingError(f"the checkpoint has no 'layers.{s}.0.weight': not a serab-byols CvT")
        blocks = {int(m.group(1)) for key in state for m in [re.match(rf"layers\.{s}\.2\.layers\.(\d+)\.", key)] if m}
        if not blocks:
            raise EmbeddingError(f"the checkpoint's CvT stage {s + 1} has no transformer block")
        emb_dim = int(conv.shape[0])
        q = tensor(f"layers.{s}.2.layers.0.0.fn.to_q.net.2.weight")
        hidden = tensor(f"layers.{s}.2.layers.0.1.fn.net.0.weight")
        if q.shape[0] % 64:
            raise EmbeddingError(f"CvT stage {s + 1}: {q.shape[0]} query channels is not a whole number of 64-d heads")
        stages.append(dict(
            emb_dim=emb_dim,
            emb_kernel=int(conv.shape[-1]),
            depth=max(blocks) + 1,
            heads=int(q.shape[0]) // 64,
            mlp_mult=int(hidden.shape[0]) // emb_dim,
            proj_kernel=int(tensor(f"layers.{s}.2.layers.0.0.fn.to_q.net.0.weight").shape[-1]),
        ))
    return stages


# ----------------------------------------------------------------------------- HEAR model
class BYOLSEmbedding(torch.nn.Module):
    """A BYOL-S encoder with its front end and the HEAR model attributes.

    Parameters
    ----------
    encoder : CvT or AudioNTT2020
    model_name : {"cvt", "default"}
    embedding_size : int
    normalization : {"batch", "sound"}
    norm_stats : (float, float), optional
        Fixed (mean, std) of the log-mel spectrogram; overrides ``normalization``.
    chunk_sounds : int
        Spectrograms per forward pass.

    Attributes
    ----------
    sample_rate : int
        16 000 Hz.
    scene_embedding_size, timestamp_embedding_size : int
    min_n_samples : int
        Shorter sounds are zero-padded symmetrically to this length (see module doc).
    frontend : LogMelSpectrogram
    encoder : torch.nn.Module
    weights_file : str
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, encoder: torch.nn.Module, *, model_name: str, embedding_size: int,
                 normalization: str = "batch", norm_stats: Optional[Tuple[float, float]] = None,
                 chunk_sounds: int = 256):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise EmbeddingError(
                f"normalization={normalization!r} is not available; choose one of {', '.join(NORMALIZATIONS)}"
            )
        if norm_stats is not None:
            try:
                mean, std = (float(v) for v in norm_stats)
            except (TypeError, ValueError):
                raise EmbeddingError(f"norm_stats must be a pair (mean, std) of numbers, got {norm_stats!r}") from None
            if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise EmbeddingError(f"norm_stats={norm_stats!r} needs a finite mean and a positive std")
            norm_stats = (mean, std)
        if isinstance(chunk_sounds, bool) or not isinstance(chunk_sounds, int) or chunk_sounds < 1:
            raise EmbeddingError(f"chunk_sounds must be a positive integer, got {chunk_sounds!r}")
        self.frontend = LogMelSpectrogram()
        self.encoder = encoder
        self.taps = encoder.taps
        self.model_name = model_name
        self.scene_embedding_size = int(embedding_size)
        self.timestamp_embedding_size = int(embedding_size)
        self.normalization = normalization
        self.norm_stats = norm_stats
        self.chunk_sounds = chunk_sounds
        # AudioNTT2020 pools time by 8: it needs 8 STFT frames (1 + n // 160 >= 8)
        self.min_n_samples = 7 * HOP_LENGTH if model_name == "default" else N_FFT // 2 + 1
        self.weights_file = ""

    def forward(self, lms: torch.Tensor) -> torch.Tensor:
        """(batch, 64, time) normalised log-mel -> (batch, embedding_size)."""
        return self.encoder(lms[:, None])


def _read_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-tensor pickles
        raise EmbeddingError(
            f"{path!r} is not a tensor-only state dict readable with torch.load(weights_only=True): {exc}"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise EmbeddingError(f"{path!r} holds a {type(state).__name__}, not a serab-byols state dict")
    return dict(state)


def _infer_model_name(state: Mapping, path: str) -> str:
    if "layers.0.0.weight" in state:
        return "cvt"
    if "features.0.weight" in state and "fc.0.weight" in state:
        return "default"
    raise EmbeddingError(
        f"{path!r} holds neither a serab-byols CvT (layers.0.0.weight) nor an AudioNTT2020 "
        f"(features.0.weight, fc.0.weight) state dict"
    )


def load_model(
    model_file_path: str = "",
    *,
    model_name: Optional[str] = None,
    normalization: str = "batch",
    norm_stats: Optional[Tuple[float, float]] = None,
    chunk_sounds: int = 256,
) -> BYOLSEmbedding:
    """Load a (Hybrid) BYOL-S encoder from a serab-byols checkpoint.

    Parameters
    ----------
    model_file_path : str
        A ``.pth`` state dict of serab-byols (``cvt_...pth`` for Hybrid BYOL-S,
        ``default2048_...pth`` for BYOL-S). Required: nothing is downloaded.
    model_name : {"cvt", "default"}, optional
        serab-byols' name of the encoder; default: deduced from the checkpoint's keys.
    normalization : {"batch", "sound"}
        How the log-mel spectrogram is standardised (module doc; ``"batch"`` = serab-byols).
    norm_stats : (float, float), optional
        Fixed (mean, std) instead.
    chunk_sounds : int
        Spectrograms per forward pass.

    Returns
    -------
    BYOLSEmbedding
        In eval mode, on the CPU.

    Raises
    ------
    EmbeddingError
        Missing file, not a state dict, keys or shapes that do not fit the encoder.
    """
    if model_file_path in ("", None):
        raise EmbeddingError(
            "BYOL-S needs a local serab-byols checkpoint (.pth); put it under <models-dir>/byols/ "
            "or pass its path"
        )
    path = os.fspath(model_file_path)
    if not os.path.isfile(path):
        raise EmbeddingError(f"BYOL-S checkpoint {path!r} not found")
    state = _read_checkpoint(path)
    found = _infer_model_name(state, path)
    if model_name is None:
        model_name = found
    elif model_name not in MODEL_NAMES:
        raise EmbeddingError(f"model_name={model_name!r} is not available; choose one of {', '.join(MODEL_NAMES)}")
    elif model_name != found:
        raise EmbeddingError(f"model_name={model_name!r} but {path!r} holds a {found!r} encoder")
    if model_name == "cvt":
        stages = cvt_config_from_state_dict(state)
        encoder = CvT(stages)
        n_mel_rows = N_MELS
        for stage in encoder.stages:  # mel rows left after each stage's strided convolution
            kernel = stage["emb_kernel"]
            n_mel_rows = (n_mel_rows + 2 * (kernel // 2) - kernel) // stage["emb_stride"] + 1
        embedding_size = stages[-1]["emb_dim"] * n_mel_rows
    else:
        d = int(state["fc.0.weight"].shape[0])
        encoder = AudioNTT2020(n_mels=N_MELS, d=d)
        embedding_size = d
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EmbeddingError(f"{path!r} does not fit the serab-byols {model_name!r} encoder: {exc}") from None
    model = BYOLSEmbedding(
        encoder, model_name=model_name, embedding_size=embedding_size,
        normalization=normalization, norm_stats=norm_stats, chunk_sounds=chunk_sounds,
    )
    model.weights_file = path
    return model.eval()


def _check_model(model) -> BYOLSEmbedding:
    if not isinstance(model, BYOLSEmbedding):
        raise EmbeddingError(
            f"model must be a BYOLSEmbedding from embeddings.byols.load_model, got {type(model).__name__}"
        )
    return model


def _pad_to(audio: torch.Tensor, n_samples: int) -> torch.Tensor:
    short = n_samples - audio.shape[-1]
    if short <= 0:
        return audio
    return F.pad(audio, (short // 2, short - short // 2))


def _encode(lms: torch.Tensor, model: BYOLSEmbedding) -> torch.Tensor:
    """(n, 64, time) normalised log-mel -> (n, embedding_size) in chunks, inference mode."""
    device = model.frontend.mel_fb.device
    out = torch.empty((lms.shape[0], model.scene_embedding_size), dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, lms.shape[0], model.chunk_sounds):
            out[start:start + model.chunk_sounds] = model(lms[start:start + model.chunk_sounds].to(device)).cpu()
    return out


def _log_mel(audio: torch.Tensor, model: BYOLSEmbedding) -> torch.Tensor:
    device = model.frontend.mel_fb.device
    with torch.inference_mode():
        return torch.cat([
            model.frontend(audio[start:start + model.chunk_sounds].to(device)).cpu()
            for start in range(0, audio.shape[0], model.chunk_sounds)
        ])


def get_scene_embeddings(audio, model: BYOLSEmbedding) -> torch.Tensor:
    """One embedding per sound from its whole log-mel spectrogram (normalisation: module doc).

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : BYOLSEmbedding

    Returns
    -------
    torch.Tensor, shape (n_sounds, embedding_size), float32
    """
    model = _check_model(model)
    audio = as_audio_batch(audio, model_name=f"byols-{model.model_name}")
    lms = _log_mel(_pad_to(audio, model.min_n_samples), model)  # (n, 64, time)
    if model.norm_stats is not None:
        mean, std = model.norm_stats
        lms = (lms - mean) / std
    elif model.normalization == "sound":
        lms = (lms - lms.mean(dim=(1, 2), keepdim=True)) / lms.std(dim=(1, 2), keepdim=True)
    else:  # serab-byols compute_scene_stats: means of the per-sound means and stds
        mean = lms.mean(dim=(1, 2)).mean()
        std = lms.std(dim=(1, 2)).mean()
        lms = (lms - mean) / std
    return _encode(lms, model).to(audio.device)


def _frame_audio(audio: torch.Tensor, frame_samples: int, hop_samples: int) -> torch.Tensor:
    padded = F.pad(audio, (frame_samples // 2, frame_samples - frame_samples // 2))
    n_frames = 1 + audio.shape[-1] // hop_samples
    return padded.unfold(-1, frame_samples, hop_samples)[:, :n_frames]


def get_timestamp_embeddings(
    audio, model: BYOLSEmbedding, *, frame_ms: float = TIMESTAMP_FRAME_MS, hop_ms: float = TIMESTAMP_HOP_MS
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of ``frame_ms`` frames centred every ``hop_ms`` (serab-byols' framing).

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : BYOLSEmbedding
    frame_ms, hop_ms : float
        Frame length and hop in milliseconds (defaults 1 000 and 50, as serab-byols).

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_samples, embedding_size), float32
    timestamps : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_samples), float32
        Frame centres in milliseconds.
    """
    model = _check_model(model)
    for name, value in (("frame_ms", frame_ms), ("hop_ms", hop_ms)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise EmbeddingError(f"{name} must be a positive number of milliseconds, got {value!r}")
    frame = int(round(frame_ms * SAMPLE_RATE / 1000.0))
    hop = int(hop_ms * SAMPLE_RATE / 1000.0)
    if hop < 1 or frame < model.min_n_samples:
        raise EmbeddingError(
            f"hop_ms={hop_ms} / frame_ms={frame_ms} give {hop} / {frame} samples; need a hop of at least "
            f"one sample and frames of at least {model.min_n_samples} samples"
        )
    audio = as_audio_batch(audio, model_name=f"byols-{model.model_name}")
    frames = _frame_audio(audio, frame, hop)  # (n, n_frames, frame)
    n_sounds, n_frames, _ = frames.shape
    lms = _log_mel(frames.reshape(n_sounds * n_frames, frame), model)
    if model.norm_stats is not None:
        mean, std = model.norm_stats
        lms = (lms - mean) / std
    elif model.normalization == "sound":
        lms = (lms - lms.mean(dim=(1, 2), keepdim=True)) / lms.std(dim=(1, 2), keepdim=True)
    else:  # serab-byols compute_timestamp_stats, quirk included: both divided by the frame count
        mean = lms.mean() / lms.shape[0]
        std = lms.std() / lms.shape[0]
        lms = (lms - mean) / std
    embeddings = _encode(lms, model).reshape(n_sounds, n_frames, -1)
    timestamps = torch.arange(n_frames, dtype=torch.float64) * (1000.0 * hop / SAMPLE_RATE)
    timestamps = timestamps.to(torch.float32).expand(n_sounds, -1).contiguous()
    return embeddings.to(audio.device), timestamps.to(audio.device)
