"""LMS is SGD with batch size one: its steady-state excess error is the SGD noise ball.

Identify 32 unknown 16-tap systems at once (one batched LMS, white Gaussian input, noise variance 0.01)
for several step sizes, and print the measured misadjustment beside the exact Gaussian-input formula
(Feuer and Weinstein) and the small-step rule mu tr(R) / 2. Runs in a few seconds.

    .venv/bin/python examples/dsp_lms_misadjustment.py
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from noisygrad.dsp import LMS, theory

TAPS, CHANNELS, NOISE_VAR = 16, 32, 0.01


def measure(mu: float, rng: np.random.Generator) -> tuple[float, float]:
    """Misadjustment E|w - w_o|^2 / J_min (R = I) over the last 200 time constants, and its standard error."""
    tau = 1 / (2 * mu)  # time constant of the learning curve
    n_burn, n_avg = int(20 * tau), int(200 * tau)
    w_opt = rng.standard_normal((CHANNELS, TAPS)) / math.sqrt(TAPS)
    x = rng.standard_normal((CHANNELS, n_burn + n_avg))
    d = np.stack([lfilter(w, 1.0, xc) for w, xc in zip(w_opt, x, strict=True)])
    d += math.sqrt(NOISE_VAR) * rng.standard_normal(d.shape)
    lms = LMS(TAPS, mu)
    lms.run(x[:, :n_burn], d=d[:, :n_burn])  # converge; the next call continues each channel's delay line
    lms.record_history = True
    lms.run(x[:, n_burn:], d=d[:, n_burn:])
    per_channel = np.mean(np.sum((lms.history - w_opt[:, None, :]) ** 2, axis=2), axis=1) / NOISE_VAR
    return float(per_channel.mean()), float(per_channel.std(ddof=1) / math.sqrt(CHANNELS))


def main() -> None:
    rng = np.random.default_rng(0)
    eigenvalues = np.ones(TAPS)  # white unit-power input: R = I, tr(R) = 16
    print(f"stability bound (mean square): mu < {theory.lms_stability_bound(eigenvalues):.4f}")
    print(f"{'mu tr(R)':>9} {'measured M':>16} {'exact':>8} {'mu trR/2':>9} {'meas/exact':>10}")
    for mu_tr in (0.1, 0.2, 0.4, 0.8):
        mu = mu_tr / TAPS
        m, se = measure(mu, rng)
        exact = theory.lms_misadjustment(mu, eigenvalues)
        small = theory.lms_misadjustment(mu, eigenvalues, form="small-step")
        print(f"{mu_tr:>9.2f} {m:>9.4f} ± {se:.4f} {exact:>8.4f} {small:>9.4f} {m / exact:>10.3f}")


if __name__ == "__main__":
    main()
