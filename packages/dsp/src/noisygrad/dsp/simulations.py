"""Monte-Carlo simulations of the adaptive filters, the measurements the dsp experiments and tests hold to theory.

* :func:`simulate_lms_misadjustment`: LMS system identification on white Gaussian input; the misadjustment
  ``M = J_ex / J_min`` over independent channels, with its standard error (:class:`Misadjustment`).
* :func:`simulate_rls_tracking`: RLS tracking a random-walk system; its excess MSE and standard error.

Each takes ``seed``: an int >= 0, a ``numpy.random.SeedSequence`` (a sub-stream of a run,
``noisygrad.rng.substream(seed, k)``) or a ``numpy.random.Generator`` (used as is, so the caller's stream goes
on); every draw comes from the one numpy generator it makes of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from noisygrad.checks import check_positive, check_positive_int

from .filters import LMS, RLS

__all__ = ["Misadjustment", "simulate_lms_misadjustment", "simulate_rls_tracking"]

Seed = int | np.random.SeedSequence | np.random.Generator


def _generator(seed: Seed) -> np.random.Generator:
    """The numpy generator of ``seed`` (see the module docstring), or an error naming ``seed``."""
    if isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return np.random.default_rng(seed)
    return np.random.default_rng(check_positive_int("seed", seed, allow_zero=True))


def _check_channels(channels: object) -> int:
    """At least two channels: the standard error is their spread."""
    n = check_positive_int("channels", channels)
    if n < 2:
        raise ValueError(f"channels must be >= 2 (the standard error is the spread over channels), got {n}")
    return n


@dataclass(frozen=True)
class Misadjustment:
    """A measured LMS misadjustment: the mean over channels and its standard error."""

    mean: float
    stderr: float
    channels: int
    samples: int


def simulate_lms_misadjustment(
    mu: float,
    *,
    taps: int = 16,
    noise_var: float = 0.01,
    channels: int = 32,
    burn_in: float = 20.0,
    average: float = 200.0,
    seed: Seed = 0,
    chunk: int = 16384,
) -> Misadjustment:
    """System identification with white unit-power Gaussian input through the filter's own delay line.

    ``channels`` independent unknown systems ``w_o ~ N(0, I / taps)`` run as one batched :class:`LMS`, streamed
    in chunks. After ``burn_in`` MSE time constants ``1 / (2 mu)``, the excess MSE ``tr(R K) = E|w_k - w_o|^2``
    (``R = I``) is averaged over the weights of ``average`` time constants; ``M`` is it over ``noise_var``.
    Channels are independent, so the standard error is the spread of the channel means over ``sqrt(channels)``.
    """
    mu = check_positive("mu", mu)
    taps = check_positive_int("taps", taps)
    noise_var = check_positive("noise_var", noise_var)
    channels = _check_channels(channels)
    burn_in = check_positive("burn_in", burn_in, allow_zero=True)
    average = check_positive("average", average)
    chunk = check_positive_int("chunk", chunk)  # 0 would never advance: refused, not looped on
    rng = _generator(seed)
    tau = 1.0 / (2.0 * mu)
    n_burn, n_avg = int(burn_in * tau), int(average * tau)
    w_opt = rng.standard_normal((channels, taps)) / math.sqrt(taps)
    lms = LMS(taps, mu, history=True)
    zi = np.zeros((channels, taps - 1))
    excess = np.zeros(channels)
    done = 0
    while done < n_burn + n_avg:
        n = min(chunk, n_burn + n_avg - done)
        x = rng.standard_normal((channels, n))
        d = math.sqrt(noise_var) * rng.standard_normal((channels, n))
        for c in range(channels):  # d = w_o * x + v, continuing each channel's system state across chunks
            clean, zi[c] = lfilter(w_opt[c], 1.0, x[c], zi=zi[c])
            d[c] += clean
        lms.run(x, d=d)
        assert lms.history is not None  # (channels, n, taps): the weights that produced each output
        first = max(0, n_burn - done)
        excess += np.sum((lms.history[:, first:] - w_opt[:, None, :]) ** 2, axis=(1, 2))
        done += n
    per_channel = excess / n_avg / noise_var
    return Misadjustment(
        float(per_channel.mean()), float(per_channel.std(ddof=1) / math.sqrt(channels)), channels, n_burn + n_avg
    )


def simulate_rls_tracking(
    lam: float,
    *,
    taps: int = 8,
    noise_var: float = 1e-2,
    sigma_q: float = 5e-4,
    channels: int = 8,
    samples: int = 200_000,
    burn_in: float = 20.0,
    seed: Seed = 0,
    chunk: int = 20_000,
) -> tuple[float, float]:
    """Excess MSE of RLS tracking a random walk ``w_o(k+1) = w_o(k) + q_k``, ``q ~ N(0, sigma_q^2 I)``.

    White unit-power i.i.d. Gaussian regressors, ``channels`` independent runs streamed in chunks. The excess
    error of sample ``k`` is ``(e_k - v_k)^2 = ((w_o(k) - w_k)^T u_k)^2``, averaged after ``burn_in`` memory
    lengths ``1 / (1 - lam)``. Returns the mean over channels and its standard error.
    """
    rls = RLS(taps, lam)  # checks lam and taps
    lam, taps = rls.lam, rls.taps
    noise_var = check_positive("noise_var", noise_var)
    sigma_q = check_positive("sigma_q", sigma_q, allow_zero=True)
    channels = _check_channels(channels)
    samples = check_positive_int("samples", samples)
    burn_in = check_positive("burn_in", burn_in, allow_zero=True)
    chunk = check_positive_int("chunk", chunk)  # 0 would never advance: refused, not looped on
    burn = burn_in / (1.0 - lam) if lam < 1.0 else math.inf  # lam = 1 never forgets: no steady state
    if burn >= samples:
        raise ValueError(
            f"samples must exceed the burn-in, burn_in / (1 - lam) = {burn:.4g} samples, got samples = {samples}"
        )
    rng = _generator(seed)
    w = np.zeros((channels, taps))
    burn = int(burn)
    total = np.zeros(channels)
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        u = rng.standard_normal((channels, n, taps))
        walk = w[:, None, :] + np.cumsum(sigma_q * rng.standard_normal((channels, n, taps)), axis=1)
        w = walk[:, -1]
        v = math.sqrt(noise_var) * rng.standard_normal((channels, n))
        _, e = rls.run_regressors(u, d=np.einsum("bnl,bnl->bn", u, walk) + v)
        first = max(0, burn - done)
        total += np.sum((e[:, first:] - v[:, first:]) ** 2, axis=1)
        done += n
    per_channel = total / (samples - burn)
    return float(per_channel.mean()), float(per_channel.std(ddof=1) / math.sqrt(channels))
