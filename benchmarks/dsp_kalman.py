"""Steps per second of noisygrad.dsp.Kalman against filterpy's KalmanFilter, dense transitions of 4 to 256 states.

Every pair runs in the same process on the same model and data: a dense transition ``F = I + A`` (``A`` random,
scaled so the filter stays well behaved), ``m`` measured combinations (2 up to 16 states, ``n / 8`` above),
``Q``, ``R`` and ``P0`` positive definite. Outputs are compared before timing (``max|x - x_filterpy|`` over the
run), so both sides compute the same thing. Then both are timed alike: one untimed warm-up call each (it
compiles our numba kernels), then ``--repeats`` timed calls each, interleaved (filterpy, ours, filterpy, ...)
so that a change in the machine's load hits both, keeping each side's best call. Rates are CPU time
(``time.process_time``, BLAS on one thread), the steadier measure on a shared machine; wall-clock rates are
shown too.

Rows per size: ``batch_filter`` of a whole sequence on both sides (filterpy's is a Python loop over its
``predict``/``update``; ours is one compiled call), and a user's own ``predict(); update(z)`` loop on both
sides. Then our square-root form's ``batch_filter`` (more robust, slower at large n), a batch of independent
filters in one call (filter-steps per second against filterpy's single filter), and float32.

    .venv/bin/python benchmarks/dsp_kalman.py [--sizes 4 16 64 256] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from filterpy.kalman import KalmanFilter

from noisygrad.dsp import Kalman

Rate = tuple[float, float]  # (items per CPU second, items per wall second)
STEPS = {4: 4000, 16: 2000, 64: 400, 256: 30}  # filterpy's cost grows like n^3: keep each call near 0.1-0.5 s


def best_times(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """(CPU seconds, wall seconds) of each function's best call: one warm-up each, then interleaved repeats."""
    cpu: list[list[float]] = [[] for _ in fns]
    wall: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    return [(max(min(c), 1e-9), max(min(w), 1e-9)) for c, w in zip(cpu, wall, strict=True)]


def si(value: float) -> str:
    """A rate with three significant digits and a k or M suffix."""
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    return f"{value / 1e3:.1f}k" if value >= 1e4 else f"{value:.0f}"


def row(name: str, anchor: Rate, ours: Rate, note: str = "") -> None:
    print(
        f"{name:<44} {si(anchor[0]):>9} {si(ours[0]):>9} {ours[0] / anchor[0]:>8.1f}x"
        f"   (wall {si(anchor[1])} vs {si(ours[1])}, {ours[1] / anchor[1]:.1f}x) {note}"
    )


def model(n: int, rng: np.random.Generator):
    m = 2 if n <= 16 else n // 8
    F = np.eye(n) + 0.1 * rng.standard_normal((n, n)) / np.sqrt(n)
    F /= max(1.0, float(np.abs(np.linalg.eigvals(F)).max()))  # spectral radius <= 1
    H = rng.standard_normal((m, n)) / np.sqrt(n)
    A = rng.standard_normal((n, n))
    Q = 1e-3 * (A @ A.T / n + np.eye(n))
    R = 0.1 * np.eye(m)
    return F, H, Q, R, m


def bench_size(n: int, rng: np.random.Generator, repeats: int) -> None:
    """The rows of one state dimension ``n``."""
    F, H, Q, R, m = model(n, rng)
    steps = STEPS.get(n, max(10, int(2.5e8 / n**3)))
    zs = rng.standard_normal((steps, m))

    def filterpy_filter() -> KalmanFilter:
        kf = KalmanFilter(dim_x=n, dim_z=m)
        kf.F, kf.H, kf.Q, kf.R, kf.x = F, H, Q, R, np.zeros(n)  # a 1-D state: zs rows are (m,) vectors
        return kf

    def ours_filter(form: str = "joseph", dtype: type = np.float64, batch: int = 0) -> Kalman:
        x0 = np.zeros((batch, n) if batch else n)
        return Kalman(F, H, Q, R, x0, np.eye(n), form=form, dtype=dtype)

    def filterpy_batch() -> np.ndarray:
        return filterpy_filter().batch_filter(zs)[0]

    def filterpy_loop() -> np.ndarray:
        kf = filterpy_filter()
        out = np.empty((steps, n))
        for t in range(steps):
            kf.predict()
            kf.update(zs[t])
            out[t] = kf.x
        return out

    def ours_batch(form: str = "joseph", dtype: type = np.float64) -> np.ndarray:
        return ours_filter(form, dtype).batch_filter(zs).means

    def ours_loop() -> np.ndarray:
        kf = ours_filter()
        out = np.empty((steps, n))
        for t in range(steps):
            kf.predict()
            kf.update(zs[t])
            out[t] = kf.x
        return out

    ref = filterpy_loop()
    label = f"n={n}, m={m}"
    fp_batch: Rate = (0.0, 0.0)
    for name, ours in (
        ("batch_filter", ours_batch),
        ("predict/update loop", ours_loop),
        ("square-root form batch_filter", lambda: ours_batch("sqrt")),
        ("float32 batch_filter", lambda: ours_batch("joseph", np.float32)),
    ):
        gap = float(np.abs(ours() - ref).max())
        anchor = filterpy_loop if name == "predict/update loop" else filterpy_batch
        (ca, wa), (cb, wb) = best_times([anchor, ours], repeats)
        if name == "batch_filter":
            fp_batch = (steps / ca, steps / wa)
        row(f"{label}: {name}", (steps / ca, steps / wa), (steps / cb, steps / wb), f"max|x - x_fp| = {gap:.1e}")
    if n <= 16:  # many small filters in lock-step (one per tracked object): filter-steps per second
        nb = 256
        zb = rng.standard_normal((steps // 8, nb, m))
        [(cb, wb)] = best_times([lambda: ours_filter(batch=nb).batch_filter(zb, covariances=False)], repeats)
        items = zb.shape[0] * nb
        row(f"{label}: {nb} filters in one batch_filter", fp_batch, (items / cb, items / wb),
            "filter-steps/s vs filterpy's one filter")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64, 256])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side (after one warm-up each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"dense transitions; steps per CPU second (BLAS on one thread), best of {args.repeats}")
    print(f"{'':<44} {'filterpy':>9} {'ours':>9} {'ratio':>9}")
    for n in args.sizes:
        bench_size(n, rng, args.repeats)


if __name__ == "__main__":
    main()
