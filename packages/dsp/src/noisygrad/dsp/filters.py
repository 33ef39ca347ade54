"""Adaptive FIR filters: LMS, NLMS and exponentially weighted RLS, with compiled inner loops.

Conventions shared by all three (and by padasip's ``run``):

* the regressor at sample ``k`` is the tapped delay line ``u_k = [x_k, x_{k-1}, ..., x_{k-L+1}]``; the line
  starts at zero (like ``scipy.signal.lfilter``) and each :meth:`run` continues it, so feeding a signal in
  pieces gives the same outputs as feeding it whole;
* ``y_k = w^T u_k`` uses the weights *before* the update (a-priori output), ``e_k = d_k - y_k``;
* a leading batch axis holds independent channels: ``x`` and ``d`` of shape ``(B, N)`` run ``B`` filters
  side by side (each with its own weights and delay line); shape ``(N,)`` runs one.

The weights adapt as SGD on the per-sample loss ``e_k^2 / 2`` (LMS), as its input-normalised variant
(NLMS), or as the exact minimiser of the exponentially weighted squared error (RLS).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from noisygrad.checks import as_array, as_dtype, check_in_range, check_positive, check_positive_int

from . import _kernels

_BLOCK = 4096  # samples per block when RLS materialises delay-line regressors


class StabilityWarning(UserWarning):
    """A step size at or past a stability bound for the data it is about to filter."""


def tapped_delay_line(x: Any, taps: int) -> np.ndarray:
    """The regressors ``u_k = [x_k, ..., x_{k-taps+1}]`` (zeros before the start): shape ``(..., N, taps)``.

    ``LMS(taps).run(x, d)`` equals ``LMS(taps).run_regressors(tapped_delay_line(x, taps), d)``.
    """
    taps = check_positive_int("taps", taps)
    arr = np.asarray(x)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    x = as_array("x", arr, as_dtype(dtype), ndim=(1, 2))
    pad = np.zeros((*x.shape[:-1], taps - 1), dtype=x.dtype)
    xp = np.concatenate([pad, x], axis=-1)
    return np.ascontiguousarray(sliding_window_view(xp, taps, axis=-1)[..., ::-1])


class _AdaptiveFilter:
    """Shared state handling: weights, delay line, batch shape, history, dtype."""

    name = "filter"

    def __init__(self, taps: int, *, w0: Any = None, dtype: Any = np.float64, history: bool = False) -> None:
        self.taps = check_positive_int("taps", taps)
        self.dtype = as_dtype(dtype)
        self.record_history = bool(history)
        self._w0 = None
        if w0 is not None:
            self._w0 = as_array("w0", w0, self.dtype, ndim=(1, 2), copy=True)
            if self._w0.shape[-1] != self.taps:
                raise ValueError(f"w0 must have {self.taps} (taps) entries on its last axis, got {self._w0.shape}")
        self.reset()

    def reset(self) -> None:
        """Forget everything learned: weights back to ``w0`` (or zeros), empty delay line, no history."""
        self._batch: tuple[int, ...] | None = None
        self._w: np.ndarray | None = None
        self._tail: np.ndarray | None = None
        self.history: np.ndarray | None = None
        """A-priori weights of every sample of the last run, ``(..., N, taps)``; only with ``history=True``."""
        self._reset_extra()

    def _reset_extra(self) -> None:
        pass

    @property
    def weights(self) -> np.ndarray:
        """The current weights, shape ``(taps,)`` or ``(B, taps)`` (a copy)."""
        if self._w is None:
            return np.zeros(self.taps, self.dtype) if self._w0 is None else self._w0.copy()
        return self._w.reshape((*(self._batch or ()), self.taps)).copy()

    def run(self, x: Any, d: Any) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``x`` towards ``d`` (same shape, ``(N,)`` or ``(B, N)``); returns ``(y, e)``, shaped like ``x``."""
        x = as_array("x", x, self.dtype, ndim=(1, 2))
        d = as_array("d", d, self.dtype, ndim=(1, 2))
        if x.shape != d.shape:
            raise ValueError(f"x and d must have the same shape, (N,) or (B, N); got x {x.shape} and d {d.shape}")
        n = _check_length(x.shape[-1])
        channels = self._start(x.shape[:-1])
        xp = np.concatenate([self._tail, x.reshape(channels, n)], axis=1)
        new = xp[:, self.taps - 1 :]
        if self._has_step_bound:  # the input power costs a pass over the data: only where it is used
            self._warn_if_unstable(np.einsum("bn,bn->b", new, new) * (self.taps / n))
        y, e, hist = self._outputs(channels, n)
        self._signal_kernel(xp, d.reshape(channels, n), y, e, hist)
        self._tail = np.ascontiguousarray(xp[:, n:])
        return self._finish(x.shape, y, e, hist)

    def run_regressors(self, u: Any, d: Any) -> tuple[np.ndarray, np.ndarray]:
        """Adapt on explicit regressors ``u`` of shape ``(N, taps)`` or ``(B, N, taps)`` towards ``d``.

        For regressors that are not a delay line (array processing, system identification with i.i.d.
        inputs). The filter's own delay line is left untouched.
        """
        u = as_array("u", u, self.dtype, ndim=(2, 3))
        d = as_array("d", d, self.dtype, ndim=(1, 2))
        if u.shape != (*d.shape, self.taps):
            raise ValueError(
                f"u must have shape d.shape + (taps,) = {(*d.shape, self.taps)} (one regressor per sample of d), "
                f"got u {u.shape} and d {d.shape}"
            )
        n = _check_length(d.shape[-1])
        channels = self._start(d.shape[:-1])
        u3 = u.reshape(channels, n, self.taps)
        if self._has_step_bound:
            self._warn_if_unstable(np.einsum("bnl,bnl->b", u3, u3) / n)
        y, e, hist = self._outputs(channels, n)
        self._regressor_kernel(u3, d.reshape(channels, n), y, e, hist)
        return self._finish(d.shape, y, e, hist)

    # -- internals -----------------------------------------------------------------------------------

    def _start(self, batch: tuple[int, ...]) -> int:
        channels = int(np.prod(batch, dtype=int))
        if self._batch is None:
            if self._w0 is not None and self._w0.ndim == 2 and self._w0.shape[:1] != batch:
                raise ValueError(f"w0 has {self._w0.shape[0]} channels but the data has batch shape {batch}")
            w0 = np.zeros(self.taps, self.dtype) if self._w0 is None else self._w0
            self._w = np.ascontiguousarray(np.broadcast_to(w0, (channels, self.taps)), dtype=self.dtype).copy()
            self._tail = np.zeros((channels, self.taps - 1), self.dtype)
            self._batch = batch
            self._start_extra(channels)
        elif batch != self._batch:
            raise ValueError(
                f"this filter runs batch shape {self._batch} (set by its first run), got {batch}; "
                "call reset() to start over with another number of channels"
            )
        return channels

    def _start_extra(self, channels: int) -> None:
        pass

    def _outputs(self, channels: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.empty((channels, n), self.dtype)
        e = np.empty((channels, n), self.dtype)
        hist = np.empty((channels, n if self.record_history else 0, self.taps), self.dtype)
        return y, e, hist

    def _finish(
        self, shape: tuple[int, ...], y: np.ndarray, e: np.ndarray, hist: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self._w is not None
        if not np.isfinite(self._w).all():
            raise FloatingPointError(f"{self.name} weights became NaN or Inf: {self._divergence_hint()}")
        self.history = hist.reshape((*shape, self.taps)) if self.record_history else None
        return y.reshape(shape), e.reshape(shape)

    _has_step_bound = False  # whether the stability of the step depends on the input power

    def _warn_if_unstable(self, trace_r: np.ndarray) -> None:
        pass

    def _divergence_hint(self) -> str:
        return "the recursion is unstable for this data"

    def _signal_kernel(self, xp: np.ndarray, d: np.ndarray, y: np.ndarray, e: np.ndarray, hist: np.ndarray) -> None:
        raise NotImplementedError

    def _regressor_kernel(self, u: np.ndarray, d: np.ndarray, y: np.ndarray, e: np.ndarray, hist: np.ndarray) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "history"}
        params["dtype"] = np.dtype(self.dtype).name
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _check_length(n: int) -> int:
    if n == 0:
        raise ValueError("x and d must hold at least one sample, got N = 0")
    return n


class LMS(_AdaptiveFilter):
    """Least-mean-squares: ``w <- w + mu e_k u_k``, SGD with step ``mu`` on the per-sample loss ``e_k^2 / 2``.

    Args:
        taps: filter length ``L`` (>= 1).
        mu: step size (> 0). Mean-square stable for white Gaussian input of power ``s2`` iff
            ``mu < 2 / ((L + 2) s2)``; :meth:`run` warns (:class:`StabilityWarning`) past that bound, and
            :func:`noisygrad.dsp.theory.lms_stability_bound` gives it for any input covariance.
        w0: initial weights, ``(taps,)`` or ``(B, taps)`` (default zeros).
        dtype: ``float64`` (default) or ``float32``.
        history: keep the a-priori weights of every sample of the last run in :attr:`history`.

    Example:
        >>> f = LMS(taps=4, mu=0.05)
        >>> y, e = f.run(x, d)      # x, d: (N,) or (B, N)
        >>> f.weights               # (4,) or (B, 4)
    """

    name = "LMS"
    _normalized = False

    def __init__(self, taps: int, mu: float, *, w0: Any = None, dtype: Any = np.float64, history: bool = False) -> None:
        self.mu = check_positive("mu", mu)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _eps(self) -> float:
        return 0.0

    def _signal_kernel(self, xp, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        _kernels.lms_signal(self._w, xp, d, dt(self.mu), dt(self._eps()), self._normalized, y, e, hist)

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        _kernels.lms_regressors(self._w, u, d, dt(self.mu), dt(self._eps()), self._normalized, y, e, hist)

    _has_step_bound = True

    def _bound(self, trace_r: float) -> float:
        return 2.0 * self.taps / ((self.taps + 2) * trace_r) if trace_r > 0 else np.inf

    def _warn_if_unstable(self, trace_r: np.ndarray) -> None:
        bound = self._bound(float(np.max(trace_r)))
        if self.mu >= bound:
            warnings.warn(
                f"mu = {self.mu:g} is at or past the mean-square stability bound of LMS for white Gaussian input, "
                f"mu < 2 / ((taps + 2) * input power) = {bound:.4g} for this data; the weights will diverge",
                StabilityWarning,
                stacklevel=3,
            )

    def _divergence_hint(self) -> str:
        return (
            f"mu = {self.mu:g} is past the stability bound (white Gaussian input: mu < 2 / ((taps + 2) * input "
            "power)); lower mu or use NLMS"
        )


class NLMS(LMS):
    """Normalised LMS: ``w <- w + mu e_k u_k / (eps + |u_k|^2)``.

    Args:
        taps: filter length (>= 1).
        mu: step size in (0, 2), the stability range of NLMS.
        eps: regulariser (> 0); an all-zero input gives a zero step instead of 0/0.
        w0, dtype, history: as for :class:`LMS`.
    """

    name = "NLMS"
    _normalized = True

    def __init__(
        self,
        taps: int,
        mu: float = 0.5,
        *,
        eps: float = 1e-6,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        mu = check_in_range("mu", mu, 0.0, 2.0, low_open=True, high_open=True)
        self.eps = check_positive("eps", eps)
        super().__init__(taps, mu, w0=w0, dtype=dtype, history=history)

    def _eps(self) -> float:
        return self.eps

    _has_step_bound = False  # 0 < mu < 2 (checked at construction) is the stability range

    def _divergence_hint(self) -> str:
        return "the input or desired signal overflows the dtype"


class RLS(_AdaptiveFilter):
    """Exponentially weighted recursive least squares.

    After sample ``n`` the weights minimise ``lam^n delta |w - w0|^2 + sum_j lam^(n-j) (d_j - u_j^T w)^2``.
    The inverse-correlation update ``P <- (P - pi pi^T / den) / lam`` with ``pi = P u`` keeps ``P`` exactly
    symmetric, so it stays stable at ``lam`` close to 1 where the textbook ``P - k (P u)^T`` form drifts.
    RLS is a Kalman filter with no process noise whose covariance is inflated by ``1 / lam`` per step
    (:func:`noisygrad.dsp.rls_to_kalman`).

    Args:
        taps: filter length (>= 1).
        lam: forgetting factor in (0, 1]; ``1 / (1 - lam)`` is the memory in samples.
        delta: regularisation, ``P_0 = I / delta`` (> 0), unless ``P0`` is given.
        P0: initial inverse correlation matrix, ``(taps, taps)`` or ``(B, taps, taps)``, symmetric.
        w0, dtype, history: as for :class:`LMS`.
    """

    name = "RLS"

    def __init__(
        self,
        taps: int,
        lam: float = 0.99,
        *,
        delta: float = 1e-2,
        P0: Any = None,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.lam = check_in_range("lam", lam, 0.0, 1.0, low_open=True, high_open=False)
        self.delta = check_positive("delta", delta)
        dt = as_dtype(dtype)
        self._p0 = None
        if P0 is not None:
            p0 = as_array("P0", P0, dt, ndim=(2, 3), copy=True)
            if p0.shape[-2:] != (taps, taps):
                raise ValueError(f"P0 must have shape (taps, taps) = ({taps}, {taps}) in its last axes, got {p0.shape}")
            if not np.array_equal(p0, np.swapaxes(p0, -1, -2)):
                raise ValueError("P0 must be symmetric")
            self._p0 = p0
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _reset_extra(self) -> None:
        self._p: np.ndarray | None = None

    def _start_extra(self, channels: int) -> None:
        if self._p0 is None:
            p0 = np.eye(self.taps, dtype=self.dtype) / self.dtype(self.delta)
        else:
            if self._p0.ndim == 3 and self._p0.shape[0] != channels:
                raise ValueError(f"P0 has {self._p0.shape[0]} channels but the data has {channels}")
            p0 = self._p0
        self._p = np.ascontiguousarray(np.broadcast_to(p0, (channels, self.taps, self.taps))).copy()

    @property
    def P(self) -> np.ndarray:
        """The inverse correlation matrix, ``(taps, taps)`` or ``(B, taps, taps)`` (a copy).

        ``sigma_v^2 P`` is the posterior covariance of the weights under Gaussian noise of variance ``sigma_v^2``.
        """
        if self._p is None:
            if self._p0 is not None:
                return self._p0.copy()
            return np.eye(self.taps, dtype=self.dtype) / self.dtype(self.delta)
        assert self._batch is not None
        return self._p.reshape((*self._batch, self.taps, self.taps)).copy()

    def _signal_kernel(self, xp, d, y, e, hist):  # type: ignore[no-untyped-def]
        # The delay-line regressors as a (B, N, L) view, newest sample first, made contiguous block by block:
        # one kernel specialisation (C-contiguous arrays) serves run() and run_regressors() at bounded memory.
        u = sliding_window_view(xp, self.taps, axis=1)[:, :, ::-1]
        n = d.shape[1]
        if n <= _BLOCK:
            self._regressor_kernel(np.ascontiguousarray(u), d, y, e, hist)
            return
        for a in range(0, n, _BLOCK):
            b = min(n, a + _BLOCK)
            yb, eb = np.empty_like(y[:, a:b]), np.empty_like(e[:, a:b])
            hb = np.empty((hist.shape[0], b - a if hist.shape[1] else 0, self.taps), hist.dtype)
            self._regressor_kernel(np.ascontiguousarray(u[:, a:b]), np.ascontiguousarray(d[:, a:b]), yb, eb, hb)
            y[:, a:b], e[:, a:b] = yb, eb
            if hist.shape[1]:
                hist[:, a:b] = hb

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        _kernels.rls_regressors(self._w, self._p, u, d, dt(self.lam), dt(1.0 / self.lam), y, e, hist)

    def _finish(self, shape, y, e, hist):  # type: ignore[no-untyped-def]
        assert self._p is not None
        if not np.isfinite(self._p).all():
            raise FloatingPointError(f"RLS matrix P became NaN or Inf: {self._divergence_hint()}")
        return super()._finish(shape, y, e, hist)

    def _divergence_hint(self) -> str:
        return (
            f"with lam = {self.lam:g} and an input that does not excite every direction, P grows like "
            "lam^-n; use lam closer to 1, a larger delta, or a float64 dtype"
        )
