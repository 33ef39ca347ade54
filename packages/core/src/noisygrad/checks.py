"""Input checks for the public boundary: each error names the argument and what is allowed.

The core and every plugin check their arguments with these (a plugin never needs a private core module):
scalars (:func:`check_positive`, :func:`check_positive_int`, :func:`check_in_range`, :func:`check_real`),
numpy arrays and dtypes (:func:`as_array`, :func:`as_dtype`, :func:`check_positive_array`), generators
(:func:`check_generator` for numpy's, :func:`check_torch_generator` for torch's: never ``None``) and tensors
(:func:`check_finite`, :func:`check_same_shape`, :func:`as_parameter_vector`). :func:`warn` issues a warning
attributed to the user's line: the first frame outside the noisygrad library (the plugins included, the
``noisygrad`` command's tour excluded, since its experiments are callers of the library), however deep the call
that warns, where ``warnings.warn(..., stacklevel=k)`` is right only when the warning is always reached through
the same number of library frames. torch is imported only by the tensor checks, so numpy-only plugins use the
others cheaply.
"""

from __future__ import annotations

import math
import sys
import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "NonFiniteGradientError",
    "as_array",
    "as_dtype",
    "as_parameter_vector",
    "caller_stacklevel",
    "check_finite",
    "check_generator",
    "check_in_range",
    "check_positive",
    "check_positive_array",
    "check_positive_int",
    "check_real",
    "check_same_shape",
    "check_torch_generator",
    "warn",
]


class NonFiniteGradientError(FloatingPointError):
    """A gradient (or value) contained NaN or Inf; stepping on it would corrupt the parameters."""


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    bound = "a finite number >= 0" if allow_zero else "a finite number > 0"
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return x


def check_in_range(
    name: str, value: object, low: float, high: float, *, low_open: bool = False, high_open: bool = True
) -> float:
    """Return ``value`` as a float if it lies in the interval from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (math.isfinite(x) and above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return x


def check_positive_int(name: str, value: object, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int if it is an integer > 0 (>= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    n = int(value)
    if n < 0 or (n == 0 and not allow_zero):
        raise ValueError(f"{name} must be an integer {'>= 0' if allow_zero else '> 0'}, got {n}")
    return n


_STEP_HINT = "lower the learning rate, check the objective for overflow, or clip gradients"


def check_finite(name: str, tensor: torch.Tensor, *, hint: str = _STEP_HINT) -> torch.Tensor:
    """Raise :class:`NonFiniteGradientError` if ``tensor`` holds NaN or Inf; ``hint`` says what to do."""
    import torch

    total = tensor.sum()  # one reduction: a NaN or Inf anywhere makes the sum non-finite
    if bool(torch.isfinite(total)) if total.is_complex() else math.isfinite(float(total)):  # float() is faster
        return tensor
    finite = torch.isfinite(tensor)  # the sum may also overflow on finite entries: look entry by entry
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteGradientError(
            f"{name} has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or Inf) out of {tensor.numel()}; {hint}"
        )
    return tensor


def check_same_shape(name: str, tensor: torch.Tensor, reference: torch.Tensor, ref_name: str) -> None:
    """Raise if ``tensor`` and ``reference`` differ in shape."""
    if tensor.shape != reference.shape:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)} but {ref_name} has shape {tuple(reference.shape)}; they must match"
        )


def as_parameter_vector(name: str, x: object, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A detached 1-D floating tensor copy of ``x`` (never a view of the caller's data).

    A floating tensor keeps its dtype; anything else (lists, arrays, integer tensors) becomes ``dtype``
    (float64 by default).
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    try:
        t = torch.as_tensor(x) if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be a 1-D array of numbers, got {type(x).__name__}") from exc
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    out = t.detach().to(dtype if not t.is_floating_point() else t.dtype).clone()
    check_finite(name, out, hint=f"pass finite numbers as {name}")
    return out


# ---------------------------------------------------------------- numpy arrays, dtypes and generators

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
    # (np.asarray, not np.ascontiguousarray: that one returns a 0-d input as shape (1,), past the ndim check)
    out = np.array(arr, dtype=dtype, order="C", copy=True) if copy else np.asarray(arr, dtype=dtype, order="C")
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(out.size - finite.sum())
        raise ValueError(f"{name} has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or Inf) out of {out.size}")
    return out


def check_generator(rng: object) -> np.random.Generator:
    """Require an explicit ``numpy.random.Generator`` (``np.random.default_rng(seed)``)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def check_torch_generator(name: str, generator: object) -> torch.Generator:
    """Require an explicit ``torch.Generator``; ``None`` is refused instead of falling back to torch's global one.

    A call that draws random numbers with ``generator=None`` would use torch's global generator, which any other
    code (a data loader, a model's initialisation) advances too, so the run would not be reproducible from its
    own seed: pass ``torch.Generator().manual_seed(seed)``.
    """
    import torch

    if not isinstance(generator, torch.Generator):
        hint = " (None would fall back to torch's global generator)" if generator is None else ""
        raise TypeError(
            f"{name} must be a torch.Generator, e.g. torch.Generator().manual_seed(seed){hint}; got "
            f"{type(generator).__name__}"
        )
    return generator


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite real number (``TypeError`` for a non-number, ``bool`` included;
    ``ValueError`` for NaN or Inf)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a finite real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
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


# ---------------------------------------------------------------- warnings at the caller

_LIBRARY = "noisygrad"
_APPLICATION = "noisygrad.tour"
# torch's frames between a user's ``optimizer.step()`` and the library (no-grad, profiling, a scheduler's step counter)
_WRAPPERS = ("torch.utils._contextlib", "torch.optim.optimizer", "torch.optim.lr_scheduler")


def _in_library(module: str) -> bool:
    if module in _WRAPPERS:
        return True
    inside = module == _LIBRARY or module.startswith(f"{_LIBRARY}.")
    return inside and not (module == _APPLICATION or module.startswith(f"{_APPLICATION}."))


def caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a ``warnings.warn`` in the function calling this one name the first frame
    outside the library (the outermost frame if every frame is the library's)."""
    frame = sys._getframe(1)  # the library function about to warn: stacklevel 1
    level = 1
    while frame.f_back is not None and _in_library(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside the noisygrad library."""
    warnings.warn(message, category, stacklevel=caller_stacklevel())  # counted from this frame, as warn counts
