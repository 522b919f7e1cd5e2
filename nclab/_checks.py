"""Input validation shared by every public function: errors name the parameter, value and range."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def integer(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as int, or raise ValueError unless it is an integer in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        if isinstance(value, Real) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name}={value!r} must be an integer{_range(lo, hi)}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range: allowed{_range(lo, hi)}")
    return value


def real(name: str, value, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a finite float in the interval, or raise ValueError naming it."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a real number") from None
    if not math.isfinite(x):
        raise ValueError(f"{name}={value!r} must be finite")
    bad_lo = lo is not None and (x <= lo if lo_open else x < lo)
    bad_hi = hi is not None and (x >= hi if hi_open else x > hi)
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        a = "-inf" if lo is None else f"{lo:g}"
        b = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{name}={value!r} is out of range: allowed {left}{a}, {b}{right}")
    return x


def _range(lo, hi) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" >= {lo}"
    if lo is None:
        return f" <= {hi}"
    return f" in [{lo}, {hi}]"
