"""An inverse PINN problem with noisy measurements: recover an unknown PDE coefficient from observations.

The problem is built the way DeepXDE's inverse examples are (``examples/pinn_inverse/diffusion_1d_inverse.py``,
``Lorenz_inverse.py``): the unknown coefficient is a ``dde.Variable`` handed to the optimizer as an
``external_trainable_variables`` entry, the measurements are a ``dde.icbc.PointSetBC``, and the measurement
points are also collocation anchors. The PDE is the 1-D Poisson equation with an unknown diffusivity ``C``,

    -C u''(x) = pi^2 sin(pi x)  on [0, 1],   u(0) = u(1) = 0,   so   u(x) = sin(pi x) / C,

with ``C* = 1`` and DeepXDE's initial guess ``C = 2``. ``m`` measurements at the interior points
``x_i = i / (m + 1)`` carry Gaussian noise of *relative level* ``sigma``:
``y_i = u(x_i) + sigma * rms(u(x_1..m)) * eps_i`` (:func:`relative_noise`).

**The noise-limited estimate.** The PDE and its boundary conditions allow only ``u = A sin(pi x)`` with
``A = 1/C``; the data's least-squares (and, for Gaussian noise, maximum-likelihood) fit in that family is
``A_hat = sum y_i s_i / sum s_i^2`` with ``s_i = sin(pi x_i)``, so ``C_hat = 1 / A_hat``
(:func:`least_squares_coefficient`). ``A_hat`` is Gaussian with standard deviation
``sigma_abs / sqrt(sum s_i^2)``; by the delta method (equal to the Cramer-Rao bound ``C^2 sigma_abs /
sqrt(sum s_i^2)``) the standard deviation of ``C_hat`` is ``C sigma / sqrt(m)`` for the relative level ``sigma``,
whatever the points (:func:`noise_limited_sd`). No estimator that uses these data does better on average, so
this is the error a recovered coefficient should be held to.

A PINN does not compute ``C_hat``: it minimises the sum of the PDE residual, boundary and data losses, and can
trade a little PDE residual for a closer fit of the noise, so its coefficient differs from ``C_hat`` by a
fraction of ``noise_limited_sd`` (measured in :mod:`noisygrad.pinn.inverse_experiment`). The noise is in the
*data*: the loss, and hence every gradient the optimizer sees, is still deterministic and full-batch.

:func:`fit` trains such a problem with the plugin's optimizer paths (:func:`noisygrad.pinn.train`: Adam through
noisygrad; full-set ``"lbfgs"``, torch's strong-Wolfe L-BFGS as :func:`noisygrad.pinn.lbfgs` builds it; and
:func:`noisygrad.pinn.adam_then_lbfgs`) under a budget of loss-and-gradient evaluations, recording the
coefficient along the way (:class:`Fit`). Build and train in float64 (inside
:func:`noisygrad.pinn.problems.default_float` ``("float64")``); in float32 L-BFGS stops early.

References: Raissi, Perdikaris and Karniadakis, J. Comput. Phys. 378 (2019) 686 (PINNs for inverse problems);
Lu, Meng, Mao and Karniadakis, SIAM Rev. 63 (2021) 208 (DeepXDE).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from noisygrad.checks import as_array, check_generator, check_positive, check_positive_int, check_real

from ._deepxde import deepxde

__all__ = [
    "METHODS",
    "Fit",
    "InverseProblem",
    "evaluations_to",
    "fit",
    "least_squares_coefficient",
    "noise_limited_sd",
    "poisson_inverse",
    "relative_noise",
]

METHODS = ("adam", "lbfgs", "adam+lbfgs")


def relative_noise(values: object, level: float, normal: object) -> np.ndarray:
    """``values + level * rms(values) * normal``: Gaussian measurement noise of relative level ``level``.

    Args:
        values: the exact measurements (a scalar, 1-D or 2-D).
        level: the noise's standard deviation as a fraction of the root mean square of ``values`` (>= 0).
        normal: standard normal draws, the shape of ``values``.
    """
    u = as_array("values", values, np.float64, ndim=(0, 1, 2))
    level = check_positive("level", level, allow_zero=True)
    eps = as_array("normal", normal, np.float64, ndim=(0, 1, 2))
    if eps.shape != u.shape:
        raise ValueError(f"normal must have the shape of values {u.shape}, got {eps.shape}")
    return u + level * float(np.sqrt(np.mean(u**2))) * eps


def least_squares_coefficient(x: object, y: object) -> float:
    """The noise-limited estimate of ``C`` in ``-C u'' = pi^2 sin(pi x)``: ``sum s_i^2 / sum y_i s_i``.

    The least-squares fit of the data ``y`` at ``x`` by the PDE's solutions ``u = sin(pi x) / C`` (with
    ``s_i = sin(pi x_i)``); for Gaussian noise it is the maximum-likelihood estimate.

    Raises:
        ValueError: if ``x`` and ``y`` differ in size, or the data do not correlate positively with
            ``sin(pi x)`` (then no positive ``C`` fits them).
    """
    xs = as_array("x", x, np.float64, ndim=(1, 2)).reshape(-1)
    ys = as_array("y", y, np.float64, ndim=(1, 2)).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same number of points, got {xs.size} and {ys.size}")
    s = np.sin(np.pi * xs)
    proj = float(ys @ s)
    if not proj > 0:
        raise ValueError("y must correlate positively with sin(pi x): no coefficient C > 0 fits these data")
    return float(s @ s) / proj


def noise_limited_sd(coefficient: float, level: float, observations: int) -> float:
    """``C sigma / sqrt(m)``: the standard deviation of :func:`least_squares_coefficient` (delta method, equal to
    the Cramer-Rao bound) for relative noise ``sigma`` (:func:`relative_noise`) on ``m`` measurements."""
    c = check_positive("coefficient", coefficient)
    level = check_positive("level", level, allow_zero=True)
    m = check_positive_int("observations", observations)
    return c * level / math.sqrt(m)


@dataclass
class InverseProblem:
    """A DeepXDE model with an unknown coefficient, its measurements and their noise-limited estimate.

    Attributes:
        model: the uncompiled ``dde.Model``.
        variable: the unknown coefficient, a ``dde.Variable`` (0-d tensor that requires grad).
        true_value: the coefficient that made the data, ``C*``.
        observe_x: measurement points, shape ``(m, 1)``.
        observe_exact: the noise-free measurements ``u(x_i)``, shape ``(m, 1)``.
        observe_y: the measurements the model is trained on, shape ``(m, 1)``.
        level: the relative noise level ``sigma`` of ``observe_y``.
        least_squares: :func:`least_squares_coefficient` of ``observe_y``: the noise-limited estimate.
        noise_limited_sd: :func:`noise_limited_sd` at ``C*``: the standard deviation of ``least_squares``.
    """

    model: Any
    variable: torch.Tensor
    true_value: float
    observe_x: np.ndarray
    observe_exact: np.ndarray
    observe_y: np.ndarray
    level: float
    least_squares: float
    noise_limited_sd: float

    @property
    def value(self) -> float:
        """The coefficient's current value."""
        return float(self.variable.detach())

    def error(self) -> float:
        """The relative error ``|C - C*| / C*`` of the current coefficient."""
        return abs(self.value - self.true_value) / self.true_value


