"""Samples per second of noisygrad.dsp's filters against padasip (LMS, NLMS, RLS) and filterpy (Kalman).

Every pair runs in the same process on the same data (64-tap system identification, white Gaussian input).
Outputs are compared before timing, so the two sides compute the same thing. Both sides are then timed the
same way: one untimed warm-up call each (it compiles our numba kernels), then ``--repeats`` timed calls each,
interleaved (anchor, ours, anchor, ours, ...) so that a change in the machine's load hits both, and the best
(shortest) call of each side is kept. Rates are CPU time (``time.process_time``, one thread), the steadier
measure on a shared machine; wall-clock rates are shown too. Batched rows count filter-samples (channels x
samples) per second against padasip's single-filter rate.

    .venv/bin/python benchmarks/dsp_filters.py [--taps 64] [--samples 20000] [--channels 1024] [--block 512]
                                               [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import padasip as pa
from filterpy.kalman import KalmanFilter
from scipy.signal import lfilter

from noisygrad.dsp import LMS, NLMS, RLS, Kalman, rls_to_kalman, tapped_delay_line

Rate = tuple[float, float]  # (items per CPU second, items per wall second)


def best_times(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """(CPU seconds, wall seconds) of each function's best call, every function timed alike.

    One warm-up call each, then ``repeats`` calls each, interleaved, so that a change in load hits all sides.
    """
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


def rates(anchor: Callable[[], object], ours: Callable[[], object], items: int, repeats: int) -> tuple[Rate, Rate]:
    """Rates of the anchor and of ours on the same ``items``, timed alike (see :func:`best_times`)."""
    (ca, wa), (co, wo) = best_times([anchor, ours], repeats)
    return (items / ca, items / wa), (items / co, items / wo)


def si(value: float) -> str:
    """A rate with a k or M suffix."""
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def row(name: str, anchor: Rate, ours: Rate, note: str = "") -> None:
    print(
        f"{name:<38} {si(anchor[0]):>9} {si(ours[0]):>9} {ours[0] / anchor[0]:>8.1f}x"
        f"   (wall {si(anchor[1])} vs {si(ours[1])}, {ours[1] / anchor[1]:.1f}x) {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=64)
    parser.add_argument("--samples", type=int, default=20000, help="samples for padasip's LMS/NLMS")
    parser.add_argument("--channels", type=int, default=1024, help="LMS channels (RLS: a sixteenth of them)")
    parser.add_argument("--block", type=int, default=512, help="samples per channel per run() call when batched")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side (after one warm-up each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    taps, n, repeats = args.taps, args.samples, args.repeats
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(n)
    d = lfilter(rng.standard_normal(taps) / np.sqrt(taps), 1.0, x) + 0.1 * rng.standard_normal(n)
    u = tapped_delay_line(x, taps)
    mu = 0.5 / (taps + 2)
    print(f"{taps} taps, white Gaussian input; rates are samples per CPU second (one thread), best of {repeats}")
    print(f"{'':<38} {'anchor':>9} {'ours':>9} {'ratio':>9}")

    for name, ours_f, ref_f, m in (
        ("LMS vs padasip FilterLMS", lambda: LMS(taps, mu), lambda: pa.filters.FilterLMS(taps, mu=mu, w="zeros"), n),
        ("NLMS vs padasip FilterNLMS", lambda: NLMS(taps, 0.5, eps=1e-3), lambda: pa.filters.FilterNLMS(
            taps, mu=0.5, eps=1e-3, w="zeros"), n),
        ("RLS vs padasip FilterRLS", lambda: RLS(taps, 0.999), lambda: pa.filters.FilterRLS(
            taps, mu=0.999, eps=0.01, w="zeros"), n // 10),
    ):  # fmt: skip
        y_ref = ref_f().run(d[:m], u[:m])[0]
        y_ours = ours_f().run(x[:m], d[:m])[0]
        gap = float(np.abs(y_ref - y_ours).max())
        anchor, ours = rates(
            lambda ref_f=ref_f, m=m: ref_f().run(d[:m], u[:m]),
            lambda ours_f=ours_f, m=m: ours_f().run(x[:m], d[:m]),
            m,
            repeats,
        )
        row(name, anchor, ours, f"max|y - y_padasip| = {gap:.1e}")
        single = anchor

        if name.startswith(("LMS", "RLS")):
            # many channels streamed block by block, as a multichannel audio or array front end would
            b = args.channels if name.startswith("LMS") else max(1, args.channels // 16)
            blocks = 8 if name.startswith("LMS") else 2
            xb = rng.standard_normal((blocks, b, args.block))
            db = rng.standard_normal((blocks, b, args.block))

            def stream(ours_f=ours_f, xb=xb, db=db) -> None:
                f = ours_f()
                for k in range(xb.shape[0]):
                    f.run(xb[k], db[k])

            # against the single-filter anchor of the row above; ours timed as there (warm-up + repeats)
            [(cpu, wall)] = best_times([stream], repeats)
            batched = (xb.size / cpu, xb.size / wall)
            note = f"filter-samples/s in blocks of {args.block} vs padasip one filter"
            row(f"  {name.split()[0]} batch of {b} channels", single, batched, note)

    # Kalman: RLS written as a Kalman filter (F = I, Q = 0, H_t = u_t^T, fading memory 1/lam), dim_x = taps
    m = n // 20
    kf_ours = lambda: rls_to_kalman(RLS(taps, 0.999)).run(d[:m], H=u[:m])  # noqa: E731

    def filterpy_means(kf: KalmanFilter) -> np.ndarray:
        """filterpy's filtered means over the first ``m`` samples, the regressor rows as observation matrices."""
        out = np.empty((m, taps))
        for t in range(m):
            kf.predict()
            kf.update(d[t], H=u[t][None])
            out[t] = kf.x[:, 0]
        return out

    def kf_ref() -> np.ndarray:
        kf = KalmanFilter(dim_x=taps, dim_z=1)
        kf.F, kf.Q, kf.R, kf.P, kf.alpha = (
            np.eye(taps),
            np.zeros((taps, taps)),
            np.eye(1),
            100 * np.eye(taps),
            0.999**-0.5,
        )
        return filterpy_means(kf)

    gap = float(np.abs(kf_ref() - kf_ours().means).max())
    row("Kalman (RLS as KF) vs filterpy", *rates(kf_ref, kf_ours, m, repeats), f"max|x - x_filterpy| = {gap:.1e}")
    # a dense transition matrix: O(n^3) per step on both sides (filterpy's products are BLAS calls)
    f_dense = np.eye(taps) + 1e-3 * rng.standard_normal((taps, taps))

    def dense_ref() -> np.ndarray:
        kf = KalmanFilter(dim_x=taps, dim_z=1)
        kf.F, kf.Q, kf.R = f_dense, 1e-4 * np.eye(taps), np.eye(1)
        return filterpy_means(kf)

    def dense_ours() -> np.ndarray:
        kf = Kalman(f_dense, np.zeros((1, taps)), 1e-4 * np.eye(taps), 1.0, np.zeros(taps), np.eye(taps))
        return kf.run(d[:m], H=u[:m]).means

    gap = float(np.abs(dense_ref() - dense_ours()).max())
    row(f"Kalman dim_x={taps}, dense F vs filterpy", *rates(dense_ref, dense_ours, m, repeats),
        f"max|x - x_filterpy| = {gap:.1e}")  # fmt: skip
    F = np.array([[1.0, 1.0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.0], [0, 0, 0, 1.0]])
    H = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])
    z = rng.standard_normal((n // 4, 2))

    def small_ref() -> np.ndarray:
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.F, kf.H, kf.Q, kf.R, kf.P = F, H, 1e-3 * np.eye(4), 0.1 * np.eye(2), np.eye(4)
        out = np.empty((z.shape[0], 4))
        for t in range(z.shape[0]):
            kf.predict()
            kf.update(z[t])
            out[t] = kf.x[:, 0]
        return out

    small_ours = lambda: Kalman(F, H, 1e-3 * np.eye(4), 0.1 * np.eye(2), np.zeros(4), np.eye(4)).run(z)  # noqa: E731
    gap = float(np.abs(small_ref() - small_ours().means).max())
    row("Kalman dim_x=4, dim_z=2 vs filterpy", *rates(small_ref, small_ours, z.shape[0], repeats),
        f"max|x - x_filterpy| = {gap:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
