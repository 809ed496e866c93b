"""GEAR's exception tree.

::

    GearError                      every error GEAR raises on purpose
    ├── ParameterError (ValueError) a bad argument, option or input file; the message names the value and the fix
    ├── SubmissionError             a model (registry adapter or HEAR submission) broke the contract; ``kind`` says how
    └── StoreError                  the results directory cannot be read or written as asked (corrupt entry, name clash,
                                    read-only or not a folder)

The lower layers have one error each, since they import nothing from ``gear``:
:class:`synth.errors.SynthError` and :class:`embeddings.errors.EmbeddingError`. GEAR's entry
points re-raise them as :class:`ParameterError` (:func:`lower_layer_errors`), so a caller of
``gear`` catches :class:`GearError` alone. Nothing in GEAR matches message text to decide what
to do: the type and ``kind`` carry the decision.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from embeddings.errors import EmbeddingError
from synth.errors import SynthError

__all__ = [
    "GearError",
    "ParameterError",
    "SubmissionError",
    "StoreError",
    "SUBMISSION_ERROR_KINDS",
    "LOWER_LAYER_ERRORS",
    "lower_layer_errors",
]

#: The errors of the lower layers (``synth``, ``embeddings``) that GEAR re-raises as its own.
LOWER_LAYER_ERRORS = (SynthError, EmbeddingError)


class GearError(Exception):
    """The root of GEAR's exceptions."""


class ParameterError(GearError, ValueError):
    """A value given to GEAR is invalid. The message names the value and the fix."""


#: What can be wrong with a model, in :attr:`SubmissionError.kind`.
SUBMISSION_ERROR_KINDS = (
    "import",            # the module cannot be imported (a SyntaxError, a missing dependency)
    "attribute",         # a HEAR function or model attribute is missing or has the wrong type
    "load",              # load_model raised or returned an unsupported model type
    "raised",            # get_scene_embeddings / get_timestamp_embeddings raised
    "type",              # an output is not a tensor (or is a NumPy array where a tensor is expected)
    "dtype",             # an output is not float32
    "shape",             # an output's shape is not the declared one
    "non-finite",        # NaN or Inf in an output
    "timestamps",        # timestamps not increasing, irregular or outside the audio
    "non-deterministic",  # the same call twice gives different embeddings
    "too-large",         # the embedding is larger than the --max-dim limit
    "sample-rate",       # the model's sample rate is not one of the HEAR rates
    "weights",           # the weights file cannot be read by the submission's load_model
)


class SubmissionError(GearError):
    """A model breaks the HEAR API contract (or cannot be loaded).

    Parameters
    ----------
    function : str
        The function (``module.get_scene_embeddings``) or step that failed.
    expected, got, fix : str
        What the HEAR API expects, what came back, and the likely fix.
    kind : str
        One of :data:`SUBMISSION_ERROR_KINDS`.
    user_traceback : str, optional
        The traceback of the submission's own code when it raised (what its author can fix).
    """

    def __init__(self, function: str, expected: str, got: str, fix: str, *, kind: str = "raised",
                 user_traceback: str = ""):
        if kind not in SUBMISSION_ERROR_KINDS:
            raise ValueError(f"kind={kind!r}; one of {SUBMISSION_ERROR_KINDS}")
        self.function = function
        self.expected = expected
        self.got = got
        self.fix = fix
        self.kind = kind
        self.user_traceback = user_traceback
        super().__init__(f"{function}: expected {expected}; got {got}. Likely fix: {fix}")

    def __reduce__(self):  # picklable across joblib / Dask workers
        return (_rebuild_submission_error, (self.function, self.expected, self.got, self.fix, self.kind,
                                            self.user_traceback))


def _rebuild_submission_error(function, expected, got, fix, kind, user_traceback):
    return SubmissionError(function, expected, got, fix, kind=kind, user_traceback=user_traceback)


class StoreError(GearError):
    """The results directory cannot be read or written as asked. The message names the path and the fix."""


@contextlib.contextmanager
def lower_layer_errors() -> Iterator[None]:
    """Re-raise :data:`LOWER_LAYER_ERRORS` as :class:`ParameterError` (the cause is kept)."""
    try:
        yield
    except LOWER_LAYER_ERRORS as error:
        raise ParameterError(str(error)) from error
