"""``Minimizer``: a noisygrad optimizer as a callable ``(fun, x0, jac=None, bounds=None) -> result``.

That is the shape ``qiskit_algorithms`` accepts as ``optimizer=`` (its ``Minimizer`` protocol) and the
shape of ``scipy.optimize.minimize``'s core arguments. The result is a ``scipy.optimize.OptimizeResult``
with ``.x .fun .nfev .njev .nit`` and the run's history. The run is :func:`~noisygrad.minimize`'s, with
``bounds`` as a :class:`~noisygrad.Projection` and the reported ``fun`` as a :class:`~noisygrad.FinalEstimate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import OptimizeResult

from noisygrad.checks import as_parameter_vector, check_finite, check_positive_int
from noisygrad.estimators.base import Cost, Estimate, Estimator, Stateless
from noisygrad.estimators.differences import CentralDifference
from noisygrad.loop import StepInfo, minimize
from noisygrad.loop_parts import FinalEstimate, Measurement, Projection
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


class _Jacobian(Stateless):
    """The caller's ``jac`` as an estimator: one ``jac`` call per estimate, checked for shape and finiteness."""

    def __init__(self, objective: NoisyBlackBox, jac: Callable[[np.ndarray], np.ndarray], counts: dict[str, int]):
        self.objective = objective
        self.jac = jac
        self.counts = counts

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        self.counts["njev"] += 1
        grad = torch.as_tensor(np.asarray(self.jac(params.numpy()), dtype=np.float64))
        if grad.shape != params.shape:
            raise ValueError(f"jac returned shape {tuple(grad.shape)}, expected {tuple(params.shape)} like x0")
        return Estimate(check_finite("gradient", grad), None, Cost())


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
    box after every step (and ``x0`` is projected first). The reported ``fun`` is one more call of ``fun`` at
    the returned point (in ``nfev``).
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

        def batch_fun(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            counts["nfev"] += len(points)
            return torch.tensor([float(fun(p.numpy())) for p in points], dtype=points.dtype)

        def measure(points: torch.Tensor, generator: torch.Generator) -> Measurement:  # NaN allowed: success=False
            return Measurement(batch_fun(points, generator), cost=Cost(evaluations=len(points)))

        objective = NoisyBlackBox(batch_fun)
        estimator = self.gradient(objective) if jac is None else _Jacobian(objective, jac, counts)
        history: list[dict[str, Any]] = []

        def record(info: StepInfo) -> None:
            history.append({"nit": info.step, "grad_norm": float(info.estimate.grad.norm()), "nfev": counts["nfev"]})
            if self.callback is not None:
                self.callback(info.step, info.x.numpy().copy(), info.estimate.value)

        run = minimize(
            estimator,
            self.optimizer,
            x,
            steps=self.maxiter,
            seed=self.seed,
            callbacks=[record],
            projection=None if box is None else Projection(*box),
            final=FinalEstimate(measure),
        )
        fun_final = float(run.fun_estimate)  # type: ignore[arg-type]  # final= always gives one
        return OptimizeResult(
            x=run.x.numpy().copy(),
            fun=fun_final,
            nfev=counts["nfev"],
            njev=counts["njev"],
            nit=self.maxiter,
            success=bool(np.isfinite(fun_final)),
            message=f"{self.maxiter} steps of {type(self.optimizer).__name__}",
            history=history,
        )
