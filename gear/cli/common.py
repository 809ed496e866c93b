"""What the command families of ``gear`` share: progress bars, tone-set options, tables."""
from __future__ import annotations

import argparse

from gear.errors import ParameterError

__all__ = ["progress_factory", "batch_progress", "add_grid_arguments", "add_family_arguments", "grid_kwargs", "stimuli_from_args",
           "scores_table", "integer", "memory_size", "DEFAULT_OUT"]

#: Default results directory.
DEFAULT_OUT = "gear-results"


def integer(text: str) -> int:
    """argparse type: an integer, with a message naming the value."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12}


def memory_size(text: str) -> int:
    """argparse type: a memory size in bytes from ``4GB``, ``500MB``, ``1.5G``, ``2e9`` or ``30%`` (of the RAM)."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([A-Za-z]*|%)\s*", text)
    unit = match.group(2).upper() if match else None
    if match is None or (unit not in _UNITS and unit != "%"):
        raise argparse.ArgumentTypeError(f"expected a memory size such as 4GB, 500MB or 30%, got {text!r}")
    value = float(match.group(1))
    if unit == "%":
        from gear.embedder import ram_bytes

        return int(value / 100 * ram_bytes())
    return int(value * _UNITS[unit])


def progress_factory(enabled: bool):
    """``description -> tqdm wrapper`` for the batch loops of ``gear run`` (None when quiet)."""
    if not enabled:
        return None
    from tqdm import tqdm

    def factory(description: str):
        def wrap(iterable, total=None):
            return tqdm(iterable, total=total, desc=description, unit="shard", leave=False)

        return wrap

    return factory


def batch_progress(description: str):
    """A tqdm wrapper ``(iterable, total) -> iterable`` for one embedding loop."""
    return progress_factory(True)(description)


def add_grid_arguments(parser: argparse.ArgumentParser, *, default_preset="paper") -> None:
    """The tone-set options: the harmonic preset (default) or a stimulus family on a design."""
    import synth

    group = parser.add_argument_group("tone set")
    group.add_argument("--preset", default=default_preset, choices=synth.PRESETS,
                       help="'paper' (default: the paper's text), 'gear2023-code' (the paper's code; warns), 'factorial'")
    group.add_argument("--seed", type=int, default=None,
                       help="seed of the random f1 draw (paper/gear2023-code) or of the family's design")
    group.add_argument("--n-alpha", type=int, default=None, help="values of alpha (50 in the paper)")
    group.add_argument("--n-r", type=int, default=None, help="values of r (50 in the paper)")
    add_family_arguments(parser)


def add_family_arguments(parser: argparse.ArgumentParser) -> None:
    """``--family --design --n --factor --family-option`` (with ``--seed``, which the caller adds)."""
    import synth

    group = parser.add_argument_group("stimulus family (instead of --preset; see `gear families`)")
    group.add_argument("--family", default=None, metavar="NAME", help="a stimulus family, e.g. chirplet, envelope")
    group.add_argument("--design", default=None, metavar="DESIGN",
                       help=f"design of the family's factors: {', '.join(synth.DESIGNS)} (default: random)")
    group.add_argument("--n", type=integer, default=None, metavar="N", help="number of sounds of the design")
    group.add_argument("--factor", action="append", default=[], metavar="NAME=LOW:HIGH",
                       help="design range of a factor (NAME=LOW:HIGH), or values of a discrete one "
                       "(NAME=V1,V2,...); repeatable")
    group.add_argument("--family-option", action="append", default=[], metavar="KEY=VALUE",
                       help="an option of the family, e.g. duration_s=0.5 (repeatable)")


def grid_kwargs(args) -> dict:
    kwargs = {}
    for name in ("seed", "n_alpha", "n_r"):
        value = getattr(args, name)
        if value is not None:
            if getattr(args, "family", None) is not None:
                if name == "seed":
                    continue
                raise ParameterError(f"--{name.replace('_', '-')} is an option of the harmonic presets; with "
                                     f"--family use --factor and --n")
            if args.preset == "factorial" and name == "seed":
                raise ParameterError("--seed does not apply to the factorial preset (no random draw)")
            kwargs[name] = value
    return kwargs


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pair(text: str, what: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ParameterError(f"{what} {text!r}: expected NAME=VALUE")
    return name.strip(), value.strip()


def _factor_range(text: str):
    name, value = _pair(text, "--factor")
    if ":" in value:
        low, sep, high = value.partition(":")
        low, high = _number(low), _number(high)
        if not all(isinstance(v, (int, float)) for v in (low, high)):
            raise ParameterError(f"--factor {text!r}: LOW and HIGH must be numbers")
        if not low < high:
            raise ParameterError(f"--factor {text!r}: LOW must be below HIGH")
        return name, [float(low), float(high)]
    return name, [_number(v.strip()) for v in value.split(",") if v.strip()]


def stimuli_from_args(args) -> dict:
    """:attr:`gear.pipeline.GearConfig.stimuli` from the options (empty without ``--family``);
    checked by building the stimulus set (a bad family, design, factor or range: ParameterError)."""
    from gear.pipeline import stimuli_spec

    if getattr(args, "family", None) is None:
        given = [f"--{k.replace('_', '-')}" for k in ("design", "n", "factor", "family_option")
                 if getattr(args, k, None) not in (None, [])]
        if given:
            raise ParameterError(f"{', '.join(given)} need --family NAME (see `gear families`)")
        return {}
    ranges = dict(_factor_range(text) for text in args.factor)
    options = {name: _number(value) for name, value in (_pair(t, "--family-option") for t in args.family_option)}
    return stimuli_spec(args.family, design=args.design or "random", n=args.n,
                        seed=args.seed if args.seed is not None else 0, ranges=ranges, options=options)


def scores_table(results) -> str:
    """The summary printed by ``gear run``; a ``statistic`` column when some factor is not
    scored by the log-ratio (a stimulus family)."""
    width = max([10] + [len(row["parameter"]) + 2 for result in results for row in result.scores])
    mixed = any(row.get("statistic", "log_ratio") != "log_ratio" for result in results for row in result.scores)
    lines = [f"{'model':<22}{'parameter':<{width}}{'median|log|':>12}{'95% CI':>20}{'chance':>9}{'n':>6}"
             + ("  statistic" if mixed else "")]
    for result in results:
        for row in result.scores:
            ci = f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
            lines.append(
                f"{result.name:<22}{row['parameter']:<{width}}{row['median_abs_log_ratio']:>12.4f}{ci:>20}"
                f"{row['chance']:>9.3f}{row['n']:>6d}" + (f"  {row.get('statistic', 'log_ratio')}" if mixed else "")
            )
    return "\n".join(lines)
