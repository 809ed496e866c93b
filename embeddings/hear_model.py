"""The model object of the adapters whose network does not run in PyTorch.

The HEAR 2021 API leaves the model's type open, but the official validator
(``hear-validator``, package ``hearvalidator`` 2021.0.2) accepts from ``load_model`` only a
``torch.nn.Module`` or a ``tf.Module``: it then feeds that framework's tensors and requires
that framework's float32 tensors back (``torch.diff`` of the timestamps included). Every
adapter of this package speaks torch (GEAR feeds ``torch.Tensor`` batches), so an adapter that
runs a TFLite interpreter (YAMNet), an ONNX Runtime session (Basic Pitch), a TensorFlow-1
session (musicnn), a torch network behind its own front end (aiSFX, Resemblyzer) or
NumPy/librosa code (the DSP representations) returns a subclass of :class:`HEARModel`.
"""
from __future__ import annotations

import torch

from embeddings.errors import EmbeddingError

__all__ = ["HEARModel", "make_taps"]


class HEARModel(torch.nn.Module):
    """A ``torch.nn.Module`` shell for a HEAR model that computes outside PyTorch.

    Subclasses hold their runtime (interpreter, session, network, analysis settings) as
    attributes and define the HEAR attributes ``sample_rate``, ``scene_embedding_size`` and
    ``timestamp_embedding_size`` (ints). The embeddings come from the module's HEAR functions,
    not from calling the model.

    Fidelity: being a module changes the type of the object ``load_model`` returns, nothing of
    the computation. ``.to(device)`` (which the official validator calls, with ``"cuda"`` when
    a GPU is present) moves registered torch sub-networks; the adapters feed those networks on
    their device and return CPU tensors. Runtimes that are not torch stay on the CPU, whatever
    the device of the audio.
    """

    sample_rate: int
    scene_embedding_size: int
    timestamp_embedding_size: int

    def forward(self, *args, **kwargs):
        raise EmbeddingError(
            f"{type(self).__name__} is not called directly: pass it to its module's "
            f"get_scene_embeddings(audio, model) or get_timestamp_embeddings(audio, model)"
        )

    def extra_repr(self) -> str:
        names = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")
        return ", ".join(f"{name}={getattr(self, name, None)!r}" for name in names)


def make_taps(names) -> torch.nn.ModuleDict:
    """Identity modules, one per name, through which an adapter's forward pass runs its
    intermediate outputs, so that ``gear run --layers`` can read them with forward hooks.

    They hold no parameters (the model's ``state_dict`` is unchanged) and return their input,
    so the embeddings are the same with or without them."""
    return torch.nn.ModuleDict({name: torch.nn.Identity() for name in names})
