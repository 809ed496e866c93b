"""aiSFX (Ma, Ding, Kaneko & Kim, ISMIR 2022): sound-effects embeddings as a HEAR 2021 module.

The weights and the network code ship in the ``aisfx`` wheel (``pip install --no-deps aisfx``:
the wheel pins numpy 1.23 / librosa 0.9.2 / tqdm 4.62.3, none of which its inference code
needs; it really imports numpy, torch and tqdm). This adapter reproduces the *original*
ISMIR pipeline (aisfx's Essentia front end, ``spectrogram_type='essentia'``), from arrays
instead of files, batched:

1. audio at 44.1 kHz, no gain change (Essentia's ``EasyLoader`` with its default
   replay gain of -6 dB leaves the samples as they are);
2. frames of 2 048 samples, hop 1 024, the first frame centred on sample 0 (Essentia's
   ``FrameCutter`` default: ``ceil(n / 1024) + 1`` frames, zero-padded at both ends);
   symmetric Hann window; magnitude spectrum squared;
3. 96 mel bands, 0 - 22 050 Hz, HTK mel scale, triangles in the mel domain, each band's
   weights summing to 1 (Essentia ``MelBands(warpingFormula='htkMel', weighting='warping',
   normalize='unit_sum', type='power')``); compression ``log10(1e4 x + 1)``;
4. min-max normalisation with aisfx's "original" constants (0, 9.4578);
5. blocks of 100 frames (2.3 s) with a hop of 50 frames, partial last block dropped
   (aisfx's ``blocking(..., drop_partial_block=True)`` with ``emb_hop_size=0.5``);
6. aisfx's ``EmbeddingNet`` (9-layer CNN, mean over mel bands then max over time): one
   512-d embedding per block.

Loading the weights (torch >= 2.6)
----------------------------------
aisfx's own ``load_weights`` calls ``torch.load`` without ``weights_only``; since torch 2.6
that means ``weights_only=True``, which refuses the file: ``checkpoint.pth`` is a tuple
``(state_dict, ds_dict)`` whose ``ds_dict`` holds numpy int64 scalars (the dataset index of
each classification head). :func:`load_checkpoint` keeps ``weights_only=True`` and allows
exactly the numpy globals needed to rebuild such a scalar (``numpy.core.multiarray.scalar``,
``numpy.dtype`` and the int32/int64 dtype classes, which build plain numbers, not code). Nothing is unpickled with
``weights_only=False``.

Padding
-------
A sound shorter than one block (:data:`WINDOW_SAMPLES` = 101 376 samples, 2.30 s: exactly
100 frames) is padded to one block by ``pad_mode`` (``"center"``: zeros both sides, the sound
in the middle of the block; ``"repeat"``: tiled), as in :mod:`embeddings.yamnet`. aisfx's own
code cannot embed such sounds at all (its ``compute_hopSize`` asserts more than 50 frames);
for sounds of at least one block the embeddings equal aisfx's.

Timestamps are block centres in ms (a padded short sound: its own centre); the scene
embedding is the mean of the block embeddings.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from embeddings.base import EmbeddingError
from embeddings.audio import PAD_MODES, as_audio_array, pad_to_window
from embeddings.hear_model import HEARModel

__all__ = [
    "SAMPLE_RATE",
    "EMBEDDING_SIZE",
    "WINDOW_SAMPLES",
    "load_checkpoint",
    "mel_filterbank",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 44100
FRAME_SAMPLES = 2048
HOP_SAMPLES = 1024
N_MELS = 96
F_MIN_HZ, F_MAX_HZ = 0.0, 22050.0
#: aisfx's "original" normalisation: max of the log-mel values over its training data.
SPEC_MIN, SPEC_MAX = 0.0, 9.457798957824707
BLOCK_FRAMES = 100
BLOCK_HOP_FRAMES = 50
EMBEDDING_SIZE = 512
#: Shortest sound embedded without padding: exactly ``BLOCK_FRAMES`` frames.
WINDOW_SAMPLES = (BLOCK_FRAMES - 1) * HOP_SAMPLES


def _numpy_scalar_globals():
    """The globals a pickled numpy scalar refers to, under the names the pickle uses."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core -> numpy._core
    # the dtype of the scalar is rebuilt through its class (numpy.dtypes.Int64DType ...)
    integer_dtypes = [type(np.dtype(kind)) for kind in (np.int32, np.int64)]
    return [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, *integer_dtypes]


