"""Finding families: the built-ins and third-party plug-ins.

A third-party package registers a family in its metadata, entry-point group ``gear.families``::

    # setup.cfg                               # or pyproject.toml
    [options.entry_points]                    # [project.entry-points."gear.families"]
    gear.families =                           # bell = my_pkg.bell:Bell
        bell = my_pkg.bell:Bell

The object named is a :class:`~synth.families.base.Family` subclass (or a callable returning a
Family instance); the entry-point name is the family's name. Built-in names cannot be taken.
"""
from __future__ import annotations

import importlib.metadata
from typing import Dict, List, Tuple

from synth.errors import SynthError
from synth.families.base import Family
from synth.families.builtin import Chirplet, Chord, Envelope, Harmonic, Inharmonic, Noise, Vibrato
from synth.families.nuisance import Nuisance

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "family", "family_names", "list_families"]

ENTRY_POINT_GROUP = "gear.families"
BUILTIN = {cls.name: cls for cls in (Harmonic, Chirplet, Envelope, Inharmonic, Noise, Vibrato, Chord, Nuisance)}


def _entry_points() -> Dict[str, importlib.metadata.EntryPoint]:
    found = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILTIN:
            found.setdefault(entry.name, entry)
    return found


def _source(entry) -> str:
    dist = getattr(entry, "dist", None)
    package = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "unknown package"
    return f"entry point {ENTRY_POINT_GROUP}:{entry.name} = {entry.value} ({package})"


def _load(entry, options) -> Family:
    try:
        target = entry.load()
    except Exception as exc:  # a broken plug-in must not look like a missing one
        raise SynthError(f"family {entry.name!r}: cannot load plug-in {entry.value!r}: {exc}") from exc
    instance = target(**options) if callable(target) else target
    if not isinstance(instance, Family):
        raise SynthError(f"family {entry.name!r}: plug-in {entry.value!r} gave {type(instance).__name__}; "
                         f"it must be a synth.Family subclass (or return a Family instance)")
    if instance.name != entry.name:
        instance.name = entry.name
    instance.source = _source(entry)
    return instance


def family_names() -> Tuple[str, ...]:
    """Names of every family: built-ins first, then plug-ins (sorted)."""
    return tuple(BUILTIN) + tuple(sorted(_entry_points()))


def family(name: str, **options) -> Family:
    """The family called ``name`` (built-in or plug-in), with ``options`` (e.g. ``duration_s``).

    Examples
    --------
    >>> import synth
    >>> audio = synth.family("chirplet").design("sobol", n=64, seed=0).render(sample_rate=16000)
    """
    if name in BUILTIN:
        instance = BUILTIN[name](**options)
        instance.source = f"built-in ({type(instance).__module__}.{type(instance).__name__})"
        return instance
    plugins = _entry_points()
    if name not in plugins:
        raise SynthError(f"unknown family {name!r}; choose one of {', '.join(tuple(BUILTIN) + tuple(sorted(plugins)))} "
                         f"(plug-ins register in the entry-point group {ENTRY_POINT_GROUP!r})")
    return _load(plugins[name], options)


def list_families() -> List[dict]:
    """Every family with its factors (name, unit, range, scale, kind, role, statistic), options
    and source. A plug-in that fails to load is listed with its ``error`` instead of factors."""
    out = []
    for name in family_names():
        try:
            out.append(family(name).describe())
        except SynthError as exc:
            entry = _entry_points()[name]
            out.append({"name": name, "source": _source(entry), "error": str(exc), "factors": []})
    return out
