"""synth: pure signal functions (the additive tone synthesiser, grids, presets, stimulus families).

Nothing here imports from ``embeddings`` or ``gear``.
"""
from synth.errors import SynthError
from synth.grid import (
    HZ_PER_BIN,
    PARAMETERS,
    PRESETS,
    REFERENCE_N_SAMPLES,
    REFERENCE_SAMPLE_RATE,
    ToneSet,
    compat_grid,
    factorial_grid,
    make_grid,
    paper_grid,
)
from synth.tones import hann_window, harmonic_tones, partial_amplitudes
from synth.families import DESIGNS, Factor, Family, StimulusSet, family, family_names, list_families

__all__ = [
    "SynthError",
    "HZ_PER_BIN",
    "PARAMETERS",
    "PRESETS",
    "REFERENCE_N_SAMPLES",
    "REFERENCE_SAMPLE_RATE",
    "ToneSet",
    "compat_grid",
    "factorial_grid",
    "make_grid",
    "paper_grid",
    "hann_window",
    "harmonic_tones",
    "partial_amplitudes",
    "DESIGNS",
    "Factor",
    "Family",
    "StimulusSet",
    "family",
    "family_names",
    "list_families",
]
