"""wav2vec 2.0 (Baevski et al. 2020) behind the HEAR 2021 API, as ``hearbaseline.wav2vec2``.

``hearbaseline.wav2vec2`` (the HEAR 2021 wav2vec2 baseline, default checkpoint
``facebook/wav2vec2-large-100k-voxpopuli``) wraps speechbrain's ``HuggingFaceWav2Vec2``: a
``transformers.Wav2Vec2Model`` (or ``HubertModel``) whose output is its last hidden state,
with two layer norms **over the whole batch tensor** (``F.layer_norm(x, x.shape)``, no affine):

* on the input waveforms, when the checkpoint's feature extractor says ``do_normalize``;
* on the output, always (``output_norm=True``).

So an embedding depends on the other sounds of the call. This module does the same by
default (``normalization="batch"``; the statistics are taken over the whole call even though
the network runs ``chunk_sounds`` sounds at a time, so chunking changes nothing), or
normalises each sound on its own (``normalization="sound"``: ``F.layer_norm`` over one
sound's samples and over one sound's (frames, features)).

Weights: a local Hugging Face model folder (``config.json`` plus ``model.safetensors`` or
``pytorch_model.bin``, as written by ``save_pretrained`` or cloned from the Hub) loaded with
``from_pretrained(folder, local_files_only=True)``; nothing is downloaded. Checkpoints saved
from ``Wav2Vec2ForPreTraining`` (such as the voxpopuli one) load too. A checkpoint that
leaves any backbone weight uninitialised is refused (it would run partly random weights).
``do_normalize`` is read from the folder's ``preprocessor_config.json`` (as speechbrain does);
without that file it is ``config.feat_extract_norm == "layer"`` (the Hugging Face convention:
the large "layer"-norm models were trained on normalised audio).

Frames: the convolutional feature encoder has a receptive field of ``R`` samples and a
stride of ``S`` (400 and 320 for every released wav2vec2 / HuBERT: 25 ms every 20 ms); frame k
covers samples ``[S k, S k + R)`` and its timestamp is its centre ``(S k + R / 2) / 16`` ms
(12.5, 32.5, ... ms, as hearbaseline). Sounds shorter than ``R`` samples are zero-padded
symmetrically to ``R`` (``(R - n) // 2`` zeros before); GEAR's 64 ms tones (1 024 samples,
2 frames) are not padded. Scene embedding: mean of the timestamp embeddings (hearbaseline).

Layers (``gear run --layers``): ``conv1`` .. ``convN`` (the feature encoder's convolutions,
``(sounds, channels, frames)``) and ``transformer1`` .. ``transformerL`` (each transformer layer's
output, ``(sounds, frames, hidden)``, passed to the tap as ``(sounds, hidden, frames)``), read by
forward hooks on the backbone (:func:`tap_backbone`); the large models have 7 and 24. The last
layer's output is taken before the encoder's final layer norm (large models), so
``transformerL`` is the last hidden state up to that norm and hearbaseline's batch-wide output
norm. The input waveforms are layer-normalised as for the embedding, so with the default
``normalization="batch"`` every layer depends on the batch as the embedding does.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from embeddings.audio import as_audio_batch
from embeddings.errors import EmbeddingError
from embeddings.hear_model import make_taps

__all__ = [
    "SAMPLE_RATE",
    "NORMALIZATIONS",
    "Wav2Vec2Embedding",
    "resolve_model_dir",
    "load_backbone",
    "frame_geometry",
    "layer_names",
    "tap_backbone",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

SAMPLE_RATE = 16000
NORMALIZATIONS = ("batch", "sound")
_BACKBONES = {"wav2vec2": "Wav2Vec2Model", "hubert": "HubertModel"}


def _import_transformers():
    try:
        import transformers
    except ImportError:
        raise EmbeddingError(
            "wav2vec2 / HuBERT models need the 'transformers' package: pip install transformers"
        ) from None
    return transformers


@contextlib.contextmanager
def _quiet_transformers(transformers):
    """Silence transformers' loading progress bars and load reports (library code is quiet)."""
    logging_utils = transformers.utils.logging
    verbosity = logging_utils.get_verbosity()
    bars = logging_utils.is_progress_bar_enabled()
    logging_utils.set_verbosity_error()
    logging_utils.disable_progress_bar()
    try:
        yield
    finally:
        logging_utils.set_verbosity(verbosity)
        if bars:
            logging_utils.enable_progress_bar()


