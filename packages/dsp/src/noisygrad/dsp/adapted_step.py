"""LMS whose step (or regulariser) adapts by a stochastic gradient of its own: padasip's VSLMS and GNGD.

The weights follow the noisy gradient ``e_k u_k`` of the Wiener cost, as in LMS; what differs is the step,
which itself runs a second noisy-gradient recursion on the same error (descending ``e_k^2`` with respect to
the step): large while the error is correlated from sample to sample (far from the solution), small once it
is not (in the noise ball). No closed form of the steady state is known for these, so :mod:`~noisygrad.dsp.theory`
has none.

* :class:`VSLMSMathews` (Mathews and Xie, IEEE TSP 41:2075, 1993): ``mu_k = mu_{k-1} + rho e_k e_{k-1}
  u_{k-1}^T u_k``.
* :class:`VSLMSBenveniste` (Benveniste, Metivier and Priouret 1990): the exact derivative of the weights
  with respect to the step, ``fi_k = (I - mu_{k-1} u_{k-1} u_{k-1}^T) fi_{k-1} + e_{k-1} u_{k-1}``,
  ``mu_k = mu_{k-1} + rho e_k u_{k-1}^T fi_k``.
* :class:`VSLMSAng` (Ang and Farhang-Boroujeny, IEEE TSP 49:805, 2001): Benveniste's derivative replaced by a
  low-pass filter, ``fi_k = a fi_{k-1} + e_{k-1} u_{k-1}``.
* :class:`GNGD` (Mandic, IEEE SPL 11:115, 2004): NLMS whose regulariser adapts,
  ``eps_k = eps_{k-1} - rho mu e_k e_{k-1} u_k^T u_{k-1} / (|u_{k-1}|^2 + eps_{k-1})^2``,
  ``w += mu e_k u_k / (eps_k + |u_k|^2)``.

padasip's parameter ``ro`` is ``rho`` here. The adapted step is not clipped (as in padasip): a large ``rho``
can drive it negative or past the stability bound, and a divergence raises ``FloatingPointError``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from noisygrad.checks import check_in_range, check_positive

from . import _family_kernels as _fk
from . import _kernels
from ._filter_base import _AdaptiveFilter

__all__ = ["GNGD", "VSLMSAng", "VSLMSBenveniste", "VSLMSMathews"]


class _AdaptedStep(_AdaptiveFilter):
    """Shared: the state (previous error and regressor, adapted step, gradient filter) and the kernel call."""

    _RULE = _fk.MATHEWS
    _STATE: ClassVar[dict[str, str]] = {
        **_AdaptiveFilter._STATE,
        "last_e": "_last_e",
        "last_u": "_last_u",
        "step": "_step",
        "fi": "_fi",
    }
    mu: float
    rho: float
    a = 0.0

    def __init__(
        self,
        taps: int,
        mu: float = 1.0,
        *,
        rho: float = 0.1,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.mu = check_positive("mu", mu)
        self.rho = check_positive("rho", rho, allow_zero=True)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _initial_step(self) -> float:
        return self.mu

    def _reset_extra(self) -> None:
        self._last_e: np.ndarray | None = None
        self._last_u: np.ndarray | None = None
        self._step: np.ndarray | None = None
        self._fi: np.ndarray | None = None

    def _start_extra(self, channels: int) -> None:
        self._last_e = np.zeros(channels, self.dtype)
        self._last_u = np.zeros((channels, self.taps), self.dtype)
        self._step = np.full(channels, self._initial_step(), self.dtype)
        self._fi = np.zeros((channels, self.taps), self.dtype)

    @property
    def step(self) -> np.ndarray:
        """The adapted step ``mu_k`` (GNGD: the adapted regulariser ``eps_k``), one per channel (a copy)."""
        if self._step is None:
            return np.asarray(self._initial_step(), self.dtype)
        return self._step.reshape(self._batch or ()).copy()

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        kernel = _kernels.pick(_fk.adapted_step_regressors, _fk.adapted_step_regressors_parallel, d.shape[0], u.size)
        kernel(
            self._RULE, self._w, u, d, dt(self.mu), dt(self.rho), dt(self.a),
            self._last_e, self._step, self._last_u, self._fi, y, e, hist,
        )  # fmt: skip

    def _divergence_hint(self) -> str:
        return f"the adapted step ran away; lower rho (= {self.rho:g}) or the initial step"


class VSLMSMathews(_AdaptedStep):
    """Variable-step LMS of Mathews and Xie: ``mu_k = mu_{k-1} + rho e_k e_{k-1} u_{k-1}^T u_k``, ``w += mu_k e_k u_k``.

    Args:
        taps: filter length (>= 1).
        mu: initial step (> 0); padasip's default 1.0.
        rho: step of the step adaptation (>= 0; 0 is LMS); padasip's ``ro``, default 0.1.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "VSLMS_Mathews"
    _RULE = _fk.MATHEWS


