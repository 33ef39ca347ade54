"""Benchmark PINN problems with exact references computed in code (nothing is downloaded).

* ``poisson1d``: ``-u'' = pi^2 sin(pi x)`` on [0, 1], ``u(0) = u(1) = 0``; exact ``u = sin(pi x)``.
  64 domain points, FNN [1, 20, 20, 20, 1] tanh.
* ``helmholtz2d``: DeepXDE's ``Helmholtz_Dirichlet_2d`` example with ``n = 2`` (``k0 = 4 pi``; ``n = 1``,
  100 + 40 points and width 30 at the quick size):
  ``-u_xx - u_yy - k0^2 u = k0^2 sin(k0 x) sin(k0 y)`` on the unit square, hard zero boundary through the
  output transform ``x(1-x)y(1-y) N``; exact ``u = sin(k0 x) sin(k0 y)``. 400 + 80 points, width 50, sin.
* ``burgers``: DeepXDE's ``Burgers`` example: ``u_t + u u_x = (0.01/pi) u_xx`` on [-1, 1] x [0, 0.99],
  ``u(x, 0) = -sin(pi x)``, ``u(+-1, t) = 0``; 2540/80/160 points, FNN [2, 20, 20, 20, 1] tanh. The reference
  is the Cole-Hopf solution (:func:`burgers_reference`) on Raissi's 256 x 100 grid. The quick size ends at
  ``t = 0.25``, before the shock steepens, with 640/40/80 points and a 128 x 50 test grid.

:func:`build` is the documented entry that seeds global random state: it calls
``dde.config.set_random_seed(seed)`` so that the network's initial weights and DeepXDE's pseudo-random
points repeat. It also sets DeepXDE's default float (:func:`default_float` restores the previous one).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from noisygrad.checks import check_positive, check_positive_int

from ._deepxde import deepxde, quiet
from .optimizers import PinnWarning

NAMES = ("poisson1d", "helmholtz2d", "burgers")
BURGERS_NU = 0.01 / math.pi


def burgers_reference(x: np.ndarray, t: np.ndarray, *, nu: float = BURGERS_NU, nodes: int = 3001) -> np.ndarray:
    """Exact viscous Burgers solution for ``u(x, 0) = -sin(pi x)`` by the Cole-Hopf integral.

    ``u(x, t) = -int sin(pi (x - a z)) w(z) dz / int w(z) dz`` with ``a = 2 sqrt(nu t)`` and
    ``log w(z) = -z^2 - cos(pi (x - a z)) / (2 pi nu)`` (Basdevant et al. 1986). The weights span ~e^100 at the
    default ``nu`` (~e^1000 at ``nu = 3e-4``), so they are normalised in log space, per point. ``log w`` at ``|z| = L``
    is at least ``L^2 - 1 / (pi nu)`` below its peak, so ``z`` runs over ``[-L, L]`` with
    ``L = max(15, sqrt(1 / (pi nu) + 40))`` (weights beyond it below e^-40 of the largest); the trapezoid rule there
    is spectrally accurate for this smooth, rapidly decaying integrand. Returns an array of shape
    ``(len(t), len(x))``.
    """
    nu = check_positive("nu", nu)
    x = np.asarray(x, dtype=np.float64).reshape(1, -1, 1)
    half = max(15.0, math.sqrt(1.0 / (math.pi * nu) + 40.0))
    z = np.linspace(-half, half, nodes).reshape(1, 1, -1)
    out = np.empty((len(t), x.shape[1]))
    for i, ti in enumerate(np.asarray(t, dtype=np.float64)):
        if ti <= 0.0:
            out[i] = -np.sin(np.pi * x[0, :, 0])
            continue
        y = x - 2.0 * math.sqrt(nu * ti) * z
        log_w = -(z**2) - np.cos(np.pi * y) / (2.0 * np.pi * nu)
        w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
        out[i] = -(np.sin(np.pi * y) * w).sum(-1)[0] / w.sum(-1)[0]
    return out


@contextlib.contextmanager
def default_float(name: str) -> Iterator[None]:
    """Set DeepXDE's default float (``"float32"`` or ``"float64"``, which also sets torch's default dtype)
    inside the block and put the previous one back afterwards."""
    if name not in ("float32", "float64"):
        raise ValueError(f"float must be 'float32' or 'float64', got {name!r}")
    dde = deepxde()
    previous = f"float{dde.config.real.precision}"
    dtype = torch.get_default_dtype()
    with quiet():
        dde.config.set_default_float(name)
    try:
        yield
    finally:
        with quiet():
            dde.config.set_default_float(previous)
        torch.set_default_dtype(dtype)


@dataclass
class Problem:
    """A DeepXDE model with its exact solution on a test grid.

    Attributes:
        name: one of :data:`NAMES`.
        model: the uncompiled ``dde.Model``.
        x_test: test points, shape ``(n, dim)``.
        u_test: the exact solution there, shape ``(n, 1)``.
        recipe: the problem's Adam-then-L-BFGS budget (``lr``, ``iterations``, ``lbfgs_iterations``).
    """

    name: str
    model: Any
    x_test: np.ndarray
    u_test: np.ndarray
    recipe: dict[str, Any] = field(default_factory=dict)

    def error(self) -> float:
        """Relative L2 error of the network's prediction on the test grid (compiled or not)."""
        net = self.model.net
        dtype = next(net.parameters()).dtype
        net.eval()
        with torch.no_grad():
            pred = net(torch.as_tensor(self.x_test, dtype=dtype)).numpy()
        return float(np.linalg.norm(pred - self.u_test) / np.linalg.norm(self.u_test))


