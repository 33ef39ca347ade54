"""Sharpness (the top Hessian eigenvalue by power iteration) and the stationary law of a diffusion with
position-dependent noise, against explicit Hessians and closed forms; and the ``core.wide-minima`` experiment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from noisygrad.noise.sharpness import (
    hessian_vector_product,
    laplace_well_weights,
    stationary_density,
    stationary_well_weights,
    top_hessian_eigenvalue,
)
from noisygrad.tour.experiments import sharpness as experiment

F64 = torch.float64


def _tiny_network() -> tuple[tuple[torch.Tensor, ...], object]:
    """A 3-4-2 tanh network's squared error on 5 examples: a non-quadratic loss of two parameter tensors."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 3, generator=gen, dtype=F64), torch.randn(5, 2, generator=gen, dtype=F64)
    params = (torch.randn(3, 4, generator=gen, dtype=F64), torch.randn(4, 2, generator=gen, dtype=F64))

    def loss(p: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return 0.5 * ((torch.tanh(x @ p[0]) @ p[1] - y) ** 2).sum(1).mean()

    return params, loss


def _explicit_hessian(loss: object, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    sizes = [p.numel() for p in params]

    def flat(v: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(v, sizes)
        return loss(tuple(q.reshape(p.shape) for q, p in zip(pieces, params, strict=True)))  # type: ignore[operator]

    return torch.autograd.functional.hessian(flat, torch.cat([p.reshape(-1) for p in params]))


# ------------------------------------------------------------------------------------------ Hessian eigenvalue


def test_power_iteration_finds_the_top_eigenvalue_of_the_explicit_hessian() -> None:
    params, loss = _tiny_network()
    hessian = _explicit_hessian(loss, params)
    eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
    before = [p.clone() for p in params]
    pair = top_hessian_eigenvalue(loss, params, 2000, torch.Generator().manual_seed(0), rtol=1e-10)  # type: ignore[arg-type]
    # converged to a 1e-10 relative residual: the Rayleigh quotient is then exact to ~1e-12 (squared residual)
    assert pair.value == pytest.approx(float(eigenvalues[-1]), rel=1e-9)
    assert pair.residual <= 1e-10 * abs(pair.value)
    assert pair.iterations < 2000
    v = torch.cat([t.reshape(-1) for t in pair.vector])
    assert abs(float(v @ eigenvectors[:, -1])) == pytest.approx(1.0, abs=1e-8)
    assert float(torch.linalg.vector_norm(v)) == pytest.approx(1.0, abs=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(params, before, strict=True))  # params untouched
    assert not any(p.requires_grad for p in params)


def test_hessian_vector_product_equals_the_explicit_product() -> None:
    params, loss = _tiny_network()
    hessian = _explicit_hessian(loss, params)
    gen = torch.Generator().manual_seed(1)
    vector = tuple(torch.randn(p.shape, generator=gen, dtype=F64) for p in params)
    product = hessian_vector_product(loss, params, vector)  # type: ignore[arg-type]
    expected = hessian @ torch.cat([v.reshape(-1) for v in vector])
    assert torch.allclose(torch.cat([h.reshape(-1) for h in product]), expected, rtol=1e-12, atol=1e-12)


def test_a_negative_dominant_eigenvalue_is_shifted_away_to_find_the_largest() -> None:
    # spectrum {-5, -1, 0.5, 2}: power iteration alone converges to -5; the shifted pass must find 2
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=F64))
    a = rotation @ torch.diag(torch.tensor([-5.0, -1.0, 0.5, 2.0], dtype=F64)) @ rotation.T
    pair = top_hessian_eigenvalue(
        lambda x: 0.5 * x @ a @ x, torch.ones(4, dtype=F64), 500, torch.Generator(), rtol=1e-9
    )
    assert pair.value == pytest.approx(2.0, rel=1e-7)
    assert isinstance(pair.vector, torch.Tensor)
    assert pair.vector.shape == (4,)


def test_a_linear_loss_has_a_zero_hessian() -> None:
    pair = top_hessian_eigenvalue(lambda x: (3 * x).sum(), torch.ones(3, dtype=F64), 10, torch.Generator())
    assert pair.value == 0.0
    assert pair.residual == 0.0


def test_the_hessian_functions_refuse_bad_input() -> None:
    x, gen = torch.ones(3, dtype=F64), torch.Generator()

    def loss(v: torch.Tensor) -> torch.Tensor:
        return (v**4).sum()

    with pytest.raises(ValueError, match="iterations"):
        top_hessian_eigenvalue(loss, x, 0, gen)
    with pytest.raises(TypeError, match="generator"):
        top_hessian_eigenvalue(loss, x, 5, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rtol"):
        top_hessian_eigenvalue(loss, x, 5, gen, rtol=-1.0)
    with pytest.raises(TypeError, match="loss_fn"):
        top_hessian_eigenvalue(None, x, 5, gen)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scalar"):
        top_hessian_eigenvalue(lambda v: v**2, x, 5, gen)
    with pytest.raises(ValueError, match="non-finite loss"):
        top_hessian_eigenvalue(lambda v: (v / 0).sum(), x, 5, gen)
    with pytest.raises(TypeError, match=r"params\[0\]"):
        top_hessian_eigenvalue(loss, torch.ones(3, dtype=torch.int64), 5, gen)
    with pytest.raises(ValueError, match="NaN"):
        top_hessian_eigenvalue(loss, torch.tensor([1.0, math.nan]), 5, gen)
    with pytest.raises(TypeError, match="params"):
        top_hessian_eigenvalue(loss, [], 5, gen)
    with pytest.raises(ValueError, match="shape"):
        hessian_vector_product(loss, x, torch.ones(2, dtype=F64))


# ---------------------------------------------------------------------- stationary law of a 1-D diffusion


def test_constant_diffusion_gives_the_boltzmann_gaussian() -> None:
    k, t = 2.0, 0.3  # U = k x^2 / 2: p = N(0, T / k)
    x, p = stationary_density(lambda x: k * x, lambda x: t, -6.0, 6.0)
    exact = np.exp(-k * x**2 / (2 * t)) / math.sqrt(2 * math.pi * t / k)
    assert np.max(np.abs(p - exact)) < 1e-6  # trapezoid error O(h^2), h = 6e-4


def test_position_dependent_diffusion_matches_its_closed_form() -> None:
    # U' = k x, D = tau (1 + x^2): Phi = (k / 2 tau) log(1 + x^2), p ~ (1 + x^2)^-(k / 2 tau + 1), a Student-t shape
    # (Boltzmann would be a Gaussian); normaliser int (1 + x^2)^-a = sqrt(pi) Gamma(a - 1/2) / Gamma(a)
    k, tau = 2.0, 0.5
    a = k / (2 * tau) + 1
    x, p = stationary_density(lambda x: k * x, lambda x: tau * (1 + x**2), -200.0, 200.0, points=400001)
    exact = (1 + x**2) ** -a * scipy.special.gamma(a) / (math.sqrt(math.pi) * scipy.special.gamma(a - 0.5))
    assert np.max(np.abs(p - exact)) < 1e-6  # the tails beyond 200 hold ~200^-3 / 3 of the mass
    weights = stationary_well_weights(
        lambda x: k * x, lambda x: tau * (1 + x**2), [-1.0, 1.0], -200.0, 200.0, points=400001
    )
    inner = 2 * scipy.special.hyp2f1(0.5, a, 1.5, -1.0) * np.interp(0.0, x, p)  # int_-1^1 (1 + x^2)^-a dx
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert weights[1] == pytest.approx(inner, rel=1e-6)
    assert weights[0] == pytest.approx(weights[2], rel=1e-9)


def test_equal_wells_with_curvature_noise_weigh_like_one_over_k_and_with_isotropic_noise_one_over_sqrt_k() -> None:
    # the experiment's potential: two zero-loss minima, U'' = 0.8 at -1 and 3.2 at +1; Laplace's weights
    k = [experiment._K_WIDE, experiment._K_SHARP]
    iso = laplace_well_weights(experiment._grad_potential, lambda x: 0.01, [-1.0, 1.0], k)
    assert iso[0] == pytest.approx(2 / 3, rel=1e-6)  # equal depth: w ~ 1 / sqrt(k), ratio 2
    tau = 0.02

    def curvature(x: np.ndarray) -> np.ndarray:
        return tau * experiment._gauss_newton(x)

    curv = laplace_well_weights(experiment._grad_potential, curvature, [-1.0, 1.0], k)
    x = np.linspace(-1, 1, 200001)
    d_phi = np.trapezoid(experiment._grad_potential(x) / curvature(x), x)  # Phi(a_sharp) - Phi(a_wide)
    assert curv[0] / curv[1] == pytest.approx(4 * math.exp(d_phi), rel=1e-6)  # w ~ exp(-Phi) / k
    # at small noise the exact weights approach Laplace's (anharmonic corrections O(tau))
    xb = experiment._barrier()
    exact = stationary_well_weights(experiment._grad_potential, curvature, [xb], -6.0, 6.0)
    assert exact[0] == pytest.approx(curv[0], abs=0.02)


def test_the_density_functions_refuse_bad_input() -> None:
    def grad(x: np.ndarray) -> np.ndarray:
        return x

    def flat(x: np.ndarray) -> np.ndarray:
        return np.ones_like(x)

    with pytest.raises(ValueError, match="diffusion must be > 0"):
        stationary_density(grad, lambda x: x, -1.0, 1.0)
    with pytest.raises(ValueError, match="hi must be larger"):
        stationary_density(grad, flat, 1.0, -1.0)
    with pytest.raises(TypeError, match="grad_potential"):
        stationary_density(None, flat, -1.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="points"):
        stationary_density(grad, flat, -1.0, 1.0, points=2)
    with pytest.raises(ValueError, match="grad_potential returned NaN"):
        stationary_density(lambda x: np.full_like(x, np.nan), flat, -1.0, 1.0)
    with pytest.raises(ValueError, match="boundaries"):
        stationary_well_weights(grad, flat, [2.0], -1.0, 1.0)
    with pytest.raises(ValueError, match="boundaries"):
        stationary_well_weights(grad, flat, [0.5, 0.0], -1.0, 1.0)
    with pytest.raises(ValueError, match="curvatures"):
        laplace_well_weights(grad, flat, [-1.0, 1.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="minima"):
        laplace_well_weights(grad, flat, [1.0, -1.0], [1.0, 1.0])


# ------------------------------------------------------------------------------------ the experiment


def test_the_two_well_loss_has_equal_depths_and_noise_proportional_to_its_curvature_at_the_minima() -> None:
    r1, r2, _, _ = experiment._residual_and_jacobian(np.array([-1.0, 1.0]))
    assert np.allclose([r1, r2], 0.0)  # zero residual: U = 0 at both
    h = 1e-5
    curvature = (
        experiment._grad_potential(np.array([-1 + h, 1 + h])) - experiment._grad_potential(np.array([-1 - h, 1 - h]))
    ) / (2 * h)
    assert curvature == pytest.approx([experiment._K_WIDE, experiment._K_SHARP], rel=1e-8)
    assert experiment._gauss_newton(np.array([-1.0, 1.0])) == pytest.approx(curvature, rel=1e-8)
    # per-example gradients J^T (r - y_i) of the whitened labels: mean U'(x), variance exactly s^2 G(x)
    labels = 3.0 * experiment._whitened_labels(1000, np.random.default_rng(0))
    x = np.array([0.4])
    r1, r2, j1, j2 = experiment._residual_and_jacobian(x)
    grads = j1 * (r1 - labels[0]) + j2 * (r2 - labels[1])
    assert grads.mean() == pytest.approx(float(experiment._grad_potential(x)[0]), abs=1e-12)
    assert grads.var() == pytest.approx(9.0 * float(experiment._gauss_newton(x)[0]), rel=1e-12)


def _check(seed: int) -> None:
    findings = experiment.wide_minima(seed=seed, quick=True)
    assert len(findings) == 3
    for finding in findings:
        assert finding.experiment == "core.wide-minima"
        assert finding.curve is not None
        assert finding.passed, (seed, finding.claim, finding.predicted, finding.measured, finding.tolerance)


def test_wide_minima_passes_at_seed_0() -> None:
    _check(0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_wide_minima_passes_for_every_seed(seed: int) -> None:
    _check(seed)
