"""Curvature-aware PINN optimizers against DeepXDE's Adam then L-BFGS, on six PDEs, in float64.

For each problem and seed (median of the seeds), one network and one point set, built with the seed:

1. Adam with DeepXDE's own ``compile("adam")`` / ``train`` (the phase both recipes share; noisygrad's Adam is
   bit-identical to it, so it is run once and its weights are restored for the second recipe);
2. ``deepxde``: DeepXDE's ``compile("L-BFGS")`` / ``train`` with ``maxiter`` set (torch L-BFGS, history 100,
   strong Wolfe; DeepXDE checks the cap per chunk of 1000 iterations, so it may run a few hundred more);
3. ``noisygrad``: ``noisygrad.pinn.train(model, method)`` for a fixed number of iterations, ``method`` one of
   ``ssbroyden`` (default), ``ssbfgs``, ``bfgs``, ``engd``, or ``lbfgs``.

Each recipe's time is its Adam phase plus its own second phase (wall clock, and CPU seconds of the process, which
a shared machine inflates less). Errors are relative L2 on a test grid against an exact or reference solution
(for the inverse problem also the relative error of the recovered coefficient).

The problems (all float64, nothing downloaded):

* ``poisson1d``: :mod:`noisygrad.pinn.problems`;
* ``burgers``: DeepXDE's ``Burgers`` example (FNN [2, 20, 20, 20, 1] tanh, 80 boundary and 160 initial points,
  Cole-Hopf reference from :mod:`noisygrad.pinn.problems`) with 8000 domain points instead of 2540: on the
  example's 2540 points the training loss goes to 1e-11 while the error stalls at 8e-4 to 2e-3 (measured with
  SSBroyden, 2000 to 8000 iterations; the points are too sparse for the steep front, whatever the optimizer),
  and with 8000 points the same runs reach 4e-5;
* ``helmholtz2d``: DeepXDE's ``Helmholtz_Dirichlet_2d`` example (``k0 = 4 pi``, hard boundary, sin, 400 + 80
  points) with width 30 (the full BFGS matrix of width 50, 5301 parameters, costs more per iteration than the
  network does);
* ``allen_cahn``: DeepXDE's ``Allen_Cahn`` example (``u_t = 0.001 u_xx + 5 (u - u^3)``, hard initial and
  boundary conditions, FNN [2, 20, 20, 20, 1] tanh) with 2000 + 100 + 200 points; the reference is a
  fourth-order finite-difference solve on 2001 points (DOP853, rtol 1e-11; 8.6e-9 relative from the 4001-point
  solve);
* ``reaction_diffusion``: DeepXDE's ``diffusion_reaction`` example (exact solution, hard conditions, 320 points)
  with FNN [2, 20, 20, 20, 1] tanh;
* ``diffusion_inverse``: DeepXDE's ``diffusion_1d_inverse`` example (unknown diffusivity ``C = 1`` from 10
  observations, starting at 2), FNN [2, 32, 32, 32, 1] tanh.

    .venv/bin/python benchmarks/pinn_optimizers.py [--problems ...] [--seeds 0 1 2] [--method ssbroyden]
        [--jobs 2] [--scale 1.0] [--out rows.jsonl]

``--jobs`` runs (problem, seed) pairs in that many processes (one torch thread each); both recipes of a pair run
in the same process, one after the other. ``--scale`` multiplies every iteration budget (0.25 for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# Per problem: Adam iterations (lr 1e-3), DeepXDE's L-BFGS maxiter, and the noisygrad method's iterations.
BUDGETS: dict[str, dict[str, int]] = {
    "poisson1d": {"adam": 1000, "lbfgs": 2000, "ours": 2000},
    "helmholtz2d": {"adam": 1000, "lbfgs": 2000, "ours": 1600},
    "burgers": {"adam": 2000, "lbfgs": 2000, "ours": 2000},
    "allen_cahn": {"adam": 2000, "lbfgs": 2000, "ours": 2000},
    "reaction_diffusion": {"adam": 1000, "lbfgs": 2000, "ours": 2000},
    "diffusion_inverse": {"adam": 2000, "lbfgs": 2000, "ours": 1500},
}
# The floors (median relative L2 of noisygrad's recipe) where it sets one.
FLOORS = {"poisson1d": 1e-7, "helmholtz2d": 1e-5, "burgers": 1e-4}


@dataclass
class Case:
    """A built problem: the uncompiled model, a test grid with its reference, and extras (the unknown)."""

    model: Any
    x_test: np.ndarray
    u_test: np.ndarray
    compile_args: dict[str, Any] = field(default_factory=dict)
    unknown: Any = None
    unknown_true: float = math.nan

    def error(self) -> float:
        net = self.model.net
        net.eval()
        with torch.no_grad():
            pred = net(torch.as_tensor(self.x_test, dtype=torch.float64)).numpy()
        return float(np.linalg.norm(pred - self.u_test) / np.linalg.norm(self.u_test))

    def unknown_error(self) -> float:
        if self.unknown is None:
            return math.nan
        return abs(float(self.unknown.detach()) - self.unknown_true) / abs(self.unknown_true)


def _grid(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    tt, xx = np.meshgrid(t, x, indexing="ij")
    return np.stack([xx.ravel(), tt.ravel()], axis=1)


def allen_cahn_reference(x: np.ndarray, t: np.ndarray, *, nodes: int = 2001, d: float = 0.001) -> np.ndarray:
    """``u_t = d u_xx + 5 (u - u^3)`` on [-1, 1], ``u(x, 0) = x^2 cos(pi x)``, ``u(+-1, t) = -1``, by fourth-order
    central differences on ``nodes`` points (second order next to the boundary) and DOP853; shape ``(len(t),
    len(x))``, interpolated in ``x`` by cubic splines."""
    from scipy.integrate import solve_ivp
    from scipy.interpolate import CubicSpline

    grid = np.linspace(-1.0, 1.0, nodes)
    h = grid[1] - grid[0]
    u0 = grid**2 * np.cos(np.pi * grid)

    def rhs(_t: float, inner: np.ndarray) -> np.ndarray:
        u = np.concatenate([[-1.0], inner, [-1.0]])
        lap = np.empty_like(inner)
        lap[0] = (u[0] - 2 * u[1] + u[2]) / h**2
        lap[-1] = (u[-3] - 2 * u[-2] + u[-1]) / h**2
        lap[1:-1] = (-u[:-4] + 16 * u[1:-3] - 30 * u[2:-2] + 16 * u[3:-1] - u[4:]) / (12 * h**2)
        return d * lap + 5.0 * (inner - inner**3)

    with np.errstate(over="ignore", invalid="ignore"):  # rejected explicit trial steps may overflow
        sol = solve_ivp(rhs, (0.0, float(t.max())), u0[1:-1], method="DOP853", t_eval=t, rtol=1e-11, atol=1e-12)
    if not sol.success:
        raise RuntimeError(f"the Allen-Cahn reference solve failed: {sol.message}")
    full = np.vstack([-np.ones(len(t)), sol.y, -np.ones(len(t))])  # (nodes, len(t))
    return np.stack([CubicSpline(grid, full[:, i])(x) for i in range(len(t))])


def _poisson1d(dde: Any, seed: int) -> Case:
    from noisygrad.pinn import problems

    p = problems.build("poisson1d", seed=seed)
    return Case(p.model, p.x_test, p.u_test)


def _burgers(dde: Any, seed: int) -> Case:
    from noisygrad.pinn.problems import BURGERS_NU, burgers_reference

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_x = dde.grad.jacobian(u, x, i=0, j=0)
        u_t = dde.grad.jacobian(u, x, i=0, j=1)
        return u_t + u * u_x - BURGERS_NU * dde.grad.hessian(u, x, i=0, j=0)

    geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-1.0, 1.0), dde.geometry.TimeDomain(0.0, 0.99))
    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geom, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial)
    data = dde.data.TimePDE(geom, pde, [bc, ic], num_domain=8000, num_boundary=80, num_initial=160)
    net = dde.nn.FNN([2, 20, 20, 20, 1], "tanh", "Glorot normal")
    xs, ts = np.linspace(-1.0, 1.0, 256), np.linspace(0.0, 0.99, 100)
    return Case(dde.Model(data, net), _grid(xs, ts), burgers_reference(xs, ts).reshape(-1, 1))


def _helmholtz2d(dde: Any, seed: int) -> Case:
    k0 = 4.0 * math.pi

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        u_yy = dde.grad.hessian(u, x, i=1, j=1)
        f = k0**2 * torch.sin(k0 * x[:, 0:1]) * torch.sin(k0 * x[:, 1:2])
        return -u_xx - u_yy - k0**2 * u - f

    def transform(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] * (1 - x[:, 0:1]) * x[:, 1:2] * (1 - x[:, 1:2]) * u

    data = dde.data.PDE(dde.geometry.Rectangle([0.0, 0.0], [1.0, 1.0]), pde, [], num_domain=400, num_boundary=80)
    net = dde.nn.FNN([2, 30, 30, 30, 1], "sin", "Glorot uniform")
    net.apply_output_transform(transform)
    g = np.linspace(0.0, 1.0, 101)
    xx, yy = np.meshgrid(g, g)
    x = np.stack([xx.ravel(), yy.ravel()], axis=1)
    u = (np.sin(k0 * x[:, 0]) * np.sin(k0 * x[:, 1])).reshape(-1, 1)
    return Case(dde.Model(data, net), x, u)


_AC_REFERENCE: dict[str, np.ndarray] = {}


def _allen_cahn(dde: Any, seed: int) -> Case:
    d = 0.001

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_t = dde.grad.jacobian(u, x, i=0, j=1)
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        return u_t - d * u_xx - 5.0 * (u - u**3)

    def transform(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] ** 2 * torch.cos(math.pi * x[:, 0:1]) + x[:, 1:2] * (1 - x[:, 0:1] ** 2) * u

    geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-1.0, 1.0), dde.geometry.TimeDomain(0.0, 1.0))
    data = dde.data.TimePDE(geom, pde, [], num_domain=2000, num_boundary=100, num_initial=200)
    net = dde.nn.FNN([2, 20, 20, 20, 1], "tanh", "Glorot normal")
    net.apply_output_transform(transform)
    xs, ts = np.linspace(-1.0, 1.0, 201), np.linspace(0.0, 1.0, 101)
    if "u" not in _AC_REFERENCE:
        _AC_REFERENCE["u"] = allen_cahn_reference(xs, ts)
    return Case(dde.Model(data, net), _grid(xs, ts), _AC_REFERENCE["u"].reshape(-1, 1))


def _reaction_solution(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.exp(-t) * (np.sin(x) + np.sin(2 * x) / 2 + np.sin(3 * x) / 3 + np.sin(4 * x) / 4 + np.sin(8 * x) / 8)


def _reaction_diffusion(dde: Any, seed: int) -> Case:
    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_t = dde.grad.jacobian(u, x, i=0, j=1)
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        s = x[:, 0:1]
        source = (
            3 * torch.sin(2 * s) / 2 + 8 * torch.sin(3 * s) / 3 + 15 * torch.sin(4 * s) / 4 + 63 * torch.sin(8 * s) / 8
        )
        return u_t - u_xx - torch.exp(-x[:, 1:2]) * source

    def transform(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        s, t = x[:, 0:1], x[:, 1:2]
        initial = (
            torch.sin(s) + torch.sin(2 * s) / 2 + torch.sin(3 * s) / 3 + torch.sin(4 * s) / 4 + torch.sin(8 * s) / 8
        )
        return t * (math.pi**2 - s**2) * u + initial

    geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-math.pi, math.pi), dde.geometry.TimeDomain(0.0, 1.0))
    data = dde.data.TimePDE(geom, pde, [], num_domain=320)
    net = dde.nn.FNN([2, 20, 20, 20, 1], "tanh", "Glorot uniform")
    net.apply_output_transform(transform)
    xs, ts = np.linspace(-math.pi, math.pi, 201), np.linspace(0.0, 1.0, 101)
    x = _grid(xs, ts)
    return Case(dde.Model(data, net), x, _reaction_solution(x[:, 0:1], x[:, 1:2]))


def _diffusion_inverse(dde: Any, seed: int) -> Case:
    unknown = dde.Variable(2.0)

    def pde(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        u_t = dde.grad.jacobian(u, x, i=0, j=1)
        u_xx = dde.grad.hessian(u, x, i=0, j=0)
        s = torch.sin(math.pi * x[:, 0:1])
        return u_t - unknown * u_xx + torch.exp(-x[:, 1:2]) * (s - math.pi**2 * s)

    def exact(x: np.ndarray) -> np.ndarray:
        return np.sin(np.pi * x[:, 0:1]) * np.exp(-x[:, 1:2])

    geom = dde.geometry.GeometryXTime(dde.geometry.Interval(-1.0, 1.0), dde.geometry.TimeDomain(0.0, 1.0))
    bc = dde.icbc.DirichletBC(geom, exact, lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geom, exact, lambda _, on_initial: on_initial)
    observe_x = np.vstack((np.linspace(-1, 1, num=10), np.full(10, 1.0))).T
    observe = dde.icbc.PointSetBC(observe_x, exact(observe_x), component=0)
    data = dde.data.TimePDE(
        geom, pde, [bc, ic, observe], num_domain=40, num_boundary=20, num_initial=10, anchors=observe_x
    )
    net = dde.nn.FNN([2, 32, 32, 32, 1], "tanh", "Glorot uniform")
    x = _grid(np.linspace(-1.0, 1.0, 201), np.linspace(0.0, 1.0, 101))
    return Case(
        dde.Model(data, net),
        x,
        exact(x),
        {"external_trainable_variables": [unknown]},
        unknown=unknown,
        unknown_true=1.0,
    )


BUILDERS: dict[str, Callable[[Any, int], Case]] = {
    "poisson1d": _poisson1d,
    "helmholtz2d": _helmholtz2d,
    "burgers": _burgers,
    "allen_cahn": _allen_cahn,
    "reaction_diffusion": _reaction_diffusion,
    "diffusion_inverse": _diffusion_inverse,
}


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_pair(
    name: str, seed: int, method: str, scale: float, loss_transform: str | None = None
) -> list[dict[str, Any]]:
    """Both recipes on one (problem, seed): the shared Adam phase, then DeepXDE's L-BFGS and noisygrad's method."""
    torch.set_num_threads(1)
    import noisygrad.pinn as ngp
    from noisygrad.pinn import problems
    from noisygrad.pinn._deepxde import deepxde, quiet
    from noisygrad.pinn.optimizers import quasi_newton

    dde = deepxde()
    budget = {k: max(round(v * scale), 1) for k, v in BUDGETS[name].items()}
    with problems.default_float("float64"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DeepXDE's own deprecation chatter
        with quiet():
            dde.config.set_random_seed(seed)
        case = BUILDERS[name](dde, seed)
        model = case.model

        def adam() -> None:
            with quiet():
                model.compile("adam", lr=1e-3, verbose=0, **case.compile_args)
                model.train(iterations=budget["adam"], verbose=0)

        _, adam_wall, adam_cpu = _timed(adam)
        after_adam = case.error()
        net_state = {k: v.clone() for k, v in model.net.state_dict().items()}
        unknown0 = None if case.unknown is None else case.unknown.detach().clone()

        def deepxde_lbfgs() -> int:
            start = model.train_state.step
            with quiet():
                dde.optimizers.set_LBFGS_options(maxiter=budget["lbfgs"])
                try:
                    model.compile("L-BFGS", verbose=0, **case.compile_args)
                    model.train(verbose=0)
                finally:
                    dde.optimizers.set_LBFGS_options()
            return int(model.train_state.step - start)

        def ours() -> Any:
            chunk = math.gcd(budget["ours"], 500)  # chunks that divide the budget: exactly that many iterations
            optimizer: Any = method
            if loss_transform is not None:
                optimizer = quasi_newton(model, method, max_iter=chunk, loss_transform=loss_transform)
            return ngp.train(model, optimizer, iterations=budget["ours"], lbfgs_chunk=chunk, verbose=0)

        rows = []
        order = ("deepxde", "noisygrad") if seed % 2 == 0 else ("noisygrad", "deepxde")
        for recipe in order:
            model.net.load_state_dict(net_state)
            if case.unknown is not None:
                with torch.no_grad():
                    case.unknown.copy_(unknown0)
            if recipe == "deepxde":
                iterations, wall, cpu = _timed(deepxde_lbfgs)
                label = "Adam + L-BFGS (DeepXDE)"
            else:
                result, wall, cpu = _timed(ours)
                iterations = result.iterations
                label = f"Adam + {method}{'' if loss_transform is None else f' on {loss_transform}(L)'} (noisygrad)"
            rows.append(
                {
                    "problem": name,
                    "seed": seed,
                    "recipe": recipe,
                    "label": label,
                    "adam_iterations": budget["adam"],
                    "iterations": iterations,
                    "error_after_adam": after_adam,
                    "error": case.error(),
                    "unknown_error": case.unknown_error(),
                    "wall_s": round(adam_wall + wall, 2),
                    "cpu_s": round(adam_cpu + cpu, 2),
                }
            )
    return rows


def _table(rows: list[dict[str, Any]], problems_: list[str]) -> str:
    lines = [
        "| problem | DeepXDE Adam + L-BFGS: rel. L2 | wall s | noisygrad: rel. L2 | wall s | error ratio | "
        "wall ratio | floor | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in problems_:
        ref = [r for r in rows if r["problem"] == name and r["recipe"] == "deepxde"]
        new = [r for r in rows if r["problem"] == name and r["recipe"] == "noisygrad"]
        if not ref or not new:
            continue
        e_ref, e_new = statistics.median(r["error"] for r in ref), statistics.median(r["error"] for r in new)
        w_ref, w_new = statistics.median(r["wall_s"] for r in ref), statistics.median(r["wall_s"] for r in new)
        floor = FLOORS.get(name)
        extra = ""
        if name == "diffusion_inverse":
            c_ref = statistics.median(r["unknown_error"] for r in ref)
            c_new = statistics.median(r["unknown_error"] for r in new)
            extra = f" (C: {c_ref:.1e} / {c_new:.1e})"
        lines.append(
            f"| {name}{extra} | {e_ref:.2e} | {w_ref:.0f} | {e_new:.2e} | {w_new:.0f} | {e_ref / e_new:.0f}x | "
            f"{w_new / w_ref:.2f} | {'-' if floor is None else f'{floor:g}'} | {len(new)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--method", default="ssbroyden", choices=["ssbroyden", "ssbfgs", "bfgs", "engd", "lbfgs"])
    parser.add_argument(
        "--loss-transform", default=None, choices=["sqrt", "log"], help="BFGS family: train sqrt(L)/log(L)"
    )
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", default=None, help="append the JSON rows to this file")
    args = parser.parse_args()
    pairs = [(name, seed) for name in args.problems for seed in args.seeds]
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()

    def record(batch: list[dict[str, Any]]) -> None:
        for row in batch:
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")

    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                pool.submit(run_pair, name, seed, args.method, args.scale, args.loss_transform) for name, seed in pairs
            ]
            for future in futures:
                record(future.result())
    else:
        for name, seed in pairs:
            record(run_pair(name, seed, args.method, args.scale, args.loss_transform))
    transform = "" if args.loss_transform is None else f", loss_transform {args.loss_transform}"
    print(f"\nmethod {args.method}{transform}, scale {args.scale}, total wall {time.perf_counter() - start:.0f} s\n")
    print(_table(rows, args.problems))


if __name__ == "__main__":
    main()
