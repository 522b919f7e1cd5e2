"""Input validation shared by every public function: errors name the parameter, value and range."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = ["MAX_INT", "integer", "real", "array", "tensor", "short"]

# Largest integer accepted where no upper bound is given: 2**53, the largest exactly representable in float64
# (class sizes, dimensions and counts beyond it overflow int64 arithmetic or float64 sums downstream).
MAX_INT = 2**53


def integer(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as int, or raise ValueError unless it is an integer in [lo, hi] (hi ≤ 2**53)."""
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        if isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name}={short(value)} must be an integer{_range(lo, hi)}")
    value = int(value)
    if value > MAX_INT and hi is None:
        raise ValueError(f"{name}={value:.3g} is out of range: allowed{_range(lo, MAX_INT)} (2**53)")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range: allowed{_range(lo, hi)}")
    return value


def real(name: str, value, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a finite float in the interval, or raise ValueError naming it."""
    if isinstance(value, str | bytes | bool | np.bool_):
        raise ValueError(f"{name}={short(value)} must be a real number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={short(value)} must be a real number") from None
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


def array(name: str, value, ndim: int | None = None, *, finite: bool = True, min_size: int = 1) -> np.ndarray:
    """``value`` as a float64 array, or ValueError naming it: numeric, ``ndim`` dimensions (if given),
    at least ``min_size`` entries, and (``finite``) no NaN/inf."""
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {short(value)}") from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if a.size < min_size:
        raise ValueError(f"{name} must have at least {min_size} entries, got shape {a.shape}")
    if finite and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has NaN or infinite entries")
    return a


def tensor(name: str, value, ndim: int | None = None, *, labels: bool = False):
    """Check a torch tensor without copying it: type, ``ndim`` and dtype (floating, or integer for ``labels``).
    Values are not scanned (NaN propagates to the loss, where the trainers stop with TrainingDiverged)."""
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__} {short(value)}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got shape {tuple(value.shape)}")
    if labels and (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool):
        raise TypeError(f"{name} must hold integer class labels (torch.long), got dtype {value.dtype}")
    if not labels and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def short(value, limit: int = 60) -> str:
    """repr(value) cut to ``limit`` characters (error messages stay one line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _range(lo, hi) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" >= {lo}"
    if lo is None:
        return f" <= {hi}"
    return f" in [{lo}, {hi}]"
