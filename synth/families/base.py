"""The family API: :class:`Family` (a parameterised synthesiser) and :class:`StimulusSet`
(a family + a design: the factor table, rendered at any sample rate).

Writing a family (built in or a plug-in registered through the ``gear.families`` entry-point
group): subclass :class:`Family`, set ``name``, ``factors`` (a tuple of
:class:`~synth.families.factors.Factor`), ``defaults`` (options such as ``duration_s``) and
implement :meth:`Family.synthesise`, which returns the *unnormalised* audio of a block of
tones, float32 or float64, shape (n_tones, n_samples). :meth:`Family.render` validates the
table, calls it in memory-bounded blocks, checks what comes back (shape, dtype, NaN/inf,
silence, full scale) and peak-normalises each tone to ``peak`` (0.5, i.e. -6 dBFS, as GEAR's
harmonic tones) unless the family sets ``normalize = False`` (it then returns the final
levels itself, within [-1, 1]; the ``nuisance`` family does this so that its ``gain_db``
factor survives: it normalises first and applies the gain after).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import numbers
import os
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from synth.errors import SynthError
from synth.families.designs import run_design
from synth.families.factors import Factor

__all__ = ["Family", "StimulusSet"]

#: Rendering works on blocks of at most BLOCK_ROWS tones and BLOCK_BYTES of float64 audio,
#: so that the working memory stays a small fraction of the float32 output array.
BLOCK_BYTES = 4 << 20
BLOCK_ROWS = 32
#: Threads that render blocks in parallel (the same audio whatever the number).
RENDER_THREADS = min(4, os.cpu_count() or 1)


def _check_int(what, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise SynthError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Family:
    """A stimulus family: named factors and a synthesiser of one tone per row of factor values.

    Class attributes
    ----------------
    name : str
        Registry name (``synth.family(name)``).
    factors : tuple of Factor
        The factors, in column order.
    defaults : dict
        Options and their defaults (every family has ``duration_s`` and ``peak``).
    normalize : bool
        Peak-normalise each tone to ``peak`` (default True).
    default_grid : dict or None
        Points per grid factor of the ``grid`` design when none is given.
    """

    name: str = ""
    factors: Tuple[Factor, ...] = ()
    defaults: Dict[str, object] = {"duration_s": 0.25, "peak": 0.5}
    normalize: bool = True
    default_grid: Optional[Dict[str, int]] = None
    source: str = ""

    def __init__(self, **options):
        unknown = set(options) - set(self.defaults)
        if unknown:
            raise SynthError(f"family {self.name!r}: unknown option {sorted(unknown)[0]!r}; options are "
                             f"{', '.join(sorted(self.defaults))}")
        self.options = {**self.defaults, **options}
        duration = self.options.get("duration_s")
        if duration is not None and not (isinstance(duration, numbers.Real) and 0 < duration <= 60):
            raise SynthError(f"family {self.name!r}: duration_s must be in (0, 60] seconds, got {duration!r}")
        peak = self.options.get("peak", 0.5)
        if not (isinstance(peak, numbers.Real) and 0 < peak <= 1):
            raise SynthError(f"family {self.name!r}: peak must be in (0, 1], got {peak!r}")

    # ------------------------------------------------------------------ description
    def factor(self, name: str) -> Factor:
        """The factor called ``name``."""
        for factor in self.factors:
            if factor.name == name:
                return factor
        raise SynthError(f"family {self.name!r}: unknown factor {name!r}; factors are "
                         f"{', '.join(f.name for f in self.factors)}")

    @property
    def parameters(self) -> Tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    def describe(self) -> dict:
        """Name, source, first docstring line, options and factors (JSON-serialisable)."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return {"name": self.name, "source": self.source or type(self).__module__,
                "description": doc[0] if doc else "", "options": dict(self.options),
                "factors": [f.describe() for f in self.factors]}

    def config(self) -> dict:
        return {"family": self.name, "family_options": dict(self.options)}

    def n_samples(self, sample_rate: int) -> int:
        """Samples per tone at ``sample_rate`` (``round(duration_s * sample_rate)``)."""
        return int(round(float(self.options["duration_s"]) * _check_int("sample_rate", sample_rate, 1)))

    # ------------------------------------------------------------------ synthesis
    def synthesise(self, table: Mapping[str, np.ndarray], *, sample_rate: int, n_samples: int, seed: int,
                   index: np.ndarray) -> np.ndarray:
        """Unnormalised audio of a block of tones (to implement).

        Parameters
        ----------
        table : dict of str -> np.ndarray, shape (n_tones,)
            Validated factor values.
        sample_rate, n_samples : int
        seed : int
            The stimulus set's seed; with ``index`` it seeds any noise
            (:func:`synth.families.engine.tone_rng`).
        index : np.ndarray, shape (n_tones,), int
            Each tone's index in its stimulus set.

        Returns
        -------
        np.ndarray, shape (n_tones, n_samples), float32 or float64
        """
        raise NotImplementedError

    def check_table(self, table: Mapping[str, Sequence]) -> Dict[str, np.ndarray]:
        """Validate a table of factor values (every factor, nothing else, same lengths)."""
        if not isinstance(table, Mapping):
            raise SynthError(f"family {self.name!r}: the factor table must be a dict of columns, got {type(table).__name__}")
        extra = set(table) - set(self.parameters) - {"index", "sample_rate", "n_samples"}
        if extra:
            raise SynthError(f"family {self.name!r}: unknown factor {sorted(extra)[0]!r}; factors are "
                             f"{', '.join(self.parameters)}")
        missing = [name for name in self.parameters if name not in table]
        if missing:
            raise SynthError(f"family {self.name!r}: the table lacks factor {missing[0]!r}")
        columns = {f.name: f.check_column(table[f.name], self.name) for f in self.factors}
        lengths = {c.shape[0] for c in columns.values()}
        if len(lengths) != 1:
            raise SynthError(f"family {self.name!r}: factor columns have different lengths {sorted(lengths)}")
        return columns

    def blocks(self, table: Mapping[str, np.ndarray], n_samples: int) -> Iterable[np.ndarray]:
        """Row blocks rendered together (bounded float64 working memory)."""
        n = len(next(iter(table.values())))
        rows = max(1, min(BLOCK_ROWS, BLOCK_BYTES // (8 * max(n_samples, 1))))
        return (np.arange(start, min(start + rows, n)) for start in range(0, n, rows))

    def render(self, table: Mapping[str, Sequence], *, sample_rate: int, seed: int = 0,
               index: Optional[Sequence[int]] = None) -> np.ndarray:
        """Render one tone per row of ``table``.

        Parameters
        ----------
        table : dict of str -> array-like, shape (n_tones,)
            A value of every factor per tone.
        sample_rate : int
            Sample rate in Hz; tones are synthesised at this rate (no resampling).
        seed : int
            Seed of any noise (same seed, same audio).
        index : sequence of int, optional
            The tones' indices in their stimulus set (default 0..n-1).

        Returns
        -------
        np.ndarray, shape (n_tones, n_samples), float32
        """
        sample_rate = _check_int("sample_rate", sample_rate, 1)
        seed = _check_int("seed", seed, 0)
        columns = self.check_table(table)
        n = len(next(iter(columns.values())))
        index = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
        n_samples = self.n_samples(sample_rate)
        if n_samples < 16:
            raise SynthError(f"family {self.name!r}: {n_samples} samples at {sample_rate} Hz is too short; "
                             f"lengthen duration_s")
        out = np.empty((n, n_samples), dtype=np.float32)

        def render_block(rows):
            block = {name: column[rows] for name, column in columns.items()}
            audio = self.synthesise(block, sample_rate=sample_rate, n_samples=n_samples, seed=seed, index=index[rows])
            contiguous = rows.size and rows[-1] - rows[0] + 1 == rows.size and np.all(np.diff(rows) == 1)
            if contiguous:  # the usual case: normalise straight into the output rows
                self._finish(audio, block, n_samples, out=out[rows[0] : rows[-1] + 1])
            else:
                out[rows] = self._finish(audio, block, n_samples)

        blocks = list(self.blocks(columns, n_samples))
        if len(blocks) > 1 and RENDER_THREADS > 1:
            # NumPy releases the GIL in its loops: blocks render in parallel, each into its own rows.
            with concurrent.futures.ThreadPoolExecutor(RENDER_THREADS) as pool:
                list(pool.map(render_block, blocks))
        else:
            for rows in blocks:
                render_block(rows)
        return out

    def _finish(self, audio, block, n_samples, *, out=None) -> np.ndarray:
        """Check a block of audio from :meth:`synthesise`; normalise it; float32 (into ``out``
        when given: float32 audio is scaled in float32, float64 audio in float64 then rounded)."""
        n = len(next(iter(block.values())))
        if not isinstance(audio, np.ndarray) or audio.shape != (n, n_samples):
            got = audio.shape if isinstance(audio, np.ndarray) else type(audio).__name__
            raise SynthError(f"family {self.name!r} returned audio of shape {got}; expected (n_tones, n_samples) "
                             f"= {(n, n_samples)}")
        if audio.dtype not in (np.float32, np.float64):
            raise SynthError(f"family {self.name!r} returned dtype {audio.dtype}; expected float32 or float64")
        # max |audio| without an |audio| copy; NaN and inf propagate into the maxima
        maxima = np.maximum(np.max(audio, axis=-1, keepdims=True), -np.min(audio, axis=-1, keepdims=True))
        finite = np.isfinite(maxima[:, 0])
        if not finite.all():
            raise SynthError(f"family {self.name!r} returned NaN or inf for {self._tone(block, finite)}")
        if not self.normalize:
            loud = maxima[:, 0] <= 1.0
            if not loud.all():
                raise SynthError(f"family {self.name!r} returned audio above full scale for {self._tone(block, loud)}; "
                                 f"|audio| must be <= 1")
            return _into(out, audio)
        if np.any(maxima == 0):
            raise SynthError(f"family {self.name!r} rendered a silent tone: {self._tone(block, maxima[:, 0] > 0)}")
        scale = float(self.options.get("peak", 0.5)) / maxima
        if audio.dtype == np.float32:
            return np.multiply(audio, scale.astype(np.float32), out=out)
        return _into(out, audio * scale)

    def _tone(self, block, good) -> str:
        i = int(np.flatnonzero(~np.asarray(good))[0])
        values = ", ".join(f"{name}={np.asarray(block[name])[i].item()!r}" for name in self.parameters)
        return f"the tone with {values}"

    # ------------------------------------------------------------------ designs
    def design(self, design: str = "random", *, n: Optional[int] = None, seed: int = 0,
               ranges: Optional[Mapping[str, object]] = None, fixed: Optional[Mapping[str, object]] = None,
               **options) -> "StimulusSet":
        """A stimulus set of this family on design ``design``.

        Parameters
        ----------
        design : {"grid", "factorial", "sobol", "lhs", "random", "sweep"}
        n : int, optional
            Number of sounds (sobol, lhs, random, sweep; factorial: levels from n).
        seed : int
            Seed of the design's draws and of the family's noise.
        ranges : dict, optional
            Design range per factor: ``(low, high)`` within the allowed range, or a subset of a
            discrete factor's values.
        fixed : dict, optional
            Factors held at one value (outside the design).
        **options
            ``grid={name: points}`` (grid), ``levels=`` (factorial), ``factor=, steps=`` (sweep).

        Returns
        -------
        StimulusSet
        """
        ranges, fixed = dict(ranges or {}), dict(fixed or {})
        for name in list(ranges) + list(fixed):
            self.factor(name)
        factors = tuple(f.with_range(ranges[f.name], self.name) if f.name in ranges else f for f in self.factors)
        varied = [f for f in factors if f.name not in fixed]
        if not varied:
            raise SynthError(f"family {self.name!r}: every factor is fixed; leave at least one to the design")
        if design == "grid" and "grid" not in options:
            if self.default_grid is None:
                raise SynthError(f"family {self.name!r}, design 'grid': give grid={{name: points}}")
            options["grid"] = dict(self.default_grid)
        table = run_design(design, varied, family=self.name, seed=seed, n=n, **options)
        size = len(table.block)
        columns, grid_index = {}, np.full((size, len(factors)), -1, dtype=np.int64)
        for j, f in enumerate(factors):
            if f.name in fixed:
                columns[f.name] = f.check_column(np.full(size, fixed[f.name]), self.name)
            else:
                columns[f.name] = table.columns[f.name]
                grid_index[:, j] = table.grid_index[:, varied.index(f)]
        self.check_table(columns)
        return StimulusSet(family=self, design=design, factors=factors, columns=columns, grid_index=grid_index,
                           block=table.block, seed=int(seed), record={"n": n, **table.record},
                           fixed={k: _jsonable(v) for k, v in fixed.items()})


def _into(out, audio):
    """``audio`` as float32, written into ``out`` when given."""
    if out is None:
        return audio.astype(np.float32)
    out[...] = audio
    return out


def _jsonable(value):
    return value.item() if isinstance(value, np.generic) else value


@dataclasses.dataclass(frozen=True, eq=False)
class StimulusSet:
    """A family on a design: the factor table (travels with the audio), rendered on demand.

    Mirrors :class:`synth.ToneSet` (``n_sounds``, ``theta``, ``table``, ``config``,
    ``config_hash``, ``subset``, ``render``, ``n_samples``) so that the pipeline can take either.

    Attributes
    ----------
    family : Family
    design : str
    factors : tuple of Factor
        The family's factors with the design's ranges.
    columns : dict of str -> np.ndarray, shape (n_sounds,)
        Factor values (discrete string factors as str arrays).
    grid_index : np.ndarray, shape (n_sounds, n_factors), int64
        Grid position per factor, -1 where a factor is not on a grid axis.
    block : np.ndarray, shape (n_sounds,), int64
        Sweep number (``sweep`` design), else -1.
    seed : int
    record : dict
        The design options that reproduce it (n, grid, levels, factor, steps).
    fixed : dict
        Factors held at one value.
    """

    family: Family
    design: str
    factors: Tuple[Factor, ...]
    columns: Dict[str, np.ndarray]
    grid_index: np.ndarray
    block: np.ndarray
    seed: int
    record: dict
    fixed: dict = dataclasses.field(default_factory=dict)
    origin: Optional[np.ndarray] = None

    def _origin(self) -> np.ndarray:
        """Each sound's index in the set it was designed in (seeds its noise)."""
        return np.arange(self.n_sounds) if self.origin is None else self.origin

    @property
    def n_sounds(self) -> int:
        return int(self.block.shape[0])

    def __len__(self) -> int:
        return self.n_sounds

    @property
    def index(self) -> np.ndarray:
        return np.arange(self.n_sounds)

    @property
    def preset(self) -> str:
        return f"{self.family.name}/{self.design}"

    @property
    def parameters(self) -> Tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def statistics(self) -> Dict[str, str]:
        """How the analysis scores each factor (``log_ratio``, ``difference``, ``agreement``)."""
        return {f.name: f.statistic for f in self.factors}

    @property
    def scales(self) -> Dict[str, str]:
        """The scale (``linear`` or ``log``) on which the design placed each factor."""
        return {f.name: f.scale for f in self.factors}

    @property
    def roles(self) -> Dict[str, str]:
        """Each factor's role: ``cause`` or ``nuisance``."""
        return {f.name: f.role for f in self.factors}

    def n_samples(self, sample_rate: int) -> int:
        return self.family.n_samples(sample_rate)

    def codes(self, name: str) -> np.ndarray:
        """Position of each sound's value in the discrete factor's value set (int64)."""
        factor = self.family.factor(name)
        if factor.kind != "discrete":
            raise SynthError(f"family {self.family.name!r}: factor {name!r} is continuous; codes are for discrete factors")
        lookup = {v: k for k, v in enumerate(factor.values)}
        return np.array([lookup[v] for v in self.columns[name].tolist()], dtype=np.int64)

    def theta(self, sample_rate: Optional[int] = None) -> np.ndarray:
        """Factor values, shape (n_sounds, n_factors), float64, columns in factor order
        (discrete factors with non-numeric values as :meth:`codes`)."""
        return np.stack([self.columns[f.name].astype(np.float64) if f.numeric else self.codes(f.name).astype(np.float64)
                         for f in self.factors], axis=1)

    def table(self, sample_rate: Optional[int] = None) -> Dict[str, np.ndarray]:
        """``index``, one column per factor (+ ``sample_rate, n_samples`` when a rate is given)."""
        out = {"index": self.index, **{name: column.copy() for name, column in self.columns.items()}}
        if sample_rate is not None:
            out["sample_rate"] = np.full(self.n_sounds, sample_rate)
            out["n_samples"] = np.full(self.n_sounds, self.n_samples(sample_rate))
        return out

    def config(self) -> dict:
        """JSON-serialisable identity: family (+ options, source), design, size, seed, factor
        ranges, fixed values and a digest of the factor table."""
        digest = hashlib.sha256()
        for name in self.parameters:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.columns[name]).tobytes())
        digest.update(np.ascontiguousarray(self.grid_index).tobytes())
        return {
            **self.family.config(),
            "source": self.family.source or type(self.family).__module__,
            "design": self.design,
            "design_options": json.loads(json.dumps(self.record)),
            "n_sounds": self.n_sounds,
            "seed": self.seed,
            "ranges": {f.name: list(f.range) for f in self.factors if f.name not in self.fixed},
            "fixed": dict(self.fixed),
            "parameters_sha256": digest.hexdigest(),
        }

    def config_hash(self) -> str:
        """SHA-256 (hex) of :meth:`config`: the set's identity in caches."""
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()

    def subset(self, indices) -> "StimulusSet":
        """The sounds at ``indices`` (rendering them gives the same audio as in the full set)."""
        indices = np.asarray(indices)
        if indices.ndim != 1 or (indices.size and (indices.min() < -self.n_sounds or indices.max() >= self.n_sounds)):
            raise SynthError(f"indices must be a 1-D array within 0..{self.n_sounds - 1}")
        return dataclasses.replace(self, columns={k: v[indices] for k, v in self.columns.items()},
                                   grid_index=self.grid_index[indices], block=self.block[indices],
                                   origin=self._origin()[indices])

    def render(self, sample_rate: int, *, indices: Optional[Sequence[int]] = None) -> np.ndarray:
        """The audio, shape (n, n_samples), float32, synthesised at ``sample_rate``."""
        columns, origin = self.columns, self._origin()
        if indices is not None:
            chosen = np.asarray(indices, dtype=np.int64)
            columns, origin = {k: v[chosen] for k, v in columns.items()}, origin[chosen]
        return self.family.render(columns, sample_rate=sample_rate, seed=self.seed, index=origin)
