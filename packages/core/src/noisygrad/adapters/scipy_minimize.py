"""``Minimizer``: a noisygrad optimizer as a callable ``(fun, x0, jac=None, bounds=None) -> result``.

That is the shape ``qiskit_algorithms`` accepts as ``optimizer=`` (its ``Minimizer`` protocol) and the
shape of ``scipy.optimize.minimize``'s core arguments. The result is a ``scipy.optimize.OptimizeResult``
with ``.x .fun .nfev .njev .nit`` and the run's history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import OptimizeResult

from noisygrad.checks import as_parameter_vector, check_finite, check_positive_int
from noisygrad.estimators.base import Estimator
from noisygrad.estimators.differences import CentralDifference
from noisygrad.objectives import NoisyBlackBox
from noisygrad.optim.base import Optimizer

Bounds = Sequence[tuple[float | None, float | None]]
EstimatorFactory = Callable[[NoisyBlackBox], Estimator]


def box_from_bounds(bounds: Bounds | None, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` tensors from scipy-style ``(low, high)`` pairs (``None`` unbounded), checked against ``x0``."""
    if bounds is None:
        return None
    pairs = list(bounds)
    if len(pairs) != x0.numel():
        raise ValueError(f"bounds must give one (low, high) pair per parameter ({x0.numel()}), got {len(pairs)}")
    low = torch.tensor([-np.inf if lo is None else float(lo) for lo, _ in pairs], dtype=x0.dtype)
    high = torch.tensor([np.inf if hi is None else float(hi) for _, hi in pairs], dtype=x0.dtype)
    if bool((low > high).any()) or bool(torch.isnan(low).any() | torch.isnan(high).any()):
        raise ValueError("bounds must satisfy low <= high for every parameter (None means unbounded)")
    return low, high


class Minimizer:
    """Run a noisygrad optimizer for ``maxiter`` steps on a plain Python objective.

    Args:
        optimizer: the update rule.
        maxiter: steps per call (> 0).
        gradient: how to get a gradient when ``jac`` is not given: a factory taking the objective wrapped
            as a :class:`~noisygrad.NoisyBlackBox` and returning an estimator (default: central
            differences with step ``1e-6``; use SPSA for noisy objectives).
        seed: seeds the generator handed to the gradient estimator.
        callback: called as ``callback(nit, x, fun_estimate)`` after every step.

    With ``jac`` given, each step costs one ``jac`` call; ``bounds`` are enforced by projecting onto the
    box after every step (and ``x0`` is projected first).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        maxiter: int = 100,
        gradient: EstimatorFactory | None = None,
        seed: int = 0,
        callback: Callable[[int, np.ndarray, float | None], None] | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a noisygrad optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.maxiter = check_positive_int("maxiter", maxiter)
        self.gradient = gradient or (lambda objective: CentralDifference(objective))
        self.seed = int(seed)
        self.callback = callback

    def __call__(
        self,
        fun: Callable[[np.ndarray], float],
        x0: Sequence[float] | np.ndarray,
        jac: Callable[[np.ndarray], np.ndarray] | None = None,
        bounds: Bounds | None = None,
    ) -> OptimizeResult:
        if not callable(fun):
            raise TypeError(f"fun must be callable as fun(x) -> float, got {type(fun).__name__}")
        x = as_parameter_vector("x0", np.asarray(x0, dtype=np.float64))
        box = box_from_bounds(bounds, x)
        counts = {"nfev": 0, "njev": 0}

        def call_fun(point: np.ndarray) -> float:
            counts["nfev"] += 1
            return float(fun(point))

        def batch_fun(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return torch.tensor([call_fun(p.numpy()) for p in points], dtype=points.dtype)

        estimator = None if jac is not None else self.gradient(NoisyBlackBox(batch_fun))
        generator = torch.Generator().manual_seed(self.seed)
        if box is not None:
            x = torch.clamp(x, *box)
        state = self.optimizer.init(x)
        history: list[dict[str, Any]] = []
        for nit in range(1, self.maxiter + 1):
            if jac is not None:
                counts["njev"] += 1
                grad = torch.as_tensor(np.asarray(jac(x.numpy()), dtype=np.float64))
                if grad.shape != x.shape:
                    raise ValueError(f"jac returned shape {tuple(grad.shape)}, expected {tuple(x.shape)} like x0")
                value = None
            else:
                assert estimator is not None
                est = estimator.estimate(x, generator)
                grad, value = est.grad, est.value
            check_finite("gradient", grad)
            x, state = self.optimizer.update(x, grad, state)
            if box is not None:
                x = torch.clamp(x, *box)
            history.append({"nit": nit, "grad_norm": float(grad.norm()), "nfev": counts["nfev"]})
            if self.callback is not None:
                self.callback(nit, x.numpy().copy(), value)
        x_final = x.numpy().copy()
        fun_final = call_fun(x_final)
        return OptimizeResult(
            x=x_final,
            fun=fun_final,
            nfev=counts["nfev"],
            njev=counts["njev"],
            nit=self.maxiter,
            success=bool(np.isfinite(fun_final)),
            message=f"{self.maxiter} steps of {type(self.optimizer).__name__}",
            history=history,
        )
