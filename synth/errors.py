"""The one exception base class of GEAR.

It lives in :mod:`synth` because data flows synth -> embeddings -> gear and nothing in
``synth`` may import from the other packages; ``embeddings.ParameterError`` and
``gear.ParameterError`` are this same class.
"""


class ParameterError(ValueError):
    """A value given to GEAR is invalid. The message names the value and the fix."""
