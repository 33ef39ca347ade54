"""Variance-optimal shot allocation across measurement groups (issue: shot-frugal VQE).

Acceptance: on every problem of the benchmark family, the allocation (from running variance estimates) meets a
requested precision within its Monte-Carlo error with fewer shots than equal allocation, and the saving matches the
closed form ``(sum sigma_g)**2 / (G * sum sigma_g**2)`` within 5%.

Monte-Carlo tolerances: the precision is checked on R = 2000 repeated estimates; the relative standard error of a
sample standard deviation from R draws is about ``1 / sqrt(2 (R - 1)) = 1.6%`` (near-Gaussian estimates: every group
has >= 200 shots), so 4 of them (6.3%) is the band. The allocation uses sigma estimates from one pilot of 20000
shots per group (relative error about 1% per sigma), so the predicted std with the TRUE sigmas may exceed the target
by that much: 2.5% is allowed. Measured (seed 1): std/eps in [0.966, 1.010], saving ratio within 2.7% of the form.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisygrad.quantum.allocation import (
    ShotAllocator,
    equal_shots,
    exact_group_sigmas,
    group_variances,
    optimal_shots,
    saving,
)
from noisygrad.quantum.objective import EnergyObjective
from noisygrad.quantum.problems import family, names

REPEATS = 2000
BAND = 4 / np.sqrt(2 * (REPEATS - 1))


@pytest.mark.parametrize("name", names())
def test_allocation_meets_precision_with_fewer_shots(name: str) -> None:
    torch.set_num_threads(1)
    problem = next(p for p in family() if p.name == name)
    x = problem.initial_point(0)
    plain = EnergyObjective(problem.hamiltonian, problem.ansatz)
    sigmas = exact_group_sigmas(plain.plan, plain.backend.probabilities(x[None], plain.plan))[0]
    eps = float(sigmas.sum()) / np.sqrt(1e5)  # about 1e5 shots per estimate at the optimum
    allocator = ShotAllocator(plain.plan.num_groups, precision=eps, pilot_shots=20000)
    objective = EnergyObjective(problem.hamiltonian, problem.ansatz, allocation=allocator)
    rng = np.random.default_rng(1)
    objective.sample(x, rng)  # pilot: the running estimates
    energies = objective.sample(np.repeat(x[None], REPEATS, 0), rng)
    shots = objective.last_group_shots
    predicted = np.sqrt((sigmas**2 / shots).sum())
    assert predicted <= eps * 1.025
    assert abs(energies.std(ddof=1) / predicted - 1) < BAND
    equal = equal_shots(sigmas, eps)
    ratio = shots.sum() / equal.sum()
    assert ratio < 1.0
    assert abs(ratio / saving(sigmas) - 1) < 0.05
    assert objective.shots_used == 20000 * len(sigmas) + REPEATS * int(shots.sum())


def test_optimal_shots_budget_and_floor() -> None:
    shots = optimal_shots([1.0, 0.0, 3.0], total=1000, min_shots=10)
    assert shots.sum() == 1000
    assert shots.min() == 10
    assert shots.tolist() == [253, 10, 737]  # 10 each, then 970 split 1:0:3 (242.5 | 727.5: tie to the first)
    assert optimal_shots([0.5, 0.5], precision=0.05).tolist() == [200, 200]
    assert saving([1.0, 1.0, 1.0]) == 1.0
    with pytest.raises(ValueError, match="exactly one"):
        optimal_shots([1.0], precision=0.1, total=10)
    with pytest.raises(ValueError, match="total must be at least"):
        optimal_shots([1.0, 2.0], total=3, min_shots=2)
    with pytest.raises(ValueError, match="sigmas"):
        optimal_shots([np.nan], precision=0.1)


def test_allocator_floor_state_dict_and_checks() -> None:
    allocator = ShotAllocator(3, total=300, min_shots=20)
    assert allocator.shots().sum() == 300
    allocator.update(np.array([[0.0, 1.0, 4.0]]), np.array([100, 100, 100]))
    shots = allocator.shots()
    assert shots[0] == 20
    assert shots.sum() == 300
    clone = ShotAllocator(3, total=300, min_shots=20)
    clone.load_state_dict(allocator.state_dict())
    assert clone.shots().tolist() == shots.tolist()
    with pytest.raises(ValueError, match="decay"):
        ShotAllocator(2, precision=0.1, decay=1.0)
    with pytest.raises(ValueError, match="min_shots"):
        ShotAllocator(2, precision=0.1, min_shots=1)
    with pytest.raises(ValueError, match="variances"):
        allocator.update(np.array([[np.inf, 0.0, 0.0]]), np.array([1, 1, 1]))


def test_group_variances_match_exact() -> None:
    problem = family()[0]
    objective = EnergyObjective(problem.hamiltonian, problem.ansatz)
    x = problem.initial_point(0)[None]
    probabilities = objective.backend.probabilities(x, objective.plan)
    counts = objective.plan.sample_counts(probabilities, 200000, np.random.default_rng(0))
    estimated = np.sqrt(group_variances(objective.plan, counts, 200000))
    exact = exact_group_sigmas(objective.plan, probabilities)
    np.testing.assert_allclose(estimated, exact, rtol=0.01)  # 200000 shots: relative error ~0.2% per sigma


def test_objective_allocation_checks() -> None:
    problem = family()[0]
    with pytest.raises(ValueError, match="groups"):
        EnergyObjective(problem.hamiltonian, problem.ansatz, allocation=ShotAllocator(7, precision=0.1))
    with pytest.raises(ValueError, match="noise='shots'"):
        EnergyObjective(problem.hamiltonian, problem.ansatz, noise="exact", allocation=ShotAllocator(2, precision=0.1))
