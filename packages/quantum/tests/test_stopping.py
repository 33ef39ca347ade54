"""Shot-aware stopping: the run stops once the energy's change stays within its own standard error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisygrad import Adam, minimize
from noisygrad.quantum import EnergyObjective, ParameterShift
from noisygrad.quantum.problems import problem
from noisygrad.quantum.stopping import ShotAwareStopping


def test_stops_on_a_plateau_and_reports_energy_with_stderr() -> None:
    torch.set_num_threads(1)
    h2 = problem("h2")
    objective = EnergyObjective(h2.hamiltonian, h2.ansatz, shots=1000)
    stopping = ShotAwareStopping(objective, seed=3, window=3, every=10, shots=10000)
    run = minimize(
        ParameterShift(objective), Adam(lr=0.1), h2.initial_point(0), steps=2000, seed=0, callbacks=[stopping]
    )
    assert run.stopped_by_callback
    assert stopping.stopped
    assert len(stopping.history) < 200  # stopped well before the 2000-step budget
    assert all(entry["quiet"] <= 3 for entry in stopping.history[1:])
    assert stopping.history[-1]["quiet"] == 3
    exact = float(objective.exact(run.x)[0])
    # the reported energy is one 10000-shot estimate at the final point: within 4 of its standard errors
    assert stopping.stderr is not None
    assert 0 < stopping.stderr < 0.01
    assert abs(stopping.energy - exact) < 4 * stopping.stderr  # type: ignore[operator]
    assert exact - h2.exact_energy < 0.02  # near the ground state, not stopped at the noisy start
    assert stopping.history[-1]["shots"] <= objective.shots_used  # every check's shots are counted


def test_termination_checker_signature_and_checks() -> None:
    h2 = problem("h2")
    objective = EnergyObjective(h2.hamiltonian, h2.ansatz, shots=100)
    stopping = ShotAwareStopping(objective, seed=np.random.default_rng(0), window=1, every=1)
    x = h2.initial_point(0)
    assert stopping.termination_checker(2, x, 0.0, 0.1, True) is False  # the first check has nothing to compare
    assert stopping.termination_checker(4, x, 0.0, 0.1, False) is False  # rejected steps are not checked
    assert len(stopping.history) == 1
    with pytest.raises(ValueError, match="window"):
        ShotAwareStopping(objective, window=0)
    with pytest.raises(ValueError, match="z must"):
        ShotAwareStopping(objective, z=float("nan"))
    with pytest.raises(TypeError, match="objective"):
        ShotAwareStopping("h2")  # type: ignore[arg-type]
