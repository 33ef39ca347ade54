"""Boundary checks shared by the bio modules; each error names the argument and what is allowed.

``check_positive`` and ``check_positive_int`` keep the contract and messages of the core's
:mod:`noisygrad._validation`, which imports torch at module level (about 3 s of CPU): the bio plugin runs on
numpy and scipy alone and should import in well under a second. Once the core's torch import is lazy these
two can be imported from there instead.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    bound = "a finite number >= 0" if allow_zero else "a finite number > 0"
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return x


def check_positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int if it is an integer > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    n = int(value)
    if n < 0 or (n == 0 and not allow_zero):
        raise ValueError(f"{name} must be an integer {'>= 0' if allow_zero else '> 0'}, got {n}")
    return n


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
