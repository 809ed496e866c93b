"""Stimulus families: parameterised synthesisers behind one API, on any design.

    >>> import synth
    >>> tones = synth.family("chirplet").design("sobol", n=4096, seed=0)
    >>> audio = tones.render(sample_rate=16000)          # (4096, 8000) float32
    >>> tones.table()                                    # {'index', 'carrier_hz', 'am_hz', 'fm_oct_per_s'}

See :mod:`synth.families.base` (writing a family), :mod:`synth.families.designs` and
:mod:`synth.families.registry` (plug-ins through the ``gear.families`` entry-point group).
"""
from synth.families.base import Family, StimulusSet
from synth.families.designs import DESIGNS
from synth.families.factors import Factor
from synth.families.registry import ENTRY_POINT_GROUP, family, family_names, list_families

__all__ = ["DESIGNS", "ENTRY_POINT_GROUP", "Factor", "Family", "StimulusSet", "family", "family_names", "list_families"]
