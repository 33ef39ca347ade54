"""Tests that close the mutation-testing gaps of the core tour experiments ``tour/experiments/momentum.py``,
``sharpness.py`` and ``line_search.py`` (issue 18).

Each experiment is run once with its defaults (seed 0, quick) and its findings are checked against what they claim
to be: the claims, units and detail keys exactly, and every number against an independent re-computation in this
file: the chains re-run by hand-written loops on the documented streams (the heavy ball, Adam, the two-well SGD, the
per-example-step runs, the digits training), the closed forms written out, the exact mean-square recursions
checked against a dense iteration and against an enumeration of every example path, the golden-section and
bisection tunings re-run by hand. Where an experiment's whole run is too long to repeat (the digits power
iterations, the line-search runs), the real call is recorded by a spy that passes it through, and the test checks
its arguments (sizes, streams, constants) and recomputes the findings from its results. The re-computations agree
to rounding (relative tolerances of 1e-9 or tighter, pytest's default 1e-6 at a few, 1e-5 for the float32 digits
training), so no check here is statistical and there is no Monte-Carlo tolerance. The tests are named
``test_momentum_*``, ``test_sharpness_*`` and ``test_line_search_*`` so that each mutation target selects its
own with ``-k``.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch

from noisygrad.noise.momentum import adam_expected_step, heavy_ball_stationary_covariance
from noisygrad.noise.sharpness import laplace_well_weights, stationary_well_weights, top_hessian_eigenvalue
from noisygrad.noise.theory import least_squares_stationary_covariance, sgd_stationary_covariance
from noisygrad.optim.line_search import StochasticArmijo, least_squares_armijo_steps
from noisygrad.rng import numpy_stream, torch_stream
from noisygrad.tour.experiments import line_search as ls
from noisygrad.tour.experiments import momentum as mo
from noisygrad.tour.experiments import sharpness as sh

F64 = torch.float64
H = np.diag([1.0, 0.1])
C = np.array([[1.0, 0.6], [0.6, 0.5]])
BETAS = (0.0, 0.5, 0.8, 0.9, 0.95)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


class _Stop(Exception):
    """Raised by a recording stand-in once it has what a test needs (the rest of the run is not needed)."""


# ------------------------------------------------------------------------------------------------ momentum


def _offsets(gen: torch.Generator) -> torch.Tensor:
    """The 64 centred offsets whitened and coloured to covariance ``C`` (written out independently)."""
    z = torch.randn(64, 2, generator=gen, dtype=F64)
    z = z - z.mean(0)
    lw = torch.linalg.cholesky(z.T @ z / 64)
    white = torch.linalg.solve(lw, z.T).T
    return white @ torch.linalg.cholesky(torch.tensor(C)).T


def test_momentum_population_is_centred_with_covariance_exactly_c_from_its_stream() -> None:
    offsets = mo._population(torch_stream(3, 0))
    assert offsets.shape == (64, 2)
    assert offsets.dtype == F64
    assert torch.allclose(offsets, _offsets(torch_stream(3, 0)), rtol=1e-12, atol=1e-13)
    assert torch.allclose(offsets.mean(0), torch.zeros(2, dtype=F64), atol=1e-14)
    assert np.allclose((offsets.T @ offsets / 64).numpy(), C, rtol=1e-12, atol=1e-14)


def test_momentum_correlation_and_standard_error_closed_forms() -> None:
    assert mo._correlation(C) == pytest.approx(0.6 / math.sqrt(0.5), rel=1e-15)
    values = np.array([[1.0, 2.0], [3.0, 6.0], [2.0, 1.0], [6.0, 3.0]])
    expected = np.array([math.sqrt(14 / 3) / 2, math.sqrt(14 / 3) / 2])  # ddof 1: variance 14/3, over sqrt(4)
    assert np.allclose(mo._se(values), expected, rtol=1e-14)


def _heavy_ball_moments(beta: float, offsets: torch.Tensor, chains: int, gen: torch.Generator) -> np.ndarray:
    """Per-chain time averages of ``x x^T`` of heavy ball (``v <- beta v + g``, first ``v = g``; ``x <- x - lr v``)
    at ``lr = 1 - beta``, sampled every ``tau // 2`` steps after ``8 tau`` (40 samples), written out by hand."""
    lr = 1.0 - beta
    radius = 0.0
    for lam in (1.0, 0.1):
        b = 1 + beta - lr * lam
        disc = complex(b * b - 4 * beta) ** 0.5
        radius = max(radius, abs((b + disc) / 2), abs((b - disc) / 2))
    tau = max(int(1 / (1 - radius)), 2)
    x = torch.zeros(chains, 2, dtype=F64)
    v = None
    total = torch.zeros(chains, 2, 2, dtype=F64)
    curvature = torch.tensor([1.0, 0.1], dtype=F64)
    taken = 0
    for t in range(8 * tau + 40 * (tau // 2)):
        idx = torch.randint(64, (chains * 4,), generator=gen)
        noise = offsets[idx].view(chains, 4, 2).mean(1)
        g = x * curvature + noise
        v = g.clone() if v is None or beta == 0 else beta * v + g
        x = x - lr * v
        if t >= 8 * tau and (t - 8 * tau) % (tau // 2) == tau // 2 - 1:
            total += x[:, :, None] * x[:, None, :]
            taken += 1
    assert taken == 40
    return (total / 40).numpy()


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_momentum_chain_moments_are_the_heavy_ball_time_averages(beta: float) -> None:
    offsets = _offsets(torch_stream(1, 0))
    mean, per_chain = mo._chain_moments(beta, offsets, 5, torch_stream(1, 7))
    expected = _heavy_ball_moments(beta, offsets, 5, torch_stream(1, 7))
    assert per_chain.shape == (5, 2, 2)
    assert np.allclose(per_chain, expected, rtol=1e-10, atol=1e-14)  # the same draws: equal to rounding
    assert np.allclose(mean, expected.mean(0), rtol=1e-10, atol=1e-14)


def test_momentum_predicted_is_the_heavy_ball_lyapunov_solution_at_lr_eff_one() -> None:
    for beta in BETAS:
        assert np.allclose(mo._predicted(beta), heavy_ball_stationary_covariance(H, C, 1.0 - beta, beta, 4), rtol=1e-13)
    # at beta = 0 it is plain SGD's discrete Lyapunov solution at lr 1
    assert np.allclose(mo._predicted(0.0), sgd_stationary_covariance(H, C, 1.0, 4), rtol=1e-10)


@pytest.fixture(scope="module")
def momentum_run() -> tuple[list, dict[float, tuple[np.ndarray, np.ndarray]]]:
    findings = mo.momentum()  # the defaults: seed 0, quick
    offsets = _offsets(torch_stream(0, 0))
    runs = {b: mo._chain_moments(b, offsets, 2000, torch_stream(0, 1 + i)) for i, b in enumerate(BETAS)}
    return findings, runs


def _frobenius(measured: np.ndarray, se: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    norm = float(np.linalg.norm(predicted))
    return float(np.linalg.norm(measured - predicted)) / norm, float(np.linalg.norm(se)) / norm


def test_momentum_findings_are_the_documented_claims_on_the_documented_streams(momentum_run) -> None:  # type: ignore[no-untyped-def]
    findings, runs = momentum_run
    assert len(findings) == 4
    assert [f.experiment for f in findings] == ["core.momentum"] * 4
    first, plain, stiff, corr = findings
    limit = sgd_stationary_covariance(H, C, 1.0, 4, method="continuous")
    se = {b: runs[b][1].std(0, ddof=1) / math.sqrt(2000) for b in BETAS}
    common = {"H": H.tolist(), "C": C.tolist(), "batch": 4, "N": 64, "chains": 2000, "lr_eff": 1.0}
    # (1) the moving betas stacked
    moving = [0.5, 0.8, 0.9, 0.95]
    m = np.stack([runs[b][0] for b in moving])
    p = np.stack([heavy_ball_stationary_covariance(H, C, 1 - b, b, 4) for b in moving])
    error, unc = _frobenius(m, np.stack([se[b] for b in moving]), p)
    assert first.claim == (
        "SGD with momentum (torch's heavy ball) stationary covariance = augmented discrete Lyapunov solution"
    )
    assert (first.bound, first.predicted, first.unit) == ("upper", 0.0, "relative Frobenius error")
    assert _rel(first.measured, error) < 1e-9
    assert _rel(first.uncertainty, unc) < 1e-9
    assert _rel(first.tolerance, 4 * unc) < 1e-9
    for key, value in common.items():
        assert first.details[key] == value, key
        assert plain.details[key] == value, key
        assert stiff.details[key] == value, key
        assert corr.details[key] == value, key
    assert first.details["betas"] == moving
    assert first.details["per_beta_error"] == {
        str(b): round(float(np.linalg.norm(m[k] - p[k]) / np.linalg.norm(p[k])), 5) for k, b in enumerate(moving)
    }
    assert first.details["continuous_limit_error"] == {
        str(b): round(float(np.linalg.norm(limit - p[k]) / np.linalg.norm(p[k])), 4) for k, b in enumerate(moving)
    }
    assert np.allclose(first.details["measured"], m.round(8), atol=1e-8)
    # (2) plain SGD at the same effective step
    p0 = heavy_ball_stationary_covariance(H, C, 1.0, 0.0, 4)
    error, unc = _frobenius(runs[0.0][0], se[0.0], p0)
    assert plain.claim == "plain SGD at the same effective step lr/(1 - beta) = discrete Lyapunov solution"
    assert _rel(plain.measured, error) < 1e-9
    assert _rel(plain.uncertainty, unc) < 1e-9
    assert _rel(plain.details["continuous_limit_error"], float(np.linalg.norm(limit - p0) / np.linalg.norm(p0))) < 1e-12
    assert all(f.passed for f in findings)


def test_momentum_stiff_variance_finding_holds_its_closed_forms(momentum_run) -> None:  # type: ignore[no-untyped-def]
    findings, runs = momentum_run
    stiff = findings[2]
    limit = sgd_stationary_covariance(H, C, 1.0, 4, method="continuous")
    assert limit[0, 0] == pytest.approx(1.0 / 8.0, rel=1e-12)  # lr c / (2 lambda B) = 1 * 1 / (2 * 1 * 4)
    p9 = heavy_ball_stationary_covariance(H, C, 0.1, 0.9, 4)
    ratio = {b: float(runs[b][0][0, 0] / limit[0, 0]) for b in BETAS}
    ses = {b: float(runs[b][1][:, 0, 0].std(ddof=1) / math.sqrt(2000)) / limit[0, 0] for b in BETAS}
    assert stiff.claim == (
        "at beta=0.9 the stiff variance is lr c/(2(1-beta) lambda) x 1/(1 - alpha lambda/(2(1+beta))): "
        "the noise accumulates at lr/(1-beta) without plain SGD's finite-step excess"
    )
    assert stiff.unit == "x small-step law"
    assert stiff.bound == ""
    assert _rel(stiff.predicted, p9[0, 0] / limit[0, 0]) < 1e-12
    assert _rel(stiff.measured, ratio[0.9]) < 1e-12
    assert _rel(stiff.uncertainty, ses[0.9]) < 1e-9
    assert _rel(stiff.tolerance, 4 * ses[0.9]) < 1e-9
    d = stiff.details
    assert d["alpha_lambda_max"] == pytest.approx(0.1, rel=1e-12)
    assert d["closed_form_ratio"] == pytest.approx(1 / (1 - 0.1 / 3.8), rel=1e-12)
    p0 = heavy_ball_stationary_covariance(H, C, 1.0, 0.0, 4)
    assert d["plain_sgd_same_effective_step"]["measured"] == pytest.approx(ratio[0.0], rel=1e-12)
    assert d["plain_sgd_same_effective_step"]["predicted"] == pytest.approx(p0[0, 0] / limit[0, 0], rel=1e-12)
    assert d["flat_direction_ratio"]["measured"] == pytest.approx(runs[0.9][0][1, 1] / limit[1, 1], rel=1e-12)
    assert d["flat_direction_ratio"]["predicted"] == pytest.approx(p9[1, 1] / limit[1, 1], rel=1e-12)
    plain = sgd_stationary_covariance(H, C, 0.1, 4)[0, 0]
    over = d["stiff_variance_over_plain_sgd_at_the_same_lr"]
    assert over["measured"] == pytest.approx(runs[0.9][0][0, 0] / plain, rel=1e-12)
    assert over["predicted"] == pytest.approx(p9[0, 0] / plain, rel=1e-12)
    assert over["leading_order_1/(1-beta)"] == pytest.approx(10.0, rel=1e-12)
    grid = [*np.linspace(0.0, 0.9, 46), *np.linspace(0.91, 0.99, 9)]
    curve = stiff.curve
    assert list(curve.x) == list(BETAS)
    assert np.allclose(curve.measured, [ratio[b] for b in BETAS], rtol=1e-12)
    assert np.allclose(curve.uncertainty, [ses[b] for b in BETAS], rtol=1e-9)
    assert np.allclose(curve.predicted_x, grid, rtol=1e-14)
    predicted = [heavy_ball_stationary_covariance(H, C, 1 - b, b, 4)[0, 0] / limit[0, 0] for b in grid]
    assert np.allclose(curve.predicted, predicted, rtol=1e-10)


def test_momentum_stiff_variance_details_scale_with_the_largest_curvature(monkeypatch: pytest.MonkeyPatch) -> None:
    """alpha lambda_max and the closed-form ratio 1 / (1 - alpha lambda_max / (2 (1 + beta))) use the problem's
    largest curvature (1 in the experiment, where alpha * lambda_max and alpha / lambda_max coincide): checked
    on a problem with lambda_max = 0.5 and synthetic chain averages."""
    hessian = np.diag([0.5, 0.1])
    monkeypatch.setattr(mo, "_HESSIAN", hessian)
    rng = np.random.default_rng(5)
    runs = {}
    for b in BETAS:
        per_chain = rng.random((6, 2, 2)) + np.eye(2)
        runs[b] = (per_chain.mean(0), per_chain)
    limit = sgd_stationary_covariance(hessian, C, 1.0, 4, method="continuous")
    stiff = mo._stiff_variance_finding(runs, limit, {})
    p9 = heavy_ball_stationary_covariance(hessian, C, 0.1, 0.9, 4)
    assert stiff.predicted == pytest.approx(p9[0, 0] / limit[0, 0], rel=1e-12)
    assert stiff.details["alpha_lambda_max"] == pytest.approx(0.05, rel=1e-14)
    assert stiff.details["closed_form_ratio"] == pytest.approx(1 / (1 - 0.05 / 3.8), rel=1e-14)


def _correlation_and_se(per_chain: np.ndarray) -> tuple[float, float]:
    """The correlation of the chains' mean second moment, and its delta-method s.e. (written out)."""
    mean = per_chain.mean(0)
    s00, s01, s11 = mean[0, 0], mean[0, 1], mean[1, 1]
    rho = s01 / math.sqrt(s00 * s11)
    grad = per_chain[:, 0, 1] / math.sqrt(s00 * s11) - rho / 2 * (per_chain[:, 0, 0] / s00 + per_chain[:, 1, 1] / s11)
    return float(rho), float(grad.std(ddof=1) / math.sqrt(len(per_chain)))


def test_momentum_correlation_finding_holds_the_delta_method_and_lyapunov_correlations(momentum_run) -> None:  # type: ignore[no-untyped-def]
    findings, runs = momentum_run
    corr = findings[3]
    limit = sgd_stationary_covariance(H, C, 1.0, 4, method="continuous")
    rho, se = _correlation_and_se(runs[0.9][1])
    p9 = heavy_ball_stationary_covariance(H, C, 0.1, 0.9, 4)
    assert corr.unit == "correlation"
    assert corr.bound == ""
    assert corr.claim.startswith("at beta=0.9 momentum averages out the noise's stiff-flat correlation")
    assert _rel(corr.measured, rho) < 1e-9
    assert _rel(corr.uncertainty, se) < 1e-9
    assert _rel(corr.tolerance, 4 * se) < 1e-9
    assert _rel(corr.predicted, p9[0, 1] / math.sqrt(p9[0, 0] * p9[1, 1])) < 1e-12
    d = corr.details
    assert d["noise_correlation"] == pytest.approx(0.6 / math.sqrt(0.5), rel=1e-14)
    assert d["small_step_limit"] == pytest.approx(limit[0, 1] / math.sqrt(limit[0, 0] * limit[1, 1]), rel=1e-12)
    p0 = heavy_ball_stationary_covariance(H, C, 1.0, 0.0, 4)
    assert d["plain_sgd_same_effective_step"]["measured"] == pytest.approx(_correlation_and_se(runs[0.0][1])[0])
    assert d["plain_sgd_same_effective_step"]["predicted"] == pytest.approx(p0[0, 1] / math.sqrt(p0[0, 0] * p0[1, 1]))
    assert "cross_term_law" in d
    curve = corr.curve
    assert list(curve.x) == list(BETAS)
    pairs = [_correlation_and_se(runs[b][1]) for b in BETAS]
    assert np.allclose(curve.measured, [r for r, _ in pairs], rtol=1e-9)
    assert np.allclose(curve.uncertainty, [s for _, s in pairs], rtol=1e-9)
    grid = [*np.linspace(0.0, 0.9, 46), *np.linspace(0.91, 0.99, 9)]
    assert np.allclose(curve.predicted_x, grid, rtol=1e-14)
    pg = [heavy_ball_stationary_covariance(H, C, 1 - b, b, 4) for b in grid]
    assert np.allclose(curve.predicted, [q[0, 1] / math.sqrt(q[0, 0] * q[1, 1]) for q in pg], rtol=1e-10)


def _adam_by_hand(
    betas: tuple[float, float], snr: np.ndarray, replicas: int, record: list[int], gen: torch.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam's step / lr (``m_hat / (sqrt(v_hat) + 1e-8)``) at a fixed point, with the control variate
    ``(m_hat - mu) / sqrt(mu^2 + sigma^2)`` taken off, averaged over ``record``; per level its mean, s.e., raw mean."""
    b1, b2 = betas
    sigma = torch.exp(torch.empty(len(snr), replicas, dtype=F64).uniform_(math.log(0.01), math.log(100), generator=gen))
    mu = torch.tensor(snr, dtype=F64)[:, None] * sigma
    m = torch.zeros_like(mu)
    v = torch.zeros_like(mu)
    controlled, raw = torch.zeros_like(mu), torch.zeros_like(mu)
    for t in range(1, max(record) + 1):
        g = mu + sigma * torch.randn(len(snr), replicas, generator=gen, dtype=F64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        step = m_hat / (torch.sqrt(v / (1 - b2**t)) + 1e-8)
        if t in record:
            raw += step
            controlled += step - (m_hat - mu) / torch.sqrt(mu**2 + sigma**2)
    controlled, raw = controlled / len(record), raw / len(record)
    return controlled.mean(1).numpy(), (controlled.std(1) / math.sqrt(replicas)).numpy(), raw.mean(1).numpy()


def test_momentum_adam_steps_are_adams_bias_corrected_steps_with_the_control_variate() -> None:
    snr = np.array([0.1, 1.0, 10.0])
    got = mo._adam_steps((0.9, 0.95), snr, 7, [3, 5], torch_stream(2, 0))
    want = _adam_by_hand((0.9, 0.95), snr, 7, [3, 5], torch_stream(2, 0))
    for a, b in zip(got, want, strict=True):
        assert a.shape == (3,)
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12)  # the same draws: equal to rounding (lr = 1e-3 divided out)


def _mean_step(snr: np.ndarray, betas: tuple[float, float], steps: list, order: int | None = None) -> np.ndarray:
    return np.mean([np.asarray(adam_expected_step(snr, 1.0, betas, step=t, order=order)) for t in steps], axis=0)


def test_momentum_mean_step_averages_the_exact_gaussian_mean_over_the_steps() -> None:
    snr = np.array([0.1, 2.0])
    got = mo._mean_step(snr, (0.9, 0.95), [3, 9], order=2)
    assert np.allclose(got, _mean_step(snr, (0.9, 0.95), [3, 9], order=2), rtol=1e-14)
    assert np.allclose(mo._mean_step(snr, (0.9, 0.999), [None]), _mean_step(snr, (0.9, 0.999), [None]), rtol=1e-14)


@pytest.fixture(scope="module")
def adam_run() -> list:
    return mo.adam_snr()  # the defaults: seed 0, quick


def test_momentum_adam_snr_findings_are_the_rms_relative_errors_on_the_documented_streams(adam_run) -> None:  # type: ignore[no-untyped-def]
    findings = adam_run
    assert len(findings) == 2
    snr = np.geomspace(0.1, 10.0, 17)
    fine = np.geomspace(0.1, 10.0, 121)
    first, second = findings
    # default betas: sub-stream 0, 1000 replicas per level, steps 1000, 1500, 2000
    default, record = (0.9, 0.999), [1000, 1500, 2000]
    measured, se, raw = mo._adam_steps(default, snr, 1000, record, torch_stream(0, 0))
    law = snr / np.sqrt(1 + snr**2)  # the first-order law, lr = 1
    assert np.allclose(_mean_step(snr, default, [None], order=1), law, rtol=1e-12)
    exact = _mean_step(snr, default, record)
    allowance = float(np.sqrt(np.mean((exact / law - 1) ** 2)))
    error = float(np.sqrt(np.mean((measured / law - 1) ** 2)))
    unc = float(np.sqrt(np.mean((se / law) ** 2)))
    assert first.experiment == second.experiment == "core.adam-snr"
    assert first.claim == (
        "Adam's mean step / lr = SNR / sqrt(1 + SNR^2) per coordinate (default betas), whatever the gradient scale"
    )
    assert (first.bound, first.predicted, first.unit) == ("upper", 0.0, "RMS relative error over the SNR levels")
    assert _rel(first.measured, error) < 1e-9
    assert _rel(first.uncertainty, unc) < 1e-9
    assert _rel(first.tolerance, 4 * unc + allowance) < 1e-9
    d = first.details
    assert d["betas"] == default
    assert d["recorded_steps"] == record
    assert d["replicas_per_level"] == 1000
    assert d["snr"] == snr.round(4).tolist()
    assert d["allowance"].startswith(f"{allowance:.2e}: ")
    assert _rel(d["error_vs_exact"], float(np.sqrt(np.mean((measured / exact - 1) ** 2)))) < 1e-9
    assert _rel(d["raw_mean_error_vs_law (no control variate)"], float(np.sqrt(np.mean((raw / law - 1) ** 2)))) < 1e-9
    c = first.curve
    assert (c.log_x, c.log_y) == (True, True)
    assert np.allclose(c.x, snr, rtol=1e-14)
    assert np.allclose(c.predicted_x, fine, rtol=1e-14)
    assert np.allclose(c.measured, measured, rtol=1e-12)
    assert np.allclose(c.uncertainty, se, rtol=1e-12)
    assert np.allclose(c.predicted, fine / np.sqrt(1 + fine**2), rtol=1e-12)
    # betas (0.9, 0.95): sub-stream 1, steps 200 to 400 every 20, held to the exact mean with no allowance
    short, record = (0.9, 0.95), list(range(200, 401, 20))
    measured, se, _ = mo._adam_steps(short, snr, 1000, record, torch_stream(0, 1))
    exact = _mean_step(snr, short, record)
    error = float(np.sqrt(np.mean((measured / exact - 1) ** 2)))
    unc = float(np.sqrt(np.mean((se / exact) ** 2)))
    assert second.claim == (
        "at betas (0.9, 0.95) Adam's mean step is the exact Gaussian mean, up to 1.4% below SNR / sqrt(1 + SNR^2)"
    )
    assert _rel(second.measured, error) < 1e-9
    assert _rel(second.uncertainty, unc) < 1e-9
    assert _rel(second.tolerance, 4 * unc) < 1e-9
    d = second.details
    assert d["betas"] == short
    assert d["recorded_steps"] == "200 to 400 every 20"
    assert d["replicas_per_level"] == 1000
    law_error = float(np.sqrt(np.mean((measured / law - 1) ** 2)))
    assert _rel(d["first_order_law_error"], law_error) < 1e-9
    assert _rel(d["first_order_law_error_in_se"], law_error / float(np.sqrt(np.mean((se / law) ** 2)))) < 1e-9
    second_order = float(np.max(np.abs(_mean_step(snr, short, record, order=2) / exact - 1)))
    assert _rel(d["second_order_error_vs_exact"], second_order) < 1e-9
    assert _rel(d["predicted_shortfall_at_snr_0.1"], float(exact[0] / law[0] - 1)) < 1e-12
    c = second.curve
    assert (c.log_x, c.log_y) == (True, False)
    assert np.allclose(c.measured, measured / law - 1, rtol=1e-9)
    assert np.allclose(c.uncertainty, se / law, rtol=1e-9)
    shortfall = _mean_step(fine, short, [None]) / (fine / np.sqrt(1 + fine**2)) - 1
    assert np.allclose(c.predicted, shortfall, rtol=1e-9, atol=1e-15)
    assert all(f.passed for f in findings)


# ------------------------------------------------------------------------------------------------ sharpness

_CC, _DD = math.sqrt(0.32), 0.6


def _wells_r_and_j(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``r(x) = (x^2 - 1) (c / sqrt(1 + x^2), (x + d) / (1 + x^2))`` and its derivative, written out."""
    x = np.asarray(x, dtype=np.float64)
    s = 1.0 + x * x
    r1 = _CC * (x * x - 1.0) / np.sqrt(s)
    r2 = (x * x - 1.0) * (x + _DD) / s
    # d/dx of c (x^2 - 1) s^(-1/2) = c (2x s - x (x^2 - 1)) s^(-3/2) = c x (x^2 + 3) s^(-3/2)
    j1 = _CC * x * (x * x + 3.0) / s**1.5
    # d/dx of (x^3 + d x^2 - x - d) / s = ((3x^2 + 2dx - 1) s - 2x (x^2 - 1)(x + d)) / s^2
    j2 = ((3.0 * x * x + 2.0 * _DD * x - 1.0) * s - 2.0 * x * (x * x - 1.0) * (x + _DD)) / s**2
    return r1, r2, j1, j2


def _u_prime(x: np.ndarray) -> np.ndarray:
    r1, r2, j1, j2 = _wells_r_and_j(x)
    return r1 * j1 + r2 * j2


def test_sharpness_two_well_model_is_the_documented_residual_with_its_derivative() -> None:
    x = np.array([-2.3, -1.0, -0.4, 0.0, 0.7, 1.0, 3.1])
    got = sh._residual_and_jacobian(x)
    for a, b in zip(got, _wells_r_and_j(x), strict=True):
        assert np.allclose(a, b, rtol=1e-13, atol=1e-15)
    h = 1e-6  # central differences of r: error O(h^2) ~ 1e-12, well inside 1e-8
    plus, minus = _wells_r_and_j(x + h), _wells_r_and_j(x - h)
    assert np.allclose(got[2], (plus[0] - minus[0]) / (2 * h), rtol=1e-8, atol=1e-9)
    assert np.allclose(got[3], (plus[1] - minus[1]) / (2 * h), rtol=1e-8, atol=1e-9)
    assert np.allclose(sh._grad_potential(x), _u_prime(x), rtol=1e-13, atol=1e-15)
    _, _, j1, j2 = _wells_r_and_j(x)
    assert np.allclose(sh._gauss_newton(x), j1 * j1 + j2 * j2, rtol=1e-13, atol=1e-15)
    assert sh._gauss_newton(np.array([-1.0, 1.0])) == pytest.approx([0.8, 3.2], rel=1e-13)  # = U'' at the minima
    # float32 positions are evaluated in float64
    x32 = np.array([0.3, 1.7], dtype=np.float32)
    assert np.array_equal(sh._grad_potential(x32), sh._grad_potential(x32.astype(np.float64)))
    assert np.array_equal(sh._gauss_newton(x32), sh._gauss_newton(x32.astype(np.float64)))
    assert (sh._C, sh._D, sh._K_WIDE, sh._K_SHARP, sh._LO, sh._HI) == (_CC, _DD, 0.8, 3.2, -6.0, 6.0)


def test_sharpness_barrier_is_the_root_of_u_prime_between_the_wells() -> None:
    xb = sh._barrier()
    ref = scipy.optimize.brentq(lambda t: float(_u_prime(np.array(t))), -0.9, 0.9, xtol=1e-14)
    assert abs(xb - ref) <= 1e-13
    assert abs(float(_u_prime(np.array(xb)))) < 1e-12


def test_sharpness_whitened_labels_are_symmetric_with_identity_covariance() -> None:
    y = sh._whitened_labels(10, np.random.default_rng(5))
    half = np.random.default_rng(5).standard_normal((2, 5))
    raw = np.concatenate([half, -half], axis=1)
    expected = np.linalg.solve(np.linalg.cholesky(raw @ raw.T / 10), raw)
    assert y.shape == (2, 10)
    assert np.allclose(y, expected, rtol=1e-12, atol=1e-14)
    assert np.allclose(y[:, :5], -y[:, 5:], rtol=0, atol=0)
    assert np.allclose(y @ y.T / 10, np.eye(2), atol=1e-13)


def _two_wells_by_hand(seed: int, lr: float, chains: int) -> dict:
    """The two-well chains written out: label-noise rows then isotropic rows, half starting at each minimum, one
    example per step, 5 relaxation times (10.5 / lr steps) of burn-in, then 3 sampled every 25 steps."""
    tau, t_iso = 0.2, 0.25
    s = math.sqrt(2 * tau / lr)
    xb = sh._barrier()
    labels = s * sh._whitened_labels(1000, numpy_stream(seed, 0))
    rng = numpy_stream(seed, 1)
    relax = 10.5 / lr
    burn, sampled = int(5 * relax), int(3 * relax)
    x = np.tile([-1.0, 1.0], chains)
    label_rows = np.arange(2 * chains) < chains
    bins = np.linspace(-2.5, 2.5, 51)
    occupancy = np.zeros(2 * chains)
    hist = np.zeros((2, 20, 50))
    snaps = 0
    for step in range(burn + sampled):
        idx = rng.integers(1000, size=2 * chains)
        y1, y2 = labels[0][idx], labels[1][idx]
        r1, r2, j1, j2 = _wells_r_and_j(x)
        grad_label = j1 * (r1 - y1) + j2 * (r2 - y2)
        grad_iso = j1 * r1 + j2 * r2 - math.sqrt(t_iso / tau) * y1
        x = x - lr * np.where(label_rows, grad_label, grad_iso)
        if step >= burn and (step - burn) % 25 == 0:
            snaps += 1
            occupancy += x < xb
            cell = np.searchsorted(bins, x, side="right")  # 1..50 inside [-2.5, 2.5)
            inside = (cell >= 1) & (cell <= 50)
            kind = (~label_rows).astype(int)
            grp = (np.arange(2 * chains) % chains) * 20 // chains
            np.add.at(hist, (kind[inside], grp[inside], cell[inside] - 1), 1.0)
    return {
        "x": x,
        "occupancy": occupancy / snaps,
        "hist": hist,
        "snaps": snaps,
        "burn": burn,
        "sampled": sampled,
        "xb": xb,
        "s": s,
        "bins": bins,
    }


def _check_two_wells(findings: list, seed: int, lr: float, chains: int) -> None:
    ref = _two_wells_by_hand(seed, lr, chains)
    bins = ref["bins"]
    assert len(findings) == 2
    for k, (finding, label) in enumerate(zip(findings, ("label", "isotropic"), strict=True)):
        rows = slice(0, chains) if k == 0 else slice(chains, 2 * chains)
        occ = ref["occupancy"][rows]
        se = float(occ.std(ddof=1)) / math.sqrt(chains)

        def diffusion(x: np.ndarray, k: int = k) -> np.ndarray:
            if k == 0:
                _, _, j1, j2 = _wells_r_and_j(x)
                return 0.2 * (j1 * j1 + j2 * j2)
            return np.full_like(x, 0.25)

        wide = float(stationary_well_weights(_u_prime, diffusion, [ref["xb"]], -6.0, 6.0)[0])
        density = stationary_well_weights(_u_prime, diffusion, bins, -6.0, 6.0)[1:-1] / np.diff(bins)
        assert finding.experiment == "core.wide-minima"
        assert finding.unit == "fraction of time in the wide well"
        assert _rel(finding.measured, float(occ.mean())) < 1e-12
        assert _rel(finding.uncertainty, se) < 1e-12
        assert _rel(finding.tolerance, 4 * se + 0.01) < 1e-12
        assert _rel(finding.predicted, wide) < 1e-9
        d = finding.details
        assert d["noise"] == label
        assert d["lr"] == lr
        assert d["batch"] == 1
        assert d["examples"] == 1000
        assert d["label_sd"] == pytest.approx(ref["s"], rel=1e-14)
        assert d["D"] == ("tau G(x), tau = lr s^2/(2B) = 0.2" if k == 0 else "0.25 (constant)")
        assert (d["chains"], d["burn_in_steps"], d["sampled_steps"], d["snapshots"]) == (
            chains,
            ref["burn"],
            ref["sampled"],
            ref["snaps"],
        )
        final = float((ref["x"][rows] < ref["xb"]).mean())
        assert d["final_snapshot_fraction"] == pytest.approx(final, abs=1e-15)
        assert d["final_snapshot_binomial_se"] == pytest.approx(math.sqrt(final * (1 - final) / chains), rel=1e-12)
        laplace = laplace_well_weights(_u_prime, diffusion, [-1.0, 1.0], [0.8, 3.2])
        assert d["laplace_wide_weight"] == pytest.approx(float(laplace[0]), rel=1e-9)
        assert d["isotropic_laplace_wide_weight"] == pytest.approx(2 / 3, rel=1e-15)
        assert d["laplace_formula"].startswith("w ~ exp(-Phi(a)) / k" if k == 0 else "w ~ exp(-U(a)/T) / sqrt(k)")
        assert f"barrier top x = {ref['xb']:.4f}" in d["wells"]
        assert d["seconds"] >= 0
        assert d["tolerance"].startswith("4 s.e. (chains' time-averaged occupations) + 0.01 for SGD's O(lr) bias")
        c = finding.curve
        assert np.allclose(c.x, 0.5 * (bins[1:] + bins[:-1]), rtol=1e-14)
        counts = ref["hist"][k]
        # each group's histogram density over every snapshot of its chains (those outside [-2.5, 2.5] count too)
        per_group = counts / (ref["snaps"] * (chains // 20)) / np.diff(bins)
        assert np.allclose(c.measured, per_group.mean(0), rtol=1e-12, atol=1e-15)
        assert np.allclose(c.uncertainty, per_group.std(0, ddof=1) / math.sqrt(20), rtol=1e-12, atol=1e-15)
        assert np.allclose(c.predicted, density, rtol=1e-9)
    assert findings[0].claim.startswith("SGD with curvature-dependent mini-batch noise")
    assert findings[1].claim.startswith("the same SGD with isotropic noise")


def test_sharpness_two_wells_are_the_hand_written_chains_at_a_small_size(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _check_two_wells(sh._two_wells(4, False, lr=0.25, chains=40), 4, 0.25, 40)
    # the chains' wall time: a clock that reads 100 s, then 101.234 s
    monkeypatch.setattr(sh, "time", types.SimpleNamespace(perf_counter=iter([100.0, 101.234]).__next__))
    timed = sh._two_wells(4, False, lr=0.25, chains=40)
    assert [f.details["seconds"] for f in timed] == [1.23, 1.23]


def _splits_by_hand(seed: int, replicates: int) -> list[tuple[np.ndarray, ...]]:
    from sklearn.datasets import load_digits

    data, target = load_digits(return_X_y=True)
    out = []
    for r in range(replicates):
        perm = numpy_stream(seed, 3, r).permutation(1797)
        tr, te = perm[:1297], perm[1297:]
        mean, scale = data[tr].mean(0), data[tr].std(0) + 1.0
        out.append(((data[tr] - mean) / scale, target[tr], (data[te] - mean) / scale, target[te]))
    return out


def test_sharpness_digits_splits_are_standardised_fresh_splits_per_replicate() -> None:
    x_train, y_train, x_test, y_test = sh._digits_splits(2, 2, 1297)
    assert x_train.shape == (2, 1297, 64)
    assert x_test.shape == (2, 500, 64)
    assert x_train.dtype == torch.float32
    for r, (a, b, c, d) in enumerate(_splits_by_hand(2, 2)):
        assert np.allclose(x_train[r].numpy(), a.astype(np.float32), rtol=0, atol=0)
        assert np.array_equal(y_train[r].numpy(), b)
        assert np.array_equal(y_test[r].numpy(), d)
        assert np.allclose(x_test[r].numpy(), c.astype(np.float32), rtol=0, atol=0)
    assert not torch.equal(y_train[0], y_train[1])


def test_sharpness_forward_and_ci95_closed_forms() -> None:
    gen = torch.Generator().manual_seed(0)
    p = [torch.randn(3, 4, generator=gen), torch.randn(1, 4, generator=gen), torch.randn(4, 2, generator=gen)]
    p.append(torch.randn(1, 2, generator=gen))
    x = torch.randn(5, 3, generator=gen)
    assert torch.allclose(sh._forward(p, x), torch.tanh(x @ p[0] + p[1]) @ p[2] + p[3], rtol=1e-6, atol=1e-7)
    values = np.array([1.0, 2.0, 4.0, 5.0])
    se = math.sqrt(10.0 / 3.0) / 2.0  # ddof 1 variance 10/3, over sqrt(4)
    mean, s, half = sh._ci95(values)
    assert (mean, s) == (pytest.approx(3.0, rel=1e-15), pytest.approx(se, rel=1e-14))
    assert half == pytest.approx(scipy.stats.t.ppf(0.975, 3) * se, rel=1e-14)


def _digits_by_hand(seed: int, batches: tuple[int, ...]) -> dict:
    """The quick digits run written out for ``batches``: 5 replicates side by side, 10 epochs at lr 0.35 (the
    last partial batch dropped); per batch size the trained parameters, test errors and training losses."""
    lr, replicates = 0.35, 5
    splits = _splits_by_hand(seed, 5)
    x_train, y_train, x_test, y_test = (torch.tensor(np.stack([s[k] for s in splits])) for k in range(4))
    x_train, x_test = x_train.float(), x_test.float()
    t_train = torch.nn.functional.one_hot(y_train, 10).float()
    init = []
    for r in range(replicates):
        gen = torch_stream(seed, 4, r)
        w1 = torch.randn(64, 32, generator=gen, dtype=torch.float32) / 8
        w2 = torch.randn(32, 10, generator=gen, dtype=torch.float32) / math.sqrt(32)
        init.append((w1, torch.zeros(1, 32), w2, torch.zeros(1, 10)))
    out: dict = {}
    rows = torch.arange(replicates)[:, None]
    for b in batches:
        params = [torch.stack([i[k] for i in init]).requires_grad_(True) for k in range(4)]
        gens = [torch_stream(seed, 5, r, b) for r in range(replicates)]
        for _ in range(10):
            order = torch.stack([torch.randperm(1297, generator=g) for g in gens])
            for k in range(0, 1297 - b + 1, b):
                idx = order[:, k : k + b]
                pred = torch.tanh(x_train[rows, idx] @ params[0] + params[1]) @ params[2] + params[3]
                loss = 0.5 * (pred - t_train[rows, idx]).pow(2).sum() / b
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g in zip(params, grads, strict=True):
                        p -= lr * g
        with torch.no_grad():
            ptrain = torch.tanh(x_train @ params[0] + params[1]) @ params[2] + params[3]
            ptest = torch.tanh(x_test @ params[0] + params[1]) @ params[2] + params[3]
            train_loss = (0.5 * (ptrain - t_train).pow(2).sum(-1).mean(1)).double().numpy()
            test_err = (ptest.argmax(-1) != y_test).double().mean(1).numpy()
        out[b] = ([p.detach() for p in params], test_err, train_loss, x_train, t_train)
    return out


def _ci(values: np.ndarray) -> list[float]:
    se = float(values.std(ddof=1)) / math.sqrt(values.size)
    return [float(values.mean()), se, float(scipy.stats.t.ppf(0.975, values.size - 1)) * se]


@pytest.fixture(scope="module")
def wide_minima_run() -> tuple[list, list]:
    """The quick run at seed 0, with each power iteration's inputs and result recorded (the real function runs)."""
    calls: list = []

    def spy(loss_fn, params, iterations, generator, *, rtol):  # type: ignore[no-untyped-def]
        start = generator.initial_seed()
        pair = top_hessian_eigenvalue(loss_fn, params, iterations, generator, rtol=rtol)
        calls.append((loss_fn, params, iterations, start, rtol, pair))
        return pair

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sh, "top_hessian_eigenvalue", spy)
        findings = sh.wide_minima()  # the defaults: seed 0, quick
    return findings, calls


def test_sharpness_wide_minima_two_wells_at_the_quick_size(wide_minima_run) -> None:  # type: ignore[no-untyped-def]
    findings, _ = wide_minima_run
    assert len(findings) == 3
    _check_two_wells(findings[:2], 0, 0.01, 2000)


def test_sharpness_vs_batch_finding_is_the_hand_written_digits_run(wide_minima_run) -> None:  # type: ignore[no-untyped-def]
    findings, calls = wide_minima_run
    finding = findings[2]
    batches = (8, 32, 128, 512)
    assert len(calls) == 20  # 5 replicates at each of 4 batch sizes, in that order
    sharp = {}
    for j, b in enumerate(batches):
        mine = calls[5 * j : 5 * j + 5]
        for r, (_, params, iterations, start, rtol, _) in enumerate(mine):
            assert (iterations, rtol, start) == (300, 1e-3, torch_stream(0, 6, r, b).initial_seed())
            assert all(p.dtype == torch.float32 for p in params)
        sharp[b] = np.array([c[5].value for c in mine])
    ref = _digits_by_hand(0, (128, 512))
    for b in (128, 512):  # the trained parameters of the recorded power iterations, and their loss
        params, _, _, x_train, t_train = ref[b]
        for r in range(5):
            loss_fn, got = calls[5 * batches.index(b) + r][:2]
            for p, q in zip(got, params, strict=True):
                assert torch.allclose(p, q[r], rtol=1e-5, atol=1e-6)
            pr = torch.tanh(x_train[r] @ params[0][r] + params[1][r]) @ params[2][r] + params[3][r]
            assert float(loss_fn(tuple(q[r] for q in params))) == pytest.approx(
                float(0.5 * (pr - t_train[r]).pow(2).sum(1).mean()), rel=1e-5
            )
    log_ratio = np.log(sharp[512] / sharp[8])
    mean, se, half = _ci(log_ratio)
    lower = mean - 4 * se
    assert finding.experiment == "core.wide-minima"
    assert finding.claim == (
        "at the same lr, SGD on digits ends sharper at batch 512 than at batch 8: "
        "log(lambda_max ratio) - 4 s.e. > 0 across replicates (1 = holds)"
    )
    assert (finding.predicted, finding.measured, finding.uncertainty, finding.tolerance) == (
        1.0,
        float(lower > 0),
        0.0,
        0.0,
    )
    assert finding.unit == "indicator"
    assert finding.passed
    d = finding.details
    assert d["epochs"] == 10
    assert d["replicates"] == 5
    assert d["lr"] == "0.35 at every batch size (not scaled); GD stability bound 2/lr = 5.714"
    assert d["power_iteration"] == "rtol 1e-3 on |Hv - lambda v| / lambda, at most 300 Hessian-vector products"
    assert d["train/test"] == "1297/500, a fresh random split per replicate"
    assert d["network"] == "64-32-10 tanh, mean squared error on one-hot labels, float32"
    assert _rel(d["ratio_largest_over_smallest"], math.exp(mean)) < 1e-9
    assert np.allclose(d["ratio_95ci"], [math.exp(mean - half), math.exp(mean + half)], rtol=1e-9)
    assert np.allclose(d["log_ratio_mean_se"], [mean, se], rtol=1e-9)
    assert _rel(d["log_ratio_lower_4se"], lower) < 1e-9
    assert d["seconds"] >= 0
    for j, b in enumerate(batches):
        pairs = [c[5] for c in calls[5 * j : 5 * j + 5]]
        assert np.allclose(d[f"B={b}: sharpness mean, se, 95ci half-width"], _ci(sharp[b]), rtol=1e-12)
        assert d[f"B={b}: power iterations, max relative residual"][0] == [p.iterations for p in pairs]
        res = max(p.residual / p.value for p in pairs)
        assert _rel(d[f"B={b}: power iterations, max relative residual"][1], res) < 1e-12
        if b in ref:
            test_err, train_loss = ref[b][1], ref[b][2]
            assert np.allclose(d[f"B={b}: test error mean, se, 95ci half-width"], _ci(test_err), rtol=1e-9)
            assert _rel(d[f"B={b}: train loss mean"], float(train_loss.mean())) < 1e-5
    c = finding.curve
    assert list(c.x) == [8, 32, 128, 512]
    assert c.log_x
    assert not c.log_y
    assert np.allclose(c.measured, [sharp[b].mean() for b in batches], rtol=1e-12)
    assert np.allclose(c.uncertainty, [_ci(sharp[b])[1] for b in batches], rtol=1e-12)
    assert np.allclose(c.predicted, [2 / 0.35] * 4, rtol=1e-15)


@pytest.mark.parametrize(("quick", "epochs", "replicates"), [(True, 10, 5), (False, 30, 10)])
def test_sharpness_vs_batch_trains_the_documented_epochs_and_replicates(
    monkeypatch: pytest.MonkeyPatch, quick: bool, epochs: int, replicates: int
) -> None:
    """Quick: 10 epochs of 5 replicates, else 30 of 10; counted on the smallest batch (8: 162 steps an epoch, the
    last partial batch dropped) with recording stand-ins for the data and the network (the full run takes minutes)."""
    splits: list = []
    steps: list = []

    def data(seed: int, reps: int, n_train: int) -> tuple[torch.Tensor, ...]:
        splits.append((seed, reps, n_train))
        zeros = torch.zeros(reps, n_train, 64)
        return zeros, torch.zeros(reps, n_train, dtype=torch.long), zeros[:, :500], torch.zeros(reps, 500)

    def network(params, x):  # type: ignore[no-untyped-def]
        if x.shape[1] == 1297:  # the first evaluation after the training at batch 8
            raise _Stop
        steps.append(tuple(x.shape))
        return x[..., :10] + 0.0 * sum(p.sum() for p in params)

    monkeypatch.setattr(sh, "_digits_splits", data)
    monkeypatch.setattr(sh, "_forward", network)
    with pytest.raises(_Stop):
        sh._sharpness_vs_batch(3, quick)
    assert splits == [(3, replicates, 1297)]
    assert len(steps) == epochs * 162
    assert set(steps) == {(replicates, 8, 64)}


def test_sharpness_vs_batch_network_is_float32_whatever_the_default_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digits network is float32 (as its details say) even under a float64 default: the initial weights are
    float32 draws from sub-stream (4, r), the biases float32 zeros."""
    seen: list = []

    def network(params, x):  # type: ignore[no-untyped-def]
        seen.append([p.detach().clone() for p in params])
        raise _Stop

    monkeypatch.setattr(sh, "_forward", network)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with pytest.raises(_Stop):
            sh._sharpness_vs_batch(0, True)
    finally:
        torch.set_default_dtype(default)
    (params,) = seen
    assert [p.dtype for p in params] == [torch.float32] * 4
    assert [tuple(p.shape) for p in params] == [(5, 64, 32), (5, 1, 32), (5, 32, 10), (5, 1, 10)]
    for r in range(5):
        gen = torch_stream(0, 4, r)
        w1 = torch.randn(64, 32, generator=gen, dtype=torch.float32) / 8
        w2 = torch.randn(32, 10, generator=gen, dtype=torch.float32) / math.sqrt(32)
        assert torch.equal(params[0][r], w1)
        assert torch.equal(params[2][r], w2)
    assert not params[1].any()
    assert not params[3].any()


# ------------------------------------------------------------------------------------------------ line search


def _ls_problem_by_hand(seed: int, spread: float, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = numpy_stream(seed, 0)
    z, w, eps = rng.standard_normal((256, 8)), rng.standard_normal(8), rng.standard_normal(256)
    u = scipy.stats.norm.ppf((np.arange(256) + 0.5) / 256)
    x = z * np.exp(spread * u)[:, None]
    x = x / math.sqrt(float((x**2).sum(axis=1).mean()))
    y = x @ w + noise * eps
    return x, y, np.linalg.solve(x.T @ x, x.T @ y)


def test_line_search_problem_is_the_documented_least_squares_with_its_minimiser() -> None:
    p = ls._problem(3, 0.75, 0.05)
    x, y, w_star = _ls_problem_by_hand(3, 0.75, 0.05)
    assert np.allclose(p.X, x, rtol=1e-12, atol=1e-14)
    assert np.allclose(p.y, y, rtol=1e-12, atol=1e-14)
    assert np.allclose(p.w_star, w_star, rtol=1e-9, atol=1e-12)
    assert ((p.X**2).sum(axis=1).mean()) == pytest.approx(1.0, rel=1e-13)
    assert np.allclose(p.hessian, x.T @ x / 256, rtol=1e-12)
    assert np.allclose(p.residuals, x @ w_star - y, rtol=1e-8, atol=1e-12)
    e = np.arange(8.0) - w_star
    assert p.excess(np.arange(8.0)) == pytest.approx(0.5 * e @ (x.T @ x / 256) @ e, rel=1e-12)
    assert p.start == pytest.approx(0.5 * w_star @ (x.T @ x / 256) @ w_star, rel=1e-12)
    clean = ls._problem(3, 0.75, 0.0)  # the same draws without noise: interpolation, residuals 0
    assert np.allclose(clean.X, p.X, rtol=0, atol=0)
    assert np.abs(clean.residuals).max() < 1e-12
    # spread 0: row norms vary only through z (their log-spread is 0.75 less)
    flat = ls._problem(3, 0.0, 0.0)
    assert np.allclose(flat.X, _ls_problem_by_hand(3, 0.0, 0.0)[0], rtol=1e-12, atol=1e-14)


def test_line_search_armijo_steps_and_search_cost_closed_forms() -> None:
    p = ls._problem(1, 0.75, 0.0)
    etas, backtracks = ls._armijo_steps(p)
    smooth = (p.X**2).sum(axis=1)
    k = np.array([next(j for j in range(60) if 10.0 * 0.5**j * s <= 1.8) for s in smooth])  # eta L <= 2 (1 - c)
    assert np.array_equal(backtracks, k)
    assert np.allclose(etas, 10.0 * 0.5**k, rtol=1e-15)
    e2, k2 = least_squares_armijo_steps(p.X, max_step=10.0, c=0.1, beta=0.5)
    assert np.array_equal(etas, e2)
    assert np.array_equal(backtracks, k2)
    bt = np.array([0, 1, 3])
    assert ls._search_cost(bt) == pytest.approx(1.0 + 7.0 / 3.0, rel=1e-15)  # a gradient, then k + 1 losses
    assert ls._search_cost(bt, 1.0 / 3.0) == pytest.approx(1.0 + 7.0 / 9.0, rel=1e-15)


def _transition_by_hand(x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    d = x.shape[1]
    total = np.zeros((d * d, d * d))
    for xi, eta in zip(x, steps, strict=True):
        m = np.eye(d) - eta * np.outer(xi, xi)
        total += np.kron(m, m)
    return total / x.shape[0]


def _excess_curve_by_hand(p: object, steps: np.ndarray, horizon: int) -> np.ndarray:
    """``E f(w_t) - f*`` of consistent least squares by iterating the second moment ``M`` itself."""
    t = _transition_by_hand(p.X, steps)  # type: ignore[attr-defined]
    m = np.outer(p.w_star, p.w_star).reshape(-1)  # type: ignore[attr-defined]
    h = p.hessian  # type: ignore[attr-defined]
    out = [0.5 * float(np.sum(h * m.reshape(8, 8)))]
    for _ in range(horizon):
        m = t @ m
        out.append(0.5 * float(np.sum(h * m.reshape(8, 8))))
    return np.array(out)


def _crossing_by_hand(curve: np.ndarray, target: float) -> float:
    k = int(np.nonzero(curve <= target)[0][0])
    return k - 1 + math.log(curve[k - 1] / target) / math.log(curve[k - 1] / curve[k])


def test_line_search_transition_and_exact_crossing_steps() -> None:
    p = ls._problem(2, 0.75, 0.0)
    etas, _ = ls._armijo_steps(p)
    assert np.allclose(ls._transition(p.X, etas), _transition_by_hand(p.X, etas), rtol=1e-10, atol=1e-13)
    curve = _excess_curve_by_hand(p, etas, 2100)
    for target in (0.3 * p.start, 0.02 * p.start):
        assert ls._crossing_steps(p, etas, target) == pytest.approx(_crossing_by_hand(curve, target), rel=1e-9)
    # a target crossed exactly at the first step of the second block of 1024 (t = 1025)
    target = math.sqrt(curve[1024] * curve[1025])
    assert ls._crossing_steps(p, etas, target) == pytest.approx(1024.5, rel=1e-9)
    assert ls._crossing_steps(p, etas, target, limit=1024) == math.inf  # more steps than the limit
    assert ls._crossing_steps(p, np.full(256, 3.0), 0.5 * p.start) == math.inf  # diverges in mean square
    # the default limit is 2**17 steps: a target that steps 1000x shorter reach at t = 200000 counts as never
    slow = etas / 1000
    values, vectors = np.linalg.eigh(_transition_by_hand(p.X, slow))
    e0 = -p.w_star
    weights = (vectors.T @ (0.5 * p.hessian).reshape(-1)) * (vectors.T @ np.outer(e0, e0).reshape(-1))
    late = float(weights @ values**200_000)  # E f_t - f* at t = 200000, from the eigen-decomposition
    assert ls._crossing_steps(p, slow, late, limit=1 << 18) == pytest.approx(200_000, rel=1e-9)
    assert ls._crossing_steps(p, slow, late) == math.inf
    assert ls._crossing_steps(p, etas, 2 * p.start) == pytest.approx(
        math.log(p.start / (2 * p.start)) / math.log(p.start / curve[1]), rel=1e-9, abs=1e-12
    )


def _golden_by_hand(p: object, target: float, overshoot: bool) -> tuple[float, float]:
    smooth = (p.X**2).sum(axis=1)  # type: ignore[attr-defined]
    memo: dict[float, float] = {}

    def need(log_lr: float) -> float:
        if log_lr not in memo:
            memo[log_lr] = ls._crossing_steps(p, np.full(256, math.exp(log_lr)), target)  # type: ignore[arg-type]
        return memo[log_lr]

    lo = math.log(0.05 / smooth.max())
    hi = math.log(2.0) if overshoot else math.log(2.0 / smooth.max())
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    while hi - lo > 0.01:
        if need(a) <= need(b):
            hi, b = b, a
            a = hi - g * (hi - lo)
        else:
            lo, a = a, b
            b = lo + g * (hi - lo)
    best = min((a, b, hi), key=need)
    return math.exp(best), need(best)


@pytest.mark.parametrize("overshoot", [False, True])
def test_line_search_best_fixed_step_is_the_golden_section_on_the_exact_theory(overshoot: bool) -> None:
    p = ls._problem(2, 0.75, 0.0)
    target = 1e-3 * p.start
    lr, steps = ls._best_fixed_step(p, target, overshoot=overshoot)
    ref_lr, ref_steps = _golden_by_hand(p, target, overshoot)
    assert lr == pytest.approx(ref_lr, rel=1e-12)
    assert steps == pytest.approx(ref_steps, rel=1e-12)
    bound = 2.0 / float((p.X**2).sum(axis=1).max())
    if not overshoot:
        assert lr <= bound * (1 + 1e-12)


def test_line_search_best_fixed_step_finds_a_converging_step_when_both_first_probes_diverge() -> None:
    # one example 400x stiffer than its fellows (|x_0|^2 = 160000): both golden-section probes of the unrestricted
    # range diverge in mean square (infinite steps, a tie); the search must shrink the step, not grow it
    p = ls._problem(2, 0.75, 0.0)
    x = p.X.copy()
    x[0] *= 400.0 / np.linalg.norm(x[0])
    stiff = ls._Problem(x, x @ p.w_star, p.w_star)
    target = 0.5 * stiff.start
    smooth = float((x**2).sum(axis=1).max())
    g = (math.sqrt(5.0) - 1.0) / 2.0
    lo, hi = math.log(0.05 / smooth), math.log(2.0)
    for probe in (hi - g * (hi - lo), lo + g * (hi - lo)):
        assert ls._crossing_steps(stiff, np.full(256, math.exp(probe)), target) == math.inf
    lr, steps = ls._best_fixed_step(stiff, target, overshoot=True)
    _bounded_lr, bounded = ls._best_fixed_step(stiff, target, overshoot=False)
    assert math.isfinite(steps)
    assert steps <= bounded * 1.01  # the unrestricted optimum is at least as good as the restricted one (to 1%)
    assert steps == pytest.approx(ls._crossing_steps(stiff, np.full(256, lr), target), rel=1e-14)


def test_line_search_noisy_curve_is_the_exact_mean_over_every_example_path() -> None:
    p = ls._problem(4, 0.75, 0.5)
    etas, _ = ls._armijo_steps(p)
    x, y, h = p.X, p.y, p.hessian
    w1 = (etas * y)[:, None] * x  # from w = 0: w_1 = eta_i y_i x_i
    r1 = (w1[:, None, :] * x[None, :, :]).sum(-1) - y[None, :]  # r[i, j] = x_j^T w1_i - y_j
    w2 = w1[:, None, :] - (etas[None, :] * r1)[:, :, None] * x[None, :, :]
    e0, e1, e2 = -p.w_star, w1 - p.w_star, w2 - p.w_star
    exact = [
        0.5 * e0 @ h @ e0,
        0.5 * np.mean(np.einsum("ni,ij,nj->n", e1, h, e1)),
        0.5 * np.mean(np.einsum("abi,ij,abj->ab", e2, h, e2)),
    ]
    assert np.allclose(ls._noisy_curve(p, etas, 2), exact, rtol=1e-10)


def test_line_search_floors_and_the_step_for_a_floor() -> None:
    p = ls._problem(4, 0.75, 0.05)
    etas, _ = ls._armijo_steps(p)
    root = np.sqrt(etas)
    xs, ys = p.X * root[:, None], p.y * root
    w_eta = np.linalg.solve(xs.T @ xs, xs.T @ ys)
    e = w_eta - p.w_star
    bias = 0.5 * e @ p.hessian @ e
    sigma = least_squares_stationary_covariance(xs, xs @ w_eta - ys, 1.0, 1)
    floor, got_bias = ls._armijo_floor(p, etas)
    assert got_bias == pytest.approx(bias, rel=1e-6)
    assert bias > 0
    assert floor == pytest.approx(0.5 * float(np.sum(p.hessian * sigma)) + bias, rel=1e-9)
    fixed = 0.5 * float(np.sum(p.hessian * least_squares_stationary_covariance(p.X, p.residuals, 0.1, 1)))
    assert ls._fixed_floor(p, 0.1) == pytest.approx(fixed, rel=1e-12)
    assert ls._fixed_floor(p, 50.0) == math.inf  # diverges in mean square
    lo, hi = math.log(1e-5), math.log(2.0)
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ls._fixed_floor(p, math.exp(mid)) < floor / 8 else (lo, mid)
    assert ls._step_for_floor(p, floor / 8) == pytest.approx(math.exp(lo), rel=1e-14)
    assert ls._fixed_floor(p, math.exp(lo)) == pytest.approx(floor / 8, rel=1e-6)


def _run_by_hand(problems: list, chains: int, steps: int, gen: torch.Generator, etas: list, extra: list):
    """Per-example steps ``etas[k][i]`` on block ``k``; a step costs ``1 + extra[k][i]``; the excess and cost."""
    rows = chains * len(problems)
    owner = np.repeat(np.arange(len(problems)), chains)
    w = np.zeros((rows, 8))
    excess = np.zeros((rows, steps + 1))
    cost = np.zeros((rows, steps + 1))

    def record(t: int) -> None:
        for r in range(rows):
            p = problems[owner[r]]
            e = w[r] - p.w_star
            excess[r, t] = 0.5 * e @ p.hessian @ e

    record(0)
    for t in range(1, steps + 1):
        idx = torch.randint(256, (rows,), generator=gen).numpy()
        for r in range(rows):
            p, i = problems[owner[r]], idx[r]
            w[r] = w[r] - etas[owner[r]][i] * (p.X[i] @ w[r] - p.y[i]) * p.X[i]
            cost[r, t] = cost[r, t - 1] + 1.0 + extra[owner[r]][i]
        record(t)
    return excess, cost


def test_line_search_runs_are_per_example_step_sgd_on_their_own_problems() -> None:
    problems = [ls._problem(5, 0.75, 0.0), ls._problem(5, 0.0, 0.05)]
    lrs = [0.3, 0.1]
    excess, cost = ls._run(problems, 3, 12, torch_stream(5, 2), lrs=lrs)
    ref = _run_by_hand(problems, 3, 12, torch_stream(5, 2), [np.full(256, lr) for lr in lrs], [np.zeros(256)] * 2)
    assert excess.shape == cost.shape == (6, 13)
    assert excess.dtype == cost.dtype == F64
    assert np.allclose(excess.numpy(), ref[0], rtol=1e-10, atol=1e-14)
    assert np.array_equal(cost.numpy(), ref[1])
    # the "max" search with b = 1: example i's accepted step eta_i, at the cost of a gradient and k_i + 1 losses
    search = StochasticArmijo(10.0, c=0.1, beta=0.5, reset="max")
    excess, cost = ls._run(problems, 3, 12, torch_stream(5, 1), search=search)
    steps = [ls._armijo_steps(p) for p in problems]
    ref = _run_by_hand(problems, 3, 12, torch_stream(5, 1), [s[0] for s in steps], [s[1] + 1.0 for s in steps])
    assert np.allclose(excess.numpy(), ref[0], rtol=1e-9, atol=1e-14)
    assert np.array_equal(cost.numpy(), ref[1])
    with pytest.raises(ValueError, match="one fixed step per problem"):
        ls._run(problems, 3, 2, torch_stream(5, 1), lrs=[0.1])
    with pytest.raises(ValueError, match="one fixed step per problem"):
        ls._run(problems, 3, 2, torch_stream(5, 1), lrs=lrs, search=search)
    blocks = ls._blocks((excess, cost), 3)
    assert len(blocks) == 2
    assert torch.equal(blocks[1][0], excess[3:6])
    assert torch.equal(blocks[0][1], cost[0:3])


def test_line_search_first_crossing_interpolates_log_linearly() -> None:
    mean = torch.tensor(
        [[1.0, 0.5, 0.1, 0.01], [1.0, 0.9, 0.8, 0.7], [0.05, 0.01, 0.001, 0.0001], [1.0, 0.2, 0.2, 0.1]], dtype=F64
    )
    got = ls._first_crossing(mean, 0.2)
    assert got[0].item() == pytest.approx(1 + math.log(0.5 / 0.2) / math.log(0.5 / 0.1), rel=1e-14)
    assert got[1].item() == math.inf
    assert got[2].item() == math.inf
    assert got[3].item() == pytest.approx(1.0, rel=1e-14)  # exactly at the target at step 1


def test_line_search_crossing_reads_the_mean_cost_at_the_mean_crossing() -> None:
    excess = torch.tensor([[1.0, 0.5, 0.1, 0.05], [1.0, 0.3, 0.3, 0.01]], dtype=F64)
    cost = torch.tensor([[0.0, 2.0, 4.0, 6.0], [0.0, 3.0, 6.0, 9.0]], dtype=F64)
    resamples = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=F64)
    got = ls._crossing(excess, cost, 0.25, resamples)
    mean = torch.tensor([1.0, 0.4, 0.2, 0.03])
    at = 1 + math.log(0.4 / 0.25) / math.log(0.4 / 0.2)
    evaluations = 2.5 + (at - 1) * 2.5
    assert got.steps == pytest.approx(at, rel=1e-12)
    assert got.evaluations == pytest.approx(evaluations, rel=1e-12)
    assert got.per_step == pytest.approx(evaluations / at, rel=1e-12)
    a0 = 1 + math.log(0.5 / 0.25) / math.log(0.5 / 0.1)  # resample: run 0 twice
    a1 = 2 + math.log(0.3 / 0.25) / math.log(0.3 / 0.01)  # run 1 twice
    boot = [a0 * 2.0, 6.0 + (a1 - 2) * 3.0, evaluations]
    assert got.evaluations_se == pytest.approx(float(np.std(boot, ddof=1)), rel=1e-12)
    assert got.relative_se == pytest.approx(got.evaluations_se / evaluations, rel=1e-15)
    hits = [4.0, 9.0]  # each run's own first cost at or below 0.25
    assert got.hitting == pytest.approx(6.5)
    assert got.hitting_se == pytest.approx(np.std(hits, ddof=1) / math.sqrt(2))
    assert got.spent == pytest.approx(7.5, rel=1e-15)
    assert float(mean[2]) <= 0.25
    never = ls._crossing(excess, cost, 0.001, resamples)
    assert (never.evaluations, never.evaluations_se, never.steps) == (math.inf, math.inf, math.inf)
    assert never.per_step == pytest.approx(7.5 / 3)
    assert math.isnan(never.hitting)
    assert math.isnan(never.hitting_se)
    partly = ls._crossing(excess, cost, 0.045, resamples)  # the mean crosses; the resample of run 0 alone never
    assert math.isfinite(partly.evaluations)
    assert partly.evaluations_se == math.inf
    assert math.isnan(partly.hitting)
    assert math.isnan(partly.hitting_se)


def test_line_search_bootstrap_counts_are_draws_from_stream_4() -> None:
    weights = ls._bootstrap(6, 5, 4)
    draws = numpy_stream(6, 4).integers(0, 5, size=(4, 5))
    expected = np.stack([np.bincount(row, minlength=5) for row in draws]).astype(np.float64)
    assert weights.dtype == F64
    assert np.array_equal(weights.numpy(), expected)


def test_line_search_theory_gathers_the_exact_predictions() -> None:
    t = ls._theory(1, 0.5)
    p = ls._problem(1, 0.5, 0.0)
    assert np.array_equal(t.problem.X, p.X)
    assert t.spread == 0.5
    assert t.target == pytest.approx(1e-3 * p.start, rel=1e-14)
    etas, bt = ls._armijo_steps(p)
    assert np.array_equal(t.etas, etas)
    assert np.array_equal(t.backtracks, bt)
    assert t.search_steps == pytest.approx(ls._crossing_steps(p, etas, t.target), rel=1e-14)
    lr, fixed = ls._best_fixed_step(p, t.target, overshoot=False)
    olr, ofixed = ls._best_fixed_step(p, t.target, overshoot=True)
    assert (t.best_lr, t.fixed_steps, t.oracle_lr, t.oracle_steps) == pytest.approx((lr, fixed, olr, ofixed), rel=1e-14)
    cost = 1.0 + float((bt + 1).mean())
    assert t.search_evaluations == pytest.approx(t.search_steps * cost, rel=1e-14)
    assert t.ratio == pytest.approx(t.search_steps * cost / fixed, rel=1e-14)


@pytest.fixture(scope="module")
def line_search_run() -> tuple[list, list]:
    """The quick run at seed 0 with each batch of runs' arguments and results recorded (the real runs)."""
    calls: list = []
    real = ls._run

    def spy(problems, chains, steps, gen, *, lrs=(), search=None):  # type: ignore[no-untyped-def]
        start = gen.initial_seed()
        out = real(problems, chains, steps, gen, lrs=lrs, search=search)
        calls.append(
            {
                "problems": problems,
                "chains": chains,
                "steps": steps,
                "seed": start,
                "lrs": list(lrs),
                "search": search,
                "out": out,
            }
        )
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ls, "_run", spy)
        findings = ls.line_search()  # the defaults: seed 0, quick
    return findings, calls


def _split(out: tuple[torch.Tensor, torch.Tensor], k: int, chains: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    return out[0][k * chains : (k + 1) * chains], out[1][k * chains : (k + 1) * chains]


def test_line_search_experiment_runs_the_documented_problems_streams_and_horizons(line_search_run) -> None:  # type: ignore[no-untyped-def]
    _, calls = line_search_run
    assert len(calls) == 3
    spreads = (0.0, 0.5, 0.75, 1.0)
    theories = [ls._theory(0, s) for s in spreads]
    noisy = ls._problem(0, 0.75, 0.05)
    searched, fixed, grow = calls
    for call, stream in zip(calls, (1, 2, 3), strict=True):
        assert call["chains"] == 256
        assert call["seed"] == torch_stream(0, stream).initial_seed()
    # the searches: every spread and the noisy problem, Vaswani et al.'s c and eta_max, halving from eta_max
    problems = [*(t.problem for t in theories), noisy]
    assert [p.X.tolist() for p in searched["problems"]] == [p.X.tolist() for p in problems]
    assert np.array_equal(searched["problems"][-1].y, noisy.y)
    s = searched["search"]
    assert (s.max_step, s.c, s.beta, s.reset) == (10.0, 0.1, 0.5, "max")
    assert searched["lrs"] == []
    burn_in = math.ceil(2 * theories[2].search_steps)
    assert searched["steps"] == max(burn_in + 200, math.ceil(1.5 * max(t.search_steps for t in theories)))
    # the fixed steps: each spread's best and oracle step, then the noisy problem's
    floor_target = ls._armijo_floor(noisy, theories[2].etas)[0] / 4
    noisy_lr = min(ls._step_for_floor(noisy, floor_target / 2), 2.0 / float((noisy.X**2).sum(axis=1).max()))
    assert fixed["lrs"] == pytest.approx(
        [*(v for t in theories for v in (t.best_lr, t.oracle_lr)), noisy_lr], rel=1e-14
    )
    assert [p.X.tolist() for p in fixed["problems"]] == [p.X.tolist() for t in theories for p in (t.problem,) * 2] + [
        noisy.X.tolist()
    ]
    assert fixed["search"] is None
    smallest = float(np.linalg.eigvalsh(noisy.hessian)[0])
    assert fixed["steps"] == max(
        math.ceil(1.5 * max(t.fixed_steps for t in theories)), math.ceil(8 / (noisy_lr * smallest))
    )
    # the "grow" reset on the equal and the headline problems
    g = grow["search"]
    assert (g.max_step, g.c, g.beta, g.reset, g.growth) == (10.0, 0.1, 0.9, "grow", 2.0)
    assert [p.X.tolist() for p in grow["problems"]] == [theories[0].problem.X.tolist(), theories[2].problem.X.tolist()]
    assert grow["steps"] == math.ceil(6 * max(theories[0].search_steps, theories[2].search_steps))


def test_line_search_floor_curve_has_one_point_per_stride_up_to_the_last_step(line_search_run) -> None:  # type: ignore[no-untyped-def]
    # 162 recorded steps (horizon 161, stride 2): points 0, 2, ..., 160, as many as the excess curve's
    _, calls = line_search_run
    noisy, head = ls._problem(0, 0.75, 0.05), ls._theory(0, 0.75)
    excess, cost = _split(calls[0]["out"], 4)
    floor = ls._armijo_floor(noisy, head.etas)[0]
    cross = ls._crossing(*_split(calls[1]["out"], 8), floor / 4, ls._bootstrap(0, 256, 200))
    finding = ls._floor_finding(noisy, head, (excess[:, :162], cost[:, :162]), 10, cross, calls[1]["lrs"][-1])
    assert list(finding.curve.x) == list(range(0, 161, 2))
    assert len(finding.curve.measured) == 81


def test_line_search_ratio_findings_are_the_crossings_of_the_recorded_runs(line_search_run) -> None:  # type: ignore[no-untyped-def]
    findings, calls = line_search_run
    assert len(findings) == 3
    searched, fixed, grow = (c["out"] for c in calls)
    resamples = ls._bootstrap(0, 256, 200)
    spreads = (0.0, 0.5, 0.75, 1.0)
    theories = [ls._theory(0, s) for s in spreads]
    crossings = [
        (
            ls._crossing(*_split(searched, k), t.target, resamples),
            ls._crossing(*_split(fixed, 2 * k), t.target, resamples),
            ls._crossing(*_split(fixed, 2 * k + 1), t.target, resamples),
        )
        for k, t in enumerate(theories)
    ]
    ratios = [s.evaluations / f.evaluations for s, f, _ in crossings]
    ratio_se = [r * math.hypot(s.relative_se, f.relative_se) for r, (s, f, _) in zip(ratios, crossings, strict=True)]
    for finding, k, grow_k in ((findings[0], 2, 1), (findings[1], 0, 0)):
        t, (s, f, o) = theories[k], crossings[k]
        gr = ls._crossing(*_split(grow, grow_k), t.target, resamples)
        assert finding.experiment == "core.line-search"
        assert finding.unit == "x the best fixed step's evaluations"
        assert finding.predicted == pytest.approx(t.ratio, rel=1e-14)
        assert finding.measured == pytest.approx(ratios[k], rel=1e-12)
        assert finding.uncertainty == pytest.approx(ratio_se[k], rel=1e-12)
        assert finding.tolerance == pytest.approx(4 * ratio_se[k], rel=1e-12)
        d = finding.details
        smooth = (t.problem.X**2).sum(axis=1)
        relax = t.etas * smooth
        assert (d["N"], d["d"], d["batch"], d["spread"]) == (256, 8, 1, spreads[k])
        assert d["smoothness_L_i_range"] == pytest.approx([smooth.min(), smooth.max()], rel=1e-14)
        assert d["target"] == "E f - f* <= 0.001 (f(0) - f*)"
        assert d["search"] == "Armijo on the example's own loss, c=0.1, beta=0.5, from eta_max=10.0 every step"
        assert d["search_relaxation_eta_L_range"] == pytest.approx([relax.min(), relax.max()], rel=1e-14)
        cost = 1.0 + float((t.backtracks + 1).mean())
        assert d["search_cost_per_step_measured_predicted"] == pytest.approx([s.per_step, cost], rel=1e-12)
        assert d["search_evaluations_measured_predicted"] == pytest.approx([s.evaluations, t.search_steps * cost])
        assert d["best_fixed_step"] == pytest.approx(t.best_lr, rel=1e-14)
        assert d["fixed_evaluations_measured_predicted"] == pytest.approx([f.evaluations, t.fixed_steps], rel=1e-12)
        r, se = ratios[k], ratio_se[k]
        assert d["ratio_95ci"] == pytest.approx([r - 1.96 * se, r + 1.96 * se], rel=1e-12)
        third = t.search_steps * (1.0 + float((t.backtracks + 1).mean()) / 3.0) / t.fixed_steps
        assert d["ratio_if_a_loss_costs_a_third_of_a_gradient"] == pytest.approx(third, rel=1e-12)
        assert d["per_run_hitting_evaluations_search"] == pytest.approx([s.hitting, s.hitting_se], rel=1e-12)
        assert d["per_run_hitting_evaluations_fixed"] == pytest.approx([f.hitting, f.hitting_se], rel=1e-12)
        hr = s.hitting / f.hitting
        hse = hr * math.hypot(s.hitting_se / s.hitting, f.hitting_se / f.hitting)
        assert d["per_run_hitting_ratio"] == pytest.approx([hr, hse], rel=1e-12)
        assert d["oracle_fixed_step"] == pytest.approx(t.oracle_lr, rel=1e-14)
        assert d["oracle_overshoot_eta_max_L"] == pytest.approx(t.oracle_lr * smooth.max(), rel=1e-14)
        assert d["oracle_ratio_predicted"] == pytest.approx(t.search_steps * cost / t.oracle_steps, rel=1e-12)
        assert d["oracle_evaluations_measured_predicted"] == pytest.approx([o.evaluations, t.oracle_steps], rel=1e-12)
        assert d["oracle_per_run_hitting_evaluations"] == pytest.approx([o.hitting, o.hitting_se], rel=1e-12)
        assert d["grow_reset"].startswith("Vaswani et al.'s reset: beta=0.9")
        want = (
            gr.evaluations / f.evaluations
            if math.isfinite(gr.evaluations)
            else f"> {gr.spent / f.evaluations:.2f} (not reached in {gr.spent:.0f} evaluations)"
        )
        assert d["grow_reset_ratio_measured"] == (pytest.approx(want, rel=1e-12) if isinstance(want, float) else want)
        for key in ("fixed_step_tuning", "cost_model", "oracle_note", "tolerance"):
            assert isinstance(d[key], str)
            assert d[key]
    assert findings[0].claim.startswith(
        "interpolation, unequally smooth examples (consistent least squares, b = 1, spread 0.75)"
    )
    assert findings[1].claim.startswith("interpolation, equally smooth examples (spread 0)")
    assert findings[1].curve is None
    c = findings[0].curve
    assert list(c.x) == list(spreads)
    assert c.log_y
    assert not c.log_x
    assert c.measured == pytest.approx(ratios, rel=1e-12)
    assert c.uncertainty == pytest.approx(ratio_se, rel=1e-12)
    assert c.predicted == pytest.approx([t.ratio for t in theories], rel=1e-14)
    assert findings[0].predicted < 1 < findings[1].predicted


def test_line_search_floor_finding_is_the_time_average_against_the_exact_floor(line_search_run) -> None:  # type: ignore[no-untyped-def]
    findings, calls = line_search_run
    floor_finding = findings[2]
    searched, fixed = calls[0]["out"], calls[1]["out"]
    noisy = ls._problem(0, 0.75, 0.05)
    head = ls._theory(0, 0.75)
    floor, bias = ls._armijo_floor(noisy, head.etas)
    excess, cost = _split(searched, 4)
    horizon = excess.shape[1] - 1
    burn_in = math.ceil(2 * head.search_steps)
    per_chain = excess[:, burn_in + 1 :].mean(dim=1)
    measured, se = float(per_chain.mean()), float(per_chain.std()) / 16.0
    lr = calls[1]["lrs"][-1]
    cross = ls._crossing(*_split(fixed, 8), floor / 4, ls._bootstrap(0, 256, 200))
    assert floor_finding.experiment == "core.line-search"
    assert floor_finding.unit == "excess loss"
    assert floor_finding.claim.startswith("no interpolation (noisy least squares, b = 1): the stochastic Armijo")
    assert "4x above a target" in floor_finding.claim
    assert floor_finding.predicted == pytest.approx(floor, rel=1e-14)
    assert floor_finding.measured == pytest.approx(measured, rel=1e-12)
    assert floor_finding.uncertainty == pytest.approx(se, rel=1e-12)
    assert floor_finding.tolerance == pytest.approx(4 * se, rel=1e-12)
    d = floor_finding.details
    assert (d["spread"], d["noise_sd"], d["N"], d["d"], d["chains"]) == (0.75, 0.05, 256, 8, 256)
    assert d["initial_excess"] == pytest.approx(noisy.start, rel=1e-14)
    assert d["target_excess"] == pytest.approx(floor / 4, rel=1e-14)
    assert d["floor_over_target_measured"] == pytest.approx(measured / (floor / 4), rel=1e-12)
    assert d["floor_bias_part_weighted_solution"] == pytest.approx(bias, rel=1e-14)
    assert (d["burn_in_steps"], d["averaged_steps"]) == (burn_in, horizon - burn_in)
    assert d["search_cost_per_step"] == pytest.approx(float(cost[:, -1].mean()) / horizon, rel=1e-12)
    assert d["fixed_step"] == lr
    assert d["fixed_step_floor_predicted"] == pytest.approx(ls._fixed_floor(noisy, lr), rel=1e-14)
    assert d["fixed_evaluations_to_target_measured"] == pytest.approx([cross.evaluations, cross.evaluations_se])
    assert d["fixed_per_run_hitting_evaluations"] == pytest.approx([cross.hitting, cross.hitting_se], rel=1e-12)
    assert d["search_evaluations_to_target"].startswith("never")
    stride = max(1, horizon // 80)
    c = floor_finding.curve
    assert list(c.x) == list(range(0, horizon + 1, stride))
    assert c.log_y
    assert c.measured == pytest.approx(excess.mean(dim=0)[::stride].tolist(), rel=1e-12)
    assert c.predicted == pytest.approx(ls._noisy_curve(noisy, head.etas, horizon)[::stride].tolist(), rel=1e-12)
    assert all(f.passed for f in findings)


def test_line_search_fixed_horizon_spans_eight_relaxation_times_of_the_noisy_problems_flattest_direction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fixed-step runs last max(1.5 x the slowest spread's fixed steps, ceil(8 / (lr lambda_min))): at seed 2
    the second term binds (the noisy problem's smallest Hessian eigenvalue, not the next one, decides it)."""
    calls: list = []

    def spy(problems, chains, steps, gen, *, lrs=(), search=None):  # type: ignore[no-untyped-def]
        calls.append((len(problems), chains, steps, gen.initial_seed(), list(lrs)))
        if search is None:  # the fixed-step runs: recorded, then stop
            raise _Stop
        return torch.zeros(len(problems) * chains, 2, dtype=F64), torch.zeros(len(problems) * chains, 2, dtype=F64)

    monkeypatch.setattr(ls, "_run", spy)
    with pytest.raises(_Stop):
        ls.line_search(seed=2)
    theories = [ls._theory(2, s) for s in (0.0, 0.5, 0.75, 1.0)]
    noisy = ls._problem(2, 0.75, 0.05)
    floor_target = ls._armijo_floor(noisy, theories[2].etas)[0] / 4
    noisy_lr = min(ls._step_for_floor(noisy, floor_target / 2), 2.0 / float((noisy.X**2).sum(axis=1).max()))
    eigenvalues = np.linalg.eigvalsh(noisy.hessian)
    spreads_steps = math.ceil(1.5 * max(t.fixed_steps for t in theories))
    relaxation_steps = math.ceil(8 / (noisy_lr * eigenvalues[0]))
    assert relaxation_steps > spreads_steps > math.ceil(8 / (noisy_lr * eigenvalues[1]))  # the smallest one binds
    assert len(calls) == 2
    n, chains, steps, seed, lrs = calls[1]
    assert (n, chains, seed) == (9, 256, torch_stream(2, 2).initial_seed())
    assert lrs[-1] == pytest.approx(noisy_lr, rel=1e-14)
    assert steps == relaxation_steps
