"""gear: analysis, timbre metric learning, reports and the command line."""
from synth.errors import ParameterError

__all__ = ["ParameterError"]
