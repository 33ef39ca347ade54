"""Benchmark problems: exact references, and each problem's quick size reaching its error bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from noisygrad.pinn import experiments, problems


def test_burgers_reference_solves_burgers():
    """The Cole-Hopf quadrature satisfies u_t + u u_x = nu u_xx (central differences), the initial and
    boundary conditions, and the odd symmetry u(-x, t) = -u(x, t)."""
    x = np.array([-0.7, -0.4, -0.1, 0.3, 0.6])
    t = np.array([0.1, 0.4, 0.8])
    h, k = 1e-3, 1e-3
    u = problems.burgers_reference(x, t)
    ux = (problems.burgers_reference(x + h, t) - problems.burgers_reference(x - h, t)) / (2 * h)
    uxx = (problems.burgers_reference(x + h, t) - 2 * u + problems.burgers_reference(x - h, t)) / h**2
    ut = (problems.burgers_reference(x, t + k) - problems.burgers_reference(x, t - k)) / (2 * k)
    residual = ut + u * ux - problems.BURGERS_NU * uxx
    scale = np.abs(ut) + np.abs(u * ux)
    # central differences leave O(h^2) ~ 1e-6 of the third derivatives here; the quadrature is ~1e-12
    assert np.max(np.abs(residual)) < 1e-4 * np.max(scale)
    grid = np.linspace(-1, 1, 9)
    assert np.allclose(problems.burgers_reference(grid, [0.0])[0], -np.sin(np.pi * grid))
    assert np.allclose(problems.burgers_reference(grid, [1e-6])[0], -np.sin(np.pi * grid), atol=1e-5)
    late = problems.burgers_reference(grid, [0.5, 0.99])
    assert np.allclose(late, -late[:, ::-1], atol=1e-12)
    assert np.allclose(late[:, [0, -1]], 0.0, atol=1e-12)
    # Basdevant et al. (1986): the steepest slope, |u_x(0, t)| = 152.00516, is reached at t = 1.6037 / pi
    t_max = 1.6037 / math.pi
    slope = (problems.burgers_reference([1e-6], [t_max]) - problems.burgers_reference([-1e-6], [t_max])) / 2e-6
    assert slope[0, 0] == pytest.approx(-152.00516, abs=2e-3)


def test_bad_problem_input():
    with pytest.raises(ValueError, match="name must be one of"):
        problems.build("heat")
    with pytest.raises(TypeError, match="seed"):
        problems.build("poisson1d", seed=0.5)
    with pytest.raises(ValueError, match="method"):
        problems.solve("poisson1d", method="scipy")
    with pytest.raises(ValueError, match="float"), problems.default_float("float16"):
        pass


@pytest.mark.parametrize("name", problems.NAMES)
def test_each_problem_trains_and_its_error_falls(name):
    """A few Adam then L-BFGS iterations at the quick size cut the error (the default-suite check per problem)."""
    with problems.default_float("float32"):
        initial = problems.build(name, seed=0, quick=True).error()
    solved = problems.solve(name, seed=0, quick=True, iterations=60, lbfgs_iterations=20)
    assert solved.error < 0.9 * initial
    adam, lbfgs = solved.result.phases
    assert adam.iterations == 60
    assert 0 < lbfgs.iterations <= 20


@pytest.mark.slow
@pytest.mark.parametrize("name", problems.NAMES)
def test_quick_size_reaches_its_bound(name):
    """The tour's quick size of each problem (smaller problems and budgets, see problems.py)."""
    (finding,) = getattr(experiments, name)(seed=0, quick=True)
    assert finding.passed, finding
    assert finding.measured <= experiments.BOUNDS[name][1]


@pytest.mark.slow
def test_cheap_experiments_pass():
    for fn in (experiments.adam_identity, experiments.collocation_noise):
        findings = fn(seed=1, quick=True)
        assert findings
        assert all(f.passed for f in findings), findings
