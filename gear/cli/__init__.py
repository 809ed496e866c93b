"""The ``gear`` command line: one module per command family (``run``/``report``, ``synth``,
``families``, ``score``, ``models``, ``add-submission``/``list``/``remove``, ``timbre``). Every subcommand
has ``--help``; tests call :func:`main`.

Errors: one clear line each, never a traceback of GEAR's own code. Exit status 2 for usage
errors (a bad option or value: :class:`gear.errors.ParameterError`), 1 for failures (a broken
model: :class:`gear.errors.SubmissionError`; the results directory:
:class:`gear.errors.StoreError`). When a submission's own code raised, its traceback (the part
its author can fix) is printed before the line.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from typing import List, Optional

from gear.errors import LOWER_LAYER_ERRORS, GearError, ParameterError, SubmissionError

__all__ = ["main", "build_parser"]

#: Exit status of a usage error (argparse uses 2 too) and of a failure.
EXIT_USAGE = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    from gear.cli import families, models, run, score, submissions, synth

    parser = argparse.ArgumentParser(
        prog="gear",
        description="GEAR: what do audio models hear? Synthesise tones with known causes, embed them "
        "with pretrained models (HEAR 2021 API), and measure how the embeddings arrange the causes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parsers(sub)
    synth.add_parsers(sub)
    families.add_parsers(sub)
    score.add_parsers(sub)
    models.add_parsers(sub)
    try:
        from gear.timbre import cli as timbre_cli
    except ImportError:  # the timbre module is optional at import time
        timbre_cli = None
    if timbre_cli is not None and hasattr(timbre_cli, "add_subparsers"):
        timbre_cli.add_subparsers(sub)
    submissions.add_parsers(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings on the command line: one readable line, no source excerpt."""
    print(f"gear: {category.__name__}: {message}", file=file or sys.stderr)


def _report(command: str, error: BaseException, *, verbose: bool) -> int:
    """Print one line for ``error`` (and the submission's own traceback); the exit status."""
    if isinstance(error, SubmissionError) and error.user_traceback:
        print(error.user_traceback, file=sys.stderr)
    if isinstance(error, (ParameterError,) + LOWER_LAYER_ERRORS):
        print(f"gear {command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, GearError):
        kind = f" ({error.kind})" if isinstance(error, SubmissionError) else ""
        print(f"gear {command}: error{kind}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if verbose:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(f"gear {command}: internal error: {type(error).__name__}: {error}. This is a bug in GEAR: please "
          f"report it with the output of the same command run with -v", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    previous, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"gear {args.command}: interrupted; run the same command again to resume (finished batches are "
              f"cached)", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the one place that turns errors into messages
        return _report(args.command, error, verbose=args.verbose)
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
