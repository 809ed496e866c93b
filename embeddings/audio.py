"""Audio-batch helpers shared by the adapters: input checks, padding to a window, patches."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch

from embeddings.errors import EmbeddingError

__all__ = ["PAD_MODES", "as_audio_batch", "as_audio_array", "pad_to_window", "frame_patches"]

PAD_MODES = ("center", "repeat")


def as_audio_batch(audio, *, model_name: str = "model") -> torch.Tensor:
    """Check a HEAR audio batch and return it as a float32 CPU-or-device ``torch.Tensor``.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio, one sound per row, at the model's sample rate.
    model_name : str
        Named in error messages.

    Returns
    -------
    torch.Tensor, shape (n_sounds, n_samples), float32
        On the device of ``audio`` (numpy input gives a CPU tensor).

    Raises
    ------
    EmbeddingError
        If ``audio`` is not 2-D, not floating point (integer PCM, complex), has no samples or
        holds NaN or inf.
    """
    if isinstance(audio, torch.Tensor):
        tensor = audio.detach()
    else:
        try:
            array = np.asarray(audio)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(
                f"{model_name}: audio must be an array of shape (n_sounds, n_samples), got "
                f"{type(audio).__name__} ({exc})"
            ) from None
        if array.dtype.kind != "f":
            raise EmbeddingError(
                f"{model_name}: audio must hold floating-point samples in [-1, 1], got dtype "
                f"{array.dtype}; convert integer PCM first (e.g. int16: x / 32768)"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if not tensor.is_floating_point():
        raise EmbeddingError(
            f"{model_name}: audio must hold floating-point samples in [-1, 1], got dtype "
            f"{tensor.dtype}; convert integer PCM first (e.g. int16: x / 32768)"
        )
    if tensor.ndim != 2:
        raise EmbeddingError(
            f"{model_name}: audio must be 2-D (n_sounds, n_samples), got shape "
            f"{tuple(tensor.shape)}; for one sound use audio[None, :]"
        )
    if tensor.shape[1] == 0:
        raise EmbeddingError(f"{model_name}: audio has 0 samples per sound; pass at least one sample")
    tensor = tensor.to(torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise EmbeddingError(
            f"{model_name}: audio contains NaN or inf; replace them (e.g. numpy.nan_to_num) "
            f"before embedding"
        )
    return tensor


def as_audio_array(audio, *, model_name: str = "model") -> np.ndarray:
    """:func:`as_audio_batch`, returned as a float32 numpy array on the CPU."""
    return as_audio_batch(audio, model_name=model_name).cpu().numpy()


def pad_to_window(audio: np.ndarray, window_samples: int, *, mode: str = "center") -> Tuple[np.ndarray, int]:
    """Pad sounds shorter than a model's window to exactly one window.

    Parameters
    ----------
    audio : np.ndarray, shape (n_sounds, n_samples)
    window_samples : int
        The model's shortest input, in samples.
    mode : {"center", "repeat"}
        ``"center"``: zeros on both sides, the sound starting at
        ``(window_samples - n_samples) // 2``; ``"repeat"``: the sound tiled from sample 0.

    Returns
    -------
    padded : np.ndarray, shape (n_sounds, max(n_samples, window_samples)), same dtype
        ``audio`` itself when it is already long enough.
    offset : int
        Index in ``padded`` of the sound's first sample (0 for ``"repeat"`` and for
        unpadded input); subtract it to express padded positions in the sound's own
        coordinates.
    """
    if mode not in PAD_MODES:
        raise EmbeddingError(f"pad_mode={mode!r} is not one of {PAD_MODES}; pick one of them.")
    n_sounds, n_samples = audio.shape
    if n_samples >= window_samples:
        return audio, 0
    if mode == "repeat":
        reps = int(math.ceil(window_samples / n_samples))
        return np.tile(audio, (1, reps))[:, :window_samples], 0
    offset = (window_samples - n_samples) // 2
    padded = np.zeros((n_sounds, window_samples), dtype=audio.dtype)
    padded[:, offset : offset + n_samples] = audio
    return padded, offset


def frame_patches(audio: np.ndarray, patch_samples: int, hop_samples: int) -> Tuple[np.ndarray, np.ndarray]:
    """Cut sounds (at least one patch long) into patches, the last zero-padded at the end.

    Parameters
    ----------
    audio : np.ndarray, shape (n_sounds, n_samples), n_samples >= patch_samples

    Returns
    -------
    patches : np.ndarray, shape (n_sounds, n_patches, patch_samples)
        ``n_patches = 1 + ceil((n_samples - patch_samples) / hop_samples)``.
    starts : np.ndarray of int, shape (n_patches,)
        First sample of each patch.
    """
    n_sounds, n_samples = audio.shape
    n_patches = 1 + int(math.ceil(max(0, n_samples - patch_samples) / hop_samples))
    total = (n_patches - 1) * hop_samples + patch_samples
    if total > n_samples:
        audio = np.concatenate([audio, np.zeros((n_sounds, total - n_samples), audio.dtype)], axis=1)
    starts = np.arange(n_patches) * hop_samples
    index = starts[:, None] + np.arange(patch_samples)[None, :]
    return audio[:, index], starts
