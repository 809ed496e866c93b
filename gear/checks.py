"""Argument checks shared by GEAR's entry points, through :func:`sklearn.utils.check_scalar`,
re-raised as :class:`gear.errors.ParameterError` with the value and the fix in the message."""
from __future__ import annotations

import numbers
from typing import Optional

from gear.errors import ParameterError

__all__ = ["check_int", "check_real"]


def _check(value, name: str, target_type, *, min_val, max_val, fix: str):
    from sklearn.utils import check_scalar

    if isinstance(value, bool):  # a bool is an int to Python, never a count to GEAR
        raise ParameterError(f"{name} must be a number, got {value!r}" + (f"; {fix}" if fix else ""))
    try:
        return check_scalar(value, name, target_type, min_val=min_val, max_val=max_val)
    except (TypeError, ValueError) as error:
        raise ParameterError(f"{error}" + (f"; {fix}" if fix else "")) from None


def check_int(value, name: str, *, min_val: Optional[int] = None, max_val: Optional[int] = None, fix: str = "") -> int:
    """``value`` as an int within ``[min_val, max_val]``.

    Raises
    ------
    ParameterError
        Not an integer (bools included) or out of range; the message names ``name``, the value and ``fix``.
    """
    return int(_check(value, name, numbers.Integral, min_val=min_val, max_val=max_val, fix=fix))


def check_real(value, name: str, *, min_val: Optional[float] = None, max_val: Optional[float] = None,
               fix: str = "") -> float:
    """``value`` as a float within ``[min_val, max_val]`` (see :func:`check_int`)."""
    return float(_check(value, name, numbers.Real, min_val=min_val, max_val=max_val, fix=fix))
