"""Heavy tails: Kesten's tail index, Hill's estimator, equal-variance noise balls and clipping.

Fixed seeds; tolerances are 4 standard errors of the quantity measured (Hill: alpha / sqrt(k); a mean: the
spread of per-chain averages over sqrt(chains)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisygrad import FiniteSum, MiniBatch
from noisygrad.estimators.clipping import Clipped
from noisygrad.noise.tails import hill_tail_index, kesten_tail_index


@pytest.mark.parametrize(("lr", "alpha"), [(0.05, 35.2), (0.4, 3.81), (0.62, 2.20)])
def test_kesten_index_matches_the_measured_table(lr: float, alpha: float) -> None:
    # the research table's values, themselves solved numerically to 3 significant digits
    assert kesten_tail_index(lr) == pytest.approx(alpha, abs=0.006 * alpha)


def _chi2_mean_moment(k: int, b: int) -> float:
    """E[A^k] for A = chi^2_b / b (the batch mean of b squared standard Gaussians)."""
    return math.prod((b + 2 * j) / b for j in range(k))


@pytest.mark.parametrize("batch_size", [1, 2, 4, 16, 1000])
def test_kesten_index_is_exact_where_the_moment_equation_is_a_polynomial(batch_size: int) -> None:
    """Independent of the solver: E(1 - lr A)^alpha = 1 is a polynomial in lr for even alpha.

    alpha = 2 at lr = 2 / E[A^2] = 2b / (b + 2); alpha = 4 at the root in (0, 2b/(b+2)) of
    sum_k C(4, k) (-lr)^k E[A^k] = 1 (chi-square moments), which exists for every b.
    """
    b = batch_size
    assert kesten_tail_index(2 * b / (b + 2), b) == pytest.approx(2.0, rel=1e-6)
    coeffs = [math.comb(4, k) * (-1) ** k * _chi2_mean_moment(k, b) for k in range(4, 0, -1)]  # lr^4 .. lr^1
    roots = np.roots(coeffs)  # the constant terms cancel: 1 - 1
    lr4 = min(r.real for r in roots if abs(r.imag) < 1e-12 and 0 < r.real < 2 * b / (b + 2))
    assert kesten_tail_index(lr4, b) == pytest.approx(4.0, rel=1e-6)


def _mp_moment(lr: float, alpha: float, b: int) -> float:
    """E|1 - lr A_B|^alpha by mpmath's quadrature in u = B A_B ~ chi^2_B at 50 digits, split at u = B / lr."""
    import mpmath  # sympy's dependency, hence torch's

    mpmath.mp.dps = 50
    half = mpmath.mpf(b) / 2
    scale = 2**half * mpmath.gamma(half)

    def f(u: object) -> object:
        return abs(1 - lr * u / b) ** alpha * u ** (half - 1) * mpmath.exp(-u / 2) / scale

    kink = b / lr
    return float(mpmath.quad(f, [0, kink / 4, kink / 2, kink, 2 * kink, 4 * kink, 8 * kink, mpmath.inf]))


@pytest.mark.parametrize(("lr", "batch_size"), [(1e-3, 1), (2.6e-4, 1), (1e-3, 16)])
def test_kesten_index_solves_the_moment_equation_at_small_steps(lr: float, batch_size: int) -> None:
    """Small steps give indices of order 1 / lr (thousands), where E|1 - lr A|^alpha spans hundreds of orders of
    magnitude across A: the index solves the equation to 1e-8 by a 50-digit quadrature, and 1e-4 either side of it
    the moment is off 1 by far more (>= 2%), so the check pins the index to 1e-4 relative."""
    alpha = kesten_tail_index(lr, batch_size)
    assert _mp_moment(lr, alpha, batch_size) == pytest.approx(1.0, abs=1e-8)
    assert _mp_moment(lr, alpha * (1 - 1e-4), batch_size) < 0.98
    assert _mp_moment(lr, alpha * (1 + 1e-4), batch_size) > 1.02


@pytest.mark.parametrize("batch_size", [64, 1000])
def test_kesten_index_of_large_batches_at_small_steps_is_finite_and_scales_as_one_over_lr(batch_size: int) -> None:
    """Index 1e8 to 2e9: the peaks of both parts of the moment are narrow beside their intervals; any overflow or
    quadrature warning fails here (warnings are errors in this suite), and alpha * lr settles to 1e-4."""
    scaled = [kesten_tail_index(lr, batch_size) * lr for lr in (1e-6, 1e-7)]
    assert scaled[0] == pytest.approx(scaled[1], rel=1e-4)
    assert scaled[1] > batch_size  # larger than B: the index grows faster than B / lr


def test_kesten_index_grows_as_one_over_lr() -> None:
    """alpha * lr tends to a constant (about 1.7956 for B = 1) as lr -> 0; no overflow, no infinite index."""
    scaled = [kesten_tail_index(lr) * lr for lr in (1e-5, 1e-7, 1e-12)]
    assert all(math.isfinite(s) for s in scaled)
    assert scaled == pytest.approx([scaled[-1]] * 3, rel=1e-3)
    assert 1.79 < scaled[-1] < 1.80


