"""Input checks for the dsp boundary: each error names the argument and what is allowed."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

_DTYPES = {np.dtype(np.float64): np.float64, np.dtype(np.float32): np.float32}


def as_dtype(dtype: object) -> type[np.floating]:
    """``np.float64`` or ``np.float32`` (also given as a string or ``np.dtype``)."""
    try:
        key = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError as exc:
        raise TypeError(f"dtype must be float64 or float32, got {dtype!r}") from exc
    if key not in _DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {key}")
    return _DTYPES[key]


def as_array(
    name: str, value: object, dtype: type[np.floating], *, ndim: tuple[int, ...], copy: bool = False
) -> np.ndarray:
    """``value`` as a C-contiguous array in ``dtype`` with one of the allowed ``ndim``; NaN/Inf raise.

    Without ``copy`` the result may be the caller's own array: use it read-only. Anything stored or written
    to is taken with ``copy=True``, so nothing a user passed in is mutated or aliased.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}") from exc
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        allowed = " or ".join(str(k) for k in ndim)
        raise ValueError(f"{name} must have {allowed} dimensions, got shape {arr.shape}")
    out = np.array(arr, dtype=dtype, order="C", copy=True) if copy else np.ascontiguousarray(arr, dtype=dtype)
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(out.size - finite.sum())
        raise ValueError(f"{name} has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf) out of {out.size}")
    return out


# The scalar checks below mirror noisygrad._validation (same messages) without importing torch, which
# that module imports at its top: the filters need only numpy and numba, and torch costs seconds to import.


def check_positive(name: str, value: object) -> float:
    """``value`` as a float if it is a finite real > 0."""
    x = _real(name, value)
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


def check_in_range(name: str, value: object, low: float, high: float, *, low_open: bool, high_open: bool) -> float:
    """``value`` as a float if it lies in the interval from ``low`` to ``high``."""
    x = _real(name, value)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (math.isfinite(x) and above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return x


def check_positive_int(name: str, value: object) -> int:
    """``value`` as an int if it is an integer > 0."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{name} must be an integer > 0, got {int(value)}")
    return int(value)


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)