def resolve_model_dir(model_file_path) -> Path:
    """The Hugging Face model folder named by ``model_file_path`` (the folder or a file in it).

    Raises
    ------
    EmbeddingError
        If there is no ``config.json`` or no weights file there.
    """
    if model_file_path in ("", None):
        raise EmbeddingError(
            "wav2vec2 needs a local Hugging Face model folder (config.json + model.safetensors or "
            "pytorch_model.bin); put it under <models-dir>/wav2vec2/ or pass its path"
        )
    path = Path(os.fspath(model_file_path))
    folder = path if path.is_dir() else path.parent
    if not (folder / "config.json").is_file():
        raise EmbeddingError(
            f"{str(path)!r} is not a Hugging Face model folder: {folder / 'config.json'} is missing"
        )
    weights = [n for n in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                           "pytorch_model.bin.index.json") if (folder / n).is_file()]
    if not weights:
        raise EmbeddingError(
            f"{str(folder)!r} has config.json but no model.safetensors or pytorch_model.bin; copy the "
            f"weights next to it"
        )
    return folder


def load_backbone(model_file_path, *, expected_type: Optional[str] = None):
    """A ``Wav2Vec2Model`` or ``HubertModel`` from a local folder, every weight read from it.

    Parameters
    ----------
    model_file_path : str or Path
        The folder, or a file inside it.
    expected_type : {"wav2vec2", "hubert"}, optional
        Refuse other ``config.model_type`` values.

    Returns
    -------
    model : transformers.PreTrainedModel
        Float32, eval mode, CPU.
    folder : Path

    Raises
    ------
    EmbeddingError
        Missing files, an unsupported ``model_type``, or backbone weights missing from the
        checkpoint.
    """
    transformers = _import_transformers()
    folder = resolve_model_dir(model_file_path)
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError / ValueError for bad configs
        raise EmbeddingError(f"cannot read {folder / 'config.json'}: {exc}") from None
    model_type = getattr(config, "model_type", None)
    if model_type not in _BACKBONES or (expected_type is not None and model_type != expected_type):
        wanted = expected_type or " or ".join(_BACKBONES)
        raise EmbeddingError(f"{str(folder)!r} holds a {model_type!r} model; expected {wanted}")
    model_class = getattr(transformers, _BACKBONES[model_type])
    try:
        with _quiet_transformers(transformers):
            model, info = model_class.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    except Exception as exc:  # transformers raises several types for unreadable checkpoints
        raise EmbeddingError(f"cannot load the {model_type} weights in {str(folder)!r}: {exc}") from None
    missing = [k for k in info.get("missing_keys", []) if k]
    mismatched = info.get("mismatched_keys", [])
    if missing or mismatched:
        raise EmbeddingError(
            f"the checkpoint in {str(folder)!r} does not cover the {model_type} backbone "
            f"(missing: {sorted(missing)[:5]}, mismatched: {list(mismatched)[:5]}); these weights would "
            f"be random. Use the checkpoint that goes with this config.json"
        )
    return model.float().eval(), folder


def frame_geometry(config) -> Tuple[int, int]:
    """``(receptive_field, stride)`` in samples of a wav2vec2 / HuBERT feature encoder."""
    receptive, stride = 1, 1
    for kernel, step in zip(config.conv_kernel, config.conv_stride):
        receptive += (kernel - 1) * stride
        stride *= step
    return receptive, stride


def _backbone_layers(conv_dim, num_hidden_layers) -> Tuple[str, ...]:
    return (tuple(f"conv{k}" for k in range(1, len(conv_dim) + 1))
            + tuple(f"transformer{k}" for k in range(1, int(num_hidden_layers) + 1)))


