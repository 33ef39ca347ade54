"""Online-centred NLMS (padasip's OCNLMS): NLMS on inputs and desired values centred by running means.

``y_k = w^T (u_k - m_u) + m_d`` and ``w <- w + mu e_k c_k / (eps + |c_k|^2)`` with ``c_k = u_k - m_u``, where
``m_u``, ``m_d`` are means over a memory of ``mem`` slots. Centring removes a slowly varying offset of the
input from the regressor, so the noisy gradient ``e_k c_k`` is that of the Wiener problem on the fluctuations
alone, and the offset does not slow convergence (it would add an eigenvalue ``taps * offset^2`` to ``R``).

This reproduces padasip's recursion exactly, including its bookkeeping: the means are read twice per sample
(at the prediction and again at the update), each read advancing the memory's write position, so the memory
holds every other sample; before it first fills, the means run over the slots written so far plus the next,
still-zero slot; after, the desired-value mean leaves out the slot about to be read. The running sums behind
the means are recomputed from the memory each time the position wraps, so no rounding accumulates.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from noisygrad.checks import check_positive, check_positive_int

from . import _family_kernels as _fk
from . import _kernels
from ._filter_base import _AdaptiveFilter

__all__ = ["OCNLMS"]


class OCNLMS(_AdaptiveFilter):
    """Online-centred normalised LMS, step for step padasip's ``FilterOCNLMS``.

    Args:
        taps: filter length (>= 1).
        mu: step size (> 0); padasip's default 0.1.
        eps: regulariser (> 0); padasip's default 1.0.
        mem: memory slots (>= 2; padasip gives NaN with 1); padasip's default 100.
        w0, dtype, history: as for :class:`~noisygrad.dsp.LMS`.
    """

    name = "OCNLMS"
    _STATE: ClassVar[dict[str, str]] = {
        **_AdaptiveFilter._STATE,
        "memory_u": "_mem_u",
        "memory_d": "_mem_d",
        "sum_u": "_sum_u",
        "sum_d": "_sum_d",
        "position": "_pos",
    }

    def __init__(
        self,
        taps: int,
        mu: float = 0.1,
        *,
        eps: float = 1.0,
        mem: int = 100,
        w0: Any = None,
        dtype: Any = np.float64,
        history: bool = False,
    ) -> None:
        self.mu = check_positive("mu", mu)
        self.eps = check_positive("eps", eps)
        self.mem = check_positive_int("mem", mem)
        if self.mem < 2:
            raise ValueError(f"mem must be an integer >= 2 (the desired-value mean leaves one slot out), got {mem}")
        super().__init__(taps, w0=w0, dtype=dtype, history=history)

    def _reset_extra(self) -> None:
        self._mem_u: np.ndarray | None = None
        self._mem_d: np.ndarray | None = None
        self._sum_u: np.ndarray | None = None
        self._sum_d: np.ndarray | None = None
        self._pos: np.ndarray | None = None

    def _start_extra(self, channels: int) -> None:
        self._mem_u = np.zeros((channels, self.mem, self.taps), self.dtype)
        self._mem_d = np.zeros((channels, self.mem), self.dtype)
        self._sum_u = np.zeros((channels, self.taps), self.dtype)
        self._sum_d = np.zeros(channels, self.dtype)
        self._pos = np.zeros(2, np.int64)  # write position, and 1 once the memory has filled

    def _check_state(self, taken: dict[str, np.ndarray]) -> None:
        pos = taken["_pos"]
        if not (0 <= pos[0] < self.mem and pos[1] in (0, 1)):
            raise ValueError(f"state['position'] must be [index in [0, mem), filled 0 or 1], got {pos.tolist()}")

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        dt = self.dtype
        serial, parallel = _fk.online_centred_regressors, _fk.online_centred_regressors_parallel
        kernel = _kernels.pick(serial, parallel, d.shape[0], u.size)
        kernel(
            self._w, u, d, dt(self.mu), dt(self.eps),
            self._mem_u, self._mem_d, self._sum_u, self._sum_d, self._pos, y, e, hist,
        )  # fmt: skip