@pytest.mark.parametrize(("batch_size", "critical"), [(1, 2.4212495210368), (4, 2.6629956687069)])
def test_the_refusal_sits_at_the_step_where_the_log_drift_vanishes(batch_size: int, critical: float) -> None:
    """E log|1 - lr A_B| = 0 at lr = critical (by a 30-digit mpmath quadrature): 0.1% below it the index is finite and
    tiny (the tails are extremely heavy), 0.1% above it there is no stationary law."""
    alpha = kesten_tail_index(0.999 * critical, batch_size)
    assert 0.0 < alpha < 0.01
    with pytest.raises(ValueError, match="too large"):
        kesten_tail_index(1.001 * critical, batch_size)


def test_larger_batches_thin_the_tails() -> None:
    assert kesten_tail_index(0.4, 4) > 3 * kesten_tail_index(0.4, 1)
    with pytest.raises(ValueError, match="too large"):
        kesten_tail_index(3.0)


def test_hill_recovers_a_pareto_index() -> None:
    rng = np.random.default_rng(0)
    samples = rng.pareto(3.0, 200_000) + 1.0  # exact Pareto tail, alpha = 3
    alpha, se = hill_tail_index(samples, fraction=0.01)
    assert abs(alpha - 3.0) <= 4 * se


def test_sgd_on_gaussian_least_squares_has_kesten_tails() -> None:
    # w' - w* = (1 - lr x^2)(w - w*) + 0.5 lr x eps, x, eps ~ N(0, 1): 20,000 chains x 250 samples after burn-in.
    # Hill on the top 0.1% (k = 5000): s.e. alpha / sqrt(k) ~ 0.054; measured 3.83 vs 3.81 in the research.
    gen = torch.Generator().manual_seed(50)
    lr, chains = 0.4, 20_000
    e = torch.zeros(chains, dtype=torch.float64)
    draws = []
    for t in range(300):
        x = torch.randn(chains, generator=gen, dtype=torch.float64)
        eps = torch.randn(chains, generator=gen, dtype=torch.float64)
        e = (1 - lr * x * x) * e + 0.5 * lr * x * eps
        if t >= 50:
            draws.append(e)
    alpha, se = hill_tail_index(torch.cat(draws), fraction=0.001)
    assert abs(alpha - kesten_tail_index(lr)) <= 4 * se + 0.05  # 0.05: Hill's bias at this threshold (measured)


def _noise_ball(noise: torch.Tensor, lr: float, clip: float | None) -> torch.Tensor:
    """SGD on f = x^2/2 with additive noise rows noise[t]; returns the stationary draws (after 100 steps)."""
    x = torch.zeros(noise.shape[1], dtype=torch.float64)
    out = []
    for t in range(noise.shape[0]):
        g = x + noise[t]
        if clip is not None:
            g = g.clamp(-clip, clip)
        x = x - lr * g
        if t >= 100:
            out.append(x)
    return torch.stack(out)


def test_equal_variance_heavy_tails_keep_the_mean_square_ball_but_grow_its_tail() -> None:
    rng = np.random.default_rng(51)
    lr, steps, chains = 0.1, 400, 10_000
    predicted = lr / (2 - lr)  # Var = lr sigma^2 / (a (2 - lr a)) with a = sigma = 1
    gaussian = torch.from_numpy(rng.standard_normal((steps, chains)))
    student5 = torch.from_numpy(rng.standard_t(5.0, (steps, chains))) / math.sqrt(5 / 3)
    for noise in (gaussian, student5):  # Student-t with 5 degrees of freedom: finite fourth moment
        ball = _noise_ball(noise, lr, None)
        per_chain = ball.pow(2).mean(0)
        se = float(per_chain.std()) / math.sqrt(chains)
        assert abs(float(per_chain.mean()) - predicted) <= 4 * se
    student3 = torch.from_numpy(rng.standard_t(3.0, (steps, chains))) / math.sqrt(3.0)
    q = 0.9999
    tail_gauss = float(_noise_ball(gaussian, lr, None).abs().quantile(q))
    tail_t3 = float(_noise_ball(student3, lr, None).abs().quantile(q))
    tail_t3_clipped = float(_noise_ball(student3, lr, 2.0).abs().quantile(q))
    assert tail_t3 > 2 * tail_gauss  # research: 2.9x
    assert tail_t3_clipped < 1.2 * tail_gauss  # clipping restores a light-tailed ball


def test_clipped_estimator_bounds_the_norm_and_passes_state() -> None:
    X = torch.randn(50, 3, dtype=torch.float64)
    objective = FiniteSum(lambda w, X: ((X @ w) ** 2).mean(), X)
    clipped = Clipped(MiniBatch(objective, 10), max_norm=0.5)
    est = clipped.estimate(torch.full((3,), 10.0, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert float(est.grad.norm()) == pytest.approx(0.5)
    assert est.stats["clipped"] == 1.0
    assert est.stats["raw_grad_norm"] > 0.5
    assert clipped.state_dict() == {}
    with pytest.raises(ValueError, match="max_norm"):
        Clipped(MiniBatch(objective, 10), max_norm=0.0)
    with pytest.raises(ValueError, match="fraction"):
        hill_tail_index(np.ones(100), fraction=0.0)
    with pytest.raises(ValueError, match=">= 20"):
        hill_tail_index(np.ones(100), fraction=0.01)
