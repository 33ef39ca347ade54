"""pytest plugin: run filterpy's own ``KalmanFilter`` tests against ``noisygrad.dsp.Kalman``.

Loaded by ``.ci/peer-tests-filterpy`` with ``-p filterpy_swap`` before pytest imports the peer's test modules, so
their ``from filterpy.kalman import KalmanFilter`` (and ``filterpy.common.kinematic_kf``, which imports it when
called) bind :class:`KalmanFilter` below: filterpy's interface (``KalmanFilter(dim_x, dim_z, dim_u)``, plain
attributes the user assigns and mutates in place, column or 1-D state vectors) mapped onto one
``noisygrad.dsp.Kalman``, which does every computation. The mapping only converts: it pushes the attributes the
user changed into the filter before a call, and after the call copies the filter's state and per-step
quantities back into filterpy's attributes and shapes. filterpy's procedural functions (``predict``,
``update``, ``batch_filter``) stay filterpy's, so the tests that compare them with the class compare filterpy
against noisygrad.

filterpy's conventions kept here: a scalar ``kf.Q`` / ``kf.R`` attribute is added with broadcasting (filterpy's
``P = F P F' + Q``), while a scalar ``Q`` / ``R`` *argument* means ``Q * I``; ``u`` is ignored when there is no
``B``. ``NOISYGRAD_KALMAN_FORM`` picks the filter's form ("joseph", the default, or "sqrt"); ``NOISYGRAD_SWAP=0``
runs the tests on filterpy's own class (the baseline).

The deliberate differences are marked below with their reason (``xfail`` strict, or ``skip`` for a feature
noisygrad does not offer).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np
import pytest

from noisygrad.dsp import Kalman

FORM = os.environ.get("NOISYGRAD_KALMAN_FORM", "joseph")

_KINEMATIC = (
    "kinematic_kf(7, 5) measures only the sum of the 7 positions, so the covariance of the other directions grows "
    "like t^11: from around step 90 no float64 covariance matrix is positive definite any more. The Joseph form raises "
    "there (S <= 0); filterpy's carries on with a negative S. form='sqrt' (NOISYGRAD_KALMAN_FORM=sqrt) runs it."
)
_ULP = (
    "asserts |x - x_filterpy| < 1e-12 on states that reach 2e5, where one ulp is 2.9e-11: only filterpy's own "
    "sequence of numpy/BLAS roundings passes. noisygrad agrees to 2 ulps of |x| (Joseph form; 6 in square-root "
    "form), held by packages/dsp/tests/test_kalman_filterpy.py::test_procedure_form_to_a_few_ulps."
)
# node-id suffix -> (marker, exception expected, reason), per form
DELIBERATE_DIFFERENCES: dict[str, tuple[str, type[BaseException] | None, str]] = {
    "test_update_correlated": ("skip", None, "correlated process and measurement noise (M) is not offered"),
    "test_procedure_form": ("xfail", AssertionError, _ULP),
}
if FORM == "joseph":
    DELIBERATE_DIFFERENCES["test_steadystate"] = ("xfail", FloatingPointError, _KINEMATIC)


@pytest.fixture(autouse=True)
def _reproducible_draws() -> None:
    """filterpy's tests draw from numpy's global generator unseeded: seed it per test so every run is the same."""
    np.random.seed(0)  # noqa: NPY002 - the global generator is the one filterpy's tests draw from


def _as_float(name: str, value: Any) -> np.ndarray:
    return np.array(value, dtype=np.float64)


def _z_flat(z: Any, m: int) -> np.ndarray:
    """filterpy's accepted shapes of a measurement of ``m`` components (scalar, vector, row or column)."""
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim > 2 or arr.size != m or (arr.ndim == 2 and 1 not in arr.shape):
        raise ValueError(f"z must hold {m} value(s) as a scalar, vector, row or column, got shape {arr.shape}")
    return arr.reshape(m)


def _noise_attr(value: Any, n: int) -> np.ndarray:
    """A ``Q``/``R`` attribute: filterpy adds it with broadcasting."""
    arr = _as_float("Q/R", value)
    return np.broadcast_to(arr, (n, n)).copy() if arr.ndim < 2 else arr


