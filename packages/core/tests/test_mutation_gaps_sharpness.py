"""Exact tests that close the mutation-testing gaps of ``noise/sharpness.py`` (issue 18).

The power iteration is pinned step by step: its start is the generator's Gaussian draw in the parameters' dtype,
normalised; a multiple of the identity converges in one product; the counts of both passes add up. The
stationary-law functions are checked against closed forms (a diffusion whose density and well masses are
elementary functions) to the trapezoid rule's ``O(h^2)`` error, and their argument checks at each boundary. No
statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from noisygrad.noise.sharpness import (
    hessian_vector_product,
    laplace_well_weights,
    stationary_density,
    stationary_well_weights,
    top_hessian_eigenvalue,
)

F64 = torch.float64
DIAGONAL = torch.tensor([3.0, 1.0, 0.5], dtype=F64)


def _quadratic(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (DIAGONAL * x * x).sum()


# ------------------------------------------------------------------------------------------ Hessian eigenvalue


def test_one_iteration_returns_the_normalised_gaussian_start_and_its_rayleigh_quotient() -> None:
    params = torch.tensor([0.3, -0.2, 0.1], dtype=F64)
    pair = top_hessian_eigenvalue(_quadratic, params, 1, torch.Generator().manual_seed(7), rtol=0.0)
    start = torch.randn(3, generator=torch.Generator().manual_seed(7), dtype=F64)
    start = start / torch.linalg.vector_norm(start)
    assert isinstance(pair.vector, torch.Tensor)
    torch.testing.assert_close(pair.vector, start, rtol=0, atol=1e-15)
    value = float((start * DIAGONAL * start).sum())
    assert pair.value == pytest.approx(value, rel=1e-14)
    residual = float(torch.linalg.vector_norm(DIAGONAL * start - value * start))
    assert pair.residual == pytest.approx(residual, rel=1e-12)
    assert pair.iterations == 1


def test_the_same_seed_gives_the_same_bits_and_another_seed_another_start() -> None:
    params = torch.ones(3, dtype=F64)
    first = top_hessian_eigenvalue(_quadratic, params, 4, torch.Generator().manual_seed(3), rtol=0.0)
    again = top_hessian_eigenvalue(_quadratic, params, 4, torch.Generator().manual_seed(3), rtol=0.0)
    other = top_hessian_eigenvalue(_quadratic, params, 4, torch.Generator().manual_seed(4), rtol=0.0)
    assert isinstance(first.vector, torch.Tensor)
    assert isinstance(again.vector, torch.Tensor)
    assert torch.equal(first.vector, again.vector)
    assert first.value == again.value
    assert isinstance(other.vector, torch.Tensor)
    assert not torch.equal(first.vector, other.vector)


def test_float32_parameters_get_a_float32_vector() -> None:
    params = torch.ones(3, dtype=torch.float32)
    pair = top_hessian_eigenvalue(lambda x: 0.5 * (x * x).sum(), params, 3, torch.Generator().manual_seed(0))
    assert isinstance(pair.vector, torch.Tensor)
    assert pair.vector.dtype == torch.float32


def test_rtol_zero_runs_every_iteration_and_the_shifted_pass_adds_its_own() -> None:
    gen = torch.Generator().manual_seed(0)
    pair = top_hessian_eigenvalue(
        lambda x: 0.5 * (DIAGONAL.abs() * x * x).sum(), torch.ones(3, dtype=F64), 9, gen, rtol=0.0
    )
    assert pair.iterations == 9
    # dominant eigenvalue -4 < 0: a second pass on H + 4 I; rtol = 0 runs both passes in full
    negative = torch.tensor([-4.0, 1.0, 2.0], dtype=F64)
    pair = top_hessian_eigenvalue(
        lambda x: 0.5 * (negative * x * x).sum(),
        torch.ones(3, dtype=F64),
        7,
        torch.Generator().manual_seed(1),
        rtol=0.0,
    )
    assert pair.iterations == 14
    # the top eigenvalue (2) is found after the shift back: value = top of H + 4 I, less 4
    shifted = top_hessian_eigenvalue(
        lambda x: 0.5 * (negative * x * x).sum(), torch.ones(3, dtype=F64), 400, torch.Generator().manual_seed(1)
    )
    assert shifted.value == pytest.approx(2.0, rel=1e-6)
    assert shifted.iterations < 800


def test_a_multiple_of_the_identity_converges_in_one_product() -> None:
    # every vector is an eigenvector: the first residual is rounding only (about 1e-16), below 1e-12 |value|
    pair = top_hessian_eigenvalue(
        lambda x: 1.5 * (x * x).sum(), torch.ones(4, dtype=F64), 50, torch.Generator(), rtol=1e-12
    )
    assert pair.iterations == 1
    assert pair.value == pytest.approx(3.0, rel=1e-15)
    assert pair.residual == pytest.approx(0.0, abs=1e-15)


def test_a_negative_definite_hessian_reports_its_least_negative_eigenvalue() -> None:
    diagonal = torch.tensor([-1.0, -3.0], dtype=F64)
    pair = top_hessian_eigenvalue(
        lambda x: 0.5 * (diagonal * x * x).sum(), torch.ones(2, dtype=F64), 500, torch.Generator().manual_seed(2)
    )
    assert pair.value == pytest.approx(-1.0, rel=1e-6)


def test_a_linear_loss_stops_after_one_product() -> None:
    pair = top_hessian_eigenvalue(lambda x: (3 * x).sum(), torch.ones(3, dtype=F64), 10, torch.Generator())
    assert pair.iterations == 1


def test_the_eigenpair_is_frozen() -> None:
    pair = top_hessian_eigenvalue(_quadratic, torch.ones(3, dtype=F64), 2, torch.Generator())
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.value = 0.0  # type: ignore[misc]


def test_the_vector_of_a_list_of_parameters_is_a_tuple_of_unit_norm() -> None:
    params = [torch.ones(2, dtype=F64), torch.ones(3, dtype=F64)]

    def loss(p: tuple[torch.Tensor, ...]) -> torch.Tensor:
        assert isinstance(p, tuple)
        return 0.5 * (p[0] * p[0]).sum() + 2.0 * (p[1] * p[1]).sum()

    pair = top_hessian_eigenvalue(loss, params, 200, torch.Generator().manual_seed(5), rtol=1e-12)
    assert isinstance(pair.vector, tuple)
    assert [v.shape for v in pair.vector] == [(2,), (3,)]
    assert pair.value == pytest.approx(4.0, rel=1e-10)
    assert math.fsum(float((v * v).sum()) for v in pair.vector) == pytest.approx(1.0, rel=1e-12)
    assert float(torch.linalg.vector_norm(pair.vector[0])) < 1e-5  # all of it in the sharper block


def test_hessian_vector_product_of_a_parameter_the_loss_ignores_is_zero() -> None:
    params = (torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([5.0], dtype=F64))
    vector = (torch.tensor([1.0, -1.0], dtype=F64), torch.tensor([3.0], dtype=F64))
    product = hessian_vector_product(lambda p: (p[0] ** 3).sum(), params, vector)
    assert isinstance(product, tuple)
    torch.testing.assert_close(product[0], torch.tensor([6.0, -12.0], dtype=F64), rtol=1e-15, atol=0)
    torch.testing.assert_close(product[1], torch.zeros(1, dtype=F64), rtol=0, atol=0)
    assert torch.equal(params[0], torch.tensor([1.0, 2.0], dtype=F64))  # not changed


def test_hessian_vector_product_of_a_constant_or_linear_loss_is_zero() -> None:
    x, v = torch.ones(3, dtype=F64), torch.ones(3, dtype=F64)
    constant = hessian_vector_product(lambda p: torch.tensor(2.0, dtype=F64), x, v)
    linear = hessian_vector_product(lambda p: (2.0 * p).sum(), x, v)
    for product in (constant, linear):
        assert isinstance(product, torch.Tensor)
        assert torch.equal(product, torch.zeros(3, dtype=F64))


def test_hessian_vector_product_refuses_a_vector_of_another_count() -> None:
    params = (torch.ones(2, dtype=F64), torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match="vector has 1 tensors but params has 2"):
        hessian_vector_product(lambda p: (p[0] * p[1]).sum(), params, (torch.ones(2, dtype=F64),))
    with pytest.raises(TypeError, match="params must be a tensor or a non-empty sequence"):
        hessian_vector_product(lambda p: p, "ab", torch.ones(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"params\[1\] must be a floating-point tensor, got list"):
        hessian_vector_product(lambda p: p, [torch.ones(1), [1.0]], torch.ones(1))  # type: ignore[list-item]


# ---------------------------------------------------------------------- stationary law of a 1-D diffusion
# U' = x and D = 1 + x^2: Phi = log(1 + x^2) / 2, so p ~ exp(-Phi) / D = (1 + x^2)^(-3/2), whose mass from 0 to x
# is x / sqrt(1 + x^2): closed forms for the density, the well masses and (with D = T) the Laplace weights.


def _grad(x: np.ndarray) -> np.ndarray:
    return x


def _diffusion(x: np.ndarray) -> np.ndarray:
    return 1.0 + x * x


def _mass(x: float) -> float:
    return x / math.sqrt(1.0 + x * x)


def test_the_density_matches_the_closed_form_for_position_dependent_noise() -> None:
    x, p = stationary_density(_grad, _diffusion, -3.0, 2.0)
    assert x.shape == (20001,)
    assert x[0] == -3.0
    assert x[-1] == 2.0
    exact = (1.0 + x * x) ** -1.5 / (_mass(2.0) - _mass(-3.0))
    np.testing.assert_allclose(p, exact, rtol=2e-8)  # trapezoid error O(h^2), h = 2.5e-4


def test_a_three_point_grid_is_allowed_and_a_constant_field_broadcasts() -> None:
    x, p = stationary_density(lambda x: 0.0, lambda x: 2.0, 0.0, 1.0, points=3)
    np.testing.assert_array_equal(x, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(p, [1.0, 1.0, 1.0], rtol=1e-15)


def test_well_masses_match_the_closed_form() -> None:
    weights = stationary_well_weights(_grad, _diffusion, [-1.0, 0.5], -3.0, 2.0)
    edges = [_mass(v) for v in (-3.0, -1.0, 0.5, 2.0)]
    exact = np.diff(edges) / (edges[-1] - edges[0])
    assert weights.dtype == np.float64
    assert weights.shape == (3,)
    np.testing.assert_allclose(weights, exact, rtol=1e-7)
    assert math.fsum(weights) == pytest.approx(1.0, abs=1e-14)


def test_laplace_weights_with_isotropic_noise_are_boltzmann_over_root_curvature() -> None:
    # U = (x^2 - 1)^2 / 4 + s x: minima near -1 and 1, depths differing by about 2 s; D = T
    s, t = 0.05, 0.2
    grad = np.polynomial.Polynomial([s, -1.0, 0.0, 1.0])  # U' = x^3 - x + s
    minima = np.sort(grad.roots().real)[[0, 2]]
    curvatures = 3 * minima**2 - 1
    potential = (minima**2 - 1) ** 2 / 4 + s * minima
    weights = laplace_well_weights(grad, lambda x: t, minima, curvatures)
    exact = np.exp(-(potential - potential.min()) / t) / np.sqrt(curvatures)
    np.testing.assert_allclose(weights, exact / exact.sum(), rtol=1e-7)


def test_laplace_weights_with_curvature_noise_are_one_over_curvature() -> None:
    # D(a_i) = tau k_i with Phi(a_1) = Phi(a_2) (an odd drift over an even D): w ~ 1 / k_i, with k_i from the caller
    weights = laplace_well_weights(lambda x: np.sin(x), lambda x: 1.0 + 0.0 * x, [-1.0, 1.0], [1.0, 4.0])
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3], rtol=1e-12)


def test_one_minimum_has_all_the_weight() -> None:
    np.testing.assert_array_equal(laplace_well_weights(_grad, _diffusion, [0.0], [1.0]), [1.0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: stationary_density(_grad, _diffusion, 1.0, 1.0), "hi must be larger than lo"),
        (lambda: stationary_density(_grad, _diffusion, 0.0, 1.0, points=2), "points must be >= 3"),
        (lambda: stationary_density(3.0, _diffusion, 0.0, 1.0), "^grad_potential must be callable"),
        (
            lambda: stationary_density(lambda x: np.full_like(x, np.nan), _diffusion, -1.0, 1.0),
            "^grad_potential returned NaN",
        ),
        (lambda: stationary_density(_grad, lambda x: x * x, -1.0, 1.0), "^diffusion must be > 0"),
        (lambda: stationary_well_weights(_grad, _diffusion, [], -1.0, 1.0), "boundaries must be strictly increasing"),
        (lambda: stationary_well_weights(_grad, _diffusion, [0.0, 0.0], -1.0, 1.0), "strictly increasing"),
        (lambda: stationary_well_weights(_grad, _diffusion, [-1.0], -1.0, 1.0), "inside"),
        (lambda: stationary_well_weights(_grad, _diffusion, [1.0], -1.0, 1.0), "inside"),
        (lambda: laplace_well_weights(_grad, _diffusion, [], []), "non-empty and of one length"),
        (lambda: laplace_well_weights(_grad, _diffusion, [0.0, 1.0], [1.0]), "of one length, got 2 and 1"),
        (lambda: laplace_well_weights(_grad, _diffusion, [1.0, 1.0], [1.0, 1.0]), "minima must be strictly"),
        (lambda: laplace_well_weights(_grad, _diffusion, [0.0, 1.0], [1.0, 0.0]), "curvatures must be > 0"),
        (lambda: laplace_well_weights(_grad, lambda x: x, [0.0, 1.0], [1.0, 1.0]), "^diffusion must be > 0"),
    ],
)
def test_the_stationary_functions_refuse_each_bad_input(call: object, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()  # type: ignore[operator]


def test_a_loss_that_is_not_a_tensor_is_refused_as_not_a_scalar_tensor() -> None:
    with pytest.raises(ValueError, match="scalar tensor"):
        top_hessian_eigenvalue(lambda x: 1.0, torch.ones(2, dtype=F64), 3, torch.Generator())


def test_the_stopping_rule_is_the_residual_against_rtol_times_the_eigenvalue() -> None:
    """H = diag(100, 1): the residual falls 100-fold per product; the count is replayed in numpy from the same
    start (|H v - (v.Hv) v| <= rtol |v.Hv|), so a threshold of rtol / |value| (10^4 times smaller) would be seen."""
    diagonal = torch.tensor([100.0, 1.0], dtype=F64)
    pair = top_hessian_eigenvalue(
        lambda x: 0.5 * (diagonal * x * x).sum(),
        torch.ones(2, dtype=F64),
        50,
        torch.Generator().manual_seed(9),
        rtol=1e-6,
    )
    v = torch.randn(2, generator=torch.Generator().manual_seed(9), dtype=F64).numpy()
    v = v / np.linalg.norm(v)
    h = diagonal.numpy()
    count = 0
    while count < 50:
        count += 1
        w = h * v
        value = float(v @ w)
        if np.linalg.norm(w - value * v) <= 1e-6 * abs(value):
            break
        v = w / np.linalg.norm(w)
    assert pair.iterations == count
    assert count >= 3  # the replay is not trivially at its first product
    assert pair.value == pytest.approx(value, rel=1e-12)


def test_the_default_grid_is_20001_points_for_every_stationary_function() -> None:
    default = stationary_well_weights(_grad, _diffusion, [0.5], -3.0, 2.0)
    np.testing.assert_array_equal(default, stationary_well_weights(_grad, _diffusion, [0.5], -3.0, 2.0, points=20001))
    minima, curvatures = [-2.0, 0.0, 2.0], [24.0, 4.0, 24.0]
    default = laplace_well_weights(_six, lambda x: 1.0, minima, curvatures)
    np.testing.assert_array_equal(default, laplace_well_weights(_six, lambda x: 1.0, minima, curvatures, points=20001))


def _six(x: np.ndarray) -> np.ndarray:
    """U' of U = x^6 / 6 - 5 x^4 / 4 + 2 x^2: minima at -2, 0, 2 (U'' = 24, 4, 24; U = -4/3, 0, -4/3)."""
    return x * (x * x - 1.0) * (x * x - 4.0)


