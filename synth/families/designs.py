"""Designs: which factor values a stimulus set holds.

Every design maps a family's factors (with their design ranges) to a factor table, reproducibly
from (design, size, seed, ranges):

- ``grid``: the factors named in ``grid={name: n_points}`` on a regular grid (evenly spaced on
  each factor's scale, ends included; discrete factors: all chosen values), the others drawn
  at random once per grid cell (the GEAR paper's design: alpha x r grid, f1 drawn per cell).
- ``factorial``: every factor on a grid (``levels``: points per axis, an int or a dict); no
  randomness.
- ``sobol`` / ``lhs``: scrambled Sobol' / Latin hypercube points (:mod:`scipy.stats.qmc`)
  mapped to each factor on its own scale. A Sobol' size that is not a power of two warns, as
  scipy does.
- ``random``: independent uniform draws on each factor's scale.
- ``sweep``: one factor (``factor=``) moves over its range in ``steps`` values while the others
  stay at values drawn once per sweep; ``n`` (a multiple of ``steps``) sounds in all.

Every design returns ``grid_index`` (n_sounds, n_factors), the position of each sound on each
factor's grid axis or -1, and ``block`` (n_sounds,), the sweep each sound belongs to or -1.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from synth.errors import SynthError
from synth.families.factors import Factor

__all__ = ["DESIGNS", "DesignTable", "run_design"]

DESIGNS = ("grid", "factorial", "sobol", "lhs", "random", "sweep")


@dataclasses.dataclass(frozen=True)
class DesignTable:
    """The output of a design: factor columns, grid positions, sweep blocks, and the record
    (JSON-serialisable) of the options that reproduce it."""

    columns: Dict[str, np.ndarray]
    grid_index: np.ndarray
    block: np.ndarray
    record: dict


def _check_n(n, family, design, minimum=1):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise SynthError(f"family {family!r}, design {design!r}: n must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _draw(factor: Factor, rng: np.random.Generator, size: int) -> np.ndarray:
    """Random values of one factor: on its ``step`` lattice if it has one (integers drawn
    with ``rng.integers``, ends included), else uniform on its scale."""
    if factor.kind == "continuous" and factor.step is not None:
        low, high = factor.range
        k_low = int(math.ceil(low / factor.step - 1e-9))
        k_high = int(math.floor(high / factor.step + 1e-9))
        return rng.integers(k_low, k_high, size=size, endpoint=True) * factor.step
    if factor.kind == "discrete":
        return factor.value_array()[rng.integers(0, len(factor.range), size=size)]
    return factor.from_unit(rng.random(size))


def _meshgrid(factors, points, family, design):
    axes = []
    for factor in factors:
        m = points[factor.name]
        if factor.kind == "continuous" and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
            raise SynthError(f"family {family!r}, design {design!r}: factor {factor.name!r} needs an integer "
                             f"number of grid points >= 1, got {m!r}")
        axes.append(factor.axis(int(m) if factor.kind == "continuous" else 0))
    positions = np.meshgrid(*[np.arange(a.size) for a in axes], indexing="ij")
    return axes, [p.ravel() for p in positions]


def _grid(factors, *, family, design, seed, grid):
    unknown = set(grid) - {f.name for f in factors}
    if unknown:
        raise SynthError(f"family {family!r}, design {design!r}: unknown factor {sorted(unknown)[0]!r} in the grid; "
                         f"factors are {', '.join(f.name for f in factors)}")
    on_grid = [f for f in factors if f.name in grid]
    if not on_grid:
        raise SynthError(f"family {family!r}, design {design!r}: put at least one factor on the grid, "
                         f"e.g. grid={{{factors[0].name!r}: 10}}")
    axes, positions = _meshgrid(on_grid, grid, family, design)
    n_cells = positions[0].size
    rng = np.random.default_rng(seed)
    columns, grid_index = {}, np.full((n_cells, len(factors)), -1, dtype=np.int64)
    for j, factor in enumerate(factors):
        if factor.name in grid:
            k = [f.name for f in on_grid].index(factor.name)
            columns[factor.name] = axes[k][positions[k]]
            grid_index[:, j] = positions[k]
        else:
            columns[factor.name] = _draw(factor, rng, n_cells)
    record = {"grid": {f.name: int(axes[k].size) for k, f in enumerate(on_grid)}}
    return DesignTable(columns, grid_index, np.full(n_cells, -1, dtype=np.int64), record)


def _levels(factors, levels, n, family, design):
    if isinstance(levels, Mapping):
        missing = [f.name for f in factors if f.kind == "continuous" and f.name not in levels]
        if missing:
            raise SynthError(f"family {family!r}, design {design!r}: levels lack factor {missing[0]!r}")
        return {f.name: levels.get(f.name, 0) for f in factors}
    if levels is None and all(f.kind == "discrete" for f in factors):
        levels = 0
    elif levels is None:
        if n is None:
            raise SynthError(f"family {family!r}, design {design!r}: give n or levels")
        n = _check_n(n, family, design)
        n_discrete = int(np.prod([len(f.range) for f in factors if f.kind == "discrete"]))
        n_continuous = sum(f.kind == "continuous" for f in factors)
        levels = int(math.floor((n / n_discrete) ** (1.0 / max(n_continuous, 1)) + 1e-9))
        if n_continuous and levels < 2:
            raise SynthError(f"family {family!r}, design {design!r}: n={n} is too small for two levels per "
                             f"factor; give n >= {n_discrete * 2 ** n_continuous}")
    return {f.name: levels for f in factors}


def _factorial(factors, *, family, design, seed, levels=None, n=None):
    points = _levels(factors, levels, n, family, design)
    table = _grid(factors, family=family, design=design, seed=seed, grid=points)
    return dataclasses.replace(table, record={"levels": table.record["grid"]})


def _qmc_engine(kind, d, seed):
    from scipy.stats import qmc  # scipy.stats is slow to import: only when a QMC design is run

    cls = qmc.Sobol if kind == "sobol" else qmc.LatinHypercube
    key = "rng" if "rng" in inspect.signature(cls).parameters else "seed"
    return cls(d, scramble=True, **{key: seed})


def _unit_cube(factors, *, family, design, seed, n):
    n = _check_n(n, family, design)
    d = len(factors)
    if design == "random":
        u = np.random.default_rng(seed).random((n, d))
    else:
        u = _qmc_engine(design, d, seed).random(n)
    columns = {f.name: f.from_unit(u[:, j]) for j, f in enumerate(factors)}
    return DesignTable(columns, np.full((n, d), -1, dtype=np.int64), np.full(n, -1, dtype=np.int64), {})


def _sweep(factors, *, family, design, seed, n, factor=None, steps=8):
    names = [f.name for f in factors]
    if factor not in names:
        raise SynthError(f"family {family!r}, design 'sweep': factor={factor!r}; choose one of {', '.join(names)}")
    swept = factors[names.index(factor)]
    axis = swept.axis(_check_n(steps, family, design, minimum=2) if swept.kind == "continuous" else 0)
    n = _check_n(n, family, design)
    if n % axis.size:
        raise SynthError(f"family {family!r}, design 'sweep': n={n} must be a multiple of the {axis.size} "
                         f"steps of {factor!r}")
    n_sweeps = n // axis.size
    rng = np.random.default_rng(seed)
    columns, grid_index = {}, np.full((n, len(factors)), -1, dtype=np.int64)
    for j, f in enumerate(factors):
        if f is swept:
            columns[f.name] = np.tile(axis, n_sweeps)
            grid_index[:, j] = np.tile(np.arange(axis.size), n_sweeps)
        else:
            columns[f.name] = np.repeat(_draw(f, rng, n_sweeps), axis.size)
    block = np.repeat(np.arange(n_sweeps), axis.size)
    return DesignTable(columns, grid_index, block, {"factor": factor, "steps": int(axis.size)})


def run_design(design: str, factors: Sequence[Factor], *, family: str, seed: int, n: Optional[int] = None,
               **options) -> DesignTable:
    """Run design ``design`` over ``factors`` (with their design ranges).

    Returns
    -------
    DesignTable
    """
    if design not in DESIGNS:
        raise SynthError(f"family {family!r}: unknown design {design!r}; choose one of {', '.join(DESIGNS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"family {family!r}, design {design!r}: seed must be an integer >= 0, got {seed!r}")
    allowed = {"grid": {"grid"}, "factorial": {"levels"}, "sweep": {"factor", "steps"}}.get(design, set())
    unexpected = set(options) - allowed
    if unexpected:
        raise SynthError(f"family {family!r}, design {design!r}: unknown option {sorted(unexpected)[0]!r}; "
                         f"this design takes n, seed, ranges, fixed" + "".join(f", {a}" for a in sorted(allowed)))
    if design == "grid":
        if n is not None:
            raise SynthError(f"family {family!r}, design 'grid': the size follows from grid={{name: points}}; "
                             f"do not give n (or use design 'factorial')")
        table = _grid(factors, family=family, design=design, seed=int(seed), grid=options["grid"])
    elif design == "factorial":
        table = _factorial(factors, family=family, design=design, seed=int(seed), n=n, **options)
    elif design == "sweep":
        table = _sweep(factors, family=family, design=design, seed=int(seed), n=n, **options)
    else:
        table = _unit_cube(factors, family=family, design=design, seed=int(seed), n=n)
    return table
