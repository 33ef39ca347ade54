"""Boundary checks of the bio modules beyond the core's; each error names the argument and what is allowed.

The scalar checks are the core's own (:mod:`noisygrad._validation` imports torch only for tensor checks).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from noisygrad._validation import check_positive, check_positive_int

__all__ = ["check_generator", "check_positive", "check_positive_array", "check_positive_int", "check_real"]


def check_generator(rng: object) -> np.random.Generator:
    """Require an explicit ``numpy.random.Generator`` (``np.random.default_rng(seed)``)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def check_positive_array(name: str, values: object) -> np.ndarray:
    """A float64 copy of ``values`` (1-D, non-empty) if every entry is finite and > 0."""
    arr = np.array(values, dtype=np.float64, ndmin=1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must hold finite numbers > 0, got {values!r}")
    return arr