def test_laplace_weights_of_three_wells_are_boltzmann_over_root_curvature() -> None:
    weights = laplace_well_weights(_six, lambda x: 1.0, [-2.0, 0.0, 2.0], [24.0, 4.0, 24.0])
    exact = np.exp(-np.array([-4 / 3, 0.0, -4 / 3])) / np.sqrt([24.0, 4.0, 24.0])
    np.testing.assert_allclose(weights, exact / exact.sum(), rtol=1e-6)  # trapezoid error O(h^2), h = 2e-4


def test_laplace_weights_of_a_well_far_deeper_stay_finite() -> None:
    # U' = -1 between the minima with D = 1e-3: Phi(a_2) = -1000, so log w_2 - log w_1 = 1000 (exp(1000) overflows)
    weights = laplace_well_weights(lambda x: -1.0 + 0.0 * x, lambda x: 1e-3, [0.0, 1.0], [1.0, 1.0], points=101)
    np.testing.assert_array_equal(weights, [0.0, 1.0])


def test_the_laplace_weights_check_the_diffusion_at_each_minimum_off_the_grid() -> None:
    # the middle minimum lies between the points of a 4-point grid on [0, 1]: only the check at the minima sees D = 0
    a1 = 0.1234567
    with pytest.raises(ValueError, match=r"^diffusion must be > 0"):
        laplace_well_weights(_grad, lambda x: np.where(x == a1, 0.0, 1.0), [0.0, a1, 1.0], [1.0, 1.0, 1.0], points=4)
