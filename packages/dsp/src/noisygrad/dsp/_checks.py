"""Input checks for the dsp boundary: arrays and dtypes here, scalars from the core (each error names the argument)."""

from __future__ import annotations

import numpy as np

from noisygrad._validation import check_in_range, check_positive, check_positive_int

__all__ = ["as_array", "as_dtype", "check_in_range", "check_positive", "check_positive_int"]

_DTYPES: dict[np.dtype, type[np.floating]] = {np.dtype(np.float64): np.float64, np.dtype(np.float32): np.float32}


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
