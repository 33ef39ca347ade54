"""LMS with another error nonlinearity or a signed regressor: padasip's LMF, NLMF, SSLMS, NSSLMS, Llncosh, GMCC.

Each is a stochastic gradient of a different cost of the error ``e = d - w^T u``:

=========  ==========================================  ===============================================
filter     update ``w <- w + ...``                      cost (its expected per-sample gradient)
=========  ==========================================  ===============================================
LMF        ``mu e^3 u``                                 ``E[e^4] / 4`` (Walach and Widrow 1984)
NLMF       ``mu e^3 u / (eps + |u|^2)``                 the same, input-normalised
SSLMS      ``mu sign(e) sign(u)``                       ``E|e|`` with a one-bit regressor
NSSLMS     ``mu sign(e) sign(u) / (eps + |u|^2)``       the same, input-normalised
Llncosh    ``mu tanh(lambd e) u``                       ``E[ln cosh(lambd e)] / lambd``
GMCC       ``mu lambd alpha exp(-lambd |e|^alpha)``     ``-E[exp(-lambd |e|^alpha)]`` (generalised
           ``|e|^(alpha - 1) sign(e) u``                correntropy; ``alpha = 2`` is LMS-like)
=========  ==========================================  ===============================================

For ``d = w_o^T u + v`` with ``v`` independent of ``u`` and symmetric about 0, every one of these costs is
stationary at ``w_o``, the Wiener solution: they are different noisy-gradient estimators of the same point,
trading the noise of their gradient (the steady-state misadjustment, :mod:`noisygrad.dsp.theory`) against
robustness to the noise's tails. All run the compiled LMS kernels (delay line and explicit regressors, a
batch of channels in parallel threads), and agree with padasip's filters of the same name to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisygrad.checks import check_positive

from . import _kernels
from ._filter_base import _GradientFilter

__all__ = ["GMCC", "LMF", "NLMF", "NSSLMS", "SSLMS", "Llncosh"]


class LMF(_GradientFilter):
    """Least-mean-fourth: ``w <- w + mu e_k^3 u_k``, SGD on ``e^4 / 4``.

    Its effective step ``3 mu e^2`` grows with the error, so it converges fast far from the solution and
    diverges if ``mu e^2 |u|^2`` gets large: start near the solution (``w0``) or use :class:`NLMF`. In steady
    state it beats LMS for light-tailed (e.g. uniform) noise (:func:`noisygrad.dsp.theory.lmf_excess_mse`).

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0).
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "LMF"
    _PHI = _kernels.PHI_CUBE

    def __init__(self, taps: int, mu: float, *, w0: Any = None, dtype: Any = np.float64, history: bool = False) -> None:
        self.mu = check_positive("mu", mu)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _divergence_hint(self) -> str:
        return (
            f"the LMF step mu e^2 = {self.mu:g} e^2 grows with the error; lower mu, start nearer the solution (w0), "
            "or use NLMF"
        )


class NLMF(LMF):
    """Normalised LMF: ``w <- w + mu e_k^3 u_k / (eps + |u_k|^2)``.

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0); padasip's default 0.1.
        eps: regulariser (> 0); padasip's default 0.001.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "NLMF"
    _NORMALIZED = True

    def __init__(
        self,
        taps: int,
        mu: float = 0.1,
        *,
        eps: float = 0.001,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.eps = check_positive("eps", eps)
        super().__init__(taps, mu, w0=w0, dtype=dtype, history=history)


class SSLMS(_GradientFilter):
    """Sign-sign LMS: ``w <- w + mu sign(e_k) sign(u_k)`` (entrywise sign; ``sign(0) = 0``).

    One bit of the error and of each input: the cheapest update there is, and robust to impulsive noise. The
    weights move by exactly ``mu`` per tap and sample, so they settle in a ball whose size
    :func:`noisygrad.dsp.theory.sign_sign_excess_mse` gives.

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0).
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "SSLMS"
    _PHI = _kernels.PHI_SIGN
    _SIGN_REGRESSOR = True

    def __init__(self, taps: int, mu: float, *, w0: Any = None, dtype: Any = np.float64, history: bool = False) -> None:
        self.mu = check_positive("mu", mu)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)


class NSSLMS(SSLMS):
    """Normalised sign-sign LMS: ``w <- w + mu sign(e_k) sign(u_k) / (eps + |u_k|^2)``.

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0); padasip's default 0.1.
        eps: regulariser (> 0); padasip's default 0.001.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "NSSLMS"
    _NORMALIZED = True

    def __init__(
        self,
        taps: int,
        mu: float = 0.1,
        *,
        eps: float = 0.001,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.eps = check_positive("eps", eps)
        super().__init__(taps, mu, w0=w0, dtype=dtype, history=history)


class Llncosh(_GradientFilter):
    """Least ln-cosh: ``w <- w + mu tanh(lambd e_k) u_k``, SGD on ``ln cosh(lambd e) / lambd``.

    LMS-like (``lambd e`` small: a step of ``mu lambd``) for small errors and sign-error-like (bounded step)
    for large ones, so outliers in ``d`` move the weights by at most ``mu |u|``.

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0); padasip's default 0.01.
        lambd: scale of the error (> 0); padasip's default 3.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "Llncosh"
    _PHI = _kernels.PHI_TANH

    def __init__(
        self,
        taps: int,
        mu: float = 0.01,
        *,
        lambd: float = 3.0,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.mu = check_positive("mu", mu)
        self.lambd = check_positive("lambd", lambd)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _phi_params(self) -> tuple[float, float]:
        return self.lambd, 0.0


class GMCC(_GradientFilter):
    """Generalised maximum correntropy: ``w <- w + mu lambd alpha exp(-lambd |e|^alpha) |e|^(alpha-1) sign(e) u``.

    Gradient ascent on the generalised correntropy ``E[exp(-lambd |e|^alpha)]`` (Chen et al., IEEE TSP 64:3376,
    2016): errors much larger than ``lambd^(-1/alpha)`` are exponentially down-weighted, so heavy-tailed noise
    barely moves the weights. At ``e = 0`` the step is 0 (padasip gives NaN there when ``alpha < 1``).

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0); padasip's default 0.01.
        lambd: kernel parameter (> 0); padasip's default 0.03.
        alpha: shape (> 0); padasip's default 2.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "GMCC"
    _PHI = _kernels.PHI_GMCC

    def __init__(
        self,
        taps: int,
        mu: float = 0.01,
        *,
        lambd: float = 0.03,
        alpha: float = 2.0,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.mu = check_positive("mu", mu)
        self.lambd = check_positive("lambd", lambd)
        self.alpha = check_positive("alpha", alpha)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _phi_params(self) -> tuple[float, float]:
        return self.lambd, self.alpha
