"""gear: analysis, metrics, the results store, timbre metric learning, reports and the command line.

The public Python API, in one import::

    from gear import run, analyse_embedding, GearConfig, write_report, ResultsStore

Errors: :class:`GearError` and its subclasses (:mod:`gear.errors`).
"""
from gear.errors import GearError, ParameterError, StoreError, SubmissionError

__all__ = [
    "GearError",
    "ParameterError",
    "StoreError",
    "SubmissionError",
    "GearConfig",
    "run",
    "analyse_embedding",
    "write_report",
    "ResultsStore",
    "add_submission",
]

_LAZY = {
    "GearConfig": "gear.pipeline",
    "run": "gear.pipeline",
    "analyse_embedding": "gear.pipeline",
    "write_report": "gear.report",
    "ResultsStore": "gear.store",
    "add_submission": "gear.submission",
}


def __getattr__(name):  # imported on first use: `import gear` stays light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gear' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
