"""The affine projection algorithm (padasip's AP): an NLMS step projected onto the last ``order`` regressors.

With ``U`` the ``order x taps`` matrix of the last ``order`` regressors (newest first) and ``D`` their desired
values, ``w <- w + mu U^T (U U^T + eps I)^-1 (D - U w)`` (Ozeki and Umeda 1984). ``order = 1`` is NLMS. Each
update solves the least-norm correction that makes the last ``order`` a-posteriori errors ``(1 - mu)`` times
the a-priori ones: a noisy gradient of the Wiener cost preconditioned by the inverse of a rank-``order``
estimate of the input correlation, which decorrelates coloured input and so converges faster than NLMS on
it. Its steady-state misadjustment is :func:`noisygrad.dsp.theory.ap_misadjustment`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from noisygrad.checks import check_in_range, check_positive, check_positive_int

from . import _family_kernels as _fk
from . import _kernels
from ._filter_base import _AdaptiveFilter

__all__ = ["AP"]


class AP(_AdaptiveFilter):
    """Affine projection of order ``order``: ``w <- w + mu U^T (U U^T + eps I)^-1 (D - U w)``.

    The state carries the last ``order`` regressors and desired values (zeros before the start), so streaming
    calls and :meth:`load_state_dict` continue the projection exactly. A sample costs ``O(order * taps +
    order^3)``: the Gram matrix ``U U^T`` is shifted, not recomputed, and solved by Cholesky.

    Args:
        taps: filter length (>= 1).
        mu: step size in (0, 2), the stability range; padasip has no default (``mu`` required), 1 is the
            classical projection.
        order: projection order (>= 1; 1 is NLMS); padasip's default 5.
        eps: regulariser added to ``U U^T`` (> 0); padasip's ``ifc``, default 0.001.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "AP"
    _STATE: ClassVar[dict[str, str]] = {**_AdaptiveFilter._STATE, "regressors": "_umem", "desired": "_dmem"}

    def __init__(
        self,
        taps: int,
        mu: float,
        *,
        order: int = 5,
        eps: float = 0.001,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.mu = check_in_range("mu", mu, 0.0, 2.0, low_open=True, high_open=True)
        self.order = check_positive_int("order", order)
        self.eps = check_positive("eps", eps)
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _reset_extra(self) -> None:
        self._umem: np.ndarray | None = None
        self._dmem: np.ndarray | None = None

    def _start_extra(self, channels: int) -> None:
        self._umem = np.zeros((channels, self.order, self.taps), self.dtype)
        self._dmem = np.zeros((channels, self.order), self.dtype)

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        work = u.size * self.order
        serial, parallel = _fk.affine_projection_regressors, _fk.affine_projection_regressors_parallel
        kernel = _kernels.pick(serial, parallel, d.shape[0], work)
        kernel(self._w, u, d, dt(self.mu), dt(self.eps), self._umem, self._dmem, y, e, hist)

    def _divergence_hint(self) -> str:
        return f"U U^T + eps I is numerically singular for this input; raise eps (= {self.eps:g}) or lower order"
