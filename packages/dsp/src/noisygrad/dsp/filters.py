"""Adaptive FIR filters: LMS, NLMS and exponentially weighted RLS, with compiled inner loops.

Conventions shared by all three (and by padasip's ``run``):

* the regressor at sample ``k`` is the tapped delay line ``u_k = [x_k, x_{k-1}, ..., x_{k-L+1}]``; the line
  starts at zero (like ``scipy.signal.lfilter``) and each :meth:`run` continues it, so feeding a signal in
  pieces gives the same outputs as feeding it whole;
* ``y_k = w^T u_k`` uses the weights *before* the update (a-priori output), ``e_k = d_k - y_k``;
* a leading batch axis holds independent channels: ``x`` and ``d`` of shape ``(B, N)`` run ``B`` filters
  side by side (each with its own weights and delay line); shape ``(N,)`` runs one.

The weights adapt as SGD on the per-sample loss ``e_k^2 / 2`` (LMS), as its input-normalised variant
(NLMS), or as the exact minimiser of the exponentially weighted squared error (RLS). The rest of padasip's
family lives in :mod:`~noisygrad.dsp.lms_family`, :mod:`~noisygrad.dsp.adapted_step`,
:mod:`~noisygrad.dsp.affine_projection` and :mod:`~noisygrad.dsp.online_centred`, on the same base
(:mod:`~noisygrad.dsp._filter_base`).

``d`` is keyword-only: ``f.run(x, d=d)``. padasip's ``run(d, x)`` takes the two in the other order, and two
signals of the same shape would otherwise be accepted either way, silently learning a wrong filter.

Every filter's state (weights, delay line, and whatever else its recursion carries) round-trips through
:meth:`~_AdaptiveFilter.state_dict` / :meth:`~_AdaptiveFilter.load_state_dict`: a filter loaded from a state
continues bit for bit as the one that saved it.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from noisygrad.checks import as_array, as_dtype, check_in_range, check_positive, check_positive_int

from . import _kernels
from ._filter_base import _AdaptiveFilter, _GradientFilter


class StabilityWarning(UserWarning):
    """A step size at or past a stability bound for the data it is about to filter."""


def tapped_delay_line(x: Any, taps: int) -> np.ndarray:
    """The regressors ``u_k = [x_k, ..., x_{k-taps+1}]`` (zeros before the start): shape ``(..., N, taps)``.

    ``LMS(taps).run(x, d=d)`` equals ``LMS(taps).run_regressors(tapped_delay_line(x, taps), d=d)``. padasip's
    ``pa.input_from_history(x, taps)`` is ``tapped_delay_line(x, taps)[taps - 1:, ::-1]`` (no zero-padded start,
    oldest sample first), so weights learned on it are these reversed.
    """
    taps = check_positive_int("taps", taps)
    arr = np.asarray(x)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    x = as_array("x", arr, as_dtype(dtype), ndim=(1, 2))
    pad = np.zeros((*x.shape[:-1], taps - 1), dtype=x.dtype)
    xp = np.concatenate([pad, x], axis=-1)
    return np.ascontiguousarray(sliding_window_view(xp, taps, axis=-1)[..., ::-1])


class LMS(_GradientFilter):
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
        >>> y, e = f.run(x, d=d)    # x, d: (N,) or (B, N); d is keyword-only
        >>> f.weights               # (4,) or (B, 4)
    """

    name = "LMS"

    def __init__(self, taps: int, mu: float, *, w0: Any = None, dtype: Any = np.float64, history: bool = False) -> None:
        self.mu = check_positive("mu", mu)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    _has_step_bound = True

    def _bound(self, trace_r: float) -> float:
        return 2.0 * self.taps / ((self.taps + 2) * trace_r) if trace_r > 0 else np.inf

    def _warn_if_unstable(self, trace_r: float) -> None:
        bound = self._bound(trace_r)
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
    _NORMALIZED = True

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
    _STATE: ClassVar[dict[str, str]] = {**_AdaptiveFilter._STATE, "P": "_p"}

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
            smallest = float(np.linalg.eigvalsh(p0.astype(np.float64)).min())
            if smallest <= 0:
                raise ValueError(
                    f"P0 must be positive definite (an inverse correlation matrix), its smallest eigenvalue is "
                    f"{smallest:.3g}"
                )
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

    def _check_state(self, taken: dict[str, np.ndarray]) -> None:
        if not np.array_equal(taken["_p"], np.swapaxes(taken["_p"], -1, -2)):
            raise ValueError("state['P'] must be symmetric (each channel's matrix equal to its transpose)")

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        work = u.size * self.taps
        kernel = _kernels.pick(_kernels.rls_regressors, _kernels.rls_regressors_parallel, d.shape[0], work)
        kernel(self._w, self._p, u, d, dt(self.lam), dt(1.0 / self.lam), y, e, hist)

    def _divergence_hint(self) -> str:
        return (
            f"with lam = {self.lam:g} and an input that does not excite every direction, P grows like "
            "lam^-n; use lam closer to 1, a larger delta, or a float64 dtype"
        )
