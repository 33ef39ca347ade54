"""Argument checks of :class:`noisygrad.dsp.Kalman`: model matrices, stacks of them, measurements and controls.

Each check returns a C-contiguous copy in the filter's dtype (never the caller's array) and raises before any
work with a message that names the argument and what is allowed. Measurements are the one place where NaN is
allowed: it marks a missing component (``None`` marks a whole missing measurement); Inf is refused everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

from noisygrad.checks import as_array


def _tolerance(value: Any) -> float:
    """Relative tolerance of the symmetry and semi-definiteness checks: looser for float32 input."""
    return 1e-5 if np.asarray(value).dtype == np.float32 else 1e-12


def matrix(name: str, value: Any, shape: tuple[int | None, int], dtype: type[np.floating]) -> np.ndarray:
    """A finite matrix of ``shape`` (``None`` rows: any number of rows, at least one)."""
    arr = as_array(name, value, dtype, ndim=(2,), copy=True)
    rows, cols = shape
    if arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows) or arr.shape[0] == 0:
        want = f"({'m' if rows is None else rows}, {cols})"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    return arr


def _check_covariances(name: str, arr: np.ndarray, tol: float, definite: bool, axis: str = "step") -> None:
    """``arr``: (n, n) or (k, n, n) (``axis`` names k). Symmetric and (semi-)definite within ``tol`` of its scale."""
    if arr.shape[-1] == 0:
        return
    scale = np.maximum(1.0, np.abs(arr).max(axis=(-2, -1)))
    asym = np.abs(arr - np.swapaxes(arr, -1, -2)).max(axis=(-2, -1))
    if np.any(asym > tol * scale):
        where = "" if arr.ndim == 2 else f" ({axis} {int(np.argmax(asym > tol * scale))})"
        raise ValueError(f"{name} must be symmetric{where}")
    low = np.linalg.eigvalsh(0.5 * (arr + np.swapaxes(arr, -1, -2)).astype(np.float64)).min(axis=-1)
    bad = (low <= 0) if definite else (low < -tol * scale)
    if np.any(bad):
        kind = "positive definite" if definite else "positive semi-definite"
        first = int(np.argmax(bad))
        where = "" if arr.ndim == 2 else f" ({axis} {first})"
        raise ValueError(f"{name} must be {kind}{where}, its smallest eigenvalue is {float(np.ravel(low)[first]):.3g}")


def covariance(name: str, value: Any, n: int, dtype: type[np.floating], *, definite: bool = False) -> np.ndarray:
    """A symmetric positive semi-definite (``definite``: definite) ``(n, n)`` matrix; a scalar when ``n = 1``.

    Returned exactly symmetric (the average of it and its transpose).
    """
    arr = as_array(name, np.atleast_2d(np.asarray(value)), np.float64, ndim=(2,))
    if arr.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}){' or be a scalar' if n == 1 else ''}, got {arr.shape}")
    _check_covariances(name, arr, _tolerance(value), definite)
    return np.ascontiguousarray(0.5 * (arr + arr.T), dtype=dtype)


def batch_covariance(name: str, value: Any, nb: int, n: int, batched: bool) -> np.ndarray:
    """Covariances of ``nb`` filters as ``(nb, n, n)`` float64: one ``(n, n)`` for all, or ``(nb, n, n)`` when
    ``batched``; symmetric positive semi-definite, returned exactly symmetric."""
    arr = as_array(name, np.atleast_2d(np.asarray(value)), np.float64, ndim=(2, 3))
    if arr.shape != (n, n) and not (batched and arr.shape == (nb, n, n)):
        want = f"({n}, {n})" + (f" or {(nb, n, n)}" if batched else "")
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    _check_covariances(name, arr, _tolerance(value), False, axis="filter")
    arr = 0.5 * (arr + np.swapaxes(arr, -1, -2))
    return np.array(np.broadcast_to(arr, (nb, n, n)), order="C", copy=True)


def _numbers(value: Any, missing: bool = False) -> np.ndarray:
    """``value`` as a float64 array if it holds real numbers (and ``None``, taken as NaN, when ``missing``).

    Strings and booleans are refused even where numpy would convert them (``"1.0"``), as :func:`as_array` refuses
    them in a single matrix. Raises ``TypeError`` for any other content, ``ValueError`` for a ragged sequence.
    """
    arr = np.asarray(value)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)  # a copy: nothing returned aliases the caller's array
    if arr.dtype == object and all(
        (v is None and missing) or (isinstance(v, Real) and not isinstance(v, bool | np.bool_)) for v in arr.flat
    ):
        return arr.astype(np.float64)
    raise TypeError(f"must hold real numbers, got dtype {arr.dtype}")


def _stacked(name: str, value: Any) -> np.ndarray:
    try:
        return _numbers(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be one matrix, or a sequence of matrices of one shape, of numbers") from exc
    except TypeError as exc:
        raise TypeError(f"{name} {exc}") from None


def rows(name: str, value: Any, axis: int = -2) -> int:
    """The number of rows (``axis=-2``) or columns (``-1``) of a matrix or of each matrix of a sequence."""
    arr = _stacked(name, value)
    if arr.ndim < 2:
        raise ValueError(f"{name} must be a matrix or a sequence of matrices, got shape {arr.shape}")
    return int(arr.shape[axis])


def stack(
    name: str,
    value: Any,
    tail: tuple[int, ...],
    n_steps: int,
    dtype: type[np.floating],
    *,
    kind: str = "matrix",
) -> np.ndarray:
    """One matrix of shape ``tail`` for every step, as ``(1, *tail)``, or one per step, as ``(n_steps, *tail)``.

    ``value``: a single matrix, or a sequence (or array) of ``n_steps`` of them. ``kind``: "matrix",
    "covariance" (symmetric positive semi-definite, returned exactly symmetric) or "definite".
    """
    arr = as_array(name, _stacked(name, value), np.float64, ndim=(len(tail), len(tail) + 1))
    if arr.ndim == len(tail):
        arr = arr[None]
    if arr.shape[1:] != tail or arr.shape[0] not in (1, n_steps):
        raise ValueError(
            f"{name} must be one matrix of shape {tail} or {n_steps} of them (shape {(n_steps, *tail)}), "
            f"got shape {np.shape(value)}"
        )
    if kind != "matrix":
        _check_covariances(name, arr, _tolerance(value), kind == "definite")
        arr = 0.5 * (arr + np.swapaxes(arr, -1, -2))
    return np.ascontiguousarray(arr, dtype=dtype)


def _measurement_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = _numbers(value, missing=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must hold real numbers (NaN or None for a missing measurement)") from exc
    if np.isinf(arr).any():
        raise ValueError(f"{name} has {int(np.isinf(arr).sum())} infinite value(s); use NaN or None for a missing one")
    return arr


def measurement(z: Any, batch: tuple[int, ...], m: int, dtype: type[np.floating]) -> np.ndarray:
    """One measurement of every filter as ``(B, m)``; NaN entries are missing, ``None`` is all missing.

    Shapes: ``batch + (m,)``, or ``batch`` when ``m = 1`` (a scalar for a single filter).
    """
    nb = int(np.prod(batch)) if batch else 1
    if z is None:
        return np.full((nb, m), np.nan, dtype=dtype)
    arr = _measurement_array("z", z)
    if arr.shape == (*batch, m):
        return np.ascontiguousarray(arr.reshape(nb, m), dtype=dtype)
    if m == 1 and arr.shape == batch:
        return np.ascontiguousarray(arr.reshape(nb, 1), dtype=dtype)
    want = f"{(*batch, m)}" + (f" or {batch}" if m == 1 else "")
    raise ValueError(f"z must have shape {want} (NaN or None marks a missing measurement), got {arr.shape}")


def measurements(zs: Any, batch: tuple[int, ...], m: int, dtype: type[np.floating]) -> np.ndarray:
    """A sequence of measurements as ``(N, B, m)``: an array ``(N,) + batch + (m,)`` (``(N,) + batch`` when
    ``m = 1``) with NaN for missing entries, or a sequence whose items are measurements or ``None``."""
    nb = int(np.prod(batch)) if batch else 1
    arr = None
    whole_missing = isinstance(zs, Sequence) and any(row is None for row in zs)  # item by item: None is all of one
    if not whole_missing:
        try:  # the fast path: one array
            arr = _numbers(zs, missing=True)
        except (TypeError, ValueError):
            arr = None
    if arr is not None:
        if arr.ndim == 0:
            raise ValueError("zs must be a sequence of measurements, got a scalar")
        if arr.shape[0] == 0:
            raise ValueError("zs must hold at least one measurement, got none")
        if np.isinf(arr).any():
            raise ValueError(f"zs has {int(np.isinf(arr).sum())} infinite value(s); use NaN or None for a missing one")
        if arr.shape[1:] == (*batch, m) or (m == 1 and arr.shape[1:] == batch):
            return np.ascontiguousarray(arr.reshape(arr.shape[0], nb, m), dtype=dtype)
        want = f"(N, {', '.join(str(b) for b in (*batch, m))})" + (
            f" or (N, {', '.join(map(str, batch))})" if m == 1 and batch else ""
        )
        if m == 1 and not batch:
            want += " or (N,)"
        raise ValueError(f"zs must have shape {want} (NaN or None marks a missing measurement), got {arr.shape}")
    if not isinstance(zs, Sequence) or len(zs) == 0:
        raise ValueError("zs must be a non-empty sequence of measurements (None for a missing one)")
    out = np.empty((len(zs), nb, m), dtype=dtype)
    for t, row in enumerate(zs):
        try:
            out[t] = measurement(row, batch, m, dtype)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"zs[{t}]: {exc}") from None
    return out


def control_matrix(name: str, value: Any, n: int, dtype: type[np.floating]) -> np.ndarray:
    """A control matrix ``(n, k)``, ``k >= 1`` (``(n,)`` when ``k = 1``), as a copy."""
    b = as_array(name, np.asarray(value), np.float64, ndim=(1, 2), copy=True)
    if b.ndim == 1:
        b = b[:, None]
    if b.shape[0] != n or b.shape[1] == 0:
        raise ValueError(f"{name} must have shape ({n}, k) with k >= 1 (or ({n},) when k = 1), got {b.shape}")
    return np.array(b, dtype=dtype, order="C", copy=True)


def control(u: Any, batch: tuple[int, ...], k: int, dtype: type[np.floating], name: str = "u") -> np.ndarray:
    """A control input as ``(1 or B, k)``: shape ``(k,)`` (shared by every filter), ``batch + (k,)``, or a scalar
    when ``k = 1``."""
    arr = as_array(name, u, np.float64, ndim=(0, 1, 2))
    nb = int(np.prod(batch)) if batch else 1
    if arr.shape in ((k,), ()) and (arr.ndim == 1 or k == 1):
        return np.ascontiguousarray(arr.reshape(1, k), dtype=dtype)
    if batch and arr.shape == (*batch, k):
        return np.ascontiguousarray(arr.reshape(nb, k), dtype=dtype)
    want = f"({k},)" + (f" or {(*batch, k)}" if batch else "") + (" or a scalar" if k == 1 else "")
    raise ValueError(f"{name} must have shape {want} to match B, got {arr.shape}")


def controls(us: Any, batch: tuple[int, ...], k: int, n_steps: int, dtype: type[np.floating]) -> np.ndarray:
    """A control input per step as ``(n_steps, 1 or B, k)`` (a sequence of :func:`control` inputs)."""
    rows = list(us) if not isinstance(us, np.ndarray) else [us[t] for t in range(us.shape[0])]
    if len(rows) != n_steps:
        raise ValueError(f"us must hold one control input per measurement ({n_steps}), got {len(rows)}")
    parts = [control(row, batch, k, dtype, name=f"us[{t}]") for t, row in enumerate(rows)]
    width = max(p.shape[0] for p in parts)
    return np.ascontiguousarray(np.stack([np.broadcast_to(p, (width, k)) for p in parts]), dtype=dtype)
