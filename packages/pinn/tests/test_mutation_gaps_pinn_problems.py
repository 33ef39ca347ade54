"""The benchmark problems (``pinn/problems.py``): behaviours that its full mutation run found unchecked (issue 18).

Real DeepXDE problems at their quick sizes, with budgets of one or two steps where a run is needed. The checks are
exact: network shapes, the Burgers boundary and initial values, documented defaults, bit-for-bit reproducibility
from the seed, the Cole-Hopf reference against the integral on a wide grid (to 1e-12). No statistical claim is
made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from noisygrad.pinn import PinnWarning, problems

from .conftest import params_of, same


@pytest.mark.parametrize(("name", "inputs"), [("poisson1d", 1), ("helmholtz2d", 2), ("burgers", 2)])
def test_each_network_takes_the_problems_points_and_gives_one_output(name: str, inputs: int) -> None:
    problem = problems.build(name, quick=True)
    net = problem.model.net
    assert net.linears[0].in_features == inputs == problem.x_test.shape[1]
    with torch.no_grad():
        out = net(torch.as_tensor(problem.x_test[:4], dtype=next(net.parameters()).dtype))
    assert out.shape == (4, 1)


def test_burgers_boundary_is_zero_and_its_initial_value_minus_sin_pi_x() -> None:
    """The conditions' errors at an output of all ones: ``u - 0`` on the boundary, ``u + sin(pi x)`` at t = 0, one
    column each (the condition values are in DeepXDE's default float32: a float32 ulp of tolerance)."""
    boundary, initial = problems.build("burgers", quick=True).model.data.bcs
    points = np.array([[-1.0, 0.1], [1.0, 0.2], [0.5, 0.0], [-0.25, 0.0]])
    inputs = torch.as_tensor(points)
    ones = torch.ones(4, 1, dtype=torch.float64)
    np.testing.assert_array_equal(boundary.error(points, inputs, ones, 0, 2).numpy(), np.ones((2, 1)))
    expected = 1.0 + np.sin(np.pi * points[2:, :1])
    np.testing.assert_allclose(initial.error(points, inputs, ones, 2, 4).numpy(), expected, rtol=0, atol=1e-7)


def _cole_hopf_on_a_wide_grid(x: np.ndarray, t: float, nu: float) -> np.ndarray:
    """The Cole-Hopf integral by the trapezoid rule on z in [-100, 100] (step 0.001): wide enough for any nu >= 1e-4
    here, where the weights beyond |z| = 33 are below e^-40 of the largest."""
    z = np.linspace(-100.0, 100.0, 200_001)[None, :]
    y = x[:, None] - 2.0 * np.sqrt(nu * t) * z
    log_w = -(z**2) - np.cos(np.pi * y) / (2.0 * np.pi * nu)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return -(np.sin(np.pi * y) * w).sum(1) / w.sum(1)


@pytest.mark.parametrize("nu", [problems.BURGERS_NU, 3e-4])
def test_burgers_reference_is_accurate_at_a_small_viscosity_too(nu: float) -> None:
    """At nu = 3e-4 the weights span about e^1000 across x and peak beyond |z| = 15: normalised per point, over a range
    that grows as nu falls, the solution agrees with the integral on a wide grid to 1e-12 (measured 1e-14)."""
    x = np.linspace(-1.0, 1.0, 21)
    u = problems.burgers_reference(x, np.array([0.5]), nu=nu)
    np.testing.assert_allclose(u[0], _cole_hopf_on_a_wide_grid(x, 0.5, nu), rtol=0, atol=1e-12)


@pytest.mark.parametrize("nu", [0.0, -1e-3, float("nan")])
def test_burgers_reference_refuses_a_viscosity_that_is_not_positive(nu: float) -> None:
    with pytest.raises(ValueError, match=r"^nu must be"):
        problems.burgers_reference(np.zeros(3), np.array([0.5]), nu=nu)


def test_a_problem_built_by_hand_has_its_own_empty_recipe() -> None:
    x, u = np.zeros((2, 1)), np.zeros((2, 1))
    first, second = problems.Problem("p", None, x, u), problems.Problem("q", None, x, u)
    assert first.recipe == {}
    assert first.recipe is not second.recipe


def test_build_seeds_with_zero_by_default() -> None:
    default = params_of(problems.build("poisson1d", quick=True).model)
    assert same(default, params_of(problems.build("poisson1d", seed=0, quick=True).model))
    assert not same(default, params_of(problems.build("poisson1d", seed=1, quick=True).model))


def test_solved_is_frozen() -> None:
    solved = problems.Solved("poisson1d", 0, 0.1, 1.0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        solved.error = 0.0  # type: ignore[misc]


def test_solve_builds_the_full_size_by_default_and_passes_seed_and_quick_on() -> None:
    """One Adam step and one L-BFGS step of helmholtz2d: the default is the full problem (wavenumber 4 pi, its own
    test solution), the same as ``quick=False`` to the bit; ``quick=True`` and another seed give other errors."""
    budget = {"iterations": 1, "lbfgs_iterations": 1}
    default = problems.solve("helmholtz2d", **budget)
    assert default.error == problems.solve("helmholtz2d", quick=False, seed=0, **budget).error
    assert default.error != problems.solve("helmholtz2d", quick=True, **budget).error
    assert default.error != problems.solve("helmholtz2d", seed=1, **budget).error


def test_solve_silences_only_the_float32_lbfgs_warning() -> None:
    """Other warnings of the plugin reach the caller: DeepXDE's ``L-BFGS-B`` name, which its torch backend runs
    for 0 steps."""
    with pytest.warns(PinnWarning, match="L-BFGS-B"):
        problems.solve("poisson1d", quick=True, iterations=1, lbfgs_iterations=1, then="L-BFGS-B")