def _poisson1d(dde: Any, quick: bool) -> Problem:
    geom = dde.geometry.Interval(0.0, 1.0)

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return -dde.grad.hessian(u, x) - math.pi**2 * torch.sin(math.pi * x)

    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, on_boundary: on_boundary)
    data = dde.data.PDE(geom, pde, bc, num_domain=64, num_boundary=2)
    net = dde.nn.FNN([1, 20, 20, 20, 1], "tanh", "Glorot uniform")
    x = np.linspace(0.0, 1.0, 1001).reshape(-1, 1)
    recipe = {"lr": 1e-3, "iterations": 2000, "lbfgs_iterations": 3000}
    if quick:
        recipe = {"lr": 1e-3, "iterations": 500, "lbfgs_iterations": 500}
    return Problem("poisson1d", dde.Model(data, net), x, np.sin(np.pi * x), recipe)


def _helmholtz2d(dde: Any, quick: bool) -> Problem:
    n = 1 if quick else 2  # the quick size has half the wavenumber and a quarter of the points
    k0 = 2.0 * math.pi * n

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        u_yy = dde.grad.hessian(u, x, i=1, j=1)
        f = k0**2 * torch.sin(k0 * x[:, 0:1]) * torch.sin(k0 * x[:, 1:2])
        return -u_xx - u_yy - k0**2 * u - f

    def transform(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] * (1 - x[:, 0:1]) * x[:, 1:2] * (1 - x[:, 1:2]) * u

    geom = dde.geometry.Rectangle([0.0, 0.0], [1.0, 1.0])
    nx = 10 * n  # the example's precision_train: 10 points per wavelength 1/n
    data = dde.data.PDE(geom, pde, [], num_domain=nx**2, num_boundary=4 * nx)
    width = 30 if quick else 50
    net = dde.nn.FNN([2, width, width, width, 1], "sin", "Glorot uniform")
    net.apply_output_transform(transform)
    g = np.linspace(0.0, 1.0, 101)
    xx, yy = np.meshgrid(g, g)
    x = np.stack([xx.ravel(), yy.ravel()], axis=1)
    u = (np.sin(k0 * x[:, 0]) * np.sin(k0 * x[:, 1])).reshape(-1, 1)
    recipe = {"lr": 1e-3, "iterations": 1000, "lbfgs_iterations": 3000}
    if quick:
        recipe = {"lr": 1e-3, "iterations": 300, "lbfgs_iterations": 500}
    return Problem("helmholtz2d", dde.Model(data, net), x, u, recipe)


