"""noisygrad.dsp: LMS, NLMS, RLS and Kalman filters tied to the noisy-gradient theory.

* :class:`LMS`, :class:`NLMS`, :class:`RLS`: adaptive FIR filters with compiled (numba) inner loops; each
  keeps its own tapped delay line (zero initial state, continued across :meth:`~LMS.run` calls), runs a
  leading batch axis of independent channels, in float64 or float32.
* padasip's filter family, each a different noisy-gradient estimator of the same Wiener solution: the error
  nonlinearities :class:`LMF`, :class:`NLMF`, :class:`SSLMS`, :class:`NSSLMS`, :class:`Llncosh`, :class:`GMCC`;
  the adapted steps :class:`GNGD`, :class:`VSLMSMathews`, :class:`VSLMSBenveniste`, :class:`VSLMSAng`; the
  affine projection :class:`AP` and the online-centred :class:`OCNLMS` (``run(x, *, d)``: ``d`` keyword-only, so
  padasip's ``run(d, x)`` order fails loudly).
* :class:`Kalman`: a linear-Gaussian Kalman filter in Joseph or square-root form, batched, float32 on request,
  with per-step quantities and log-likelihood, control input, missing data, ``predict``/``update`` steps,
  ``batch_filter`` and RTS smoothing (:func:`rts_smoother`); :func:`rls_to_kalman` and
  :func:`kalman_to_rls` map RLS to the Kalman filter it is (no process noise, covariance inflated by 1/lam).
* :mod:`noisygrad.dsp.theory`: misadjustment, stability bounds, time constants, RLS tracking and the
  optimal forgetting factor, the SGD noise ball.
* :class:`StreamingLeastSquares` and :func:`sgd_lms`: LMS as the core's SGD (imported on first use: torch).
"""

from typing import Any

from noisygrad.plugins import require as _require

_require("dsp")  # a missing field package names the extra to install

from . import theory  # noqa: E402
from .adapted_step import GNGD, VSLMSAng, VSLMSBenveniste, VSLMSMathews  # noqa: E402
from .affine_projection import AP  # noqa: E402
from .filters import LMS, NLMS, RLS, StabilityWarning, tapped_delay_line  # noqa: E402
from .kalman import Kalman, KalmanResult, kalman_to_rls, rls_to_kalman  # noqa: E402
from .kalman_smoother import SmootherResult, rts_smoother  # noqa: E402
from .lms_family import GMCC, LMF, NLMF, NSSLMS, SSLMS, Llncosh  # noqa: E402
from .online_centred import OCNLMS  # noqa: E402

_LAZY = {"StreamingLeastSquares", "sgd_lms", "gradient_noise_covariance"}

__all__ = [
    "AP",
    "GMCC",
    "GNGD",
    "LMF",
    "LMS",
    "NLMF",
    "NLMS",
    "NSSLMS",
    "OCNLMS",
    "RLS",
    "SSLMS",
    "Kalman",
    "KalmanResult",
    "Llncosh",
    "SmootherResult",
    "StabilityWarning",
    "StreamingLeastSquares",
    "VSLMSAng",
    "VSLMSBenveniste",
    "VSLMSMathews",
    "gradient_noise_covariance",
    "kalman_to_rls",
    "rls_to_kalman",
    "rts_smoother",
    "sgd_lms",
    "tapped_delay_line",
    "theory",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import sgd

        return getattr(sgd, name)
    raise AttributeError(f"module 'noisygrad.dsp' has no attribute {name!r}")
