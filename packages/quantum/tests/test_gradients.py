"""Gradient estimators: exactness of the shift rule, batching, and variances against their formulas."""

import itertools
import math

import numpy as np
import pytest
import torch
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.quantum_info import Statevector

from noisygrad import SPSA
from noisygrad.quantum import EnergyObjective, ParameterShift, finite_difference

_Z = 4.0  # tolerances: 4 standard errors of the Monte-Carlo estimate


def _scatter(estimator, x, draws, seed=0):
    """Trace of the sample covariance of ``draws`` gradient estimates, its standard error, the mean estimate
    and the standard error of each component of that mean."""
    generator = torch.Generator().manual_seed(seed)
    grads = np.stack([estimator.estimate(x, generator).grad.numpy() for _ in range(draws)])
    squared = ((grads - grads.mean(0)) ** 2).sum(1)
    mean_se = grads.std(0, ddof=1) / math.sqrt(draws)
    return squared.sum() / (draws - 1), squared.std(ddof=1) / math.sqrt(draws), grads.mean(0), mean_se


def test_parameter_shift_is_exact_and_batched(hamiltonian, ansatz, theta):
    objective = EnergyObjective(hamiltonian, ansatz, noise="exact")
    estimate = ParameterShift(objective).estimate(torch.as_tensor(theta), torch.Generator().manual_seed(0))

    def energy(v):
        return Statevector(ansatz.assign_parameters(v)).expectation_value(hamiltonian).real

    h = 1e-6
    numeric = [(energy(theta + h * e) - energy(theta - h * e)) / (2 * h) for e in np.eye(8)]
    np.testing.assert_allclose(estimate.grad.numpy(), numeric, atol=1e-8)
    assert estimate.cost.evaluations == 16
    assert objective.evaluations == 16
    assert estimate.cost.shots == 16 * 2 * 1000  # 2 measurement groups, 1000 shots each


@pytest.mark.parametrize("draws", [300, pytest.param(4000, marks=pytest.mark.slow)])
def test_parameter_shift_variance_is_sigma2_over_2s_per_component(hamiltonian, ansatz, theta, draws):
    shots = 1000
    objective = EnergyObjective(hamiltonian, ansatz, shots=shots)
    eye = np.eye(8) * math.pi / 2
    # Var(g_i) = [sigma^2(theta + pi/2 e_i) + sigma^2(theta - pi/2 e_i)] / (4 S)  (~ sigma^2 / (2 S))
    predicted = ((objective.variance(theta + eye) + objective.variance(theta - eye)) / (4 * shots)).sum()
    estimator = ParameterShift(objective)
    measured, se, _mean, _ = _scatter(estimator, torch.as_tensor(theta), draws)
    assert measured == pytest.approx(predicted, abs=_Z * se)
    # The acceptance, within 10% of the formula, is only decided by the formula once 4 SE < 10% (the slow size,
    # 4000 draws: relative SE ~2%); at 300 draws (relative SE ~8%) the check is the 4 SE one above.
    assert abs(measured / predicted - 1) < max(0.1, _Z * se / predicted)
    # the estimate's own noise statistic (from the samples' standard errors) agrees too
    stat = estimator.estimate(torch.as_tensor(theta), torch.Generator().manual_seed(1)).stats["grad_variance"]
    assert stat == pytest.approx(predicted, rel=0.15)


@pytest.mark.parametrize("draws", [300, pytest.param(4000, marks=pytest.mark.slow)])
def test_finite_difference_variance(hamiltonian, ansatz, theta, draws):
    shots, h = 1000, 0.2
    objective = EnergyObjective(hamiltonian, ansatz, shots=shots)
    eye = np.eye(8) * h
    predicted = ((objective.variance(theta + eye) + objective.variance(theta - eye)) / (4 * h**2 * shots)).sum()
    measured, se, _, _ = _scatter(finite_difference(objective, step=h), torch.as_tensor(theta), draws)
    assert measured == pytest.approx(predicted, abs=_Z * se)
    assert abs(measured / predicted - 1) < max(0.1, _Z * se / predicted)  # as above: 10% once 4 SE < 10%


@pytest.mark.parametrize("draws", [500, pytest.param(6000, marks=pytest.mark.slow)])
def test_spsa_variance_against_exact_average_and_spall_formula(hamiltonian, ansatz, theta, draws):
    shots, c = 1000, 0.05
    objective = EnergyObjective(hamiltonian, ansatz, shots=shots)
    exact = EnergyObjective(hamiltonian, ansatz, noise="exact")
    x = torch.as_tensor(theta)
    g = ParameterShift(exact).estimate(x, torch.Generator()).grad.numpy()
    sigma2 = objective.variance(theta)[0]
    # Spall: Var(g_i) = sum_{j != i} g_j^2 + sigma^2 / (2 c^2 S); summed over the 8 components:
    spall = 7 * (g**2).sum() + 8 * sigma2 / (2 * c**2 * shots)
    # The exact value at this c: average over all 2^8 Rademacher directions, shot noise included.
    deltas = np.array(list(itertools.product((-1.0, 1.0), repeat=8)))
    diff = (exact.exact(theta + c * deltas) - exact.exact(theta - c * deltas)) / (2 * c)
    noise = (objective.variance(theta + c * deltas) + objective.variance(theta - c * deltas)) / (4 * c**2 * shots)
    exact_trace = 8 * (diff**2 + noise).mean() - (((diff[:, None] * deltas).mean(0)) ** 2).sum()
    exact_mean = (diff[:, None] * deltas).mean(0)  # E[g_SPSA] at this c, its O(c^2) bias included
    measured, se, mean, mean_se = _scatter(SPSA(objective, c=c, gamma=0.0), x, draws)
    assert measured == pytest.approx(exact_trace, abs=_Z * se)
    # The acceptance (within 10% of Spall's formula) needs 4 SE < 10%: the slow size; the quick one checks 4 SE.
    assert abs(measured / spall - 1) < max(0.1, _Z * se / spall)
    # Each component of the mean estimate within 4 of its own standard errors (Monte-Carlo error of the mean of
    # `draws` estimates) of the exact expectation, which is O(c^2) from the true gradient (about 1e-3 here).
    np.testing.assert_array_less(np.abs(mean - exact_mean), _Z * mean_se)


def test_parameter_shift_refuses_non_rotation_parameters(hamiltonian):
    x = Parameter("x")
    qc = QuantumCircuit(2)
    qc.ry(x, 0)
    qc.rx(x, 1)  # the same parameter twice
    with pytest.raises(ValueError, match="exactly one rotation gate"):
        ParameterShift(EnergyObjective(hamiltonian, qc))
    qc2 = QuantumCircuit(2)
    qc2.crx(x, 0, 1)  # a controlled rotation needs a four-term rule
    with pytest.raises(ValueError, match="parameter shift"):
        ParameterShift(EnergyObjective(hamiltonian, qc2))