def _burgers(dde: Any, quick: bool) -> Problem:
    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_x = dde.grad.jacobian(u, x, i=0, j=0)
        u_t = dde.grad.jacobian(u, x, i=0, j=1)
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        return u_t + u * u_x - BURGERS_NU * u_xx

    t_end = 0.25 if quick else 0.99  # the quick size stops before the shock steepens
    geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-1.0, 1.0), dde.geometry.TimeDomain(0.0, t_end))
    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geom, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial)
    sizes = (640, 40, 80) if quick else (2540, 80, 160)
    data = dde.data.TimePDE(geom, pde, [bc, ic], num_domain=sizes[0], num_boundary=sizes[1], num_initial=sizes[2])
    net = dde.nn.FNN([2, 20, 20, 20, 1], "tanh", "Glorot normal")
    xs, ts = np.linspace(-1.0, 1.0, 128 if quick else 256), np.linspace(0.0, t_end, 50 if quick else 100)
    u = burgers_reference(xs, ts)
    tt, xx = np.meshgrid(ts, xs, indexing="ij")
    x = np.stack([xx.ravel(), tt.ravel()], axis=1)
    recipe = {"lr": 1e-3, "iterations": 2000, "lbfgs_iterations": 8000}
    if quick:
        recipe = {"lr": 1e-3, "iterations": 500, "lbfgs_iterations": 500}
    return Problem("burgers", dde.Model(data, net), x, u.reshape(-1, 1), recipe)


_BUILDERS: dict[str, Callable[[Any, bool], Problem]] = {
    "poisson1d": _poisson1d,
    "helmholtz2d": _helmholtz2d,
    "burgers": _burgers,
}


def build(name: str, *, seed: int = 0, quick: bool = False) -> Problem:
    """Build a benchmark problem; **seeds DeepXDE's global random state** with ``seed`` (see module doc).

    Run it inside :func:`default_float` to choose the precision (DeepXDE's default is float32).
    """
    if name not in _BUILDERS:
        raise ValueError(f"name must be one of {', '.join(NAMES)}, got {name!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    dde = deepxde()
    with quiet():
        dde.config.set_random_seed(seed)
    return _BUILDERS[name](dde, quick)


@dataclass(frozen=True)
class Solved:
    """One run of a problem's recipe: its error, wall time and the training record."""

    name: str
    seed: int
    error: float
    seconds: float
    result: Any


def solve(
    name: str,
    *,
    seed: int = 0,
    quick: bool = False,
    precision: str = "float32",
    method: str = "noisygrad",
    **overrides: Any,
) -> Solved:
    """Build ``name`` and train it with Adam then L-BFGS; return the relative L2 error and wall time.

    Args:
        method: ``"noisygrad"`` (:func:`noisygrad.pinn.adam_then_lbfgs`) or ``"deepxde"`` (DeepXDE's own
            ``compile("adam")``, ``train``, ``compile("L-BFGS")``, ``train`` with the same budgets, for
            comparison). DeepXDE's torch L-BFGS checks its ``maxiter`` only between steps of 1000 iterations, so
            there a budget below 1000 (or between multiples of 1000) can run up to the next multiple; the
            returned train state counts the iterations that ran.
        precision: DeepXDE's default float for the run. The recipes are DeepXDE's and run in its default
            float32, where L-BFGS ends at its own convergence test after a few hundred to a few thousand
            iterations; the float32 warning of :func:`~noisygrad.pinn.train` is silenced here for that reason.
            ``"float64"`` runs the whole L-BFGS budget (measured on poisson1d: 4x the time, same error).
        **overrides: replace entries of the problem's recipe (``iterations``, ``lbfgs_iterations``, ``lr``)
            or pass extra arguments to :func:`~noisygrad.pinn.adam_then_lbfgs`.
    """
    from .training import adam_then_lbfgs

    if method not in ("noisygrad", "deepxde"):
        raise ValueError(f"method must be 'noisygrad' or 'deepxde', got {method!r}")
    with default_float(precision), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="L-BFGS in float32", category=PinnWarning)
        problem = build(name, seed=seed, quick=quick)
        recipe = {**problem.recipe, **overrides}
        start = time.perf_counter()
        if method == "noisygrad":
            result = adam_then_lbfgs(problem.model, **{"verbose": 0, **recipe})  # a benchmark run: quiet unless asked
        else:
            result = _deepxde_recipe(problem.model, **recipe)
        seconds = time.perf_counter() - start
        return Solved(name, seed, problem.error(), seconds, result)


def _deepxde_recipe(model: Any, *, lr: float, iterations: int, lbfgs_iterations: int) -> Any:
    dde = deepxde()
    check_positive_int("lbfgs_iterations", lbfgs_iterations)
    with quiet():
        model.compile("adam", lr=lr, verbose=0)
        model.train(iterations=iterations, verbose=0)
        dde.optimizers.set_LBFGS_options(maxiter=lbfgs_iterations)
        try:
            model.compile("L-BFGS", verbose=0)
            model.train(verbose=0)
        finally:
            dde.optimizers.set_LBFGS_options()
    return model.train_state