def _noise_arg(value: Any, n: int) -> np.ndarray | None:
    """A ``Q``/``R`` argument: filterpy reads a scalar as ``value * I``."""
    if value is None:
        return None
    return np.eye(n) * value if np.isscalar(value) else _as_float("Q/R", value)


class KalmanFilter:
    """filterpy's ``KalmanFilter`` over ``noisygrad.dsp.Kalman`` (see the module docstring)."""

    def __init__(self, dim_x: int, dim_z: int, dim_u: int = 0) -> None:
        if dim_x < 1:
            raise ValueError("dim_x must be 1 or greater")
        if dim_z < 1:
            raise ValueError("dim_z must be 1 or greater")
        if dim_u < 0:
            raise ValueError("dim_u must be 0 or greater")
        self.dim_x, self.dim_z, self.dim_u = dim_x, dim_z, dim_u
        self.x = np.zeros((dim_x, 1))
        self.P = np.eye(dim_x)
        self.Q = np.eye(dim_x)
        self.B: Any = None
        self.F = np.eye(dim_x)
        self.H = np.zeros((dim_z, dim_x))
        self.R = np.eye(dim_z)
        self._alpha_sq = 1.0
        self.M = np.zeros((dim_x, dim_z))
        self.z = np.array([[None] * dim_z]).T
        self.K = np.zeros((dim_x, dim_z))
        self.y = np.zeros((dim_z, 1))
        self.S = np.zeros((dim_z, dim_z))
        self.SI = np.zeros((dim_z, dim_z))
        self.x_prior, self.P_prior = self.x.copy(), self.P.copy()
        self.x_post, self.P_post = self.x.copy(), self.P.copy()
        self.inv = np.linalg.inv
        self._noisygrad: Kalman | None = None
        self._noisygrad_seen: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- attributes <-> the filter

    def _column(self, v: np.ndarray) -> np.ndarray:
        """A state-shaped vector in the user's convention (1-D, or a column when ``x`` is one)."""
        return np.array(v).reshape(-1, 1) if np.ndim(self.x) == 2 else np.array(v).reshape(-1)

    def _state(self) -> np.ndarray:
        x = _as_float("x", self.x)
        if x.shape not in ((self.dim_x,), (self.dim_x, 1)):
            raise ValueError(f"x must have shape ({self.dim_x},) or ({self.dim_x}, 1), got {x.shape}")
        return x.reshape(self.dim_x)

    def _changed(self, name: str, value: Any) -> bool:
        seen = self._noisygrad_seen.get(name)
        arr = None if value is None else np.asarray(value)
        if seen is None or arr is None:
            return seen is not arr
        return seen.shape != arr.shape or not np.array_equal(seen, arr)

    def _sync(self) -> Kalman:
        """The filter, with every attribute the user assigned or mutated since the last call pushed into it."""
        names = ("x", "P", "F", "Q", "H", "R", "B")
        values = {name: getattr(self, name) for name in names}
        q, r = _noise_attr(self.Q, self.dim_x), _noise_attr(self.R, self.dim_z)
        kf = self._noisygrad
        if kf is None:
            kf = Kalman(self.F, self.H, q, r, self._state(), self.P, B=self.B, inflation=self._alpha_sq, form=FORM)
            self._noisygrad = kf
        else:
            if self._changed("F", self.F):
                kf.F = self.F
            if self._changed("Q", self.Q):
                kf.Q = q
            if self._changed("H", self.H) or self._changed("R", self.R):
                kf.set_H_R(self.H, r)
            if self._changed("B", self.B):
                kf.B = self.B
            if self._changed("x", self.x):
                kf.x = self._state()
            if self._changed("P", self.P):
                kf.P = self.P
            kf.inflation = self._alpha_sq
        self._noisygrad_seen = {name: None if v is None else np.array(v, copy=True) for name, v in values.items()}
        return kf

    def _pull(self, *, prior: bool = False, post: bool = False) -> None:
        kf = self._noisygrad
        assert kf is not None
        self.x, self.P = self._column(kf.x), np.array(kf.P)
        if prior:
            self.x_prior, self.P_prior = self._column(kf.x_prior), np.array(kf.P_prior)
        if post:
            self.x_post, self.P_post = self._column(kf.x_post), np.array(kf.P_post)
        self._noisygrad_seen["x"], self._noisygrad_seen["P"] = self.x.copy(), self.P.copy()

    def _pull_update(self, z: np.ndarray | None) -> None:
        kf = self._noisygrad
        assert kf is not None
        self.y = self._column(kf.y)
        self.S, self.SI, self.K = np.array(kf.S), np.array(kf.SI), np.array(kf.K)
        self.z = np.array([[None] * self.dim_z]).T if z is None else z.reshape(-1, 1).copy()
        self._pull(post=True)

    # ---------------------------------------------------------------- filterpy's methods

    def predict(self, u: Any = None, B: Any = None, F: Any = None, Q: Any = None) -> None:
        kf = self._sync()
        b = self.B if B is None else B
        uu = None if (u is None or b is None) else np.ravel(np.asarray(u, dtype=np.float64))
        kf.predict(uu, F=F, Q=_noise_arg(Q, self.dim_x), B=None if uu is None else b)
        self._pull(prior=True)

    def update(self, z: Any, R: Any = None, H: Any = None) -> None:
        kf = self._sync()
        m = self.dim_z if H is None else int(np.atleast_2d(H).shape[0])
        zz = None if z is None else _z_flat(z, m)
        kf.update(zz, H=H, R=_noise_arg(R, m))
        self._pull_update(zz)

    def update_sequential(self, start: int, z_i: Any, R_i: Any = None, H_i: Any = None) -> None:
        length = 1 if np.isscalar(z_i) else len(z_i)
        stop = start + length
        r = np.asarray(self.R)[start:stop, start:stop] if R_i is None else _noise_arg(R_i, length)
        h = np.asarray(self.H)[start:stop] if H_i is None else np.reshape(H_i, (length, self.dim_x))
        kf = self._sync()
        zz = _z_flat(z_i, length)
        kf.update(zz, H=h, R=r)
        y, k = np.array(self.y, dtype=np.float64), np.array(self.K, dtype=np.float64)
        y.reshape(-1)[start:stop] = kf.y
        k[:, start:stop] = kf.K
        z = np.array(self.z, dtype=object).reshape(-1, 1)
        z[start:stop, 0] = zz
        self.y, self.K, self.z = y, k, z
        self._pull(post=True)

    def predict_steadystate(self, u: Any = 0, B: Any = None) -> None:
        kf = self._sync()
        b = self.B if B is None else B
        kf.predict_steadystate(None if b is None else np.ravel(u), B=b)
        self._pull()
        self.x_prior = self.x.copy()

    def update_steadystate(self, z: Any) -> None:
        kf = self._sync()
        zz = None if z is None else _z_flat(z, self.dim_z)
        kf.update_steadystate(zz)
        self.y = self._column(kf.y)
        self._pull(post=True)

    def update_correlated(self, z: Any, R: Any = None, H: Any = None) -> None:
        raise NotImplementedError("noisygrad.dsp.Kalman has no correlated process/measurement noise (filterpy's M)")

    def batch_filter(
        self,
        zs: Any,
        Fs: Any = None,
        Qs: Any = None,
        Hs: Any = None,
        Rs: Any = None,
        Bs: Any = None,
        us: Any = None,
        update_first: bool = False,
        saver: Any = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(zs)
        column = np.ndim(self.x) == 2
        if saver is not None:  # filterpy saves the attributes after every epoch: step through them
            shape = (n, self.dim_x, 1) if column else (n, self.dim_x)
            means, means_p = np.zeros(shape), np.zeros(shape)
            covs, covs_p = np.zeros((n, self.dim_x, self.dim_x)), np.zeros((n, self.dim_x, self.dim_x))
            for i, z in enumerate(zs):
                pick = [None if s is None else s[i] for s in (Fs, Qs, Hs, Rs, Bs, us)]
                for phase in ("update", "predict") if update_first else ("predict", "update"):
                    if phase == "predict":
                        self.predict(u=pick[5], B=pick[4], F=pick[0], Q=pick[1] if Qs is not None else self.Q)
                        means_p[i], covs_p[i] = self.x, self.P
                    else:
                        self.update(z, R=pick[3] if Rs is not None else self.R, H=pick[2])
                        means[i], covs[i] = self.x, self.P
                saver.save()
            return means, covs, means_p, covs_p
        kf = self._sync()
        m = self.dim_z if Hs is None else int(np.atleast_2d(np.asarray(Hs[0])).shape[0])
        res = kf.batch_filter(
            [None if z is None else _z_flat(z, m) for z in zs],
            Fs=Fs,
            Qs=[_noise_arg(q, self.dim_x) for q in (Qs if Qs is not None else [self.Q] * n)],
            Hs=Hs,
            Rs=[_noise_arg(r, m) for r in (Rs if Rs is not None else [self.R] * n)],
            Bs=Bs,
            us=None if us is None or (Bs is None and self.B is None) else [np.ravel(u) for u in us],
            update_first=update_first,
        )
        self._pull(prior=True, post=True)
        means, means_p = res.means, res.prior_means
        assert means_p is not None
        assert res.covariances is not None
        assert res.prior_covariances is not None
        if column:
            means, means_p = means[..., None], means_p[..., None]
        return means, res.covariances, means_p, res.prior_covariances

    def rts_smoother(
        self, Xs: Any, Ps: Any, Fs: Any = None, Qs: Any = None, inv: Any = np.linalg.inv
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        kf = self._sync()
        xs = np.asarray(Xs, dtype=np.float64)
        res = kf.rts_smoother(xs.reshape(xs.shape[0], self.dim_x), Ps, Fs=Fs, Qs=Qs)
        return res.means.reshape(xs.shape), res.covariances, res.gains, res.prior_covariances

    def test_matrix_dimensions(self, z: Any = None, H: Any = None, R: Any = None, F: Any = None, Q: Any = None):
        """filterpy's shape check, as noisygrad.dsp.Kalman's own validation of the same values."""
        h = self.H if H is None else H
        m = int(np.atleast_2d(np.asarray(h)).shape[0])
        Kalman(self.F if F is None else F, h, self.Q if Q is None else Q, self.R if R is None else R, self._state(),
               self.P)  # fmt: skip
        if z is not None:
            _z_flat(z, m)

    # ---------------------------------------------------------------- filterpy's properties

    @property
    def log_likelihood(self) -> float:
        return (
            float(self._noisygrad.step_log_likelihood) if self._noisygrad is not None else math.log(sys.float_info.min)
        )

    @property
    def likelihood(self) -> float:
        return max(math.exp(self.log_likelihood), sys.float_info.min)

    @property
    def mahalanobis(self) -> float:
        return float(self._noisygrad.mahalanobis) if self._noisygrad is not None else 0.0

    @property
    def alpha(self) -> float:
        return self._alpha_sq**0.5

    @alpha.setter
    def alpha(self, value: float) -> None:
        if not np.isscalar(value) or value < 1:
            raise ValueError("alpha must be a float greater than 1")
        self._alpha_sq = value**2

    def __repr__(self) -> str:
        return f"KalmanFilter (filterpy's interface) over {self._noisygrad!r}"


def pytest_configure(config: pytest.Config) -> None:
    import filterpy.kalman

    config.addinivalue_line("markers", "noisygrad_deliberate: a documented difference from filterpy")
    if os.environ.get("NOISYGRAD_SWAP", "") == "0":
        return
    filterpy.kalman.KalmanFilter = KalmanFilter  # type: ignore[misc]


def pytest_report_header(config: pytest.Config) -> list[str]:
    import filterpy
    import filterpy.kalman

    return [
        f"filterpy {filterpy.__version__}: filterpy.kalman.KalmanFilter -> {filterpy.kalman.KalmanFilter.__module__}"
        f" (form {FORM!r})"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("NOISYGRAD_SWAP", "") == "0":
        return
    for item in items:
        for suffix, (kind, raises, reason) in DELIBERATE_DIFFERENCES.items():
            if item.nodeid.endswith(suffix):
                if kind == "skip":
                    item.add_marker(pytest.mark.skip(reason=reason))
                else:
                    item.add_marker(pytest.mark.xfail(reason=reason, strict=True, raises=raises))