def poisson_inverse(
    *,
    level: float = 0.0,
    rng: np.random.Generator | None = None,
    init_seed: int = 0,
    observations: int = 10,
    num_domain: int = 32,
    layers: Sequence[int] = (20, 20, 20),
    true_value: float = 1.0,
    initial_guess: float = 2.0,
) -> InverseProblem:
    """``-C u'' = pi^2 sin(pi x)`` on [0, 1] with ``u(0) = u(1) = 0``, ``C`` unknown, from noisy measurements.

    Build it inside :func:`noisygrad.pinn.problems.default_float` (the network, the variable and the data take
    DeepXDE's default float). No global random state is touched: the network's initial weights come from
    ``torch.manual_seed(init_seed)`` inside ``torch.random.fork_rng``, the noise from ``rng``, and the
    collocation points are DeepXDE's (deterministic) Hammersley points.

    Args:
        level: relative noise level ``sigma`` of the measurements (:func:`relative_noise`); 0 for exact data.
        rng: the generator of the noise's standard normal draws (``observations`` of them, drawn also when
            ``level`` is 0 so that equal generators give the same draws at every level); required when
            ``level > 0``.
        init_seed: seed of the network's initial weights (an int in ``[0, 2**63)``).
        observations: the number ``m`` of measurement points ``i / (m + 1)``, ``i = 1..m``.
        num_domain: PDE collocation points (Hammersley) besides the measurement points (anchors).
        layers: hidden layer widths of the tanh FNN (Glorot uniform).
        true_value: ``C*``, the coefficient that made the data.
        initial_guess: the coefficient's starting value (DeepXDE's examples start at 2 for a true 1).
    """
    level = check_positive("level", level, allow_zero=True)
    if rng is None:
        if level > 0:
            raise ValueError("rng must be a numpy Generator when level > 0 (it draws the measurement noise)")
    else:
        rng = check_generator(rng)
    if isinstance(init_seed, bool) or not isinstance(init_seed, int | np.integer) or not 0 <= init_seed < 2**63:
        raise ValueError(f"init_seed must be an int in [0, 2**63), got {init_seed!r}")
    m = check_positive_int("observations", observations)
    num_domain = check_positive_int("num_domain", num_domain)
    widths = [check_positive_int(f"layers[{i}]", w) for i, w in enumerate(layers)]
    if not widths:
        raise ValueError("layers must hold at least one hidden layer width")
    c_true = check_positive("true_value", true_value)
    c0 = check_real("initial_guess", initial_guess)

    dde = deepxde()
    coefficient = dde.Variable(c0)

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return -coefficient * dde.grad.hessian(u, x) - math.pi**2 * torch.sin(math.pi * x)

    geom = dde.geometry.Interval(0.0, 1.0)
    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, on_boundary: on_boundary)
    x_obs = (np.arange(1, m + 1) / (m + 1)).reshape(-1, 1)
    exact = np.sin(np.pi * x_obs) / c_true
    normal = rng.standard_normal((m, 1)) if rng is not None else np.zeros((m, 1))
    y_obs = relative_noise(exact, level, normal)
    data = dde.data.PDE(
        geom, pde, [bc, dde.icbc.PointSetBC(x_obs, y_obs, component=0)], num_domain=num_domain, num_boundary=2,
        anchors=x_obs,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(init_seed))
        net = dde.nn.FNN([1, *widths, 1], "tanh", "Glorot uniform")
    return InverseProblem(
        model=dde.Model(data, net),
        variable=coefficient,
        true_value=c_true,
        observe_x=x_obs,
        observe_exact=exact,
        observe_y=y_obs,
        level=level,
        least_squares=least_squares_coefficient(x_obs, y_obs),
        noise_limited_sd=noise_limited_sd(c_true, level, m),
    )


