"""The torch simulator against Qiskit's Statevector, and the measurement plan against exact expectations."""

import numpy as np
import pytest
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.circuit.library import efficient_su2, n_local, real_amplitudes
from qiskit.quantum_info import SparsePauliOp, Statevector

from noisygrad.quantum import MeasurementPlan, exact_ground_energy, h2, tfim
from noisygrad.quantum._statevector import TorchStatevector, unsupported
from noisygrad.quantum.backends import AerBackend, TorchBackend, make_backend


def _mixed_circuit() -> QuantumCircuit:
    a, b, c = Parameter("a"), Parameter("b"), Parameter("c")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.crx(a, 0, 2)
    qc.rzz(b, 1, 2)
    qc.p(c, 1)
    qc.cry(a, 2, 1)
    qc.crz(b, 1, 0)
    qc.swap(0, 2)
    qc.sx(1)
    qc.rx(0.3, 2)
    qc.cz(0, 1)
    qc.ry(c, 0)
    return qc


def _constant_chain() -> QuantumCircuit:
    """Runs of constant two-qubit gates the simulator fuses into one gather (with phases: cz, iswap, cy) and one
    it cannot (ch), between rotations, with a pending one-qubit gate on a qubit only the second gate touches."""
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(4)
    qc.ry(a, 0)
    qc.rx(b, 3)
    qc.h(2)
    qc.cx(0, 1)
    qc.cz(1, 3)
    qc.iswap(3, 0)
    qc.swap(1, 2)
    qc.cy(2, 0)
    qc.rz(a, 1)
    qc.ch(0, 3)
    qc.cx(3, 2)
    qc.ry(b, 2)
    return qc


@pytest.mark.parametrize(
    "circuit",
    [
        efficient_su2(4, reps=2),
        real_amplitudes(3, reps=2),
        n_local(3, ["rx", "rz"], "cz", reps=2),
        _mixed_circuit(),
        _constant_chain(),
    ],
    ids=["efficient_su2", "real_amplitudes", "n_local", "mixed", "constant_chain"],
)
def test_states_match_qiskit_to_1e12(circuit):
    values = np.random.default_rng(1).uniform(-3, 3, (6, circuit.num_parameters))
    ours = TorchStatevector(circuit).states(values).numpy()
    for row, state in zip(values, ours, strict=True):
        reference = Statevector(circuit.assign_parameters(row)).data
        overlap = np.vdot(reference, state)  # equal up to a global phase
        np.testing.assert_allclose(state * np.conj(overlap) / abs(overlap), reference, atol=1e-12)


def test_unsupported_circuits_go_to_aer():
    x = Parameter("x")
    qc = QuantumCircuit(2)
    qc.ry(2 * x, 0)  # an expression, not a plain parameter
    assert "expression" in unsupported(qc)
    assert isinstance(make_backend(qc), AerBackend)
    assert isinstance(make_backend(efficient_su2(2, reps=1)), TorchBackend)
    with pytest.raises(ValueError, match="torch simulator cannot run"):
        TorchStatevector(qc)


@pytest.mark.parametrize("backend", ["torch", "aer"])
def test_plan_exact_energy_matches_statevector(backend):
    hamiltonian = tfim(3) + SparsePauliOp(["YXI", "IIY"], [0.3, -0.2])
    circuit = efficient_su2(3, reps=1)
    values = np.random.default_rng(2).uniform(-3, 3, (4, circuit.num_parameters))
    plan = MeasurementPlan(hamiltonian, circuit.num_qubits)
    ours = plan.exact(make_backend(circuit, backend).probabilities(values, plan))
    reference = [Statevector(circuit.assign_parameters(v)).expectation_value(hamiltonian).real for v in values]
    np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_h2_groups_and_reference_energies():
    plan = MeasurementPlan(h2())
    assert plan.num_groups == 2  # {XX} and {IZ, ZI, ZZ}; the identity needs no shots
    assert plan.constant == pytest.approx(-1.052373245772859)
    assert exact_ground_energy(h2()) == pytest.approx(-1.857275030202, abs=1e-11)
    # TFIM at h = J, open chain of 4: the known value from dense diagonalisation of the Pauli sum
    assert exact_ground_energy(tfim(4)) == pytest.approx(-4.758770483143633, abs=1e-9)


def test_many_outcome_sampling_has_the_multinomial_law():
    """Above MULTINOMIAL_MAX_OUTCOMES the shots are drawn by inverse-CDF lookup; the law must stay multinomial.

    13 qubits (8192 outcomes), 400 points of 200 shots. Pooled counts: Pearson's chi-square with 8191 degrees of
    freedom has s.d. sqrt(2 * 8191) = 128; held to 5 s.d. A linear functional's variance across points against
    Var(v) / shots: relative s.e. of a 400-sample variance is sqrt(2 / 399) = 7%; held to 25% (3.5 s.e.).
    """
    from noisygrad.quantum.measurement import MULTINOMIAL_MAX_OUTCOMES

    outcomes, points, shots = 2**13, 400, 200
    assert outcomes > MULTINOMIAL_MAX_OUTCOMES
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(outcomes, 0.5))
    plan = MeasurementPlan(SparsePauliOp("Z" * 13))
    counts = plan.sample_counts(np.broadcast_to(p, (points, 1, outcomes)), shots, np.random.default_rng(6))
    assert counts.shape == (points, 1, outcomes)
    np.testing.assert_array_equal(counts.sum(-1), shots)
    pooled, expected = counts.sum((0, 1)), points * shots * p
    chi2 = float((((pooled - expected) ** 2) / expected).sum())
    assert abs(chi2 - (outcomes - 1)) < 5 * np.sqrt(2 * (outcomes - 1))
    v = rng.normal(size=outcomes)
    means = counts[:, 0] @ v / shots
    assert means.mean() == pytest.approx(p @ v, abs=4 * np.sqrt((p @ v**2 - (p @ v) ** 2) / shots / points))
    assert means.var(ddof=1) == pytest.approx((p @ v**2 - (p @ v) ** 2) / shots, rel=0.25)


@pytest.mark.parametrize("outcomes", [2**4, 2**13])
def test_sampling_refuses_probabilities_that_are_not_a_distribution(outcomes):
    plan = MeasurementPlan(SparsePauliOp("Z" * int(np.log2(outcomes))))
    rng = np.random.default_rng(0)
    for bad in (np.full((1, 1, outcomes), np.nan), np.zeros((1, 1, outcomes))):
        with pytest.raises(ValueError, match="positive sum"):
            plan.sample_counts(bad, 100, rng)
