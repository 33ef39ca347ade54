"""Atomic clusters as holistic energies (noisygrad.molecules) and the core.holistic experiment.

The library checks are exact (closed forms, enumeration of every atom subset, float64 round-off): tolerances are
round-off or the finite-difference truncation error, said at each. The experiment's own tolerances are in its
findings; here it must pass at seed 0 (default run) and at seeds 0-9 (slow).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import torch

import noisygrad
from noisygrad.molecules import (
    LJ13_GLOBAL_MINIMUM,
    atom_minibatch_factor,
    atom_minibatch_gradients,
    atom_minibatch_mean,
    cluster_energy,
    icosahedron,
    lennard_jones,
    lennard_jones_forces,
    max_force,
    perturbed_icosahedron,
)

F64 = torch.float64
R_MIN = 2 ** (1 / 6)  # the pair minimum, phi(R_MIN) = -1


def _random_cluster(n: int, seed: int) -> torch.Tensor:
    """A compact random cluster: atoms near the sites of a jittered cubic grid, no pair closer than ~0.8."""
    rng = np.random.default_rng(seed)
    sites = np.array(list(itertools.product(range(3), repeat=3)), dtype=float)[:n] * 1.1
    return torch.tensor((sites + 0.08 * rng.standard_normal(sites.shape)).ravel(), dtype=F64)


def _rotation(seed: int) -> torch.Tensor:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return torch.tensor(q * np.linalg.det(q), dtype=F64)  # det +1


# ---------------------------------------------------------------- energies of known geometries


def test_known_geometries_have_their_closed_form_energies() -> None:
    dimer = torch.tensor([0.0, 0.0, 0.0, R_MIN, 0.0, 0.0], dtype=F64)
    assert lennard_jones(2).value(dimer) == pytest.approx(-1.0, abs=1e-14)
    # an equilateral triangle of side r: 3 phi(r) + nu (1 + 3/8) / r^9 (every angle 60 degrees)
    r, nu = 1.2, 0.3
    triangle = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0], [r / 2, r * math.sqrt(3) / 2, 0.0]], dtype=F64)
    phi = 4 * (r**-12 - r**-6)
    assert float(cluster_energy(triangle)) == pytest.approx(3 * phi, rel=1e-14)
    assert float(cluster_energy(triangle, three_body=nu)) == pytest.approx(3 * phi + nu * 1.375 / r**9, rel=1e-14)
    # a regular tetrahedron of edge R_MIN: 6 pairs at the minimum
    tetra = R_MIN / math.sqrt(8) * torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=F64)
    assert float(cluster_energy(tetra)) == pytest.approx(-6.0, abs=1e-13)
    # epsilon and sigma scale energies and lengths
    assert float(cluster_energy(2.0 * tetra, epsilon=3.0, sigma=2.0)) == pytest.approx(-18.0, abs=1e-12)


def test_the_numpy_closed_form_agrees_with_the_torch_energy_and_its_autograd_forces() -> None:
    x = _random_cluster(13, 0)
    energy, grad = lennard_jones(13).value_and_grad(x)
    e_np, f_np = lennard_jones_forces(x.reshape(13, 3).numpy())
    assert float(e_np) == pytest.approx(energy, rel=1e-14)
    np.testing.assert_allclose(f_np.ravel(), -grad.numpy(), rtol=0, atol=1e-12 * float(grad.abs().max()))
    # batched: many clusters in one call, each its own
    batch = torch.stack([_random_cluster(13, s) for s in range(4)])
    e_b, f_b = lennard_jones_forces(batch.reshape(4, 13, 3).numpy())
    for k in range(4):
        e_k, f_k = lennard_jones_forces(batch[k].reshape(13, 3).numpy())
        assert e_b[k] == pytest.approx(float(e_k), rel=1e-14)
        np.testing.assert_allclose(f_b[k], f_k, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(lennard_jones(13).fn(batch).numpy(), e_b, rtol=1e-14)


@pytest.mark.parametrize("three_body", [0.0, 0.1])
def test_forces_are_minus_the_gradient_against_central_differences(three_body: float) -> None:
    energy = lennard_jones(7, three_body=three_body)
    x = _random_cluster(7, 1)
    _, grad = energy.value_and_grad(x)
    h = 1e-5
    fd = torch.tensor(
        [(energy.value(x + h * e) - energy.value(x - h * e)) / (2 * h) for e in torch.eye(x.numel(), dtype=F64)]
    )
    # truncation h^2 f''' / 6 ~ 1e-10 times third derivatives of order 1e3, round-off 1e-14 / h ~ 1e-9
    np.testing.assert_allclose(grad.numpy(), fd.numpy(), rtol=0, atol=1e-6)
    if three_body == 0.0:
        _, forces = lennard_jones_forces(x.reshape(7, 3).numpy())
        np.testing.assert_allclose(forces.ravel(), -fd.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("three_body", [0.0, 0.1])
def test_energy_is_invariant_and_forces_covariant_under_translation_and_rotation(three_body: float) -> None:
    energy = lennard_jones(9, three_body=three_body)
    x = _random_cluster(9, 2)
    value, grad = energy.value_and_grad(x)
    rot = _rotation(3)
    moved = (x.reshape(9, 3) @ rot.T + torch.tensor([0.7, -1.3, 2.1], dtype=F64)).reshape(-1)
    moved_value, moved_grad = energy.value_and_grad(moved)
    assert moved_value == pytest.approx(value, rel=1e-13)
    np.testing.assert_allclose(moved_grad.reshape(9, 3).numpy(), (grad.reshape(9, 3) @ rot.T).numpy(), atol=1e-10)
    # no net force and no net torque on an isolated cluster
    forces = -grad.reshape(9, 3)
    assert float(forces.sum(0).abs().max()) < 1e-10
    assert float(torch.linalg.cross(x.reshape(9, 3), forces).sum(0).abs().max()) < 1e-10


def test_lj13_reaches_the_icosahedral_global_minimum_from_a_near_icosahedral_start() -> None:
    energy = lennard_jones(13)
    start = perturbed_icosahedron(np.random.default_rng(0))
    assert icosahedron().shape == (13, 3)
    assert np.allclose(np.linalg.norm(icosahedron(1.2)[1:], axis=1), 1.2)

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = energy.value_and_grad(torch.tensor(x))
        return value, grad.numpy()

    result = scipy.optimize.minimize(fun, start.ravel(), jac=True, method="CG", options={"gtol": 1e-9})
    assert result.fun == pytest.approx(LJ13_GLOBAL_MINIMUM, abs=1e-6)  # Wales and Doye (1997), to 6 decimals
    assert max_force(result.jac) < 1e-5  # CG stops on round-off (precision loss) near 1e-6
    assert max_force(-result.jac.reshape(13, 3)) == max_force(result.jac)


def test_an_energy_refuses_mini_batches() -> None:
    with pytest.raises(noisygrad.BatchingNotAllowedError, match="holistic Energy"):
        noisygrad.MiniBatch(lennard_jones(13), 4)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the atom mini-batch


def test_atom_minibatch_factors_are_the_inclusion_probabilities_times_n_over_b() -> None:
    n, b = 13, 6
    assert atom_minibatch_factor(n, b, 1) == 1.0
    assert atom_minibatch_factor(n, b, 2) == pytest.approx((b - 1) / (n - 1), rel=1e-15)
    assert atom_minibatch_factor(n, b, 3) == pytest.approx(math.comb(n - 3, b - 3) / math.comb(n, b) * n / b)
    assert atom_minibatch_factor(n, n, 3) == 1.0
    assert atom_minibatch_factor(n, 2, 3) == 0.0


@pytest.mark.parametrize("three_body", [0.0, 0.2])
def test_the_mean_over_every_subset_is_the_closed_form(three_body: float) -> None:
    n, b = 7, 3
    x = _random_cluster(n, 4)
    subsets = torch.tensor(list(itertools.combinations(range(n), b)))
    exact = atom_minibatch_gradients(x, subsets, three_body=three_body).mean(0)  # all C(7, 3) = 35 draws
    closed = atom_minibatch_mean(x, b, three_body=three_body)
    np.testing.assert_allclose(exact.numpy(), closed.numpy(), rtol=0, atol=1e-11)
    _, grad = lennard_jones(n, three_body=three_body).value_and_grad(x)
    assert float((closed - grad).norm()) > 0.1 * float(grad.norm())  # biased: it is not the gradient


def test_each_atom_minibatch_gradient_is_the_gradient_of_its_sub_cluster() -> None:
    n, b, nu = 9, 4, 0.1
    x = _random_cluster(n, 5)
    subsets = torch.tensor([[0, 3, 5, 8], [1, 2, 6, 7]])
    rows = atom_minibatch_gradients(x, subsets, three_body=nu)
    for row, atoms in zip(rows, subsets, strict=True):
        _, sub = lennard_jones(b, three_body=nu).value_and_grad(x.reshape(n, 3)[atoms].reshape(-1))
        expected = torch.zeros(n, 3, dtype=F64)
        expected[atoms] = n / b * sub.reshape(b, 3)
        np.testing.assert_allclose(row.numpy(), expected.reshape(-1).numpy(), rtol=0, atol=1e-12)


# ---------------------------------------------------------------- bad input names the argument


def test_bad_input_raises_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="n_atoms"):
        lennard_jones(1)
    with pytest.raises(ValueError, match="params"):
        lennard_jones(3).fn(torch.zeros(8, dtype=F64))
    with pytest.raises(ValueError, match="epsilon"):
        lennard_jones(3, epsilon=-1.0)
    with pytest.raises(ValueError, match="positions"):
        cluster_energy(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        cluster_energy(torch.zeros(4, 3, dtype=F64), weights=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="positions"):
        lennard_jones_forces(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="subsets"):
        atom_minibatch_gradients(_random_cluster(5, 0), torch.tensor([[0, 0]]))
    with pytest.raises(ValueError, match="subsets"):
        atom_minibatch_gradients(_random_cluster(5, 0), torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match="batch_size"):
        atom_minibatch_factor(5, 6, 2)
    with pytest.raises(TypeError, match="rng"):
        perturbed_icosahedron(0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gradient"):
        max_force(np.zeros(4))


# ---------------------------------------------------------------- the experiment


def _check_experiment(seed: int) -> None:
    from noisygrad.tour.experiments.holistic import holistic

    findings = holistic(seed=seed, quick=True)
    assert len(findings) == 15
    for finding in findings:
        assert finding.experiment == "core.holistic"
        assert finding.passed, finding


def test_the_holistic_experiment_passes_at_seed_0() -> None:
    _check_experiment(0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_the_holistic_experiment_passes_for_seeds_0_to_9(seed: int) -> None:
    _check_experiment(seed)