@dataclass
class Fit:
    """One training run of an :class:`InverseProblem`.

    Attributes:
        method: one of :data:`METHODS`.
        value: the recovered coefficient at the end.
        evaluations: loss-and-gradient evaluations spent (L-BFGS line searches included).
        trace_evaluations: the evaluation count after each DeepXDE step (each Adam iteration; each chunk of
            ``lbfgs_chunk`` L-BFGS iterations).
        trace_values: the coefficient at those counts.
        final_loss: the training loss on the full training set at the end.
        seconds: wall-clock time of the training.
        phases: the :class:`~noisygrad.pinn.TrainResult` of each phase.
    """

    method: str
    value: float
    evaluations: int
    trace_evaluations: np.ndarray
    trace_values: np.ndarray
    final_loss: float
    seconds: float
    phases: list[Any]


def _callback_base() -> type:
    return deepxde().callbacks.Callback  # type: ignore[no-any-return]


def _trace(variable: torch.Tensor, budget: int) -> Any:
    """A DeepXDE callback: after each step, the evaluations spent so far and the coefficient; stops at ``budget``."""

    class Trace(_callback_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.done, self.current, self.opt = 0, 0, None
            self.evaluations: list[int] = []
            self.values: list[float] = []

        def on_batch_end(self) -> None:
            opt = self.model.opt
            if opt is not self.opt:  # a new phase: bank the evaluations of the previous optimizer
                self.done, self.current, self.opt = self.done + self.current, 0, opt
            if isinstance(opt, torch.optim.LBFGS):  # counts its own evaluations, line searches included
                self.current = int(opt.state[opt.param_groups[0]["params"][0]]["func_evals"])
            else:  # a first-order step on the full set: one evaluation
                self.current += 1
            total = self.done + self.current
            self.evaluations.append(total)
            self.values.append(float(variable.detach()))
            if total >= budget:
                self.model.stop_training = True

    return Trace()


def fit(
    problem: InverseProblem,
    method: str,
    *,
    evaluations: int,
    lr: float = 1e-2,
    warmup: int = 500,
    warmup_lr: float = 1e-3,
    lbfgs_chunk: int = 10,
) -> Fit:
    """Train ``problem`` with Adam, L-BFGS, or Adam then L-BFGS, on a budget of ``evaluations``.

    Args:
        problem: an :class:`InverseProblem` (its model uncompiled, or compiled with its variable).
        method: ``"adam"`` (noisygrad Adam at ``lr``, one evaluation per iteration), ``"lbfgs"`` (the plugin's
            full-set L-BFGS: torch's, strong-Wolfe line search, history 100, DeepXDE's tolerances), or
            ``"adam+lbfgs"`` (:func:`noisygrad.pinn.adam_then_lbfgs`: ``warmup`` Adam iterations at
            ``warmup_lr``, DeepXDE's habit, then L-BFGS for the rest).
        evaluations: the budget of loss-and-gradient evaluations. L-BFGS is stopped at the end of the first
            chunk of ``lbfgs_chunk`` iterations that reaches it, so it may overshoot by at most one chunk's
            line-search evaluations (25); it also stops on its own convergence test.
        lr: Adam's learning rate for ``"adam"``.
        warmup, warmup_lr: the Adam phase of ``"adam+lbfgs"``.
        lbfgs_chunk: L-BFGS iterations per DeepXDE step, between which the coefficient is recorded.
    """
    from .training import adam_then_lbfgs, train

    if not isinstance(problem, InverseProblem):
        raise TypeError(f"problem must be an InverseProblem, got {type(problem).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    budget = check_positive_int("evaluations", evaluations)
    lr = check_positive("lr", lr)
    warmup_lr = check_positive("warmup_lr", warmup_lr)
    warmup = check_positive_int("warmup", warmup)
    lbfgs_chunk = check_positive_int("lbfgs_chunk", lbfgs_chunk)
    if method == "adam+lbfgs" and warmup >= budget:
        raise ValueError(f"warmup ({warmup}) must be below evaluations ({budget}) for 'adam+lbfgs'")
    trace = _trace(problem.variable, budget)
    common: dict[str, Any] = {
        "callbacks": [trace],
        "display_every": budget,
        "lbfgs_chunk": lbfgs_chunk,
        "external_trainable_variables": problem.variable,
        "verbose": 0,  # a fit in a sweep of many: DeepXDE's progress table would drown the results
    }
    start = time.perf_counter()
    if method == "adam":
        phases = [train(problem.model, "adam", lr=lr, iterations=budget, **common)]
    elif method == "lbfgs":  # the iteration cap is never reached first: each iteration costs >= 1 evaluation
        phases = [train(problem.model, "lbfgs", iterations=budget, **common)]
    else:
        phases = adam_then_lbfgs(
            problem.model, lr=warmup_lr, iterations=warmup, lbfgs_iterations=budget, **common
        ).phases
    seconds = time.perf_counter() - start
    return Fit(
        method=method,
        value=problem.value,
        evaluations=trace.evaluations[-1] if trace.evaluations else 0,
        trace_evaluations=np.asarray(trace.evaluations, dtype=np.int64),
        trace_values=np.asarray(trace.values, dtype=np.float64),
        final_loss=phases[-1].final_loss,
        seconds=seconds,
        phases=phases,
    )


def evaluations_to(trace_evaluations: object, trace_values: object, target: float, tolerance: float) -> float:
    """The evaluation count after which the traced coefficient stays within ``tolerance`` of ``target``.

    The first recorded count from which every later value satisfies ``|C - target| <= tolerance``; ``inf`` if
    the last value does not (the run never settled within its budget).
    """
    counts = as_array("trace_evaluations", trace_evaluations, np.float64, ndim=(1,))
    values = as_array("trace_values", trace_values, np.float64, ndim=(1,))
    if counts.shape != values.shape:
        raise ValueError(
            f"trace_evaluations and trace_values must have the same length, got {counts.size} and {values.size}"
        )
    target = check_real("target", target)
    tolerance = check_positive("tolerance", tolerance)
    outside = np.flatnonzero(~(np.abs(values - target) <= tolerance))
    if outside.size == 0:
        return float(counts[0]) if counts.size else math.inf
    last = int(outside[-1])
    return math.inf if last == counts.size - 1 else float(counts[last + 1])
