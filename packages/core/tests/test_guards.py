"""Guards of the core: a noise ball is never negative, randomness never falls back to torch's global generator,
a seed is a seed, and the parts of a run are checked before its first step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import noisygrad as ng
from noisygrad.checks import check_torch_generator


def test_an_indefinite_noise_covariance_is_refused_instead_of_giving_a_negative_ball():
    """``noise_cov = -I`` gave ``mean_square_distance = -0.0526`` (and ``[[1, 2], [2, 1]]`` an indefinite ball)."""
    for noise_cov in (-np.eye(1), np.array([[1.0, 2.0], [2.0, 1.0]])):
        hessian = np.eye(noise_cov.shape[0])
        with pytest.raises(ValueError, match="noise_cov must be positive semi-definite"):
            ng.noise_ball(hessian, noise_cov, 0.1)
        with pytest.raises(ValueError, match="noise_cov must be positive semi-definite"):
            ng.sgd_stationary_covariance(hessian, noise_cov, 0.1)
        with pytest.raises(ValueError, match="grad_noise_cov must be positive semi-definite"):
            ng.langevin_stationary_covariance(hessian, 0.1, grad_noise_cov=noise_cov)


def test_the_noise_ball_is_non_negative_for_random_stable_problems():
    """200 random problems (fixed seed): SPD Hessians, PSD noise (rank-deficient ones too), every stable step."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = int(rng.integers(1, 6))
        q = rng.standard_normal((d, d))
        hessian = q @ q.T + 1e-3 * np.eye(d)
        factor = rng.standard_normal((d, int(rng.integers(1, d + 1))))
        noise_cov = factor @ factor.T * 10.0 ** rng.uniform(-12, 2)
        lr = rng.uniform(0.01, 1.99) / np.linalg.eigvalsh(hessian).max()
        ball = ng.noise_ball(hessian, noise_cov, lr, int(rng.integers(1, 64)))
        assert ball.mean_square_distance >= 0.0
        assert ball.excess_loss >= 0.0
        assert ball.radius == pytest.approx(np.sqrt(ball.mean_square_distance))
        assert np.linalg.eigvalsh(ball.covariance).min() >= -1e-9 * max(1.0, ball.mean_square_distance)


def test_no_generator_means_an_error_not_torchs_global_generator():
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator, .*global generator"):
        check_torch_generator("generator", None)
    box = ng.NoisyBlackBox(lambda p, g: p.sum(1) + torch.randn(p.shape[0], generator=g, dtype=p.dtype))
    state = torch.get_rng_state()
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        box.evaluate(torch.zeros(2, 3, dtype=torch.float64), None)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator was not drawn from
    # SPSA draws its perturbations before it evaluates, so it is refused only there (estimators/ is left as is)
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        ng.SPSA(box).estimate(torch.zeros(3, dtype=torch.float64), None)


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("7", TypeError)])
def test_a_seed_must_be_an_integer_at_least_zero(seed, error):
    objective = ng.GLM(torch.eye(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), loss="squared")
    with pytest.raises(error, match="seed"):
        ng.minimize(ng.MiniBatch(objective, 2), ng.SGD(0.1), torch.zeros(3, dtype=torch.float64), steps=1, seed=seed)
    with pytest.raises(error, match="seed"):
        ng.minimize_lbfgs(objective, torch.zeros(3, dtype=torch.float64), batch_size=2, steps=1, seed=seed)


def test_a_bad_callback_is_refused_before_the_first_step():
    seen = []
    objective = ng.Energy(lambda x: (x**2).sum() + seen.append(1) * 0)  # counts the evaluations
    with pytest.raises(TypeError, match=r"callbacks\[1\] must be callable"):
        ng.minimize(
            ng.FullBatch(objective),
            ng.SGD(0.1),
            torch.ones(2, dtype=torch.float64),
            steps=3,
            callbacks=[lambda info: None, "print"],
        )
    assert seen == []  # nothing was evaluated
