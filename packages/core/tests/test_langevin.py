"""Langevin samplers against Gaussian ground truth (Bayesian linear regression with an exact posterior).

Many independent chains run as the rows of one parameter tensor. Each chain's time average of
``(x - mode)(x - mode)^T`` over ``samples`` draws spaced half a relaxation time apart is one batch mean; the
chains are independent, so these batch means are i.i.d. and the Monte-Carlo standard error (s.e.) of the
long-run covariance is their spread over ``sqrt(chains)``, whatever the autocorrelation inside a chain. The
effective sample size (ESS) of an entry is ``Var(one draw) / s.e.^2`` with ``Var(x_i x_j) = S_ii S_jj + S_ij^2``
for a Gaussian; with 4000 chains x 100 draws it is ~1.9e5 of the 4e5 draws and the relative s.e. of the
covariance, ``|s.e.|_F / |Sigma|_F``, is ~0.35% (asserted below 0.5% where a 2% bound is held, so that a 2%
error would stand out by > 4 s.e.). Checks are 4 s.e. entrywise plus the acceptance bounds, stated at each.
Moments are compared with *exact* stationary covariances: a KS test on chain endpoints missed a 13% variance
error in the research measurements. Accumulating about the mode (not about 0) keeps the mean's fluctuation
out of the s.e. (about 0 it inflated the s.e. 40-fold here).

Step convention: ``lr = h`` in ``x <- x - h grad U + sqrt(2h) xi``; Welling and Teh's step is ``eps = 2h``.
"step * lambda_max = 0.1" in the acceptance is read both ways: ``eps lambda_max = 0.1`` (``h lambda_max =
0.05``, the research note's convention) and ``h lambda_max = 0.1``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch

from noisygrad import SVRG, Energy, FiniteSum, FullBatch, TorchOptimizer, minimize
from noisygrad.noise.theory import (
    langevin_stationary_covariance,
    least_squares_sgld_noise_correction,
    least_squares_sgld_stationary_covariance,
)
from noisygrad.optim.langevin import BAOAB, SGLD
from noisygrad.rng import init_state, torch_stream


class Moments(NamedTuple):
    mean: np.ndarray  # of x - centre
    mean_se: np.ndarray
    cov: np.ndarray
    cov_se: np.ndarray

    def floor(self, reference: np.ndarray) -> float:
        """The relative Frobenius s.e. ``|s.e.|_F / |reference|_F`` (the size of a null relative error)."""
        return float(np.linalg.norm(self.cov_se) / np.linalg.norm(reference))

    def ess(self, reference: np.ndarray) -> np.ndarray:
        """Effective sample size of each covariance entry, ``(S_ii S_jj + S_ij^2) / s.e.^2``."""
        d = np.diag(reference)
        return np.asarray((np.outer(d, d) + reference**2) / self.cov_se**2)


def _run_chains(
    step: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    centre: torch.Tensor,
    *,
    burn_in: int,
    samples: int,
    every: int,
) -> Moments:
    """Mean and covariance of ``x - centre`` with their entrywise s.e. from per-chain batch means."""
    x = x0
    for _ in range(burn_in):
        x = step(x)
    first = torch.zeros_like(x)
    second = torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=x.dtype)
    for _ in range(samples):
        for _ in range(every):
            x = step(x)
        d = x - centre
        first += d
        second += d.unsqueeze(2) * d.unsqueeze(1)
    first, second = first / samples, second / samples
    mean = first.mean(0)
    centred = second - (mean.unsqueeze(1) * mean.unsqueeze(0)).unsqueeze(0)  # E[dd^T] - m m^T, per chain
    chains = math.sqrt(x.shape[0])
    return Moments(
        mean.numpy(), (first.std(0) / chains).numpy(), centred.mean(0).numpy(), (centred.std(0) / chains).numpy()
    )


def _rel_frobenius(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


N, PRIOR_VAR, BATCH = 1000, 100.0, 10


@pytest.fixture(scope="module")
def regression() -> dict[str, torch.Tensor]:
    """y = X w + noise (sigma = 1), prior N(0, 10^2 I): posterior precision eigenvalues ~530 and ~1190.

    A well-conditioned posterior keeps the relaxation time (and the test) short: ~45 steps at h lambda_max = 0.05.
    """
    gen = torch.Generator().manual_seed(20)
    X = torch.randn(N, 2, generator=gen, dtype=torch.float64) * torch.tensor([0.8, 1.0], dtype=torch.float64)
    X[:, 1] += 0.3 * X[:, 0]
    y = X @ torch.tensor([0.5, -1.0], dtype=torch.float64) + torch.randn(N, generator=gen, dtype=torch.float64)
    precision = X.T @ X + torch.eye(2, dtype=torch.float64) / PRIOR_VAR
    mode = torch.linalg.solve(precision, X.T @ y)
    return {"X": X, "y": y, "P": precision, "mode": mode, "cov": torch.linalg.inv(precision)}


def _setup(reg: dict[str, torch.Tensor], h_lambda: float, chains: int = 4000) -> tuple[float, int, torch.Tensor]:
    lam = torch.linalg.eigvalsh(reg["P"])
    h = h_lambda / float(lam[-1])
    tau = int(1 / (h * float(lam[0])))  # relaxation time of the slow direction
    x0 = reg["mode"].expand(chains, 2).clone()
    return h, tau, x0


def _sample(
    reg: dict[str, torch.Tensor],
    h_lambda: float,
    gradient: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    *,
    seed: int,
    noise_correction: np.ndarray | None = None,
) -> Moments:
    """Run SGLD (unit temperature, step ``h`` on ``U``) with ``gradient(x, generator)`` on all chains.

    As in ``minimize``, one run generator (the stream of ``seed``) seeds the sampler's noise and then draws the
    batches.
    """
    h, tau, x0 = _setup(reg, h_lambda)
    sampler = SGLD(h, noise_correction=noise_correction)
    gen = torch_stream(seed)
    state = sampler.init(x0, generator=gen)

    def step(x: torch.Tensor) -> torch.Tensor:
        nonlocal state
        x, state = sampler.update(x, gradient(x, gen), state)
        return x

    return _run_chains(step, x0, reg["mode"], burn_in=8 * tau, samples=100, every=tau // 2)


def _full_gradient(reg: dict[str, torch.Tensor]) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    P, b = reg["P"], reg["X"].T @ reg["y"]
    return lambda x, gen: x @ P - b


def test_full_gradient_langevin_matches_discrete_stationary_covariance(regression: dict[str, torch.Tensor]) -> None:
    # Acceptance: full-gradient Langevin within 1% of the exact (discrete-time) stationary covariance.
    reg = regression
    h, _, _ = _setup(reg, 0.05)
    m = _sample(reg, 0.05, _full_gradient(reg), seed=0)
    theory = langevin_stationary_covariance(reg["P"], h, 1.0)
    assert np.all(np.abs(m.mean) <= 4 * m.mean_se)  # the mean is the mode
    assert np.all(np.abs(m.cov - theory) <= 4 * m.cov_se), (m.cov, theory, m.cov_se)
    assert m.floor(theory) < 0.005  # relative s.e. ~0.35%
    assert m.ess(theory).min() > 1e5  # ESS ~1.9e5
    assert _rel_frobenius(m.cov, theory) < 0.01
    # the discrete formula differs from the posterior by the O(h) bias h lambda / 2, ~1.5% here, which the
    # simulation resolves: the posterior is > 4 s.e. off in the entry where the bias is largest (~8 s.e. there,
    # so a correct chain misses this with probability ~1e-5). (A relative-Frobenius form, |m - posterior| > 4
    # |s.e.|_F, was a coin flip: the bias is only 4.2 |s.e.|_F, and it failed for 2 of seeds 0-4.)
    posterior = reg["cov"].numpy()
    assert 0.005 < _rel_frobenius(theory, posterior) < 0.03
    assert np.max(np.abs(theory - posterior) / m.cov_se) > 7  # the expected separation, from the closed forms
    assert np.any(np.abs(m.cov - posterior) > 4 * m.cov_se), (m.cov, posterior, m.cov_se)


def test_noise_correction_makes_full_gradient_langevin_exact(regression: dict[str, torch.Tensor]) -> None:
    # noise_correction = T A: the injected noise 2h - h^2 A removes the O(h) bias; the chain samples the posterior
    # itself (within 4 s.e. and 1%) at h lambda_max = 0.1, where the uncorrected bias is 3%.
    reg = regression
    posterior = reg["cov"].numpy()
    m = _sample(reg, 0.1, _full_gradient(reg), seed=2, noise_correction=reg["P"].numpy())
    h, _, _ = _setup(reg, 0.1)
    assert np.allclose(langevin_stationary_covariance(reg["P"], h, noise_correction=reg["P"]), posterior, rtol=1e-10)
    assert np.all(np.abs(m.cov - posterior) <= 4 * m.cov_se), (m.cov, posterior, m.cov_se)
    assert _rel_frobenius(m.cov, posterior) < 0.01
    assert _rel_frobenius(langevin_stationary_covariance(reg["P"], h), posterior) > 0.025


def _per_example_grads(reg: dict[str, torch.Tensor], x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """grad of -log p(y_i | w) = x_i (x_i^T w - y_i) for each chain's batch, shape (chains, n, 2)."""
    xb = reg["X"][idx]
    return xb * ((xb @ x.unsqueeze(2)).squeeze(2) - reg["y"][idx]).unsqueeze(2)


