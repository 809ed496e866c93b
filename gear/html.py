"""GEAR's one HTML layer: Jinja2 templates in ``gear/templates/`` and static assets in
``gear/report_assets/``; no HTML or JavaScript is built inside Python strings elsewhere.

Every page and fragment GEAR writes (the run report, the leaderboard, model cards, the timbre
pages) is rendered here with autoescaping on, so a model name such as ``<b>x</b>`` is shown as
text. Tables go through one helper, :func:`table` (template ``_table.html``).
"""
from __future__ import annotations

import functools
import math
import pathlib
from typing import Iterable, Mapping, Optional, Sequence

__all__ = ["render", "table", "asset", "format_number", "Markup"]

_TEMPLATES = pathlib.Path(__file__).with_name("templates")
_ASSETS = pathlib.Path(__file__).with_name("report_assets")


def format_number(value, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` significant digits, integers as such, ``–`` for
    NaN/None/empty; anything else as ``str``."""
    if value is None or (isinstance(value, str) and value == ""):
        return "–"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–"
    if float(number).is_integer() and abs(number) < 1e15 and not isinstance(value, float):
        return str(int(number))
    return f"{number:.{digits}g}"


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.globals["asset"] = asset
    return env


def Markup(text: str):  # noqa: N802  (the markupsafe name)
    """Mark ``text`` as already-safe HTML (a fragment rendered by another template)."""
    import markupsafe

    return markupsafe.Markup(text)


def render(template: str, **context) -> str:
    """Render ``gear/templates/<template>`` with ``context`` (autoescaped)."""
    return _environment().get_template(template).render(**context)


def table(
    columns: Sequence[str],
    rows: Iterable[Mapping],
    *,
    labels: Optional[Mapping[str, str]] = None,
    css_class: str = "gear-table",
    digits: int = 3,
) -> str:
    """One HTML table: a header of ``labels[c]`` (default ``c``) and one row per mapping,
    numbers formatted by :func:`format_number`. Every table in GEAR's pages comes from here."""
    labels = dict(labels or {})
    return render(
        "_table.html",
        columns=list(columns),
        labels={c: labels.get(c, c) for c in columns},
        rows=[{c: format_number(row.get(c, ""), digits) for c in columns} for row in rows],
        css_class=css_class,
    )


def asset(name: str) -> str:
    """The text of a static asset (``report.js``, ``report.css``) shipped with the package."""
    path = _ASSETS / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:  # an install that left the package data out
        raise RuntimeError(f"GEAR asset {path} is missing ({error}); reinstall gear") from None
