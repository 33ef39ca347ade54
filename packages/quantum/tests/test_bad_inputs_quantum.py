"""Bad inputs of the quantum package refused before any work, each naming the argument (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit

import noisygrad.quantum as nq
from noisygrad.quantum.hamiltonians import random_field_ising, xxz
from noisygrad.quantum.sampling import MIN_PRECISION


@pytest.mark.parametrize("builder", [nq.tfim, random_field_ising])
@pytest.mark.parametrize("name", ["coupling", "field"])
@pytest.mark.parametrize(("value", "error"), [(math.nan, ValueError), (math.inf, ValueError), ("1", TypeError)])
def test_spin_model_couplings_must_be_finite_numbers(builder, name, value, error):
    with pytest.raises(error, match=rf"\b{name}\b"):
        builder(4, **{name: value})


@pytest.mark.parametrize("name", ["coupling", "anisotropy", "next_coupling"])
def test_xxz_couplings_must_be_finite_numbers(name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        xxz(4, **{name: math.nan})


@pytest.mark.parametrize("where", ["default_precision", "precision", "pub"])
def test_a_precision_no_int64_shot_count_can_meet_is_refused_with_the_smallest_allowed(where):
    hamiltonian, ansatz = nq.tfim(2), nq.tfim_ansatz(2, 1)
    pub = (ansatz, hamiltonian, np.zeros(3))
    if where == "default_precision":
        with pytest.raises(ValueError, match=r"default_precision=1e-10 .*smallest default_precision allowed is 3\.29"):
            nq.shot_estimator(default_precision=1e-10)
        return
    estimator = nq.shot_estimator(seed=0)
    call = (
        (lambda: estimator.run([pub], precision=1e-10))
        if where == "precision"
        else (lambda: estimator.run([(*pub, 1e-10)]))
    )
    with pytest.raises(ValueError, match=r"precision=1e-10 asks for about 1e\+20 shots"):
        call()
    assert estimator.shots_used == 0
    nq.shot_estimator(default_precision=MIN_PRECISION * 1.001)  # the smallest allowed is allowed
    nq.shot_estimator(default_precision=1e-12, noise="exact")  # not used without shot noise


def test_circuits_that_measure_are_refused_by_the_objective_and_vqe_naming_the_ansatz():
    hamiltonian, ansatz = nq.tfim(2), nq.tfim_ansatz(2, 1)
    final = ansatz.copy()
    final.measure_all()
    mid = QuantumCircuit(2, 1)
    mid.compose(ansatz, inplace=True)
    mid.measure(0, 0)
    mid.rx(0.3, 0)
    for circuit, kind in ((final, "final measurements"), (mid, "mid-circuit 'measure'")):
        with pytest.raises(ValueError, match=rf"ansatz .*{kind}"):
            nq.EnergyObjective(hamiltonian, circuit)
        with pytest.raises(ValueError, match=rf"ansatz .*{kind}"):
            nq.vqe(hamiltonian, circuit, maxiter=2, shots=10)


def test_identity_only_and_wrongly_sized_observables_are_refused():
    ansatz = nq.tfim_ansatz(2, 1)
    from qiskit.quantum_info import SparsePauliOp

    with pytest.raises(ValueError, match="hamiltonian has only identity terms"):
        nq.EnergyObjective(SparsePauliOp("II", coeffs=[2.0]), ansatz)
    with pytest.raises(ValueError, match="hamiltonian acts on 3 qubits but the ansatz has 2"):
        nq.vqe(nq.tfim(3), ansatz, maxiter=2, shots=10)
    with pytest.raises(ValueError, match="number of qubits"):
        nq.shot_estimator(seed=0).run([(ansatz, nq.tfim(3), np.zeros(3))])


def test_vqe_stopping_must_be_true_or_a_dict_of_settings():
    hamiltonian, ansatz = nq.tfim(2), nq.tfim_ansatz(2, 1)
    with pytest.raises(TypeError, match="stopping"):
        nq.vqe(hamiltonian, ansatz, maxiter=2, stopping=3)
    with pytest.raises(ValueError, match="window"):  # checked before the gain's calibration spends any shot
        nq.vqe(hamiltonian, ansatz, maxiter=2, stopping={"window": 0})
