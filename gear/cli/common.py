"""What the command families of ``gear`` share: progress bars, tone-set options, tables."""
from __future__ import annotations

import argparse
import functools

from gear.errors import ParameterError

__all__ = ["progress_factory", "batch_progress", "add_grid_arguments", "grid_kwargs", "scores_table", "integer",
           "DEFAULT_OUT"]

#: Default results directory.
DEFAULT_OUT = "gear-results"


def integer(text: str) -> int:
    """argparse type: an integer, with a message naming the value."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def progress_factory(enabled: bool):
    """``description -> tqdm wrapper`` for the batch loops of ``gear run`` (None when quiet)."""
    if not enabled:
        return None
    from tqdm import tqdm

    def factory(description: str):
        def wrap(iterable, total=None):
            return tqdm(iterable, total=total, desc=description, unit="batch", leave=False)

        return wrap

    return factory


def batch_progress(description: str):
    """A tqdm wrapper ``(iterable, total) -> iterable`` for one embedding loop."""
    return progress_factory(True)(description)


def add_grid_arguments(parser: argparse.ArgumentParser, *, default_preset="paper") -> None:
    import synth

    group = parser.add_argument_group("tone set")
    group.add_argument("--preset", default=default_preset, choices=synth.PRESETS,
                       help="'paper' (default: the paper's text), 'gear2023-code' (the paper's code; warns), 'factorial'")
    group.add_argument("--seed", type=int, default=None, help="seed of the random f1 draw (paper/gear2023-code)")
    group.add_argument("--n-alpha", type=int, default=None, help="values of alpha (50 in the paper)")
    group.add_argument("--n-r", type=int, default=None, help="values of r (50 in the paper)")


def grid_kwargs(args) -> dict:
    kwargs = {}
    for name in ("seed", "n_alpha", "n_r"):
        value = getattr(args, name)
        if value is not None:
            if args.preset == "factorial" and name == "seed":
                raise ParameterError("--seed does not apply to the factorial preset (no random draw)")
            kwargs[name] = value
    return kwargs


def scores_table(results) -> str:
    lines = [f"{'model':<22}{'parameter':<10}{'median|log|':>12}{'95% CI':>20}{'chance':>9}{'n':>6}"]
    for result in results:
        for row in result.scores:
            ci = f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
            lines.append(
                f"{result.name:<22}{row['parameter']:<10}{row['median_abs_log_ratio']:>12.4f}{ci:>20}"
                f"{row['chance']:>9.3f}{row['n']:>6d}"
            )
    return "\n".join(lines)