def _plain(reg: dict[str, torch.Tensor]) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    def gradient(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(N, (x.shape[0], BATCH), generator=gen)  # each chain its own batch, with replacement
        return x / PRIOR_VAR + N / BATCH * _per_example_grads(reg, x, idx).sum(1)

    return gradient


def _control_variate(reg: dict[str, torch.Tensor]) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """SGLD-CV anchored at the mode: grad U(mode) + P0 (x - mode) + (N/n) sum_batch [grad u_i(x) - grad u_i(mode)].

    For least squares the bracket is x_i x_i^T (x - mode), computed so (one product instead of two gradients);
    grad U(mode) = 0. :func:`test_control_variate_gradient_is_svrg_with_a_fixed_anchor` holds it to the
    library's SVRG estimator.
    """
    mode = reg["mode"]

    def gradient(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(N, (x.shape[0], BATCH), generator=gen)
        xb, d = reg["X"][idx], x - mode
        return d / PRIOR_VAR + N / BATCH * (xb * (xb @ d.unsqueeze(2))).sum(1)

    return gradient


def test_control_variate_gradient_is_svrg_with_a_fixed_anchor(regression: dict[str, torch.Tensor]) -> None:
    # The vectorised control-variate gradient of the sampling tests is noisygrad's SVRG(refresh=None, anchor=mode)
    # on the mean loss U / N (batches of distinct examples there), on the same batch.
    reg = regression

    def loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((X @ w - y) ** 2).mean() + 0.5 * (w**2).sum() / (PRIOR_VAR * N)

    svrg = SVRG(FiniteSum(loss, (reg["X"], reg["y"])), BATCH, refresh=None, anchor=reg["mode"])
    w = reg["mode"] + torch.tensor([0.03, -0.05], dtype=torch.float64)
    gen = torch.Generator().manual_seed(7)
    idx = torch.randperm(N, generator=torch.Generator().manual_seed(7))[:BATCH]  # SVRG's draw from this generator
    estimate = svrg.estimate(w, gen)
    xb, d = reg["X"][idx], w - reg["mode"]
    ours = d / PRIOR_VAR + N / BATCH * (xb * (xb @ d).unsqueeze(1)).sum(0)
    np.testing.assert_allclose((estimate.grad * N).numpy(), ours.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_minibatch_sgld_bias_is_predicted_by_the_discrete_formula(regression: dict[str, torch.Tensor]) -> None:
    # Acceptance: plain SGLD's covariance bias predicted by the discrete formula within 3%. The bias is large
    # (the chain's covariance is ~2.6x the posterior's at eps lambda_max = 0.1). The discrete Lyapunov formula
    # with the additive noise V of the batch gradient at the mode is within 0.6% of the exact law; the exact
    # law with the multiplicative term (least_squares_sgld_stationary_covariance) within 4 s.e.
    reg = regression
    h, _, _ = _setup(reg, 0.05)
    at_mode = _per_example_grads(reg, reg["mode"].unsqueeze(0), torch.arange(N).unsqueeze(0))[0]
    V = N**2 / BATCH * np.cov(at_mode.T.numpy(), bias=True)  # covariance of the batch gradient of U at the mode
    additive = langevin_stationary_covariance(reg["P"], h, 1.0, V)
    residuals = (reg["X"] @ reg["mode"] - reg["y"]).numpy()
    exact = least_squares_sgld_stationary_covariance(reg["X"], residuals, h, BATCH, prior_precision=1 / PRIOR_VAR)
    posterior = reg["cov"].numpy()
    m = _sample(reg, 0.05, _plain(reg), seed=1)
    assert _rel_frobenius(exact, posterior) > 1.0  # the bias: +160%
    assert np.all(np.abs(m.mean) <= 4 * m.mean_se)
    assert np.all(np.abs(m.cov - exact) <= 4 * m.cov_se), (m.cov, exact, m.cov_se)
    assert m.floor(exact) < 0.005
    assert _rel_frobenius(m.cov, additive) < 0.03
    assert _rel_frobenius(m.cov, exact) < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("h_lambda", [0.05, 0.1])
def test_control_variate_sgld_matches_its_exact_stationary_covariance(
    regression: dict[str, torch.Tensor], h_lambda: float
) -> None:
    # Acceptance: control-variate SGLD within 2% (relative Frobenius) of an exact stationary covariance at
    # step * lambda_max = 0.1 (both readings). The chain's gradient noise is multiplicative, (A_B - P)(x - mode),
    # so its exact discrete stationary covariance solves the Lyapunov equation with the multiplicative term
    # (least_squares_sgld_stationary_covariance, residuals x_i^T (mode - anchor) = 0). Three references:
    #   exact (multiplicative) law      held: 4 s.e. entrywise and 2% (MC relative s.e. ~0.35%, asserted < 0.5%)
    #   full-gradient discrete law      0.48% (h lambda_max = 0.05) / 0.99% (0.1) from the exact law: reported
    #   posterior                       1.96% / 4.0% from the exact law (O(h) bias 1.5% / 3.0% + the noise):
    #                                   resolved (> 4 s.e.) and matched within 4 relative s.e.
    # With noise_correction = least_squares_sgld_noise_correction(...) the chain samples the posterior itself:
    # held to 4 s.e. and 2% of the posterior.
    reg = regression
    h, _, _ = _setup(reg, h_lambda)
    zeros, prior = np.zeros(N), 1 / PRIOR_VAR
    exact = least_squares_sgld_stationary_covariance(reg["X"], zeros, h, BATCH, prior_precision=prior)
    full = langevin_stationary_covariance(reg["P"], h, 1.0)
    posterior = reg["cov"].numpy()

    m = _sample(reg, h_lambda, _control_variate(reg), seed=3)
    floor = m.floor(exact)
    assert floor < 0.005
    assert np.all(np.abs(m.mean) <= 4 * m.mean_se)
    assert np.all(np.abs(m.cov - exact) <= 4 * m.cov_se), (m.cov, exact, m.cov_se)
    assert _rel_frobenius(m.cov, exact) < 0.02
    to_full, to_posterior = _rel_frobenius(m.cov, full), _rel_frobenius(m.cov, posterior)
    assert abs(to_full - _rel_frobenius(exact, full)) < 4 * floor, (to_full, _rel_frobenius(exact, full))
    assert abs(to_posterior - _rel_frobenius(exact, posterior)) < 4 * floor
    assert to_posterior > 4 * floor  # the gap to the posterior is real, and predicted

    correction = least_squares_sgld_noise_correction(reg["X"], zeros, BATCH, prior_precision=prior)
    m_c = _sample(reg, h_lambda, _control_variate(reg), seed=4, noise_correction=correction)
    assert np.allclose(
        least_squares_sgld_stationary_covariance(
            reg["X"], zeros, h, BATCH, prior_precision=prior, noise_correction=correction
        ),
        posterior,
        rtol=1e-9,
    )
    assert np.all(np.abs(m_c.cov - posterior) <= 4 * m_c.cov_se), (m_c.cov, posterior, m_c.cov_se)
    assert _rel_frobenius(m_c.cov, posterior) < 0.02


def test_baoab_positions_have_the_exact_gaussian_covariance_at_large_steps() -> None:
    # BAOAB on a harmonic target: position covariance T A^-1 exactly at h sqrt(lambda_max) = 1, where SGLD of
    # the same SGD-equivalent step (h_sgld = h^2 / 2) is biased by 1/(1 - h_sgld lambda / 2) - 1 = 33% along the
    # stiff axis.
    gen_a = np.array([[1.0, 0.3], [0.3, 0.2]])
    a = torch.tensor(gen_a)
    t, h = 0.5, 1.0 / math.sqrt(1.1)
    sampler = BAOAB(h, friction=1.0, temperature=t, seed=3)
    x0 = torch.zeros(4000, 2, dtype=torch.float64)
    state = sampler.init(x0)

    def step(x: torch.Tensor) -> torch.Tensor:
        nonlocal state
        x, state = sampler.update(x, x @ a, state)
        return x

    m = _run_chains(step, x0, torch.zeros(2, dtype=torch.float64), burn_in=200, samples=100, every=10)
    target = t * np.linalg.inv(gen_a)
    assert np.all(np.abs(m.mean) <= 4 * m.mean_se)
    assert np.all(np.abs(m.cov - target) <= 4 * m.cov_se), (m.cov, target, m.cov_se)
    sgld_theory = langevin_stationary_covariance(gen_a, h**2 / 2, t)
    assert np.linalg.eigvalsh(sgld_theory)[0] / np.linalg.eigvalsh(target)[0] > 1.3


def test_sampler_runs_resume_bit_identically_in_minimize_and_torch() -> None:
    energy = Energy(lambda x: 0.5 * (x**2).sum())
    for sampler_factory in (lambda: SGLD(0.05, temperature=0.3), lambda: BAOAB(0.3, friction=0.5)):
        x0 = torch.ones(3, dtype=torch.float64)
        full = minimize(FullBatch(energy), sampler_factory(), x0, steps=40, seed=4)
        first = minimize(FullBatch(energy), sampler_factory(), x0, steps=15, seed=4)
        buffer = io.BytesIO()
        torch.save(first.checkpoint, buffer)
        buffer.seek(0)
        rest = minimize(FullBatch(energy), sampler_factory(), steps=25, resume=torch.load(buffer, weights_only=True))
        assert torch.equal(rest.x, full.x)

    def torch_run(steps: int, state: dict | None = None) -> tuple[torch.nn.Linear, TorchOptimizer]:  # type: ignore[type-arg]
        torch.manual_seed(0)  # the model's initial weights only (test entry point)
        model = torch.nn.Linear(2, 2, dtype=torch.float64)
        opt = TorchOptimizer(model.parameters(), BAOAB(0.1, seed=5))
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
        for _ in range(steps):
            opt.zero_grad()
            model(torch.ones(4, 2, dtype=torch.float64)).pow(2).mean().backward()
            opt.step()
        return model, opt

    reference, _ = torch_run(20)
    model, opt = torch_run(8)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    resumed, _ = torch_run(12, torch.load(buffer, weights_only=True))
    assert torch.equal(resumed.weight, reference.weight)
    assert torch.equal(resumed.bias, reference.bias)


@pytest.mark.parametrize("make", [lambda: SGLD(0.05, temperature=0.3), lambda: BAOAB(0.3, friction=0.5)])
def test_the_run_generator_seeds_the_noise(make: Callable[[], SGLD | BAOAB]) -> None:
    # init(params, generator=g) spawns the noise from g (one draw, g advances): the same generator state gives
    # the same noise, another state other noise, and a second init from the advancing g a new stream.
    x = torch.zeros(6, dtype=torch.float64)

    def noise(state: dict) -> torch.Tensor:  # type: ignore[type-arg]
        sampler = make()
        return sampler.update(x, torch.zeros_like(x), state)[0]

    gen = torch.Generator().manual_seed(11)
    before = gen.get_state()
    first = make().init(x, generator=gen)
    assert not torch.equal(gen.get_state(), before)  # spawning drew from the run's generator
    second = make().init(x, generator=gen)
    again = make().init(x, generator=torch.Generator().manual_seed(11))
    other = make().init(x, generator=torch.Generator().manual_seed(12))
    assert torch.equal(noise(first), noise(again))
    assert not torch.equal(noise(first), noise(second))
    assert not torch.equal(noise(first), noise(other))
    assert not torch.equal(noise(first), noise(make().init(x)))  # not the standalone stream either


def test_a_sampler_with_its_own_seed_refuses_the_run_generator() -> None:
    # two sources for one run's noise: the sampler's seed would silently lose (or win); refused instead
    x = torch.zeros(2)
    for sampler in (SGLD(0.1, seed=3), BAOAB(0.1, seed=0)):
        with pytest.raises(ValueError, match="seed"):
            sampler.init(x, generator=torch.Generator().manual_seed(0))
    SGLD(0.1).init(x, generator=torch.Generator().manual_seed(0))  # no seed of its own: fine


def test_init_state_hands_the_run_generator_to_samplers_only() -> None:
    from noisygrad import SGD

    x = torch.zeros(3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    before = gen.get_state()
    assert init_state(SGD(0.1), x, gen) == SGD(0.1).init(x)
    assert torch.equal(gen.get_state(), before)  # a deterministic rule leaves the run's stream alone
    state = init_state(SGLD(0.1), x, gen)
    assert torch.equal(state["generator"], SGLD(0.1).init(x, generator=torch.Generator().manual_seed(5))["generator"])


def test_minimize_seed_determines_the_langevin_noise() -> None:
    # FullBatch draws nothing, so the run's seed reaches the iterates only through the sampler's noise
    energy = Energy(lambda x: 0.5 * (x**2).sum())
    x0 = torch.ones(3, dtype=torch.float64)
    for make in (lambda: SGLD(0.05, temperature=0.3), lambda: BAOAB(0.3, friction=0.5)):
        runs = [minimize(FullBatch(energy), make(), x0, steps=5, seed=s).x for s in (0, 0, 1)]
        assert torch.equal(runs[0], runs[1])
        assert not torch.equal(runs[0], runs[2])


def test_torch_optimizer_runs_of_a_seeded_sampler_reproduce() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        p, q = torch.zeros(4, requires_grad=True), torch.ones(3, requires_grad=True)
        opt = TorchOptimizer([p, q], SGLD(0.1, temperature=0.5, seed=seed))
        for _ in range(3):
            opt.zero_grad()
            (p.pow(2).sum() + q.pow(2).sum()).backward()
            opt.step()
        return [p.detach().clone(), q.detach().clone()]

    a, b, c = run(6), run(6), run(7)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_each_parameter_tensor_gets_its_own_noise() -> None:
    p, q = torch.zeros(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    opt = TorchOptimizer([p, q], SGLD(0.1, seed=6))
    (p.sum() * 0 + q.sum() * 0).backward()
    opt.step()
    assert not torch.equal(p, q)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="temperature"):
        SGLD(0.1, temperature=0.0)
    with pytest.raises(ValueError, match="friction"):
        BAOAB(0.1, friction=-1.0)
    with pytest.raises(ValueError, match="seed"):
        SGLD(0.1, seed=-1)
    with pytest.raises(ValueError, match="lr"):
        SGLD(-0.1)
    with pytest.raises(ValueError, match="noise_correction"):
        SGLD(0.1, noise_correction=-1.0)
    with pytest.raises(ValueError, match="noise_correction"):
        SGLD(0.1, noise_correction=float("nan"))
    with pytest.raises(ValueError, match="symmetric"):
        SGLD(0.1, noise_correction=[[1.0, 2.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="finite"):
        SGLD(0.1, noise_correction=np.array([[1.0, np.inf], [np.inf, 1.0]]))
    with pytest.raises(ValueError, match="last dimension"):
        SGLD(0.1, noise_correction=np.eye(3)).init(torch.zeros(4, 2))
    x = torch.zeros(2, dtype=torch.float64)
    for too_large in (30.0, 30.0 * np.eye(2)):  # 2 h T - h^2 c < 0 at h = 0.1, T = 1
        sampler = SGLD(0.1, noise_correction=too_large)
        with pytest.raises(ValueError, match="too large"):
            sampler.update(x, x, sampler.init(x))


def test_the_noise_factor_follows_a_changed_temperature() -> None:
    """The cached factor L (L L^T = 2 h T I - h^2 C) is rebuilt when the temperature or correction changes."""
    c = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    sampler = SGLD(0.1, temperature=1.0, noise_correction=c)
    for temperature in (1.0, 3.0):
        sampler.temperature = temperature
        factor = sampler._noise_factor(0.1)
        expected = 2 * 0.1 * temperature * torch.eye(2, dtype=torch.float64) - 0.1**2 * c
        torch.testing.assert_close(factor @ factor.T, expected)