class VSLMSBenveniste(_AdaptedStep):
    """Variable-step LMS of Benveniste: the step follows the exact derivative ``fi`` of the weights by the step.

    ``fi_k = (I - mu_{k-1} u_{k-1} u_{k-1}^T) fi_{k-1} + e_{k-1} u_{k-1}`` (O(taps) per sample here, not
    padasip's O(taps^2) matrix), ``mu_k = mu_{k-1} + rho e_k u_{k-1}^T fi_k``, ``w += mu_k e_k u_k``.

    Args: as for :class:`VSLMSMathews`.
    """

    name = "VSLMS_Benveniste"
    _RULE = _fk.BENVENISTE


class VSLMSAng(_AdaptedStep):
    """Variable-step LMS of Ang and Farhang-Boroujeny: ``fi_k = a fi_{k-1} + e_{k-1} u_{k-1}``,
    ``mu_k = mu_{k-1} + rho e_k u_{k-1}^T fi_k``, ``w += mu_k e_k u_k``.

    Args:
        taps: filter length (>= 1).
        mu: initial step (> 0); padasip's default 1.0.
        rho: step of the step adaptation (>= 0); padasip's ``ro``, default 0.0002.
        a: memory of the gradient filter, in [0, 1); padasip's default 0.95.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "VSLMS_Ang"
    _RULE = _fk.ANG

    def __init__(
        self,
        taps: int,
        mu: float = 1.0,
        *,
        rho: float = 0.0002,
        a: float = 0.95,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.a = check_in_range("a", a, 0.0, 1.0, low_open=False, high_open=True)
        super().__init__(taps, mu, rho=rho, w0=w0, dtype=dtype, history=history)


class GNGD(_AdaptedStep):
    """Generalised normalised gradient descent (Mandic 2004): NLMS with an adapted regulariser ``eps_k``.

    ``eps_k = eps_{k-1} - rho mu e_k e_{k-1} u_k^T u_{k-1} / (|u_{k-1}|^2 + eps_{k-1})^2``,
    ``w += mu e_k u_k / (eps_k + |u_k|^2)``. :attr:`step` holds ``eps_k``.

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0); padasip's default 1.0.
        eps: initial regulariser (> 0); padasip's default 1.0.
        rho: step of the regulariser's adaptation (>= 0); padasip's ``ro``, default 0.1.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "GNGD"
    _RULE = _fk.GNGD

    def __init__(
        self,
        taps: int,
        mu: float = 1.0,
        *,
        eps: float = 1.0,
        rho: float = 0.1,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.eps = check_positive("eps", eps)
        super().__init__(taps, mu, rho=rho, w0=w0, dtype=dtype, history=history)

    def _initial_step(self) -> float:
        return self.eps

    def _divergence_hint(self) -> str:
        return f"the adapted regulariser eps_k ran away (it is not kept positive); lower rho (= {self.rho:g})"
