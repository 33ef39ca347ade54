"""A linear-Gaussian Kalman filter (Joseph or square-root form, batched, float32 on request), and the exact map
between RLS and a Kalman filter.

Model: ``x_t = F x_{t-1} + B u_t + w_t``, ``w_t ~ N(0, Q)``; ``z_t = H x_t + v_t``, ``v_t ~ N(0, R)``.
:meth:`Kalman.predict` moves the state (``P <- inflation F P F^T + Q``; ``inflation > 1`` is a fading memory,
filterpy's ``alpha**2``), :meth:`Kalman.update` conditions it on one measurement and records the per-step
quantities (innovation ``y``, its covariance ``S``, gain ``K``, log-likelihood, Mahalanobis distance, prior and
posterior state); :meth:`Kalman.batch_filter` runs a whole sequence in compiled code, and
:meth:`Kalman.rts_smoother` / :meth:`Kalman.smooth` smooth it (:mod:`noisygrad.dsp.kalman_smoother`).

For filterpy users (``filterpy.kalman.KalmanFilter``; ``tests/peers/filterpy_swap.py`` maps the whole interface):

* ``kf = KalmanFilter(dim_x, dim_z, dim_u)`` then ``kf.F = ...`` becomes ``Kalman(F, H, Q, R, x0, P0, B=B)``:
  every matrix is validated when given, and the attributes (``kf.F``, ``kf.x``, ``kf.P``, ...) are validated
  when assigned and returned as read-only copies: ``kf.P *= 1000`` or ``kf.H[0, 1] = 1`` raise; write
  ``kf.P = 1000 * kf.P``. States are 1-D ``(n,)``, not columns. ``kf.alpha = a`` is ``inflation=a**2``.
* ``predict(u)`` and ``update(z)`` as in filterpy, but ``F``, ``Q``, ``B`` and ``H``, ``R`` are keyword-only:
  filterpy's positional ``update(z, R, H)`` order fails loudly instead of swapping them.
* ``y``, ``S``, ``SI``, ``K``, ``mahalanobis``, ``x_prior``, ``P_prior``, ``x_post``, ``P_post`` as in filterpy;
  filterpy's ``log_likelihood`` (the latest step) is ``step_log_likelihood``, while ``log_likelihood`` here
  is the running total.
* ``update_sequential(start, z_i)`` is ``update(z_i, H=H[start:stop], R=R[start:stop, start:stop])``.
* ``batch_filter`` takes the same ``Fs``/``Qs``/``Hs``/``Rs``/``Bs``/``us``/``update_first`` (keyword-only) and
  returns a :class:`KalmanResult` (``means``, ``covariances``, ``prior_means``, ``prior_covariances`` and the
  per-step quantities) instead of a 4-tuple; ``rts_smoother`` returns filterpy's ``(x, P, K, Pp)`` as a named
  tuple. Not offered: correlated process/measurement noise (``update_correlated``, ``M``).

Exponentially weighted RLS with forgetting factor ``lam`` *is* such a filter: ``F = I``, ``Q = 0``,
``H_t = u_t^T`` (the regressor), ``R = sigma_v^2``, ``inflation = 1 / lam``; its weights are the filtered
means and ``sigma_v^2 P_RLS`` is the filtered covariance (Sayed and Kailath, IEEE SP Magazine 1994). The
forgetting factor is therefore a process-noise assumption proportional to the current covariance, not a
fixed random walk.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisygrad.checks import as_array

from . import _kalman_checks as chk
from . import _kalman_kernels as kern
from . import _state
from .filters import RLS
from .kalman_model import KalmanModel
from .kalman_smoother import SmootherResult, rts_smoother


@dataclass(frozen=True)
class KalmanResult:
    """What :meth:`Kalman.batch_filter` (and :meth:`Kalman.run`) return; ``batch`` is the filter's batch shape.

    Attributes:
        means: filtered means ``E[x_t | z_1..z_t]``, ``(N, *batch, n)``.
        covariances: filtered covariances ``(N, *batch, n, n)`` when asked for, else ``None``.
        log_likelihoods: ``log p(z_t | z_1..z_{t-1})`` per step (0 for a missing measurement), ``(N, *batch)``.
        prior_means: predicted means ``E[x_t | z_1..z_{t-1}]``, ``(N, *batch, n)``.
        prior_covariances: predicted covariances, as ``covariances``.
        mahalanobis: ``sqrt(y^T S^-1 y)`` per step over the observed components, ``(N, *batch)``.
        innovations: ``y_t = z_t - H x_t^-`` (0 where missing), ``(N, *batch, m)``.
        innovation_covariances: ``S_t = H P_t^- H^T + R``, ``(N, *batch, m, m)``.
        observed: how many components of ``z_t`` were measured (not NaN), ``(N, *batch)``.
    """

    means: np.ndarray
    covariances: np.ndarray | None
    log_likelihoods: np.ndarray
    prior_means: np.ndarray | None = None
    prior_covariances: np.ndarray | None = None
    mahalanobis: np.ndarray | None = None
    innovations: np.ndarray | None = None
    innovation_covariances: np.ndarray | None = None
    observed: np.ndarray | None = None

    @property
    def log_likelihood(self) -> float | np.ndarray:
        """The log-likelihood of the whole sequence (per filter when batched)."""
        total = self.log_likelihoods.sum(axis=0)
        return float(total) if np.ndim(total) == 0 else total


class Kalman(KalmanModel):
    """A Kalman filter for ``x_t = F x_{t-1} + B u_t + w_t``, ``z_t = H x_t + v_t``.

    Args:
        F: transition matrix ``(n, n)``, or ``None`` for the identity (a random walk; faster).
        H: measurement matrix ``(m, n)``; :meth:`update` and :meth:`batch_filter` take per-call ``H`` too.
        Q: process-noise covariance ``(n, n)``, symmetric positive semi-definite.
        R: measurement-noise covariance ``(m, m)`` (a scalar when ``m = 1``), symmetric positive definite.
        x0: prior mean ``(n,)``, or ``(B, n)`` for ``B`` independent filters that share the model (each has its
            own state, measurements and controls).
        P0: prior covariance ``(n, n)`` (shared by a batch) or ``(B, n, n)``, symmetric positive semi-definite.
        B: control matrix ``(n, k)``, or ``None`` (no control input; :meth:`predict` also takes one per call).
        inflation: fading memory ``>= 1``: the predicted covariance is ``inflation F P F^T + Q``.
        form: ``"joseph"`` (default): the covariance update ``(I - K H) P (I - K H)^T + K R K^T``, first-order
            insensitive to rounding in ``K``, kept exactly symmetric; ``"sqrt"``: a square-root filter that
            carries a factor ``L`` with ``P = L L^T`` (Householder LQ predict, Potter update), so ``P`` cannot
            lose positive semi-definiteness, and ``S >= R``, however ill-conditioned the model; use it for
            unobservable or nearly singular models. It costs more per step: its triangularisation runs in
            compiled loops, not BLAS (measured: as fast as the Joseph form at 4 states, 2-3x slower at 16,
            about 8x slower at 64 and beyond; ``benchmarks/dsp_kalman.py``).
        dtype: ``float64`` (default) or ``float32``.

    Missing measurements: a NaN entry of ``z`` is not observed (the update uses the other entries); ``None``, or
    all NaN, skips the update (predict only). Inf is refused.

    Example:
        >>> kf = Kalman(F=[[1, 1], [0, 1]], H=[[1, 0]], Q=1e-4 * np.eye(2), R=0.1, x0=[0, 0], P0=np.eye(2))
        >>> for z in zs:                         # a user's own loop ...
        ...     kf.predict(); kf.update(z)
        >>> res = kf.batch_filter(zs)            # ... or the whole sequence at once
        >>> smooth = kf.smooth(res)              # Rauch-Tung-Striebel
    """

    @property
    def x_prior(self) -> np.ndarray:
        """The mean after the latest :meth:`predict`."""
        return self._shaped(self._x_prior)

    @property
    def P_prior(self) -> np.ndarray:
        """The covariance after the latest :meth:`predict`."""
        return self._covariances(self._p_prior)

    @property
    def x_post(self) -> np.ndarray:
        """The mean after the latest :meth:`update` (the prior when the measurement was missing)."""
        return self._shaped(self._x_post)

    @property
    def P_post(self) -> np.ndarray:
        """The covariance after the latest :meth:`update`."""
        return self._covariances(self._p_post)

    @property
    def y(self) -> np.ndarray:
        """Innovation ``z - H x^-`` of the latest update, ``(m,)`` or ``(B, m)``; 0 where ``z`` was missing."""
        return self._shaped(self._y)

    @property
    def S(self) -> np.ndarray:
        """Innovation covariance ``H P^- H^T + R`` of the latest update, ``(m, m)`` or ``(B, m, m)``."""
        return self._shaped(self._S)

    @property
    def SI(self) -> np.ndarray:
        """``S^-1`` over the observed components of the latest update (zero rows and columns elsewhere)."""
        return self._shaped(self._SI)

    @property
    def K(self) -> np.ndarray:
        """Kalman gain of the latest update, ``(n, m)`` or ``(B, n, m)``; zero columns where ``z`` was missing."""
        return self._shaped(self._K)

    @property
    def mahalanobis(self) -> float | np.ndarray:
        """``sqrt(y^T S^-1 y)`` of the latest update (over its observed components)."""
        return self._scalar(self._maha)

    @property
    def step_log_likelihood(self) -> float | np.ndarray:
        """``log N(y; 0, S)`` of the latest update (0 when the measurement was missing or before any update)."""
        return self._scalar(self._step_ll)

    @property
    def log_likelihood(self) -> float | np.ndarray:
        """The sum of ``log p(z_t | z_1..z_{t-1})`` over every update so far (per filter when batched)."""
        return self._scalar(self._log_likelihood)

    @property
    def observed(self) -> int | np.ndarray:
        """How many components of the latest measurement were observed (0: the update was skipped)."""
        return int(self._nobs[0]) if not self._batch else self._shaped(self._nobs)

    # ------------------------------------------------------------------ steps

    def _control_args(self, u: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
        if u is None:
            return self._B[:, :0], np.zeros((1, 0), dtype=self._dtype)
        bmat = self._B if B is None else chk.control_matrix("B", B, self._n, self._dtype)
        if bmat.shape[1] == 0:
            raise ValueError("u needs a control matrix: give B to Kalman(...), set kf.B, or pass B= with u")
        return bmat, chk.control(u, self._batch, bmat.shape[1], self._dtype)

    def predict(self, u: Any = None, *, F: Any = None, Q: Any = None, B: Any = None) -> None:
        """``x <- F x + B u``, ``P <- inflation F P F^T + Q``.

        Args:
            u: control input ``(k,)`` (shared by a batch) or ``(B, k)``; needs a control matrix ``B``.
            F, Q, B: replace the filter's for this step only.
        """
        bmat, uu = self._control_args(u, B)
        if F is None:
            f, ft, identity = self._F, self._Ft, self._identity
        else:
            f = chk.matrix("F", F, (self._n, self._n), self._dtype)
            ft, identity = np.ascontiguousarray(f.T), False
        if Q is None:
            lq, noiseless = self._Lq, self._noiseless
            q = self._Q
        else:
            q = chk.covariance("Q", Q, self._n, self._dtype)
            lq, noiseless = self._noise_factor(q)
        sqrt_form = self._form == "sqrt"
        kern.predict_batch(
            self._x, self._p, f, ft, lq if sqrt_form else q, bmat, uu, self._a2, identity, noiseless, sqrt_form,
            self._n >= kern.BLAS_MIN,
        )  # fmt: skip
        np.copyto(self._x_prior, self._x)
        np.copyto(self._p_prior, self._p)

    def update(self, z: Any, *, H: Any = None, R: Any = None) -> float | np.ndarray:
        """Condition on one measurement; returns its log-likelihood (per filter when batched).

        Args:
            z: ``(m,)`` (a scalar when ``m = 1``), or ``(B, m)`` for a batch; NaN entries are missing, ``None``
                (or all NaN) skips the update.
            H, R: replace the filter's for this call only (``H`` may measure a different number of components,
                with an ``R`` to match), e.g. to process the components of ``z`` one group at a time.
        """
        h = self._H if H is None else chk.matrix("H", H, (None, self._n), self._dtype)
        m = h.shape[0]
        if R is None:
            if self._R.shape[0] != m:
                raise ValueError(f"H has {m} rows but R is {self._R.shape}: pass an R to match the H of this call")
            r = self._R
        else:
            r = chk.covariance("R", R, m, self._dtype, definite=True)
        zz = chk.measurement(z, self._batch, m, self._dtype)
        if self._y.shape[1] != m:
            self._last_update(m)
        ll = np.empty(self._x.shape[0])
        failed = kern.update_batch(
            self._x, self._p, zz, h, r, self._y, self._S, self._SI, self._K, ll, self._maha, self._nobs,
            self._form == "sqrt",
        )  # fmt: skip
        self._step_ll = ll
        self._log_likelihood += ll
        np.copyto(self._x_post, self._x)
        np.copyto(self._p_post, self._p)
        if failed != kern.OK:
            where = (
                f"filter {failed} (the filters where it failed were left as predicted, the others updated)"
                if self._batch
                else "this update (the filter was left as predicted)"
            )
            raise self._indefinite(where)
        return self._scalar(ll)

    def _indefinite(self, where: str) -> FloatingPointError:
        hint = (
            "P has lost positive definiteness (an ill-conditioned or unobservable model?): form='sqrt' keeps "
            "P = L L^T positive semi-definite by construction"
            if self._form == "joseph"
            else "check that R is well scaled"
        )
        return FloatingPointError(
            f"the innovation covariance S = H P H^T + R is not positive definite at {where}; {hint}"
        )

    def predict_steadystate(self, u: Any = None, *, B: Any = None) -> None:
        """``x <- F x + B u`` only: ``P``, ``K`` and ``S`` stay as they are (a converged, time-invariant filter)."""
        bmat, uu = self._control_args(u, B)
        self._x = np.ascontiguousarray(self._x @ self._F.T + (uu @ bmat.T if bmat.shape[1] else 0), dtype=self._dtype)
        np.copyto(self._x_prior, self._x)
        np.copyto(self._p_prior, self._p)

    def update_steadystate(self, z: Any) -> None:
        """``x <- x + K (z - H x)`` with the gain ``K`` of the latest full :meth:`update`; ``P`` stays.

        A missing component contributes nothing; ``y`` and the Mahalanobis distance (against the latest ``S``)
        are recorded.
        """
        m = self._K.shape[2]
        if m != self._m:
            raise ValueError(f"the latest gain K is for {m} components, H has {self._m}: run a full update first")
        zz = chk.measurement(z, self._batch, m, self._dtype)
        observed = ~np.isnan(zz)
        y = np.where(observed, zz - self._x @ self._H.T, 0)
        self._x = np.ascontiguousarray(self._x + np.einsum("bnm,bm->bn", self._K, y), dtype=self._dtype)
        self._y = np.ascontiguousarray(y, dtype=self._dtype)
        self._maha = np.sqrt(np.maximum(np.einsum("bm,bmk,bk->b", y, self._SI, y), 0.0)).astype(np.float64)
        np.copyto(self._x_post, self._x)
        np.copyto(self._p_post, self._p)

    # ------------------------------------------------------------------ sequences

    def batch_filter(
        self,
        zs: Any,
        *,
        Fs: Any = None,
        Qs: Any = None,
        Hs: Any = None,
        Rs: Any = None,
        Bs: Any = None,
        us: Any = None,
        update_first: bool = False,
        covariances: bool = True,
    ) -> KalmanResult:
        """Filter a whole sequence in compiled code: predict then update per measurement (``update_first``:
        update then predict, filterpy's option). The filter's state moves to the end of the sequence.

        Args:
            zs: ``(N, m)`` (``(N,)`` when ``m = 1``), ``(N, B, m)`` for a batch, or a sequence of measurements
                with ``None`` for a missing one; NaN entries are missing.
            Fs, Qs, Hs, Rs, Bs: one matrix for every step, or a sequence/array of ``N`` (time-varying model);
                default: the filter's.
            us: control inputs, one per step (each ``(k,)`` or ``(B, k)``); default: none.
            covariances: also return the filtered and predicted covariances (``2 N n^2`` numbers per filter).
        """
        n, nb, dt = self._n, self._x.shape[0], self._dtype
        m = self._m
        if Hs is not None:
            m = chk.rows("Hs", Hs)
        z = chk.measurements(zs, self._batch, m, dt)
        n_steps = z.shape[0]
        fs = self._F[None] if Fs is None else chk.stack("Fs", Fs, (n, n), n_steps, dt)
        identity = self._identity if Fs is None else False
        fts = np.ascontiguousarray(np.swapaxes(fs, -1, -2))
        if Qs is None:
            qs, noiseless = (self._Lq if self._form == "sqrt" else self._Q)[None], self._noiseless
        else:
            qs = chk.stack("Qs", Qs, (n, n), n_steps, dt, kind="covariance")
            noiseless = not np.any(qs)
            if self._form == "sqrt" and not noiseless:
                qs = np.ascontiguousarray(self._factor(qs.astype(np.float64)), dtype=dt)
        hs = self._H[None] if Hs is None else chk.stack("Hs", Hs, (m, n), n_steps, dt)
        if Rs is None:
            if self._R.shape[0] != m:
                raise ValueError(f"Hs measure {m} components but R is {self._R.shape}: pass Rs to match")
            rs = self._R[None]
        else:
            rs = chk.stack("Rs", Rs, (m, m), n_steps, dt, kind="definite")
        if us is None:
            bs, uu = self._B[None, :, :0], np.zeros((1, 1, 0), dtype=dt)
        else:
            if Bs is None:
                if self._B.shape[1] == 0:
                    raise ValueError("us needs a control matrix: give B to Kalman(...), set kf.B, or pass Bs")
                bs = self._B[None]
            else:
                bs = chk.stack("Bs", Bs, (n, chk.rows("Bs", Bs, axis=-1)), n_steps, dt)
            uu = chk.controls(us, self._batch, bs.shape[2], n_steps, dt)
        kc = n_steps if covariances else 0
        means, pmeans = np.empty((n_steps, nb, n), dt), np.empty((n_steps, nb, n), dt)
        covs, pcovs = np.empty((kc, nb, n, n), dt), np.empty((kc, nb, n, n), dt)
        lls, mahas = np.zeros((n_steps, nb)), np.zeros((n_steps, nb))
        ys, ss = np.zeros((n_steps, nb, m), dt), np.zeros((n_steps, nb, m, m), dt)
        nobs = np.zeros((n_steps, nb), np.int64)
        sis, ks = np.zeros((nb, m, m), dt), np.zeros((nb, n, m), dt)
        last = np.empty((4, nb, n, n), dt)
        x_before, p_before = self._x.copy(), self._p.copy()
        failed = kern.filter_sequence(
            self._x, self._p, z, fs, fts, qs, hs, rs, bs, uu, self._a2, identity, noiseless, self._form == "sqrt",
            n >= kern.BLAS_MIN, bool(update_first), means, covs, pmeans, pcovs, lls, mahas, ys, ss, nobs, sis, ks,
            last,
        )  # fmt: skip
        if failed != kern.OK or not (np.isfinite(self._x).all() and np.isfinite(self._p).all()):
            self._x, self._p = x_before, p_before
            if failed != kern.OK:
                raise self._indefinite(f"step {failed}")
            raise FloatingPointError("Kalman state became NaN or Inf: check that F, Q, R and P0 are well scaled")
        self._log_likelihood += lls.sum(axis=0)
        self._step_ll, self._maha, self._nobs = lls[-1].copy(), mahas[-1].copy(), nobs[-1].copy()
        self._y, self._S, self._SI, self._K = ys[-1].copy(), ss[-1].copy(), sis, ks
        self._x_prior, self._p_prior = last[0, :, 0].copy(), last[1].copy()
        self._x_post, self._p_post = last[2, :, 0].copy(), last[3].copy()

        def shaped(a: np.ndarray) -> np.ndarray:
            return a.reshape(n_steps, *self._batch, *a.shape[2:])

        return KalmanResult(
            means=shaped(means),
            covariances=shaped(covs) if covariances else None,
            log_likelihoods=shaped(lls),
            prior_means=shaped(pmeans),
            prior_covariances=shaped(pcovs) if covariances else None,
            mahalanobis=shaped(mahas),
            innovations=shaped(ys),
            innovation_covariances=shaped(ss),
            observed=shaped(nobs),
        )

    def run(self, z: Any, H: Any = None, *, covariances: bool = False) -> KalmanResult:
        """Predict then update for each row of ``z``: :meth:`batch_filter` with ``Hs=H``.

        ``H``: a per-step measurement matrix ``(N, m, n)`` (e.g. the regressors of an adaptive filter,
        ``(N, n)`` when ``m = 1``); default: the filter's ``H`` at every step.
        """
        if H is not None:
            hs = np.asarray(H)
            if hs.ndim == 2:
                hs = hs[:, None, :]
            H = hs
        return self.batch_filter(z, Hs=H, covariances=covariances)

    # ------------------------------------------------------------------ smoothing

    def rts_smoother(self, Xs: Any, Ps: Any, Fs: Any = None, Qs: Any = None) -> SmootherResult:
        """Rauch-Tung-Striebel smoothing of filtered means ``Xs`` and covariances ``Ps`` (filterpy's signature):
        the predictions are recomputed as ``F x`` and ``inflation F P F^T + Q`` (no control input; for that, use
        :meth:`smooth` on a :class:`KalmanResult`). Returns ``(means, covariances, gains, prior_covariances)``.
        """
        return rts_smoother(Xs, Ps, self._F if Fs is None else Fs, Q=self._Q if Qs is None else Qs, inflation=self._a2)

    def smooth(self, result: KalmanResult, Fs: Any = None) -> SmootherResult:
        """Rauch-Tung-Striebel smoothing of a :meth:`batch_filter` result (run with ``covariances=True``), using
        the predictions the filter made (so control inputs, time-varying ``Q`` and fading memory are exact).

        ``Fs``: the transition matrices given to :meth:`batch_filter`, if any.
        """
        if result.covariances is None or result.prior_covariances is None or result.prior_means is None:
            raise ValueError("result must come from batch_filter(..., covariances=True)")
        return rts_smoother(
            result.means,
            result.covariances,
            self._F if Fs is None else Fs,
            prior_means=result.prior_means,
            prior_covariances=result.prior_covariances,
        )

    # ------------------------------------------------------------------ state_dict

    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the filter's future outputs (copies, as tensors that
        ``torch.load(..., weights_only=True)`` restores): model, state and the latest per-step quantities, with
        the schema of :mod:`~noisygrad.dsp._state` (format, version, kind, checksum). :meth:`load_state_dict` or
        :meth:`from_state_dict` continue bit for bit."""
        arrays = {
            "F": self._F, "H": self._H, "Q": self._Q, "R": self._R, "B": self._B, "x": self._x, "p": self._p,
            "x_prior": self._x_prior, "p_prior": self._p_prior, "x_post": self._x_post, "p_post": self._p_post,
            "y": self._y, "S": self._S, "SI": self._SI, "K": self._K, "step_log_likelihood": self._step_ll,
            "mahalanobis": self._maha, "observed": self._nobs, "log_likelihood": self._log_likelihood,
        }  # fmt: skip
        entries: dict[str, Any] = dict(arrays)
        entries.update(form=self._form, dtype=np.dtype(self._dtype).name, inflation=float(self._a2),
                       batch=tuple(int(b) for b in self._batch))  # fmt: skip
        return _state.pack("Kalman", {}, entries)

    _STATE_KEYS = frozenset(
        ["F", "H", "Q", "R", "B", "x", "p", "x_prior", "p_prior", "x_post", "p_post", "y", "S", "SI", "K",
         "step_log_likelihood", "mahalanobis", "observed", "log_likelihood", "form", "dtype", "inflation", "batch"]
    )  # fmt: skip

    @classmethod
    def _entries(cls, state: Any) -> tuple[dict[str, Any], bool]:
        entries, schema = _state.unpack(state, "Kalman", {})
        if set(entries) != cls._STATE_KEYS:
            missing, extra = sorted(cls._STATE_KEYS - set(entries)), sorted(set(entries) - cls._STATE_KEYS)
            raise ValueError(
                f"state must be a Kalman.state_dict() (keys {sorted(cls._STATE_KEYS)}); missing {missing}, "
                f"unexpected {extra}"
            )
        batch = entries["batch"]
        well_formed = isinstance(batch, tuple | list) and len(batch) <= 1
        if not well_formed or not all(isinstance(b, int) and b > 0 for b in batch):
            raise ValueError(f"state['batch'] must be () or (B,) with B > 0, got {batch!r}")
        x = np.asarray(entries["x"])
        if x.ndim != 2 or x.shape[1] == 0:
            raise ValueError(f"state['x'] must have shape (B, n) with n >= 1, got {x.shape}")
        if np.asarray(entries["B"]).ndim != 2:
            raise ValueError(f"state['B'] must have shape (n, k), got {np.asarray(entries['B']).shape}")
        return entries, schema

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Kalman:
        """A filter that continues exactly where the one that wrote ``state`` stands."""
        entries, _ = cls._entries(state)
        batch = tuple(int(b) for b in entries["batch"])
        x = np.asarray(entries["x"])
        n = x.shape[-1]
        kf = cls(
            entries["F"], entries["H"], entries["Q"], entries["R"], x.reshape(*batch, n), np.eye(n),
            B=None if np.asarray(entries["B"]).shape[1] == 0 else entries["B"], inflation=entries["inflation"],
            form=entries["form"], dtype=entries["dtype"],
        )  # fmt: skip
        kf.load_state_dict(state)
        return kf

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a filter with the same form, dtype, batch shape and dimensions.

        Every entry is checked (through the setters' checks: shapes, finiteness, symmetric positive definite
        ``Q`` and ``R``) and then the checksum, before anything is taken: a refused state leaves the filter as
        it was."""
        entries, schema = self._entries(state)
        mine = (self._form, np.dtype(self._dtype).name, tuple(self._batch))
        theirs = (entries["form"], entries["dtype"], tuple(entries["batch"]))
        if mine != theirs:
            raise ValueError(f"state is for (form, dtype, batch) = {theirs}, this filter is {mine}")
        work = copy.copy(self)  # loaded on a shallow twin (setters replace arrays, never write into them)
        work._load_entries(entries)
        _state.verify(state, schema)
        self.__dict__.update(work.__dict__)

    def _load_entries(self, state: dict[str, Any]) -> None:
        self.F, self.Q, self.inflation = state["F"], state["Q"], state["inflation"]
        self.set_H_R(state["H"], state["R"])
        self.B = None if np.asarray(state["B"]).shape[1] == 0 else state["B"]
        nb, n = self._x.shape
        for key, shape in (("x", (nb, n)), ("x_prior", (nb, n)), ("x_post", (nb, n)), ("p", (nb, n, n)),
                           ("p_prior", (nb, n, n)), ("p_post", (nb, n, n))):  # fmt: skip
            arr = as_array(f"state[{key!r}]", state[key], self._dtype, ndim=(len(shape),), copy=True)
            if arr.shape != shape:
                raise ValueError(f"state[{key!r}] must have shape {shape}, got {arr.shape}")
            setattr(self, "_" + key, arr)
        m = self._m
        self._y = as_array("state['y']", state["y"], self._dtype, ndim=(2,), copy=True)
        self._S = as_array("state['S']", state["S"], self._dtype, ndim=(3,), copy=True)
        self._SI = as_array("state['SI']", state["SI"], self._dtype, ndim=(3,), copy=True)
        self._K = as_array("state['K']", state["K"], self._dtype, ndim=(3,), copy=True)
        if (
            self._y.shape != (nb, m)
            or self._S.shape != (nb, m, m)
            or self._K.shape != (nb, n, m)
            or self._SI.shape != (nb, m, m)
        ):
            raise ValueError("state's y, S, SI and K must have shapes (B, m), (B, m, m), (B, m, m) and (B, n, m)")
        self._step_ll = as_array("state['step_log_likelihood']", state["step_log_likelihood"], np.float64,
                                 ndim=(1,), copy=True)  # fmt: skip
        self._maha = as_array("state['mahalanobis']", state["mahalanobis"], np.float64, ndim=(1,), copy=True)
        self._log_likelihood = as_array("state['log_likelihood']", state["log_likelihood"], np.float64, ndim=(1,),
                                        copy=True)  # fmt: skip
        for key, arr in (("step_log_likelihood", self._step_ll), ("mahalanobis", self._maha),
                         ("log_likelihood", self._log_likelihood)):  # fmt: skip
            if arr.shape != (nb,):
                raise ValueError(f"state[{key!r}] must have shape ({nb},), got {arr.shape}")
        observed = np.asarray(state["observed"])
        if observed.dtype.kind not in "iu" or observed.shape != (nb,) or (observed < 0).any():
            raise ValueError(f"state['observed'] must be {nb} counts >= 0 (integers), got {observed!r}")
        self._nobs = observed.astype(np.int64, copy=True)

    def __repr__(self) -> str:
        batch = f", batch={self._batch[0]}" if self._batch else ""
        return (
            f"Kalman(dim_x={self._n}, dim_z={self._m}, dim_u={self.dim_u}{batch}, form={self._form!r}, "
            f"dtype={np.dtype(self._dtype).name}, inflation={self._a2:g})"
        )


def rls_to_kalman(rls: RLS, noise_var: float = 1.0) -> Kalman:
    """The Kalman filter that reproduces ``rls`` from its current state.

    ``F = I``, ``Q = 0``, ``R = noise_var``, ``inflation = 1 / lam``, ``x0 = w``, ``P0 = noise_var P``.
    Run it with the regressors as per-step ``H`` and ``d`` as measurements: ``kf.run(d, H=u).means`` equal
    the RLS weights after each sample. ``noise_var`` scales only the covariance (and the log-likelihood).
    """
    from noisygrad.checks import check_positive

    noise_var = check_positive("noise_var", noise_var)
    w, p = rls.weights, rls.P
    if w.ndim != 1:
        raise ValueError(f"rls must be a single-channel filter (weights of shape (taps,)), got weights {w.shape}")
    n = rls.taps
    return Kalman(
        None,
        np.zeros((1, n)),
        np.zeros((n, n)),
        noise_var,
        w.astype(np.float64),
        noise_var * p.astype(np.float64),
        inflation=1.0 / rls.lam,
    )


def kalman_to_rls(kf: Kalman) -> RLS:
    """The RLS filter equivalent to ``kf`` (``F = I``, ``Q = 0``, one scalar measurement per step, one filter).

    ``lam = 1 / inflation``, ``w0 = x``, ``P0 = P / R``.
    """
    if kf.batch_shape or not kf._identity or np.any(kf.Q != 0) or kf.dim_z != 1 or kf.dim_u:
        raise ValueError(
            "kf must be a single filter with F = I, Q = 0, no control and scalar measurements (dim_z = 1) "
            "to be an RLS filter"
        )
    p0 = kf.P / kf.R[0, 0]
    p0 = 0.5 * (p0 + p0.T)
    return RLS(kf.dim_x, 1.0 / kf.inflation, P0=p0, w0=np.array(kf.x))


__all__ = ["Kalman", "KalmanResult", "kalman_to_rls", "rls_to_kalman"]