def load_checkpoint(path: Optional[str] = None):
    """Load aisfx's ``checkpoint.pth`` safely (``weights_only=True``).

    Parameters
    ----------
    path : str, optional
        Defaults to the file inside the installed ``aisfx`` package.

    Returns
    -------
    state_dict : dict of str -> torch.Tensor
        Weights of aisfx's ``CrossNet`` (embedding network and classification heads).
    ds_dict : dict of str -> (int, int)
        Dataset name -> (head index, number of classes), as Python ints.
    """
    if path is None:
        path = _wheel_checkpoint()
    # Allow-list only what a numpy integer needs; torch's weights-only unpickler still
    # refuses any other global, so a tampered file cannot run code.
    with torch.serialization.safe_globals(_numpy_scalar_globals()):
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 2 and isinstance(loaded[0], dict)):
        raise EmbeddingError(
            f"{path} is not an aisfx checkpoint: expected a (state_dict, ds_dict) tuple, got "
            f"{type(loaded).__name__}."
        )
    state_dict, ds_dict = loaded
    ds_dict = {str(name): (int(index), int(n_classes)) for name, (index, n_classes) in ds_dict.items()}
    return state_dict, ds_dict


def _wheel_checkpoint() -> Path:
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError("aiSFX needs the aisfx package: pip install --no-deps aisfx==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise EmbeddingError(f"{path} is missing from the installed aisfx package; reinstall it.")
    return path


def _hz_to_mel_htk(f_hz):
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_filterbank(
    *, sample_rate: int = SAMPLE_RATE, n_fft: int = FRAME_SAMPLES, n_mels: int = N_MELS,
    f_min_hz: float = F_MIN_HZ, f_max_hz: float = F_MAX_HZ,
) -> np.ndarray:
    """Essentia's ``MelBands`` weights (HTK mel, mel-domain triangles, unit sum per band).

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float64
        Row ``i`` sums to 1 (or 0 for a band no FFT bin falls in).
    """
    edges = np.linspace(_hz_to_mel_htk(f_min_hz), _hz_to_mel_htk(f_max_hz), n_mels + 2)
    bin_mel = _hz_to_mel_htk(np.arange(n_fft // 2 + 1) * sample_rate / n_fft)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_mel[None, :] - left) / (centre - left)
    falling = (right - bin_mel[None, :]) / (right - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    sums = weights.sum(axis=1, keepdims=True)
    return weights / np.where(sums > 0, sums, 1.0)


def _fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm into the convolution before it (same function, ~1.5x faster)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in (net.conv_block1, net.conv_block2, net.conv_block3, net.conv_block4):
        block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
        block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
        block.bn1 = torch.nn.Identity()
        block.bn2 = torch.nn.Identity()
    return net


class AisfxModel(HEARModel):
    """aiSFX's embedding network and its Essentia-equivalent front end; see :func:`load_model`.

    A :class:`~embeddings.hear_model.HEARModel`: the network is a registered sub-module, so
    ``model.to(device)`` moves it; the front end runs on the CPU and the blocks are fed to the
    network on its device (embeddings come back on the CPU).
    """

    sample_rate = SAMPLE_RATE
    scene_embedding_size = EMBEDDING_SIZE
    timestamp_embedding_size = EMBEDDING_SIZE

    def __init__(self, checkpoint: Path, *, pad_mode: str, batch_size: int, fold_batchnorm: bool):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise EmbeddingError(f"pad_mode={pad_mode!r} is not one of {PAD_MODES}; pick one of them.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise EmbeddingError(f"batch_size={batch_size!r} must be a positive int.")
        from aisfx.models.cnn2d import CrossNet, EmbeddingNet

        self.checkpoint = Path(checkpoint)
        self.pad_mode = pad_mode
        self.batch_size = batch_size
        self.window_samples = WINDOW_SAMPLES
        state_dict, ds_dict = load_checkpoint(self.checkpoint)
        # The architecture of aisfx.inference.load_bestModel ('max' pooling, 3x3, stride 1, 64).
        cross = CrossNet(EmbeddingNet("max", 3, 1, 64), ds_dict, "cpu")
        cross.load_state_dict(state_dict)
        net = cross.embedding_net.eval()
        net = _fold_batchnorm(net) if fold_batchnorm else net
        # channels-last convolutions are ~1.5x faster on CPU (same sums, other order)
        self.net = net.to(memory_format=torch.channels_last)
        for parameter in self.net.parameters():
            parameter.requires_grad_(False)
        self._window = torch.from_numpy(np.hanning(FRAME_SAMPLES).astype(np.float32))
        self._mel = torch.from_numpy(mel_filterbank().T.astype(np.float32))  # (1025, 96)

    def spectrogram(self, audio: np.ndarray) -> torch.Tensor:
        """Normalised log-mel spectrogram, ``(n_sounds, n_frames, 96)`` float32 (step 1-4)."""
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        n_samples = x.shape[1]
        n_frames = -(-n_samples // HOP_SAMPLES) + 1
        total = (n_frames - 1) * HOP_SAMPLES + FRAME_SAMPLES
        half = FRAME_SAMPLES // 2
        x = torch.nn.functional.pad(x, (half, total - half - n_samples))
        frames = x.unfold(1, FRAME_SAMPLES, HOP_SAMPLES) * self._window
        power = torch.fft.rfft(frames, dim=-1).abs().square()
        log_mel = torch.log10(power @ self._mel * 1e4 + 1.0)
        return (log_mel - SPEC_MIN) / (SPEC_MAX - SPEC_MIN)

    def embed_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(m, 512)`` of ``m`` blocks ``(m, 100, 96)``."""
        device = next(self.net.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, blocks.shape[0], self.batch_size):
                out.append(self.net(blocks[start : start + self.batch_size].to(device)).cpu())
        return torch.cat(out).float()


def load_model(
    model_file_path: str = "",
    *,
    pad_mode: str = "center",
    batch_size: int = 64,
    fold_batchnorm: bool = True,
) -> AisfxModel:
    """Load aiSFX (model **X-Sequential-CE** of the ISMIR 2022 paper).

    Parameters
    ----------
    model_file_path : str
        A ``checkpoint.pth`` in aisfx's format; ``""`` uses the one in the aisfx wheel.
    pad_mode : {"center", "repeat"}
        Rule for sounds shorter than one 2.30 s block (see the module docstring).
    batch_size : int
        Blocks per forward pass.
    fold_batchnorm : bool
        Fold BatchNorm into the convolutions (equal up to float rounding, faster).

    Returns
    -------
    AisfxModel
        ``sample_rate`` 44 100, ``scene_embedding_size`` = ``timestamp_embedding_size`` = 512.
    """
    path = Path(model_file_path).expanduser() if model_file_path else _wheel_checkpoint()
    if not path.is_file():
        raise EmbeddingError(f"model_file_path={str(path)!r} is not a file; pass aisfx's checkpoint.pth or ''.")
    return AisfxModel(path, pad_mode=pad_mode, batch_size=batch_size, fold_batchnorm=fold_batchnorm)


def _run(audio, model: AisfxModel, function: str) -> Tuple[torch.Tensor, torch.Tensor]:
    array = as_audio_array(audio, model_name=function)
    n_sounds, n_samples = array.shape
    padded, offset = pad_to_window(array, WINDOW_SAMPLES, mode=model.pad_mode)
    spec = model.spectrogram(padded)
    n_frames = spec.shape[1]
    n_blocks = 1 + (n_frames - BLOCK_FRAMES) // BLOCK_HOP_FRAMES
    starts = np.arange(n_blocks) * BLOCK_HOP_FRAMES
    blocks = spec.unfold(1, BLOCK_FRAMES, BLOCK_HOP_FRAMES)[:, :n_blocks]  # (n, blocks, 96, 100)
    blocks = blocks.transpose(2, 3).reshape(-1, BLOCK_FRAMES, N_MELS)
    embeddings = model.embed_blocks(blocks).reshape(n_sounds, n_blocks, EMBEDDING_SIZE)
    if n_samples < WINDOW_SAMPLES:
        centres = np.full(1, n_samples / 2.0)
    else:
        # frame k is centred on sample k * hop; a block's centre lies between its frames 49 and 50
        centres = (starts + (BLOCK_FRAMES - 1) / 2.0) * HOP_SAMPLES - offset
    timestamps = np.broadcast_to(centres * 1000.0 / SAMPLE_RATE, (n_sounds, n_blocks))
    return embeddings.contiguous(), torch.from_numpy(np.ascontiguousarray(timestamps, dtype=np.float32))


def get_timestamp_embeddings(audio: torch.Tensor, model: AisfxModel) -> Tuple[torch.Tensor, torch.Tensor]:
    """Block embeddings and block centres.

    Parameters
    ----------
    audio : torch.Tensor, shape (n_sounds, n_samples), float32, 44.1 kHz

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_blocks, 512), float32
    timestamps : torch.Tensor, shape (n_sounds, n_blocks), float32, ms
    """
    return _run(audio, model, "get_timestamp_embeddings")


def get_scene_embeddings(audio: torch.Tensor, model: AisfxModel) -> torch.Tensor:
    """Mean block embedding, ``(n_sounds, 512)`` float32."""
    embeddings, _ = _run(audio, model, "get_scene_embeddings")
    return embeddings.mean(dim=1)
