"""Samples per second of noisygrad.dsp's filters against padasip (LMS, NLMS, RLS) and filterpy (Kalman).

Every pair runs in the same process on the same data (64-tap system identification, white Gaussian input),
the anchor first, ours after one warm-up call that compiles the numba kernel; the best of a few repeats is
kept. Outputs are compared before timing, so the two sides compute the same thing. Rates are CPU time
(``time.process_time``, one thread), the steadier measure on a shared machine; wall-clock rates are shown too.
Batched rows count filter-samples (channels x samples) per second against padasip's single-filter rate.

    .venv/bin/python benchmarks/dsp_filters.py [--taps 64] [--samples 20000] [--channels 1024] [--block 512]
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


def rate(fn: Callable[[], object], items: int, repeats: int = 3) -> tuple[float, float]:
    """(items per CPU second, items per wall second), best of ``repeats``."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return items / max(min(cpu), 1e-9), items / max(min(wall), 1e-9)


def row(name: str, anchor: tuple[float, float], ours: tuple[float, float], note: str = "") -> None:
    print(
        f"{name:<34} {anchor[0] / 1e3:>10.1f}k {ours[0] / 1e6:>10.2f}M {ours[0] / anchor[0]:>8.1f}x"
        f"   (wall {anchor[1] / 1e3:.1f}k vs {ours[1] / 1e6:.2f}M, {ours[1] / anchor[1]:.1f}x) {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=64)
    parser.add_argument("--samples", type=int, default=20000, help="samples for padasip's LMS/NLMS")
    parser.add_argument("--channels", type=int, default=1024, help="LMS channels (RLS: a sixteenth of them)")
    parser.add_argument("--block", type=int, default=512, help="samples per channel per run() call when batched")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    taps, n = args.taps, args.samples
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(n)
    d = lfilter(rng.standard_normal(taps) / np.sqrt(taps), 1.0, x) + 0.1 * rng.standard_normal(n)
    u = tapped_delay_line(x, taps)
    mu = 0.5 / (taps + 2)
    print(f"{taps} taps, white Gaussian input; rates are samples per CPU second (one thread)")
    print(f"{'':<34} {'anchor':>11} {'ours':>11} {'ratio':>9}")

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
        anchor = rate(lambda ref_f=ref_f, m=m: ref_f().run(d[:m], u[:m]), m, repeats=1)
        ours = rate(lambda ours_f=ours_f, m=m: ours_f().run(x[:m], d[:m]), m, repeats=5)
        row(name, anchor, ours, f"max|y - y_padasip| = {gap:.1e}")
        single = anchor

        if name.startswith(("LMS", "RLS")):
            # many channels streamed block by block, as a multichannel audio or array front end would
            b = args.channels if name.startswith("LMS") else max(1, args.channels // 16)
            blocks = 8 if name.startswith("LMS") else 2
            xb = rng.standard_normal((blocks, b, args.block))
            db = rng.standard_normal((blocks, b, args.block))
            ours_f().run(xb[0, :, :10], db[0, :, :10])

            def stream(ours_f=ours_f, xb=xb, db=db) -> None:
                f = ours_f()
                for k in range(xb.shape[0]):
                    f.run(xb[k], db[k])

            batched = rate(stream, xb.size)
            note = f"filter-samples/s in blocks of {args.block} vs padasip one filter"
            row(f"  {name.split()[0]} batch of {b} channels", single, batched, note)

    # Kalman: RLS written as a Kalman filter (F = I, Q = 0, H_t = u_t^T, fading memory 1/lam), dim_x = taps
    m = n // 20
    kf_ours = lambda: rls_to_kalman(RLS(taps, 0.999)).run(d[:m], H=u[:m])  # noqa: E731

    def kf_ref() -> np.ndarray:
        kf = KalmanFilter(dim_x=taps, dim_z=1)
        kf.F, kf.Q, kf.R, kf.P, kf.alpha = (
            np.eye(taps),
            np.zeros((taps, taps)),
            np.eye(1),
            100 * np.eye(taps),
            0.999**-0.5,
        )
        out = np.empty((m, taps))
        for t in range(m):
            kf.predict()
            kf.update(d[t], H=u[t][None])
            out[t] = kf.x[:, 0]
        return out

    gap = float(np.abs(kf_ref() - kf_ours().means).max())
    row("Kalman (RLS as KF) vs filterpy", rate(kf_ref, m, 1), rate(kf_ours, m), f"max|x - x_filterpy| = {gap:.1e}")
    # a dense transition matrix: O(n^3) per step on both sides (filterpy's products are BLAS calls)
    f_dense = np.eye(taps) + 1e-3 * rng.standard_normal((taps, taps))

    def dense_ref() -> None:
        kf = KalmanFilter(dim_x=taps, dim_z=1)
        kf.F, kf.Q, kf.R = f_dense, 1e-4 * np.eye(taps), np.eye(1)
        for t in range(m):
            kf.predict()
            kf.update(d[t], H=u[t][None])

    def dense_ours() -> None:
        kf = Kalman(f_dense, np.zeros((1, taps)), 1e-4 * np.eye(taps), 1.0, np.zeros(taps), np.eye(taps))
        kf.run(d[:m], H=u[:m])

    dense_ours()
    row(f"Kalman dim_x={taps}, dense F vs filterpy", rate(dense_ref, m, 1), rate(dense_ours, m))
    F = np.array([[1.0, 1.0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.0], [0, 0, 0, 1.0]])
    H = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])
    z = rng.standard_normal((n, 2))

    def small_ref() -> None:
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.F, kf.H, kf.Q, kf.R = F, H, 1e-3 * np.eye(4), 0.1 * np.eye(2)
        for t in range(n // 4):
            kf.predict()
            kf.update(z[t])

    small_ours = lambda: Kalman(F, H, 1e-3 * np.eye(4), 0.1 * np.eye(2), np.zeros(4), np.eye(4)).run(z)  # noqa: E731
    small_ours()
    row("Kalman dim_x=4, dim_z=2 vs filterpy", rate(small_ref, n // 4, 1), rate(small_ours, n))


if __name__ == "__main__":
    main()
