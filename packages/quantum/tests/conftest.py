"""Shared fixtures: the H2 problem of the research notes (2 qubits, efficient_su2 reps=1, 8 parameters)."""

import numpy as np
import pytest
from qiskit.circuit.library import efficient_su2

from noisygrad.quantum import h2


@pytest.fixture(scope="session")
def hamiltonian():
    return h2()


@pytest.fixture(scope="session")
def ansatz():
    return efficient_su2(2, reps=1)


@pytest.fixture(scope="session")
def theta():
    return np.random.default_rng(0).uniform(-np.pi, np.pi, 8)
