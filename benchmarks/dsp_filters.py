"""Samples per second of noisygrad.dsp's adaptive filters against padasip's, and batched LMS throughput.

Part 1, one filter against padasip: every one of padasip's filters (LMS, NLMS, RLS and the twelve others) and
ours run in the same process on the same data (64-tap system identification, white Gaussian input). Outputs
are compared first (``max|y - y_padasip|``), so both sides compute the same thing. Then both are timed alike:
one untimed warm-up call each (it compiles our numba kernels), then ``--repeats`` timed calls each, interleaved
(padasip, ours, padasip, ours, ...) so that a change in the machine's load hits both. Rates are CPU time
(``time.process_time``; padasip's numpy on one BLAS thread, ours on one numba thread), the steadier measure
on a shared machine. Each row shows the median rate of each side, the ratio of the medians, and the spread
(slowest-fastest call) of ours.

Part 2, many filters at once: 1024 LMS channels of 64 taps streamed in blocks of 512 samples (8 blocks), in
filter-samples per second (channels x samples), wall clock, with 1 numba thread and with every thread
(``numba.set_num_threads``), interleaved, float64 and float32, against padasip's single-filter rate of part 1.
float32 runs its channels four at a time in lock-step, float64 two at a time (``_kernels._lms_quad``); the row "the
same in pairs" runs float32 two at a time, to show what the grouping gains. Wall clock because threads are the
point; on a shared machine it moves with the load, so the row shows the median and the spread of ``--repeats``
calls, the load average, and the rate per CPU second (all threads' CPU time; idle threads sleep,
``OMP_WAIT_POLICY=PASSIVE``), which bounds what the cores deliver when they are free: ``threads x`` that rate.

The Kalman filter against filterpy is ``benchmarks/dsp_kalman.py``.

    .venv/bin/python benchmarks/dsp_filters.py [--part family|batch|all] [--taps 64] [--samples 20000]
                                               [--channels 1024] [--block 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # padasip's numpy on one BLAS thread (numba's threads are separate)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle numba threads sleep: no spinning against other work

import numba
import numpy as np
import padasip as pa
from scipy.signal import lfilter

from noisygrad.dsp import LMS, NLMS, RLS, _kernels, tapped_delay_line
from noisygrad.dsp.adapted_step import GNGD, VSLMSAng, VSLMSBenveniste, VSLMSMathews
from noisygrad.dsp.affine_projection import AP
from noisygrad.dsp.lms_family import GMCC, LMF, NLMF, NSSLMS, SSLMS, Llncosh
from noisygrad.dsp.online_centred import OCNLMS


def timed(fns: list[Callable[[], object]], repeats: int, clock: Callable[[], float]) -> list[list[float]]:
    """Seconds of each call of each function: one warm-up call each, then ``repeats`` rounds, interleaved."""
    for fn in fns:
        fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = clock()
            fn()
            out[k].append(max(clock() - t0, 1e-9))
    return out


def si(value: float) -> str:
    """A rate with a k or M suffix."""
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"


def family(taps: int, mu_lms: float) -> list[tuple[str, Callable[[], Any], Callable[[], Any], float]]:
    """(name, ours, padasip's, fraction of --samples): stable 64-tap settings, padasip's defaults where safe."""
    return [
        ("LMS", lambda: LMS(taps, mu_lms), lambda: pa.filters.FilterLMS(taps, mu=mu_lms, w="zeros"), 1.0),
        ("NLMS", lambda: NLMS(taps, 0.5, eps=1e-3),
         lambda: pa.filters.FilterNLMS(taps, mu=0.5, eps=1e-3, w="zeros"), 1.0),
        ("RLS", lambda: RLS(taps, 0.999), lambda: pa.filters.FilterRLS(taps, mu=0.999, eps=0.01, w="zeros"), 0.1),
        ("LMF", lambda: LMF(taps, 0.002), lambda: pa.filters.FilterLMF(taps, mu=0.002, w="zeros"), 1.0),
        ("NLMF", lambda: NLMF(taps, 0.1), lambda: pa.filters.FilterNLMF(taps, mu=0.1, w="zeros"), 1.0),
        ("SSLMS", lambda: SSLMS(taps, 1e-3), lambda: pa.filters.FilterSSLMS(taps, mu=1e-3, w="zeros"), 1.0),
        ("NSSLMS", lambda: NSSLMS(taps, 0.05), lambda: pa.filters.FilterNSSLMS(taps, mu=0.05, w="zeros"), 1.0),
        ("Llncosh", lambda: Llncosh(taps, 0.005), lambda: pa.filters.FilterLlncosh(taps, mu=0.005, w="zeros"), 1.0),
        ("GMCC", lambda: GMCC(taps, 0.01), lambda: pa.filters.FilterGMCC(taps, mu=0.01, w="zeros"), 1.0),
        ("GNGD", lambda: GNGD(taps, 0.5), lambda: pa.filters.FilterGNGD(taps, mu=0.5, w="zeros"), 1.0),
        ("VSLMS_Mathews", lambda: VSLMSMathews(taps, 0.005, rho=1e-4),
         lambda: pa.filters.FilterVSLMS_Mathews(taps, mu=0.005, ro=1e-4, w="zeros"), 1.0),
        ("VSLMS_Benveniste", lambda: VSLMSBenveniste(taps, 0.005, rho=1e-5),
         lambda: pa.filters.FilterVSLMS_Benveniste(taps, mu=0.005, ro=1e-5, w="zeros"), 0.25),
        ("VSLMS_Ang", lambda: VSLMSAng(taps, 0.005, rho=1e-5, a=0.9),
         lambda: pa.filters.FilterVSLMS_Ang(taps, mu=0.005, ro=1e-5, a=0.9, w="zeros"), 1.0),
        ("AP (order 5)", lambda: AP(taps, 0.5, order=5),
         lambda: pa.filters.FilterAP(taps, mu=0.5, order=5, w="zeros"), 0.25),
        ("OCNLMS (mem 100)", lambda: OCNLMS(taps, 0.1), lambda: pa.filters.FilterOCNLMS(taps, mu=0.1, w="zeros"), 0.1),
    ]  # fmt: skip


def part_family(args: argparse.Namespace, x: np.ndarray, d: np.ndarray) -> dict[str, float]:
    """One filter each side, CPU time, one thread; returns padasip's median rate per filter."""
    numba.set_num_threads(1)
    taps, n = args.taps, args.samples
    u = tapped_delay_line(x, taps)
    print(f"\n{taps} taps, white Gaussian input, one filter; samples per CPU second (median of {args.repeats})")
    print(f"{'filter':<22} {'padasip':>9} {'ours':>9} {'ratio':>8}   {'ours: spread':<22} max|y - y_padasip|")
    anchors = {}
    for name, ours_f, ref_f, frac in family(taps, 0.5 / (taps + 2)):
        m = max(200, int(n * frac))
        y_ref = ref_f().run(d[:m], u[:m])[0]
        y_ours = ours_f().run(x[:m], d=d[:m])[0]
        gap = float(np.abs(y_ref - y_ours).max())
        ref_t, ours_t = timed(
            [
                lambda ref_f=ref_f, m=m: ref_f().run(d[:m], u[:m]),
                lambda ours_f=ours_f, m=m: ours_f().run(x[:m], d=d[:m]),
            ],
            args.repeats,
            time.process_time,
        )
        anchor, ours = m / statistics.median(ref_t), m / statistics.median(ours_t)
        anchors[name] = anchor
        spread = f"{si(m / max(ours_t))}-{si(m / min(ours_t))}"
        print(f"{name:<22} {si(anchor):>9} {si(ours):>9} {ours / anchor:>7.0f}x   {spread:<22} {gap:.1e}")
    return anchors


def part_batch(args: argparse.Namespace, rng: np.random.Generator, padasip_lms: float | None) -> None:
    """Many channels streamed block by block: wall-clock filter-samples per second, 1 thread vs all."""
    taps, b, blk, blocks = args.taps, args.channels, args.block, 8
    mu = 0.5 / (taps + 2)
    xb = rng.standard_normal((blocks, b, blk))
    db = rng.standard_normal((blocks, b, blk))
    xb32, db32 = xb.astype(np.float32), db.astype(np.float32)
    most = numba.config.NUMBA_NUM_THREADS

    def stream(
        make: Callable[[], Any], xs: np.ndarray, ds: np.ndarray, threads: int, pairs: bool = False
    ) -> Callable[[], None]:
        def go() -> None:
            numba.set_num_threads(threads)
            f = make()
            chosen = _kernels.lms_signal_kernels
            if pairs:  # float64's two-channel grouping on float32 data: what the four-channel kernel gains
                _kernels.lms_signal_kernels = lambda dtype: (_kernels.lms_signal, _kernels.lms_signal_parallel)
            try:
                for k in range(blocks):
                    f.run(xs[k], d=ds[k])
            finally:
                _kernels.lms_signal_kernels = chosen

        return go

    rows = [
        ("LMS float64, 1 thread", stream(lambda: LMS(taps, mu), xb, db, 1)),
        (f"LMS float64, {most} threads", stream(lambda: LMS(taps, mu), xb, db, most)),
        (f"LMS float32, {most} threads", stream(lambda: LMS(taps, mu, dtype=np.float32), xb32, db32, most)),
        ("  the same in pairs", stream(lambda: LMS(taps, mu, dtype=np.float32), xb32, db32, most, pairs=True)),
        (f"NLMS float64, {most} threads", stream(lambda: NLMS(taps, 0.5), xb, db, most)),
        (f"LMF float64, {most} threads", stream(lambda: LMF(taps, 1e-4), 0.1 * xb, 0.1 * db, most)),
    ]
    walls: list[list[float]] = [[] for _ in rows]
    cpus: list[list[float]] = [[] for _ in rows]
    for _, fn in rows:
        fn()  # warm-up: compiles, and allocates the first outputs
    for _ in range(args.repeats):
        for k, (_, fn) in enumerate(rows):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpus[k].append(max(time.process_time() - c0, 1e-9))
            walls[k].append(max(time.perf_counter() - w0, 1e-9))
    numba.set_num_threads(most)
    items = xb.size
    ref = f" vs padasip LMS {si(padasip_lms)} samples/s" if padasip_lms else ""
    print(f"\n{b} channels x {taps} taps in blocks of {blk} samples: filter-samples per wall second{ref}")
    print(f"{'':<30} {'median':>9} {'spread (slowest-fastest)':>26} {'ratio':>8} {'per CPU second':>15}")
    for (name, _), t, c in zip(rows, walls, cpus, strict=True):
        rates = sorted(items / s for s in t)
        ratio = f"{statistics.median(rates) / padasip_lms:>7.0f}x" if padasip_lms else f"{'':>8}"
        spread = si(rates[0]) + " - " + si(rates[-1])
        per_cpu = si(items / statistics.median(c))
        print(f"{name:<30} {si(statistics.median(rates)):>9} {spread:>26} {ratio} {per_cpu:>15}")
    print(f"(load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("family", "batch", "all"), default="all")
    parser.add_argument("--taps", type=int, default=64)
    parser.add_argument("--samples", type=int, default=20000, help="samples per single-filter call (some less)")
    parser.add_argument("--channels", type=int, default=1024, help="batched channels")
    parser.add_argument("--block", type=int, default=512, help="samples per channel per run() call when batched")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per side (after one warm-up each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal(args.samples)
    h = rng.standard_normal(args.taps) / np.sqrt(args.taps)
    d = lfilter(h, 1.0, x) + 0.1 * rng.standard_normal(args.samples)
    anchors = part_family(args, x, d) if args.part in ("family", "all") else {}
    if args.part in ("batch", "all"):
        part_batch(args, rng, anchors.get("LMS"))


if __name__ == "__main__":
    main()
