"""SVRG and SAGA (noisygrad) against scikit-learn's ``saga`` solver: time to F - F* <= 1e-8.

The same objective for every solver: scikit-learn's breast-cancer data, standardised, with an explicit intercept
column (``fit_intercept=False`` everywhere), ``F(w) = mean log(1 + exp(-y x.w)) + (lam/2)|w|^2`` with
``lam = 1/N`` (scikit-learn's ``C = 1``). ``F*`` from Newton's method. scikit-learn runs a growing number of
epochs (``tol=0``) until it reaches the target; noisygrad's estimators run under ``minimize`` with a
callback that checks ``F`` once per pass (the check is timed too). Wall-clock and CPU times and their ratios are
printed, with passes over the data. One thread for torch; on a shared machine the CPU-time ratio is steadier.

    .venv/bin/python benchmarks/core_vr.py [--target 1e-8] [--batch 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from noisygrad import SGD, FiniteSum, minimize
from noisygrad.variance_reduction import SAGA, SVRG


def problem() -> tuple[np.ndarray, np.ndarray, float]:
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X = np.hstack([X, np.ones((X.shape[0], 1))])
    return X, np.where(y == 1, 1.0, -1.0), 1.0 / X.shape[0]


def objective_value(w: np.ndarray, X: np.ndarray, y: np.ndarray, lam: float) -> float:
    return float(np.logaddexp(0.0, -y * (X @ w)).mean() + 0.5 * lam * w @ w)


def newton(X: np.ndarray, y: np.ndarray, lam: float) -> float:
    w = np.zeros(X.shape[1])
    n = X.shape[0]
    for _ in range(50):
        z = y * (X @ w)
        s = 1.0 / (1.0 + np.exp(z))  # sigmoid(-z)
        grad = -(X.T @ (y * s)) / n + lam * w
        hess = (X.T * (s * (1 - s))) @ X / n + lam * np.eye(X.shape[1])
        w = w - np.linalg.solve(hess, grad)
    return objective_value(w, X, y, lam)


def sklearn_saga(X: np.ndarray, y: np.ndarray, lam: float, f_star: float, target: float) -> tuple[int, float, float]:
    for epochs in (200, 400, 600, 800, 1000, 1200, 1400, 1700, 2000, 2500, 3000, 4000, 5000):
        model = LogisticRegression(C=1.0, solver="saga", fit_intercept=False, tol=0.0, max_iter=epochs)
        wall, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if objective_value(model.coef_.ravel(), X, y, lam) - f_star <= target:
            return epochs, wall, cpu
    return -1, float("nan"), float("nan")


def ours(
    name: str, objective: FiniteSum, lr: float, batch: int, f_star: float, target: float
) -> tuple[float, float, float]:
    n = objective.n_examples
    estimator = SVRG(objective, batch) if name == "SVRG" else SAGA(objective, batch)
    check_every = max(1, n // batch)

    def reached(info) -> bool:  # type: ignore[no-untyped-def]
        return info.step % check_every == 0 and objective.value(info.x) - f_star <= target

    x0 = torch.zeros(objective.data[0].shape[1], dtype=torch.float64)
    wall, cpu = time.perf_counter(), time.process_time()
    result = minimize(estimator, SGD(lr), x0, steps=200_000, callbacks=[reached], record_every=10**9)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    passes = result.cost.examples / n if result.stopped_by_callback else float("nan")
    return passes, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=1e-8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y, lam = problem()
    f_star = newton(X, y, lam)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    objective = FiniteSum(
        lambda w, X, y: torch.nn.functional.softplus(-y * (X @ w)).mean() + 0.5 * lam * (w @ w), (Xt, yt)
    )
    epochs, sk_wall, sk_cpu = sklearn_saga(X, y, lam, f_star, args.target)
    print(f"breast cancer, N={X.shape[0]}, d={X.shape[1]}, lam=1/N, target F - F* <= {args.target:g}")
    print(f"  sklearn saga       {epochs:6d} epochs  wall {sk_wall:7.2f} s  cpu {sk_cpu:7.2f} s   1.00x")
    for name, lr in (("SVRG", 0.3), ("SAGA", 0.3)):
        passes, wall, cpu = ours(name, objective, lr, args.batch, f_star, args.target)
        print(
            f"  noisygrad {name} b={args.batch} lr={lr}  {passes:8.0f} passes  wall {wall:7.2f} s  cpu {cpu:7.2f} s"
            f"   {wall / sk_wall:.1f}x wall, {cpu / sk_cpu:.1f}x cpu"
        )


if __name__ == "__main__":
    main()
