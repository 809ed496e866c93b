"""gear: analysis, metrics, the results store, timbre metric learning, reports and the command line."""
from gear.errors import GearError, ParameterError, StoreError, SubmissionError

__all__ = ["GearError", "ParameterError", "StoreError", "SubmissionError"]
