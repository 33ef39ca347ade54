"""The model and state of :class:`noisygrad.dsp.Kalman`: validated matrices, shapes, dtype and form.

Every matrix is validated when it is set (constructor or attribute), stored as a C-contiguous copy in the
filter's dtype and handed out as a read-only copy, so nothing a user holds aliases the filter. Internally the state is
always batched: ``x`` (B, n) and ``p`` (B, n, n), the covariance (Joseph form) or its factor (square-root form).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisygrad.checks import as_array, as_dtype, check_in_range

from . import _kalman_checks as chk
from . import _kalman_kernels as kern

FORMS = ("joseph", "sqrt")


def _frozen(arr: np.ndarray) -> np.ndarray:
    """A read-only copy: what a getter hands out. Writing into it raises instead of silently changing nothing
    (assign the attribute to change the filter: ``kf.P = 2 * kf.P``)."""
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


class KalmanModel:
    """Model matrices, state and per-step storage shared by :class:`noisygrad.dsp.Kalman` (see its docstring)."""

    _F: np.ndarray
    _Ft: np.ndarray
    _identity: bool
    _H: np.ndarray
    _m: int
    _Q: np.ndarray
    _Lq: np.ndarray
    _noiseless: bool
    _R: np.ndarray
    _B: np.ndarray
    _a2: float
    _x: np.ndarray
    _p: np.ndarray
    _y: np.ndarray
    _S: np.ndarray
    _SI: np.ndarray
    _K: np.ndarray
    _step_ll: np.ndarray
    _maha: np.ndarray
    _nobs: np.ndarray

    def __init__(
        self,
        F: Any,
        H: Any,
        Q: Any,
        R: Any,
        x0: Any,
        P0: Any,
        *,
        B: Any = None,
        inflation: float = 1.0,
        form: str = "joseph",
        dtype: Any = np.float64,
    ) -> None:
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self._form = form
        self._dtype = as_dtype(dtype)
        x = as_array("x0", x0, np.float64, ndim=(1, 2), copy=True)
        if x.shape[-1] == 0:
            raise ValueError(f"x0 must hold at least one state, got shape {x.shape}")
        self._batch: tuple[int, ...] = tuple(x.shape[:-1])
        n = int(x.shape[-1])
        self._n = n
        self._x = np.array(x.reshape(-1, n), dtype=self._dtype, order="C", copy=True)
        f = np.asarray(F) if F is not None and not isinstance(F, str) else None
        if f is not None and f.ndim == 2 and f.shape[0] == f.shape[1] and f.shape[0] != n:
            raise ValueError(
                f"F must have shape ({n}, {n}) to match the {n} states of x0 (the state size comes from x0's last "
                f"dimension), got {f.shape}: x0 and F must agree"
            )
        self.F = F
        self.H = H
        self.Q = Q
        self.R = R
        self.B = B
        self.inflation = inflation
        self._set_covariance("P0", P0)
        nb = self._x.shape[0]
        self._log_likelihood = np.zeros(nb)
        self._last_update(self._m)
        self._x_prior, self._p_prior = self._x.copy(), self._p.copy()
        self._x_post, self._p_post = self._x.copy(), self._p.copy()

    # ------------------------------------------------------------------ shape and model

    @property
    def dim_x(self) -> int:
        """The number of states ``n``."""
        return self._n

    @property
    def dim_z(self) -> int:
        """The number of measured components ``m`` (of the filter's own ``H``)."""
        return self._m

    @property
    def dim_u(self) -> int:
        """The number of control inputs ``k`` (0 without a control matrix ``B``)."""
        return int(self._B.shape[1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``()`` for one filter, ``(B,)`` for a batch."""
        return self._batch

    @property
    def dtype(self) -> type[np.floating]:
        """``np.float64`` or ``np.float32``: the dtype of every array the filter computes."""
        return self._dtype

    @property
    def form(self) -> str:
        """``"joseph"`` or ``"sqrt"`` (see :class:`noisygrad.dsp.Kalman`)."""
        return self._form

    @property
    def F(self) -> np.ndarray:
        """The transition matrix ``(n, n)`` (a read-only copy; assign to replace it)."""
        return _frozen(self._F)

    @F.setter
    def F(self, value: Any) -> None:
        n = self._n
        f = np.eye(n, dtype=self._dtype) if value is None else chk.matrix("F", value, (n, n), self._dtype)
        self._F = f
        self._Ft = np.ascontiguousarray(f.T)
        self._identity = bool(np.array_equal(f, np.eye(n)))

    @property
    def H(self) -> np.ndarray:
        """The measurement matrix ``(m, n)`` (a read-only copy; :meth:`set_H_R` changes ``m``)."""
        return _frozen(self._H)

    @H.setter
    def H(self, value: Any) -> None:
        h = chk.matrix("H", value, (None, self._n), self._dtype)
        if hasattr(self, "_R") and self._R.shape[0] != h.shape[0]:
            raise ValueError(f"H must have {self._R.shape[0]} rows to match R, got {h.shape}; set both with set_H_R")
        self._H = h
        self._m = int(h.shape[0])

    @property
    def Q(self) -> np.ndarray:
        """The process-noise covariance ``(n, n)`` (a read-only copy; assign to replace it)."""
        return _frozen(self._Q)

    @Q.setter
    def Q(self, value: Any) -> None:
        self._Q = chk.covariance("Q", value, self._n, self._dtype)
        self._Lq, self._noiseless = self._noise_factor(self._Q)

    @property
    def R(self) -> np.ndarray:
        """The measurement-noise covariance ``(m, m)`` (a read-only copy; assign to replace it)."""
        return _frozen(self._R)

    @R.setter
    def R(self, value: Any) -> None:
        self._R = chk.covariance("R", value, self._m, self._dtype, definite=True)

    def set_H_R(self, H: Any, R: Any) -> None:
        """Replace ``H`` and ``R`` together (to change the number of measured components ``m``)."""
        h = chk.matrix("H", H, (None, self._n), self._dtype)
        r = chk.covariance("R", R, h.shape[0], self._dtype, definite=True)
        self._H, self._R, self._m = h, r, int(h.shape[0])
        self._last_update(self._m)

    @property
    def B(self) -> np.ndarray | None:
        """The control matrix ``(n, k)``, or ``None`` (a read-only copy; assign to replace it)."""
        return None if self._B.shape[1] == 0 else _frozen(self._B)

    @B.setter
    def B(self, value: Any) -> None:
        if value is None:
            self._B = np.zeros((self._n, 0), dtype=self._dtype)
            return
        b = as_array("B", np.asarray(value), np.float64, ndim=(1, 2), copy=True)
        if b.ndim == 1:
            b = b[:, None]
        if b.shape[0] != self._n or b.shape[1] == 0:
            raise ValueError(
                f"B must have shape ({self._n}, k) with k >= 1 (or ({self._n},) when k = 1), got {b.shape}"
            )
        self._B = np.array(b, dtype=self._dtype, order="C", copy=True)

    @property
    def inflation(self) -> float:
        """The fading memory: the predicted covariance is ``inflation F P F^T + Q``."""
        return self._a2

    @inflation.setter
    def inflation(self, value: float) -> None:
        self._a2 = check_in_range("inflation", value, 1.0, np.inf, low_open=False, high_open=True)

    # ------------------------------------------------------------------ state

    def _shaped(self, arr: np.ndarray) -> np.ndarray:
        """Internal (B, ...) arrays in the user's batch shape, as a copy."""
        return _frozen(arr.reshape(*self._batch, *arr.shape[1:]))

    def _covariances(self, p: np.ndarray) -> np.ndarray:
        if self._form == "joseph":
            return self._shaped(p)
        out = np.empty_like(p)
        for b in range(p.shape[0]):
            kern.gram(p[b], out[b])
        out.flags.writeable = False
        return out.reshape(*self._batch, *p.shape[1:])

    @property
    def x(self) -> np.ndarray:
        """The current mean, ``(n,)`` or ``(B, n)`` (a copy)."""
        return self._shaped(self._x)

    @x.setter
    def x(self, value: Any) -> None:
        x = as_array("x", value, np.float64, ndim=(len(self._batch) + 1,), copy=True)
        if x.shape != (*self._batch, self._n):
            raise ValueError(f"x must have shape {(*self._batch, self._n)}, got {x.shape}")
        self._x = np.array(x.reshape(-1, self._n), dtype=self._dtype, order="C", copy=True)

    @property
    def P(self) -> np.ndarray:
        """The current covariance, ``(n, n)`` or ``(B, n, n)`` (a copy; ``L L^T`` in square-root form)."""
        return self._covariances(self._p)

    @P.setter
    def P(self, value: Any) -> None:
        self._set_covariance("P", value)

    def _set_covariance(self, name: str, value: Any) -> None:
        nb, n = self._x.shape
        p = chk.batch_covariance(name, value, nb, n, bool(self._batch))
        self._p = np.array(self._factor(p) if self._form == "sqrt" else p, dtype=self._dtype, order="C", copy=True)

    @property
    def factor(self) -> np.ndarray:
        """Square-root form only: the factor ``L`` with ``P = L L^T`` (a copy)."""
        if self._form != "sqrt":
            raise AttributeError("factor exists in the square-root form only (form='sqrt')")
        return self._shaped(self._p)

    @staticmethod
    def _factor(p: np.ndarray) -> np.ndarray:
        """A square root ``L`` (``L L^T = P``) of each positive semi-definite ``P``: Cholesky, else eigenvectors."""
        try:
            return np.linalg.cholesky(p)
        except np.linalg.LinAlgError:
            w, v = np.linalg.eigh(p)
            return v * np.sqrt(np.clip(w, 0.0, None))[..., None, :]

    def _noise_factor(self, q: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(L_Q, Q == 0)``; the factor only in square-root form."""
        noiseless = not np.any(q)
        if self._form != "sqrt" or noiseless:
            return q, noiseless
        return np.ascontiguousarray(self._factor(q.astype(np.float64)), dtype=self._dtype), False

    # ------------------------------------------------------------------ per-step quantities

    def _last_update(self, m: int) -> None:
        nb, n = self._x.shape
        self._y = np.zeros((nb, m), dtype=self._dtype)
        self._S = np.zeros((nb, m, m), dtype=self._dtype)
        self._SI = np.zeros((nb, m, m), dtype=self._dtype)
        self._K = np.zeros((nb, n, m), dtype=self._dtype)
        self._step_ll = np.zeros(nb)
        self._maha = np.zeros(nb)
        self._nobs = np.zeros(nb, dtype=np.int64)

    def _scalar(self, arr: np.ndarray) -> float | np.ndarray:
        return float(arr[0]) if not self._batch else _frozen(arr.reshape(self._batch))
