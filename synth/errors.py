"""The error of the signal layer.

``synth`` is signal code only and imports nothing from ``embeddings`` or ``gear`` (data flows
synth -> embeddings -> gear), so it has its own exception for bad arguments. GEAR's exception
tree (rooted at :class:`gear.errors.GearError`) lives in :mod:`gear.errors`; the ``gear``
layer re-raises a :class:`SynthError` as :class:`gear.errors.ParameterError`.
"""


class SynthError(ValueError):
    """A value given to a synthesis function is invalid. The message names the value and the fix."""
