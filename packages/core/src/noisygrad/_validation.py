"""Input checks for the public boundary: each error names the argument and what is allowed.

torch is imported only by the tensor checks, so numpy-only plugins can use the scalar checks cheaply.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


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

    if math.isfinite(float(tensor.sum())):  # one reduction: a NaN or Inf anywhere makes the sum non-finite
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