def layer_names(model_file_path) -> Tuple[str, ...]:
    """The probed layers of the checkpoint in a Hugging Face folder (or a file in it), from its
    ``config.json`` alone: ``conv1`` .. ``convN``, ``transformer1`` .. ``transformerL``.

    Raises
    ------
    EmbeddingError
        The folder or its ``config.json`` cannot be read.
    """
    config_file = resolve_model_dir(model_file_path) / "config.json"
    try:
        config = json.loads(config_file.read_text())
        return _backbone_layers(config["conv_dim"], config["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmbeddingError(f"cannot read the layers of {config_file}: {exc!r}") from None


class _ToTap:
    """A backbone module's forward hook that runs its output through a tap, in GEAR's layout."""

    def __init__(self, tap: torch.nn.Module, *, frames_first: bool):
        self.tap = tap
        self.frames_first = frames_first

    def __call__(self, _module, _inputs, output) -> None:
        x = output[0] if isinstance(output, tuple) else output
        self.tap(x.transpose(1, 2) if self.frames_first else x)  # returns None: the output is unchanged


def tap_backbone(backbone) -> torch.nn.ModuleDict:
    """Identity taps (:func:`embeddings.hear_model.make_taps`) fed by forward hooks on a wav2vec2 /
    HuBERT backbone: ``convK`` gets the K-th feature-encoder convolution's output ``(rows,
    channels, frames)``; ``transformerK`` the K-th transformer layer's, as ``(rows, hidden, frames)``.
    """
    config = backbone.config
    taps = make_taps(_backbone_layers(config.conv_dim, config.num_hidden_layers))
    for k, conv in enumerate(backbone.feature_extractor.conv_layers, start=1):
        conv.register_forward_hook(_ToTap(taps[f"conv{k}"], frames_first=False))
    for k, layer in enumerate(backbone.encoder.layers, start=1):
        layer.register_forward_hook(_ToTap(taps[f"transformer{k}"], frames_first=True))
    return taps


def _do_normalize(folder: Path, config) -> bool:
    preprocessor = folder / "preprocessor_config.json"
    if preprocessor.is_file():
        try:
            return bool(json.loads(preprocessor.read_text()).get("do_normalize", True))
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"cannot read {preprocessor}: {exc}") from None
    return getattr(config, "feat_extract_norm", "group") == "layer"


class Wav2Vec2Embedding(torch.nn.Module):
    """A wav2vec2 / HuBERT backbone with hearbaseline's normalisation and the HEAR attributes.

    Parameters
    ----------
    backbone : transformers.Wav2Vec2Model or transformers.HubertModel
    normalize_wav : bool
        Layer-normalise the input waveforms.
    output_norm : bool
        Layer-normalise the output.
    normalization : {"batch", "sound"}
        Over what the two layer norms are taken (module doc).
    chunk_sounds : int
        Sounds per forward pass.

    Attributes
    ----------
    sample_rate : int
        16 000 Hz.
    scene_embedding_size, timestamp_embedding_size : int
        ``config.hidden_size`` (1 024 for the large models).
    receptive_field, stride : int
        Of the feature encoder, in samples.
    weights_dir : str
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, backbone, *, normalize_wav: bool, output_norm: bool = True,
                 normalization: str = "batch", chunk_sounds: int = 64):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise EmbeddingError(
                f"normalization={normalization!r} is not available; choose one of {', '.join(NORMALIZATIONS)}"
            )
        if isinstance(chunk_sounds, bool) or not isinstance(chunk_sounds, int) or chunk_sounds < 1:
            raise EmbeddingError(f"chunk_sounds must be a positive integer, got {chunk_sounds!r}")
        self.backbone = backbone
        self.normalize_wav = bool(normalize_wav)
        self.output_norm = bool(output_norm)
        self.normalization = normalization
        self.chunk_sounds = chunk_sounds
        self.scene_embedding_size = int(backbone.config.hidden_size)
        self.timestamp_embedding_size = int(backbone.config.hidden_size)
        self.receptive_field, self.stride = frame_geometry(backbone.config)
        self.weights_dir = ""
        self.taps = tap_backbone(backbone)  # read by `gear run --layers` (module doc)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(n_sounds, n_samples) -> (n_sounds, n_frames, hidden_size), normalised as configured."""
        batch = self.normalization == "batch"
        if self.normalize_wav:
            audio = F.layer_norm(audio, audio.shape if batch else audio.shape[-1:])
        out = torch.cat([
            self.backbone(audio[start:start + self.chunk_sounds]).last_hidden_state
            for start in range(0, audio.shape[0], self.chunk_sounds)
        ])
        if self.output_norm:
            out = F.layer_norm(out, out.shape if batch else out.shape[-2:])
        return out


def load_model(
    model_file_path: str = "",
    *,
    normalize_wav: Optional[bool] = None,
    output_norm: bool = True,
    normalization: str = "batch",
    chunk_sounds: int = 64,
) -> Wav2Vec2Embedding:
    """Load a wav2vec2 (or HuBERT) model from a local Hugging Face folder.

    Parameters
    ----------
    model_file_path : str
        The model folder (or its ``config.json``). Required: nothing is downloaded.
    normalize_wav : bool, optional
        Default: ``do_normalize`` of ``preprocessor_config.json`` (module doc).
    output_norm : bool
        Layer-normalise the output (hearbaseline: True).
    normalization : {"batch", "sound"}
    chunk_sounds : int

    Returns
    -------
    Wav2Vec2Embedding
        In eval mode, on the CPU.

    Raises
    ------
    EmbeddingError
    """
    backbone, folder = load_backbone(model_file_path)
    if normalize_wav is None:
        normalize_wav = _do_normalize(folder, backbone.config)
    model = Wav2Vec2Embedding(
        backbone, normalize_wav=normalize_wav, output_norm=output_norm,
        normalization=normalization, chunk_sounds=chunk_sounds,
    )
    model.weights_dir = str(folder)
    return model.eval()


def _check_model(model) -> Wav2Vec2Embedding:
    if not isinstance(model, Wav2Vec2Embedding):
        raise EmbeddingError(
            f"model must be a Wav2Vec2Embedding from embeddings.wav2vec2.load_model, got {type(model).__name__}"
        )
    return model


def pad_to_receptive_field(audio: torch.Tensor, receptive_field: int) -> torch.Tensor:
    """Zero-pad sounds shorter than ``receptive_field`` samples symmetrically to it."""
    short = receptive_field - audio.shape[-1]
    if short <= 0:
        return audio
    return F.pad(audio, (short // 2, short - short // 2))


def frame_timestamps_ms(n_frames: int, receptive_field: int, stride: int, n_sounds: int) -> torch.Tensor:
    """Centres of the feature-encoder frames in ms, shape (n_sounds, n_frames), float32."""
    centres = (torch.arange(n_frames, dtype=torch.float64) * stride + receptive_field / 2.0) * (1000.0 / SAMPLE_RATE)
    return centres.to(torch.float32).expand(n_sounds, -1).contiguous()


def get_timestamp_embeddings(audio, model: Wav2Vec2Embedding) -> Tuple[torch.Tensor, torch.Tensor]:
    """The last hidden state, one frame every ``stride`` samples (20 ms).

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : Wav2Vec2Embedding

    Returns
    -------
    embeddings : torch.Tensor, shape (n_sounds, n_frames, hidden_size), float32
        ``n_frames = 1 + (max(n_samples, R) - R) // S``.
    timestamps : torch.Tensor, shape (n_sounds, n_frames), float32
        Frame centres in milliseconds (12.5, 32.5, ... for R = 400, S = 320).
    """
    model = _check_model(model)
    audio = as_audio_batch(audio, model_name="wav2vec2")
    audio = pad_to_receptive_field(audio, model.receptive_field)
    device = next(model.parameters()).device
    with torch.inference_mode():
        embeddings = model(audio.to(device)).float().cpu()
    timestamps = frame_timestamps_ms(embeddings.shape[1], model.receptive_field, model.stride, audio.shape[0])
    return embeddings.to(audio.device), timestamps.to(audio.device)


def get_scene_embeddings(audio, model: Wav2Vec2Embedding) -> torch.Tensor:
    """Mean over time of :func:`get_timestamp_embeddings` (hearbaseline).

    Parameters
    ----------
    audio : torch.Tensor or np.ndarray, shape (n_sounds, n_samples)
        Mono audio at 16 kHz, in [-1, 1].
    model : Wav2Vec2Embedding

    Returns
    -------
    torch.Tensor, shape (n_sounds, hidden_size), float32
    """
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
