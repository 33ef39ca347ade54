"""Tests that close the mutation-testing gaps of the quantum plugin's simulators and their callers (issue 18).

Covered: ``_statevector.py`` (the torch simulator, state by state against ``qiskit.quantum_info.Statevector``
with no global phase removed, its gate builders in closed form, what it refuses and why), ``backends.py`` (the
non-unitary checks, the thread pinning, the torch and Aer backends against each other and their generators, the
per-call crossover at its boundary, the device fallback and the CPU rule), ``sharding.py`` (keys and point streams
against a plain re-implementation, the shard bounds, the executors, the refusals), ``problems.py`` (the family
table's settings, initial points, exact energies) and ``experiments.py`` (each experiment at a tiny size against a
re-implementation drawing the same numbers; ``gradient_variance``'s draw loops cut to 3 and ``spsa_h2``'s VQE runs to
3 iterations, the real computation otherwise). Every check is exact or to float64 rounding (statevectors to
``1e-12``), with two fixed-seed exceptions whose bounds are stated where they are made: Aer's sampled frequencies
against the exact probabilities (6 standard errors of a 2000-shot frequency) and 200 batch keys reaching the top half
of their range (failing with probability ``2**-200``).
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import dataclasses
import math
import os
import pickle
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
import torch
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.circuit.library import UnitaryGate, efficient_su2, real_amplitudes
from qiskit.quantum_info import SparsePauliOp, Statevector, random_unitary

from noisygrad import SPSA as SPSAEstimator
from noisygrad.quantum import EnergyObjective, MeasurementPlan, ParameterShift, h2, vqe
from noisygrad.quantum import _statevector as sv
from noisygrad.quantum import backends as bk
from noisygrad.quantum import experiments as ex
from noisygrad.quantum import problems as pr
from noisygrad.quantum import sharding as sh
from noisygrad.quantum._statevector import ROTATIONS, TorchStatevector, apply, unsupported
from noisygrad.quantum.adaptive import AdaptiveShots
from noisygrad.quantum.backends import (
    AerBackend,
    AutoBackend,
    DeviceFallbackWarning,
    TorchBackend,
    make_backend,
    non_unitary,
    resolve_device,
    torch_threads,
    without_final_measurements,
)
from noisygrad.quantum.gradients import finite_difference
from noisygrad.quantum.hamiltonians import CHEMICAL_ACCURACY, exact_ground_energy
from noisygrad.rng import numpy_stream, substream_seed, torch_stream

ATOL = 1e-12

# ------------------------------------------------------------------------------------------------ _statevector


def _reference(circuit: QuantumCircuit, values: np.ndarray) -> np.ndarray:
    """Qiskit's statevectors of ``circuit`` at each row of ``values`` (no global phase removed)."""
    return np.stack([Statevector(circuit.assign_parameters(row)).data for row in values])


def _every_gate_circuit() -> QuantumCircuit:
    """Every rotation kind (one parameter used twice), constant basis gates with and without phases, a 3-qubit
    constant gate that is not a basis map (a random unitary), barriers and a delay."""
    a, b, c, d = Parameter("a"), Parameter("b"), Parameter("c"), Parameter("d")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.rx(a, 1)
    qc.ry(b, 2)
    qc.barrier()
    qc.rz(c, 0)
    qc.rzz(d, 0, 2)
    qc.p(a, 1)
    qc.delay(10, 0)
    qc.crx(b, 0, 1)
    qc.cry(c, 1, 2)
    qc.crz(d, 2, 0)
    qc.cz(0, 1)  # phases only
    qc.cx(1, 2)  # a permutation only
    qc.s(2)
    qc.cy(2, 0)  # both
    qc.rx(0.7, 1)  # a constant rotation
    qc.append(UnitaryGate(random_unitary(8, seed=1)), [2, 0, 1])
    qc.ry(a, 0)
    qc.sx(2)
    return qc


@pytest.mark.parametrize("k", [1, 4])
def test_sv_states_equal_qiskits_exactly_with_their_global_phase(k):
    qc = _every_gate_circuit()
    values = np.random.default_rng(3).uniform(-3, 3, (k, qc.num_parameters))
    sim = TorchStatevector(qc)
    assert (sim.num_qubits, sim.num_parameters, sim.device) == (3, 4, torch.device("cpu"))
    ours = sim.states(values)
    assert ours.shape == (k, 8)
    assert ours.dtype == torch.complex128
    np.testing.assert_allclose(ours.numpy(), _reference(qc, values), atol=ATOL, rtol=0)
    again = sim.states(torch.as_tensor(values))  # a tensor input: the same states
    np.testing.assert_allclose(again.numpy(), ours.numpy(), atol=ATOL, rtol=0)


def test_sv_angles_are_taken_in_float64_and_the_state_lives_on_the_device():
    qc = _every_gate_circuit()
    values = np.random.default_rng(8).uniform(-3, 3, (3, qc.num_parameters)).astype(np.float32)
    sim = TorchStatevector(qc)
    np.testing.assert_allclose(
        sim.states(values).numpy(), sim.states(values.astype(np.float64)).numpy(), atol=1e-15, rtol=0
    )
    # torch's shape-only "meta" device: every tensor of the run must be made there (a CPU one would not mix)
    meta = TorchStatevector(qc, "meta").states(values.astype(np.float64))
    assert (meta.device, meta.shape, meta.dtype) == (torch.device("meta"), (3, 8), torch.complex128)
    assert TorchStatevector(qc, torch.device("cpu")).device == torch.device("cpu")
    empty = TorchStatevector(QuantumCircuit(2), "meta").states(np.zeros((1, 0)))  # no gate: the initial state
    assert (empty.device, empty.shape) == (torch.device("meta"), (1, 4))


@pytest.mark.parametrize("gate", ["cz", "cx", "cy", "swap", "iswap", "ecr"])
@pytest.mark.parametrize("then", ["cz", "cx", "cy", "iswap"])
def test_sv_fused_basis_gates_compose_in_order(gate, then):
    """Two constant basis gates in a row become one gather: order, permutation and phases as Qiskit applies them."""
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(3)
    qc.ry(a, 0)
    qc.rx(b, 1)
    qc.h(2)
    qc.t(0)
    if gate == "ecr":
        qc.ecr(0, 2)  # not a basis map: kept as a matrix
    else:
        getattr(qc, gate)(0, 2)
    getattr(qc, then)(2, 1)
    qc.rz(a, 2)
    values = np.array([[0.3, -1.1], [2.0, 0.4]])
    np.testing.assert_allclose(TorchStatevector(qc).states(values).numpy(), _reference(qc, values), atol=ATOL)


def test_sv_pending_one_qubit_gates_are_multiplied_in_order():
    """Several one-qubit gates on one qubit, then a multi-qubit gate on another qubit, then on that one."""
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rx(a, 0)
    qc.h(0)
    qc.ry(b, 0)
    qc.s(0)
    qc.ry(a, 1)
    qc.crx(b, 1, 0)
    qc.sx(1)
    qc.rz(a, 1)
    values = np.array([[0.9, -0.4]])
    np.testing.assert_allclose(TorchStatevector(qc).states(values).numpy(), _reference(qc, values), atol=ATOL)


def test_sv_a_circuit_without_parameters_and_without_gates():
    qc = QuantumCircuit(2)
    np.testing.assert_array_equal(TorchStatevector(qc).states(np.zeros((2, 0))).numpy(), [[1, 0, 0, 0]] * 2)
    qc.x(1)
    qc.barrier()
    out = TorchStatevector(qc).states(np.zeros((1, 0))).numpy()
    np.testing.assert_array_equal(out, [[0, 0, 1, 0]])


def test_sv_gate_builders_in_closed_form():
    t = torch.tensor([0.0, 0.8, -2.5], dtype=torch.float64)
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    rx = ROTATIONS["rx"](t)
    assert rx.shape == (3, 2, 2)
    assert rx.dtype == torch.complex128
    np.testing.assert_allclose(rx[:, 0, 0].numpy(), c.numpy(), atol=ATOL)
    np.testing.assert_allclose(rx[:, 0, 1].numpy(), (-1j * s).numpy(), atol=ATOL)
    ry = ROTATIONS["ry"](t)
    np.testing.assert_allclose(ry[:, 1, 0].numpy(), s.numpy(), atol=ATOL)
    np.testing.assert_allclose(ry[:, 0, 1].numpy(), (-s).numpy(), atol=ATOL)
    rz = ROTATIONS["rz"](t)
    np.testing.assert_allclose(rz[:, 0, 0].numpy(), np.exp(-0.5j * t.numpy()), atol=ATOL)
    np.testing.assert_allclose(rz[:, 1, 1].numpy(), np.exp(0.5j * t.numpy()), atol=ATOL)
    rzz = ROTATIONS["rzz"](t)
    np.testing.assert_allclose(
        torch.diagonal(rzz, dim1=-2, dim2=-1).numpy(),
        np.exp(np.outer(t.numpy(), [-0.5j, 0.5j, 0.5j, -0.5j])),
        atol=ATOL,
    )
    p = ROTATIONS["p"](t)
    np.testing.assert_allclose(p.numpy(), [np.diag([1, np.exp(1j * x)]) for x in t.numpy()], atol=ATOL)
    crx = ROTATIONS["crx"](t)
    for i in range(3):  # the control is the low bit: indices 1 and 3 carry the rotation
        expected = np.eye(4, dtype=complex)
        expected[np.ix_([1, 3], [1, 3])] = rx[i].numpy()
        np.testing.assert_allclose(crx[i].numpy(), expected, atol=ATOL)
    # the constants are built once per device, and the builder keeps working on a second call
    np.testing.assert_array_equal(ROTATIONS["rx"](t).numpy(), rx.numpy())


def test_sv_apply_batched_and_shared_matrices_on_any_qubits():
    rng = np.random.default_rng(5)
    state = rng.normal(size=(2, 8)) + 1j * rng.normal(size=(2, 8))
    m = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    for qubits in [(0, 2), (2, 0), (1, 0)]:
        full = np.zeros((8, 8), dtype=complex)  # the dense operator: matrix index little-endian in ``qubits``
        for col in range(8):
            sub = sum(((col >> q) & 1) << i for i, q in enumerate(qubits))
            rest = col & ~sum(1 << q for q in qubits)
            for row_sub in range(4):
                row = rest + sum(((row_sub >> i) & 1) << q for i, q in enumerate(qubits))
                full[row, col] = m[row_sub, sub]
        expected = state @ full.T
        tensor = torch.as_tensor(state).reshape(2, 2, 2, 2)
        out = apply(tensor, torch.as_tensor(m), qubits).reshape(2, 8)
        np.testing.assert_allclose(out.numpy(), expected, atol=ATOL)
        batch = torch.as_tensor(np.stack([m, m.conj()]))
        out2 = apply(tensor, batch, qubits).reshape(2, 8).numpy()
        np.testing.assert_allclose(out2[0], expected[0], atol=ATOL)
        np.testing.assert_allclose(out2[1], (state @ _conj_operator(full, m, qubits).T)[1], atol=ATOL)


def _conj_operator(full: np.ndarray, m: np.ndarray, qubits: tuple[int, ...]) -> np.ndarray:
    out = np.zeros_like(full)
    mc = m.conj()
    for col in range(8):
        sub = sum(((col >> q) & 1) << i for i, q in enumerate(qubits))
        rest = col & ~sum(1 << q for q in qubits)
        for row_sub in range(4):
            row = rest + sum(((row_sub >> i) & 1) << q for i, q in enumerate(qubits))
            out[row, col] = mc[row_sub, sub]
    return out


def test_sv_basis_map_detection():
    cx = torch.tensor(np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]]), dtype=torch.complex128)
    basis = sv._as_basis_map(cx, (0, 1), 2, torch.device("cpu"))
    assert basis is not None
    assert basis.phase is None
    assert basis.qubits == frozenset({0, 1})
    assert basis.source.tolist() == [0, 3, 2, 1]
    h2x = torch.kron(torch.eye(2), torch.tensor([[1, 1], [1, -1]]) / math.sqrt(2)).to(torch.complex128)
    assert sv._as_basis_map(h2x, (0, 1), 2, torch.device("cpu")) is None
    one_row_two = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.complex128)
    assert sv._as_basis_map(one_row_two, (0, 1), 2, torch.device("cpu")) is None  # columns fine, a row is not
    one_column_two = one_row_two.T.contiguous()
    assert sv._as_basis_map(one_column_two, (0, 1), 2, torch.device("cpu")) is None  # rows fine, a column is not
    cz = torch.diag(torch.tensor([1, 1, 1, -1], dtype=torch.complex128))
    zmap = sv._as_basis_map(cz, (1, 2), 3, torch.device("cpu"))
    assert zmap.source.tolist() == list(range(8))
    np.testing.assert_array_equal(zmap.phase.numpy(), [1, 1, 1, 1, 1, 1, -1, -1])
    # then(): permutation of the first, then the second; phases multiply, None meaning all ones
    swap = torch.tensor(np.eye(4)[[0, 2, 1, 3]], dtype=torch.complex128)
    smap = sv._as_basis_map(swap, (0, 1), 2, torch.device("cpu"))
    czmap = sv._as_basis_map(cz, (0, 1), 2, torch.device("cpu"))
    cymap = sv._as_basis_map(
        torch.tensor([[1, 0, 0, 0], [0, 0, 0, -1j], [0, 0, 1, 0], [0, 1j, 0, 0]], dtype=torch.complex128),
        (0, 1),
        2,
        torch.device("cpu"),
    )
    state = torch.tensor([[0.1, 0.2 + 0.3j, -0.4, 0.5j]], dtype=torch.complex128)

    def run(m: sv._Basis, s: torch.Tensor) -> torch.Tensor:
        return s[:, m.source] if m.phase is None else s[:, m.source] * m.phase

    for first, second in [(smap, czmap), (czmap, smap), (czmap, cymap), (cymap, czmap), (smap, smap)]:
        np.testing.assert_allclose(
            run(first.then(second), state).numpy(), run(second, run(first, state)).numpy(), atol=ATOL
        )
    assert smap.then(smap).phase is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        smap.phase = None  # a fused map is shared by every call: it cannot be changed
    assert smap.then(smap).source.tolist() == [0, 1, 2, 3]


def test_sv_unsupported_says_why():
    a = Parameter("a")
    ok = QuantumCircuit(2, 1)  # an idle classical bit does not matter
    ok.rx(a, 0)
    ok.barrier()
    ok.delay(5, 1)
    ok.cx(0, 1)
    assert unsupported(ok) is None
    measured = QuantumCircuit(1, 1)
    measured.measure(0, 0)
    assert "measures" in unsupported(measured)
    reset = QuantumCircuit(1)
    reset.reset(0)
    assert "measures, resets" in unsupported(reset)
    conditioned = QuantumCircuit(1, 1)
    with conditioned.if_test((conditioned.clbits[0], 1)):
        conditioned.x(0)
    assert "classical bits" in unsupported(conditioned)
    expression = QuantumCircuit(1)
    expression.rx(2 * a, 0)
    assert "angle expression" in unsupported(expression)
    u = QuantumCircuit(1)
    u.u(a, 0.1, 0.2, 0)
    assert "'u' with a symbolic parameter" in unsupported(u)
    constant_u = QuantumCircuit(1)
    constant_u.u(0.3, 0.1, 0.2, 0)
    assert unsupported(constant_u) is None  # a constant gate: its matrix
    inner = QuantumCircuit(1)
    inner.reset(0)
    custom = QuantumCircuit(1)
    custom.append(inner.to_instruction(), [0])
    assert "has no matrix" in unsupported(custom)
    with pytest.raises(ValueError, match="cannot run this circuit: instruction"):
        TorchStatevector(custom)


def test_sv_the_constant_gate_of_a_circuit_is_used_as_qiskit_gives_it():
    qc = QuantumCircuit(2)
    qc.u(0.3, 0.1, 0.2, 0)
    qc.ch(0, 1)
    out = TorchStatevector(qc).states(np.zeros((1, 0))).numpy()
    np.testing.assert_allclose(out[0], Statevector(qc).data, atol=ATOL)


# ----------------------------------------------------------------------------------------------------- backends


def test_backend_non_unitary_reasons():
    ok = QuantumCircuit(2)
    ok.reset(0)  # a fresh qubit: accepted
    ok.barrier()  # a barrier touches nothing
    ok.h(0)
    ok.delay(10, 1)
    ok.reset(1)  # qubit 1 saw only a delay
    assert non_unitary(ok) is None
    late = QuantumCircuit(2)
    late.h(0)
    late.reset(0)
    assert "resets qubits [0] after gates acted on them ('reset', instruction 1)" in non_unitary(late)
    init = QuantumCircuit(2)
    init.x(1)
    init.initialize([0, 1], 1)
    assert "resets qubits [1]" in non_unitary(init)
    init_fresh = QuantumCircuit(2)
    init_fresh.x(1)
    init_fresh.initialize([0, 1], 0)
    assert non_unitary(init_fresh) is None
    final = QuantumCircuit(2, 2)
    final.h(0)
    final.measure(0, 0)
    final.barrier()
    final.measure(1, 1)
    assert "final measurements (a 'measure' at instruction 1)" in non_unitary(final)
    mid = QuantumCircuit(2, 2)
    mid.measure(0, 0)
    mid.h(1)
    assert "mid-circuit 'measure' (instruction 0)" in non_unitary(mid)
    flow = QuantumCircuit(1, 1)
    with flow.if_test((flow.clbits[0], 1)):
        flow.x(0)
    assert "mid-circuit 'if_else'" in non_unitary(flow)


def test_backend_without_final_measurements_copies_or_refuses_naming_the_argument():
    qc = QuantumCircuit(1)
    qc.h(0)
    assert without_final_measurements(qc) is qc
    measured = qc.copy()
    measured.measure_all()
    stripped = without_final_measurements(measured)
    assert stripped is not measured
    assert len(measured.data) == 3
    assert [i.operation.name for i in stripped.data] == ["h"]
    mid = QuantumCircuit(1, 1, name="bad")
    mid.measure(0, 0)
    mid.h(0)
    with pytest.raises(ValueError, match=r"^ansatz 'bad' has a mid-circuit"):
        without_final_measurements(mid, "ansatz")
    with pytest.raises(ValueError, match=r"^circuit 'bad'"):
        without_final_measurements(mid)


def test_backend_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with torch_threads(before):
        assert torch.get_num_threads() == before
    seen = []

    def fail_inside() -> None:
        with torch_threads(other):
            seen.append(torch.get_num_threads())
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_inside()
    assert seen == [other]
    assert torch.get_num_threads() == before


def _two_qubit_case() -> tuple[QuantumCircuit, MeasurementPlan, np.ndarray]:
    ansatz = efficient_su2(2, reps=1)
    plan = MeasurementPlan(SparsePauliOp.from_list([("XY", 0.4), ("ZI", -0.7), ("YY", 0.2), ("II", 0.1)]), 2)
    values = np.random.default_rng(7).uniform(-3, 3, (3, ansatz.num_parameters))
    return ansatz, plan, values


def test_backend_torch_backend_probabilities_counts_and_threads():
    ansatz, plan, values = _two_qubit_case()
    backend = TorchBackend(ansatz)
    assert (backend.name, backend.device, backend.threads) == ("torch", "CPU", 1)
    states = _reference(ansatz, values)
    expected = plan.probabilities(torch.as_tensor(states))
    np.testing.assert_allclose(backend.probabilities(values, plan), expected, atol=ATOL)
    counts = backend.counts(values, plan, 50, np.random.default_rng(4))
    assert counts.shape == (3, plan.num_groups, 4)
    assert (counts.sum(-1) == 50).all()
    same = plan.sample_counts(backend.probabilities(values, plan), 50, np.random.default_rng(4))
    np.testing.assert_array_equal(counts, same)
    with pytest.raises(ValueError, match="device must be one of"):
        TorchBackend(ansatz, "TPU")


def test_backend_aer_backend_matches_torch_and_reproduces_its_sampler():
    ansatz, plan, values = _two_qubit_case()
    aer = AerBackend(ansatz)
    assert (aer.name, aer.device, aer.sampler) == ("aer", "CPU", False)
    assert aer.simulator.options.max_parallel_threads == 1
    torch_p = TorchBackend(ansatz).probabilities(values, plan)
    np.testing.assert_allclose(aer.probabilities(values, plan), torch_p, atol=1e-10)
    np.testing.assert_array_equal(
        aer.counts(values, plan, 40, np.random.default_rng(2)),
        plan.sample_counts(aer.probabilities(values, plan), 40, np.random.default_rng(2)),
    )
    sampler = AerBackend(ansatz, sampler=1)
    assert sampler.sampler is True
    shots = np.array([30, 30, 7])[: plan.num_groups]
    first = sampler.counts(values, plan, shots, np.random.default_rng(9))
    assert first.shape == (3, plan.num_groups, 4)
    assert first.dtype == np.int64
    np.testing.assert_array_equal(first.sum(-1), np.broadcast_to(shots, (3, plan.num_groups)))
    np.testing.assert_array_equal(first, sampler.counts(values, plan, shots, np.random.default_rng(9)))
    rng = np.random.default_rng(9)
    one = sampler.counts(values, plan, 2000, rng)
    two = sampler.counts(values, plan, 2000, rng)
    assert not np.array_equal(one, two)  # a fresh seed every call
    # the sampled frequencies follow the exact probabilities: 2000 shots, s.e. <= 0.5 / sqrt(2000) = 0.011 each
    np.testing.assert_allclose(one / 2000, torch_p, atol=6 * 0.5 / math.sqrt(2000))


def test_backend_aer_sampler_with_idle_classical_bits_and_no_parameters():
    qc = QuantumCircuit(2, 3)  # idle classical bits come first in Aer's outcome strings
    qc.x(0)
    plan = MeasurementPlan(SparsePauliOp.from_list([("ZZ", 1.0), ("XX", 1.0)]), 2)
    counts = AerBackend(qc, sampler=True).counts(np.zeros((2, 0)), plan, 16, np.random.default_rng(0))
    z_group = next(j for j, g in enumerate(plan.groups) if g.basis == "ZZ")
    np.testing.assert_array_equal(counts[:, z_group], [[0, 16, 0, 0]] * 2)  # |01>: outcome 1, every shot
    np.testing.assert_allclose(
        AerBackend(qc).probabilities(np.zeros((2, 0)), plan), TorchBackend(qc).probabilities(np.zeros((2, 0)), plan)
    )


def test_backend_aer_sampler_reads_every_qubit_of_a_wider_register():
    qc = QuantumCircuit(3, 1)  # three qubits after an idle classical bit: outcome 0b011 and 0b111 read whole
    qc.x(0)
    qc.x(1)
    plan = MeasurementPlan(SparsePauliOp.from_list([("ZZZ", 1.0)]), 3)
    counts = AerBackend(qc, sampler=True).counts(np.zeros((1, 0)), plan, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(counts[0, 0], np.eye(8, dtype=np.int64)[3] * 8)
    qc.x(2)
    counts = AerBackend(qc, sampler=True).counts(np.zeros((1, 0)), plan, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(counts[0, 0], np.eye(8, dtype=np.int64)[7] * 8)


def test_backend_aer_sampler_seeds_aer_from_the_callers_generator():
    """One Aer call per distinct shot count, each seeded with ``rng.integers(2**31 - 1)``: Aer's own counts."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(0.4, 1)
    plan = MeasurementPlan(SparsePauliOp.from_list([("ZZ", 1.0), ("XX", 0.5)]), 2)
    got = AerBackend(qc, sampler=True).counts(np.zeros((1, 0)), plan, np.array([64, 64]), np.random.default_rng(5))
    seed = int(np.random.default_rng(5).integers(2**31 - 1))
    z_group = next(j for j, g in enumerate(plan.groups) if g.basis == "ZZ")
    measured = qc.copy()
    measured.measure_all()
    simulator = AerSimulator(method="statevector", max_parallel_threads=1)
    x_circuit = qc.copy()
    x_circuit.h([0, 1])
    x_circuit.measure_all()
    circuits = [measured, x_circuit] if z_group == 0 else [x_circuit, measured]
    result = simulator.run(transpile(circuits, simulator, optimization_level=0), shots=64, seed_simulator=seed).result()
    for j in range(2):
        expected = np.zeros(4, dtype=np.int64)
        for outcome, c in result.get_counts(j).items():
            expected[int(outcome, 2)] = c
        np.testing.assert_array_equal(got[0, j], expected)


def test_backend_aer_backend_refusals():
    ansatz, _, _ = _two_qubit_case()
    with pytest.raises(ValueError, match="device must be 'CPU' or 'GPU', got 'cpu'"):
        AerBackend(ansatz, "cpu")
    with pytest.raises(RuntimeError, match="device='GPU'"):
        AerBackend(ansatz, "GPU")
    measured = ansatz.copy()
    measured.measure_all()
    with pytest.raises(ValueError, match="Aer would sample a collapsed branch"):
        AerBackend(measured)
    assert bk.gpu_available() is False


def test_backend_aer_uses_its_threads_from_the_qubit_threshold():
    assert bk.SMALL_CIRCUIT_QUBITS == 14
    assert bk.TORCH_MAX_QUBITS == 14
    assert bk.TORCH_MAX_AMPLITUDES == 2**20
    assert AerBackend(QuantumCircuit(13)).simulator.options.max_parallel_threads == 1
    assert AerBackend(QuantumCircuit(14)).simulator.options.max_parallel_threads != 1
    assert TorchBackend(QuantumCircuit(14)).threads == 1
    assert TorchBackend(QuantumCircuit(15)).threads is None


def test_backend_auto_backend_picks_per_call_at_the_amplitude_boundary():
    auto = AutoBackend(real_amplitudes(2, reps=1))
    assert (auto.name, auto.device) == ("auto", "CPU")
    small = auto.pick(2**18)  # 2**18 points x 4 amplitudes = 2**20: torch
    assert isinstance(small, TorchBackend)
    assert auto.pick(1) is small
    big = auto.pick(2**18 + 1)
    assert isinstance(big, AerBackend)
    assert auto.pick(2**19) is big
    assert not big.sampler
    _, plan, _ = _two_qubit_case()
    values = np.random.default_rng(1).uniform(-1, 1, (2, 4))
    np.testing.assert_allclose(auto.probabilities(values, plan), small.probabilities(values, plan), atol=0)
    np.testing.assert_array_equal(
        auto.counts(values, plan, 9, np.random.default_rng(3)),
        small.counts(values, plan, 9, np.random.default_rng(3)),
    )


def test_backend_simulator_union_and_the_gpu_device_of_torch(monkeypatch):
    ansatz, _, _ = _two_qubit_case()
    for backend in (TorchBackend(ansatz), AerBackend(ansatz), AutoBackend(ansatz)):
        assert isinstance(backend, bk.SimulatorBackend)
    assert not isinstance(ansatz, bk.SimulatorBackend)
    monkeypatch.setattr(bk, "TorchStatevector", lambda circuit, device: device)  # where the states would live
    assert TorchBackend(ansatz, "GPU").simulator == "cuda"
    assert TorchBackend(ansatz, "CPU").simulator == "cpu"
    assert TorchBackend(ansatz, "GPU").threads is None


def test_backend_cpu_choice_and_make_backend_on_the_cpu():
    assert bk._cpu_choice(QuantumCircuit(2), "why") == "aer"
    assert bk._cpu_choice(QuantumCircuit(14), None) == "torch"
    assert bk._cpu_choice(QuantumCircuit(15), None) == "auto"
    assert bk._cpu_choice(QuantumCircuit(20), None) == "auto"
    assert bk._cpu_choice(QuantumCircuit(21), None) == "aer"
    ansatz, _, _ = _two_qubit_case()
    assert isinstance(make_backend(ansatz), TorchBackend)
    assert isinstance(make_backend(QuantumCircuit(15)), AutoBackend)
    aer = make_backend(ansatz, "aer")
    assert isinstance(aer, AerBackend)
    assert not aer.sampler
    assert make_backend(ansatz, "aer-sampler").sampler
    measured = QuantumCircuit(1, 1)
    measured.h(0)
    measured.measure(0, 0)
    measured.h(0)
    with pytest.raises(ValueError, match="mid-circuit"):
        make_backend(measured)  # auto sends a circuit torch refuses to Aer, which refuses it too
    unsupported_circuit = QuantumCircuit(1)
    unsupported_circuit.rx(2 * Parameter("a"), 0)
    assert isinstance(make_backend(unsupported_circuit), AerBackend)


def test_backend_check_backend_and_resolve_device_on_the_cpu():
    with pytest.raises(ValueError, match="backend must be one of"):
        bk.check_backend("qpu", "CPU")
    with pytest.raises(ValueError, match="device must be one of"):
        bk.check_backend("torch", "cpu")
    for backend in bk.BACKENDS:
        bk.check_backend(backend, "GPU")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert resolve_device(backend, "CPU") == "CPU"


@pytest.mark.parametrize(
    ("cuda", "aer_gpu", "backend", "expected"),
    [
        (True, False, "torch", "GPU"),
        (False, True, "torch", "CPU"),
        (True, False, "auto", "GPU"),
        (False, True, "auto", "GPU"),
        (False, False, "auto", "CPU"),
        (True, False, "aer", "CPU"),
        (False, True, "aer", "GPU"),
        (False, True, "aer-sampler", "GPU"),
        (True, True, "auto", "GPU"),
    ],
)
def test_backend_resolve_device_keeps_the_gpu_only_where_a_simulator_has_one(
    monkeypatch, cuda, aer_gpu, backend, expected
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(bk, "gpu_available", lambda: aer_gpu)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_device(backend, "GPU") == expected
    fallbacks = [w for w in caught if issubclass(w.category, DeviceFallbackWarning)]
    assert len(fallbacks) == (expected == "CPU")
    if fallbacks:
        text = str(fallbacks[0].message)
        assert f"backend={backend!r}" in text
        assert "Running on the CPU" in text
        assert ("; and " in text) == (backend == "auto")


def test_backend_make_backend_auto_on_a_gpu_chooses_torch_then_aer_then_the_cpu(monkeypatch):
    built = []

    def record(name):
        return lambda circuit, device="CPU", **kw: built.append((name, device, kw)) or name

    monkeypatch.setattr(bk, "TorchBackend", record("torch"))
    monkeypatch.setattr(bk, "AerBackend", record("aer"))
    ansatz, _, _ = _two_qubit_case()
    odd = QuantumCircuit(2)
    odd.rx(2 * Parameter("a"), 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bk, "gpu_available", lambda: True)
    assert make_backend(ansatz, "auto", "GPU") == "torch"
    assert make_backend(odd, "auto", "GPU") == "aer"
    monkeypatch.setattr(bk, "gpu_available", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert make_backend(odd, "auto", "GPU") == "aer"
    assert any("torch simulator cannot run this circuit" in str(w.message) for w in caught)
    assert built == [
        ("torch", "GPU", {}),
        ("aer", "GPU", {"sampler": False}),
        ("aer", "CPU", {"sampler": False}),
    ]


# ----------------------------------------------------------------------------------------------------- sharding


def _tfim_case() -> tuple[QuantumCircuit, MeasurementPlan, np.ndarray]:
    ansatz = real_amplitudes(2, reps=1)
    plan = MeasurementPlan(SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.5), ("IX", 0.5), ("II", -0.25)]), 2)
    values = np.random.default_rng(11).uniform(-3, 3, (5, ansatz.num_parameters))
    return ansatz, plan, values


def test_shard_draw_key_and_point_generator_are_the_documented_streams():
    rng = np.random.default_rng(4)
    key = sh.draw_key(rng)
    twin = np.random.default_rng(4)
    assert key == int(twin.integers(0, 2**63, dtype=np.int64))
    assert rng.random() == twin.random()  # the caller's stream advanced by exactly that draw
    keys = [sh.draw_key(np.random.default_rng(s)) for s in range(200)]
    assert max(keys) > 2**62  # the whole range [0, 2**63) is used (P(all below 2**62) = 2**-200)
    # the very draws of integers(0, 2**63) (a draw over [1, 2**63) differs in about a quarter of these seeds)
    assert keys == [int(np.random.default_rng(s).integers(0, 2**63, dtype=np.int64)) for s in range(200)]
    stream = sh.point_generator(key, 3)
    reference = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key, spawn_key=(3,))))
    np.testing.assert_array_equal(stream.random(5), reference.random(5))


@pytest.mark.parametrize("noise", ["shots", "gaussian-precision", "exact"])
def test_shard_sample_points_against_a_plain_re_implementation(noise):
    ansatz, plan, values = _tfim_case()
    backend = TorchBackend(ansatz)
    key, first, shots = 12345, 4, 64
    energies, stds = sh.sample_points(backend, plan, values, shots, key, first, noise)
    p = backend.probabilities(values, plan)
    if noise == "exact":
        np.testing.assert_array_equal(energies, plan.exact(p))
        np.testing.assert_array_equal(stds, np.zeros(5))
        return
    if noise == "gaussian-precision":
        offsets = [
            np.random.default_rng(np.random.SeedSequence(key, spawn_key=(first + i,))).normal() for i in range(5)
        ]
        np.testing.assert_allclose(energies, plan.exact(p) + np.array(offsets) / 8.0, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(stds, np.full(5, 1 / 8.0))
        given, given_std = sh.sample_points(backend, plan, values, shots, key, first, noise, precision=0.5)
        np.testing.assert_allclose(given, plan.exact(p) + 0.5 * np.array(offsets), rtol=0, atol=1e-15)
        np.testing.assert_array_equal(given_std, np.full(5, 0.5))
        with pytest.raises(ValueError, match="needs the precision"):
            sh.sample_points(backend, plan, values, np.array([8, 9, 10]), key, first, noise)
        return
    counts = np.concatenate(
        [
            plan.sample_counts(
                p[i : i + 1], shots, np.random.default_rng(np.random.SeedSequence(key, spawn_key=(first + i,)))
            )
            for i in range(5)
        ]
    )
    expected = plan.estimate(counts, shots)
    np.testing.assert_array_equal(energies, expected[0])
    np.testing.assert_array_equal(stds, expected[1])


def test_shard_sample_points_of_a_constant_observable_draws_nothing():
    ansatz, _, values = _tfim_case()
    plan = MeasurementPlan(SparsePauliOp.from_list([("II", -1.5)]), 2)
    energies, stds = sh.sample_points(TorchBackend(ansatz), plan, values, 10, 1, 0)
    np.testing.assert_array_equal(energies, np.full(5, -1.5))
    np.testing.assert_array_equal(stds, np.zeros(5))


def test_shard_bounds_are_contiguous_and_balanced():
    assert sh._bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert sh._bounds(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert sh._bounds(2, 5) == [(0, 1), (1, 2)]
    assert sh._bounds(5, 1) == [(0, 5)]
    assert sh._bounds(1, 1) == [(0, 1)]


def test_shard_evaluate_shard_with_a_read_only_shard_and_the_worker_cache(monkeypatch):
    ansatz, plan, values = _tfim_case()
    frozen = values.copy()
    frozen.flags.writeable = False
    shard = sh.Shard("tok-a", ansatz, "torch", "CPU", plan, frozen, 32, "shots", None, 99, 2)
    monkeypatch.setattr(sh, "_worker_backends", sh.OrderedDict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch would warn about a read-only array
        got = sh.evaluate_shard(shard)
    expected = sh.sample_points(TorchBackend(ansatz), plan, values, 32, 99, 2)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    cached = sh._worker_backends[("tok-a", "torch", "CPU")]
    assert isinstance(cached, TorchBackend)
    sh.evaluate_shard(shard)
    assert sh._worker_backends[("tok-a", "torch", "CPU")] is cached  # built once
    for i in range(sh._WORKER_CACHE_SIZE):  # the least recently used one leaves first
        sh._worker_backend(sh.Shard(f"t{i}", ansatz, "torch", "CPU", plan, values, 1, "exact", None, 0, 0))
        if i == 3:
            sh._worker_backend(shard)  # used again: now the most recent
    assert sh._WORKER_CACHE_SIZE == 8
    assert len(sh._worker_backends) == 8
    assert ("tok-a", "torch", "CPU") in sh._worker_backends
    assert ("t0", "torch", "CPU") not in sh._worker_backends
    assert list(sh._worker_backends)[-1] == ("t7", "torch", "CPU")
    mine = TorchBackend(ansatz)
    got_mine = sh.evaluate_shard(
        sh.Shard("other", ansatz, "torch", "CPU", plan, values, 32, "shots", None, 99, 2), mine
    )
    np.testing.assert_array_equal(got_mine[0], expected[0])
    assert ("other", "torch", "CPU") not in sh._worker_backends  # the caller's own backend: no cache entry


def test_shard_start_worker_sets_one_thread_per_library(monkeypatch):
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    for variable in names:
        monkeypatch.setenv(variable, "7")
    sh._start_worker()
    assert [os.environ[v] for v in names] == ["1"] * 3


def test_shard_check_executor_names_the_problem(monkeypatch):
    with cf.ThreadPoolExecutor(1) as pool:
        sh._check_executor(pool)
    for name in ("serial", "process"):
        sh._check_executor(name)
    with pytest.raises(TypeError, match="got int"):
        sh._check_executor(3)
    with pytest.raises(ValueError, match="got 'threads'"):
        sh._check_executor("threads")
    found = []
    monkeypatch.setattr(sh.importlib.util, "find_spec", lambda name: found.append(name))
    with pytest.raises(ImportError, match=r"executor='dask' needs distributed.*noisygrad-core\[dask\]"):
        sh._check_executor("dask")
    with pytest.raises(ImportError, match=r"executor='ray' needs ray"):
        sh._check_executor("ray")
    sh._check_executor("process")  # no lookup for the executors that need nothing
    assert found == ["distributed", "ray"]
    monkeypatch.setattr(sh.importlib.util, "find_spec", lambda name: object())
    sh._check_executor("ray")


def test_shard_point_sharding_settings_tokens_and_pickles(monkeypatch):
    serial = sh.PointSharding()
    assert (serial.executor, serial.workers, serial.batches) == ("serial", 1, 0)
    assert sh.PointSharding("serial", 1).workers == 1
    with pytest.raises(ValueError, match="workers must be None or 1"):
        sh.PointSharding("serial", 2)
    with pytest.raises(ValueError, match="workers"):
        sh.PointSharding("process", 0)
    monkeypatch.setattr(sh.os, "cpu_count", lambda: 6)
    assert sh.PointSharding("process").workers == 6
    assert sh.PointSharding("process", 3).workers == 3
    monkeypatch.setattr(sh.os, "cpu_count", lambda: None)
    assert sh.PointSharding("process").workers == 1
    with cf.ThreadPoolExecutor(max_workers=5) as pool:
        assert sh.PointSharding(pool).workers == 5
        assert sh.PointSharding(pool, 2).workers == 2
    ansatz, _, _ = _tfim_case()
    a, b = TorchBackend(ansatz), TorchBackend(ansatz)
    token = serial._token(a)
    assert serial._token(a) == token
    assert serial._token(b) != token
    assert len(token) == 32
    assert serial._engine() == "serial"
    process = sh.PointSharding("process", 2)
    pool = process._engine()
    assert isinstance(pool, cf.ProcessPoolExecutor)
    assert process._engine() is pool  # started once
    assert pool._max_workers == 2
    assert pool._mp_context.get_start_method() == "spawn"  # fresh interpreters: forking torch's threads hangs
    assert pool._initializer is sh._start_worker  # one thread per library in every worker
    process.batches = 4
    twin = copy.deepcopy(process)
    assert (twin.executor, twin.workers, twin.batches, twin._pool) == ("process", 2, 4, None)
    assert pickle.loads(pickle.dumps(process)).workers == 2
    twin._token(a)
    process.close()
    assert process._pool is None
    process.close()  # a second close is a no-op
    sh.PointSharding("serial").close()


def test_shard_close_waits_for_the_running_shard_and_cancels_the_pending_ones():
    futures: list[cf.Future] = []
    started = threading.Event()

    def running_shard() -> str:  # holds the one worker until close() has cancelled the pending shard, then 0.2 s more
        started.set()
        deadline = time.monotonic() + 10
        while not (len(futures) == 2 and futures[1].cancelled()) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)
        return "done"

    pool = cf.ThreadPoolExecutor(1)
    futures += [pool.submit(running_shard), pool.submit(running_shard)]
    assert started.wait(5)
    sh._shut(pool)
    assert futures[0].result(timeout=0) == "done"  # close() returned after the running shard finished
    assert futures[1].cancelled()  # what had not started is dropped


def test_shard_sharded_sample_equals_serial_and_counts_batches():
    ansatz, plan, values = _tfim_case()
    backend = TorchBackend(ansatz)
    serial = sh.PointSharding()
    expected = serial.sample(backend, ansatz, plan, values, 40, np.random.default_rng(1), "shots")
    key = sh.draw_key(np.random.default_rng(1))
    direct = sh.sample_points(backend, plan, values, 40, key, 0, "shots")
    np.testing.assert_array_equal(expected[0], direct[0])
    np.testing.assert_array_equal(expected[1], direct[1])
    assert serial.batches == 1
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        sharded = sh.PointSharding(pool, 3)
        got = sharded.sample(backend, ansatz, plan, values, 40, np.random.default_rng(1), "shots")
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        precise = sharded.sample(
            backend, ansatz, plan, values, 40, np.random.default_rng(1), "gaussian-precision", 0.25
        )
        np.testing.assert_array_equal(precise[1], np.full(5, 0.25))
        assert sharded.batches == 2
    for noise in ("shots", "gaussian-precision", "exact"):  # an empty batch: empty results, as without streams
        empty = serial.sample(backend, ansatz, plan, values[:0], 40, np.random.default_rng(1), noise)
        assert empty[0].shape == (0,)
        assert empty[1].shape == (0,)
    assert serial.batches == 4
    objective = EnergyObjective(h2(), efficient_su2(2, reps=1), shots=10, point_streams=True)
    assert objective.sample(np.zeros((0, 8)), np.random.default_rng(0)).shape == (0,)
    constant = MeasurementPlan(SparsePauliOp.from_list([("II", 2.0)]), 2)
    np.testing.assert_array_equal(
        serial.sample(backend, ansatz, constant, values, 40, np.random.default_rng(1), "shots")[0], np.full(5, 2.0)
    )
    with pytest.raises(ValueError, match="aer-sampler"):
        serial.sample(AerBackend(ansatz, sampler=True), ansatz, plan, values, 4, np.random.default_rng(1), "shots")
    aer = AerBackend(ansatz)
    via_aer = serial.sample(aer, ansatz, plan, values, 40, np.random.default_rng(1), "exact")
    np.testing.assert_allclose(via_aer[0], plan.exact(aer.probabilities(values, plan)), rtol=0, atol=0)


def test_shard_serial_runs_on_the_callers_simulator_and_a_pool_on_the_workers(monkeypatch):
    ansatz, _, values = _tfim_case()
    plan = MeasurementPlan(SparsePauliOp.from_list([("ZZ", 1.0), ("II", 0.5)]), 2)  # one group
    backend = TorchBackend(ansatz)
    monkeypatch.setattr(sh, "_worker_backends", sh.OrderedDict())
    serial = sh.PointSharding().sample(backend, ansatz, plan, values, 30, np.random.default_rng(2), "shots")
    assert len(sh._worker_backends) == 0  # the caller's own simulator, no worker copy
    key = sh.draw_key(np.random.default_rng(2))
    p = backend.probabilities(values, plan)
    counts = np.concatenate(
        [plan.sample_counts(p[i : i + 1], 30, sh.point_generator(key, i)) for i in range(len(values))]
    )
    np.testing.assert_array_equal(serial[0], plan.estimate(counts, 30)[0])
    assert len(set(serial[0].tolist())) > 1  # one measured group: the energies vary with the points
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        sharded = sh.PointSharding(pool, 2).sample(backend, ansatz, plan, values, 30, np.random.default_rng(2), "shots")
    np.testing.assert_array_equal(sharded[0], serial[0])
    assert [name[1:] for name in sh._worker_backends] == [("torch", "CPU")]  # a worker builds its own, once


@pytest.mark.parametrize(("executor", "passed"), [("ray", 3), ("dask", 3), ("pool", None)])
def test_shard_ray_and_dask_get_the_shard_count(monkeypatch, executor, passed):
    """Ray and Dask are told the worker count (their engines have none of their own); a pool keeps its own."""
    import noisygrad

    ansatz, plan, values = _tfim_case()
    seen = []

    def recording_sweep(fn, shards, engine, workers=None, threads=None):  # stands in for a cluster
        seen.append((engine, workers, threads, len(shards)))
        return [fn(shard) for shard in shards]

    monkeypatch.setattr(noisygrad, "sweep", recording_sweep)
    monkeypatch.setattr(sh.importlib.util, "find_spec", lambda name: object())
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        sharding = sh.PointSharding(pool if executor == "pool" else executor, 3)
        sharding.sample(TorchBackend(ansatz), ansatz, plan, values, 10, np.random.default_rng(0), "exact")
    assert seen == [(pool if executor == "pool" else executor, passed, None, 3)]


def test_shard_sample_gives_the_auto_backends_choice_to_every_shard(monkeypatch):
    ansatz, plan, values = _tfim_case()
    auto = AutoBackend(ansatz)
    names = []
    original = sh.Shard

    def spy(*args):
        names.append(args[2])
        return original(*args)

    monkeypatch.setattr(sh, "Shard", spy)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        sh.PointSharding(pool, 2).sample(auto, ansatz, plan, values, 10, np.random.default_rng(0), "exact")
        monkeypatch.setattr(bk, "TORCH_MAX_AMPLITUDES", 8)  # 5 points x 4 amplitudes > 8: Aer for the batch
        sh.PointSharding(pool, 2).sample(auto, ansatz, plan, values, 10, np.random.default_rng(0), "exact")
    assert names == ["torch", "torch", "aer", "aer"]


def test_shard_make_sharding_refusals_and_choices():
    assert sh.make_sharding(False, "serial", None, "torch") is None
    with pytest.raises(TypeError, match="point_streams must be True or False, got int 1"):
        sh.make_sharding(1, "serial", None, "torch")
    with pytest.raises(ValueError, match="needs point_streams=True"):
        sh.make_sharding(False, "process", None, "torch")
    with pytest.raises(ValueError, match="needs point_streams=True"):
        sh.make_sharding(False, "serial", 1, "torch")
    with pytest.raises(ValueError, match="executor must be one of"):
        sh.make_sharding(False, "nope", None, "torch")
    with pytest.raises(ValueError, match="cannot run on backend='aer-sampler'"):
        sh.make_sharding(True, "serial", None, "aer-sampler")
    made = sh.make_sharding(True, "process", 2, "aer")
    assert isinstance(made, sh.PointSharding)
    assert (made.executor, made.workers) == ("process", 2)
    assert sh.EXECUTORS == ("serial", "process", "ray", "dask")


# ----------------------------------------------------------------------------------------------------- problems

# name -> (shots, maxiter, floor, start, tuned before): the family's documented settings
SETTINGS = {
    "h2": (1000, 300, 1e-15, "uniform", True),
    "heh+": (2000, 300, 1e-15, "hartree-fock", False),
    "lih": (4000, 500, 1e-15, "hartree-fock", False),
    "h3+": (2000, 500, 1e-15, "uniform", False),
    "tfim_4": (1000, 500, 2e-15, "uniform", True),
    "tfim_6": (1000, 1000, 2e-08, "uniform", False),
    "xxz_4": (2000, 500, 1e-15, "uniform", False),
    "heisenberg_field_5": (1000, 1000, 2e-15, "uniform", False),
    "j1j2_6": (2000, 1000, 4e-12, "uniform", False),
    "random_field_heisenberg_4": (4000, 500, 1e-15, "uniform", False),
    "random_field_xxz_5": (1000, 1000, 6e-06, "uniform", False),
    "random_field_ising_5": (2000, 800, 1e-4, "uniform", False),
    "random_2local_3": (1000, 500, 1e-15, "uniform", False),
    "random_3local_3": (2000, 500, 1e-15, "uniform", False),
    "random_2local_4": (2000, 1000, 2e-15, "uniform", False),
    "random_3local_4": (4000, 1000, 1e-15, "uniform", False),
}


def test_problem_settings_are_the_documented_ones():
    from noisygrad.quantum.hamiltonians import molecule_data

    assert pr.names() == tuple(SETTINGS)
    for spec in pr._SPECS:
        assert (spec.shots, spec.maxiter, spec.floor, spec.start, spec.tuned_before) == SETTINGS[spec.name], spec.name
    for name in ("h2", "lih", "tfim_4"):
        p = pr.problem(name)
        assert (p.shots, p.maxiter, p.floor, p.start) == SETTINGS[name][:4]
        shift = molecule_data(name)["energy_shift"] if p.kind == "molecule" else 0.0
        assert p.energy_shift == shift
        assert isinstance(p.energy_shift, float)
    assert pr.HARTREE_FOCK_SPREAD == 0.1
    assert pr.KINDS == ("molecule", "spin", "random")
    assert pr.SPLITS == ("tuning", "held_out")
    assert pr.STARTS == ("uniform", "hartree-fock")


def test_problem_split_order_is_the_rule():
    assert pr.split_order() == [
        "h2", "heh+", "lih", "h3+",
        "tfim_4", "random_field_heisenberg_4", "xxz_4", "heisenberg_field_5", "random_field_xxz_5",
        "random_field_ising_5", "j1j2_6", "tfim_6",
        "random_2local_3", "random_3local_3", "random_3local_4", "random_2local_4",
    ]  # fmt: skip
    order = pr.split_order()
    table = pr._split_table()
    assert [table[n] for n in order] == ["tuning", "held_out"] * 8
    assert pr.names("held_out") == tuple(n for n in pr.names() if table[n] == "held_out")
    assert pr.names(None) == pr.names()


def test_problem_initial_points_are_the_documented_draws():
    for name in ("h2", "heh+"):
        p = pr.problem(name)
        rng = np.random.default_rng([7, zlib.crc32(name.encode())])
        if p.start == "hartree-fock":
            expected = rng.normal(0.0, 0.1, p.num_parameters)
        else:
            expected = rng.uniform(-math.pi, math.pi, p.num_parameters)
        np.testing.assert_array_equal(p.initial_point(7), expected)
    assert pr.problem("h2").initial_point(0).shape == (8,)
    with pytest.raises((ValueError, TypeError)):
        pr.problem("h2").initial_point(1.5)


def test_problem_energy_relative_error_and_their_refusals():
    p = pr.problem("h2")
    x = p.initial_point(2)
    state = Statevector(p.ansatz.assign_parameters(x)).data
    energy = float(np.real(np.conj(state) @ p.hamiltonian.to_matrix() @ state))
    assert p.energy(list(x)) == pytest.approx(energy, abs=1e-12)
    assert isinstance(p.energy(x), float)
    assert p.relative_error(x) == pytest.approx((energy - p.exact_energy) / abs(p.exact_energy), abs=1e-12)
    assert p.exact_energy == float(np.linalg.eigvalsh(p.hamiltonian.to_matrix())[0])
    for bad in (np.append(x, 0.0), np.where(np.arange(8) == 3, np.nan, x), np.where(np.arange(8) == 0, np.inf, x)):
        with pytest.raises(ValueError, match="parameters must be 8 finite numbers"):
            p.energy(bad)
    assert (p.num_qubits, p.num_parameters, p.num_groups, p.shots_per_evaluation) == (2, 8, 2, 2000)
    assert isinstance(p.num_qubits, int)
    assert isinstance(p.num_parameters, int)


def test_problem_count_groups_leaves_the_identity_out():
    assert pr.count_groups(SparsePauliOp.from_list([("II", 1.0)])) == 0
    assert pr.count_groups(SparsePauliOp.from_list([("II", 1.0), ("ZI", 1.0), ("IZ", 2.0)])) == 1
    assert pr.count_groups(SparsePauliOp.from_list([("XI", 1.0), ("ZI", 1.0), ("II", 2.0)])) == 2


def test_problem_a_problem_is_built_afresh_and_checks_its_sizes(monkeypatch):
    a, b = pr.problem("h2"), pr.problem("h2")
    assert a is not b
    assert a.hamiltonian is not b.hamiltonian
    assert a.ansatz is not b.ansatz
    assert a.split == "tuning"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.shots = 10  # a problem's settings are fixed
    assert a != b  # eq=False: problems compare by identity
    assert a.kind == "molecule"
    assert "H2" in a.description
    spec = pr._SPECS[0]._replace(ansatz=lambda: real_amplitudes(3, reps=1))
    with pytest.raises(AssertionError, match="3-qubit ansatz, 2-qubit Hamiltonian"):
        pr._build(spec)
    spin = pr._SPECS[4]._replace(name="h2")  # a spin model under a molecule's name: no energy shift
    assert pr._build(spin).energy_shift == 0.0


# -------------------------------------------------------------------------------------------------- experiments


def _variance_and_se(rows: np.ndarray) -> tuple[float, float]:
    """The trace of the sample covariance (rows are draws) and its standard error, written out."""
    rows = rows.reshape(len(rows), -1)
    n = len(rows)
    squared = ((rows - rows.mean(0)) ** 2).sum(1)
    return float(squared.sum() / (n - 1)), float(np.std(squared, ddof=1) / math.sqrt(n))


def test_exp_variance_se_in_closed_form():
    rows = np.array([[1.0, 2.0], [3.0, -2.0], [2.0, 0.0]])
    # mean (2, 0); squared distances 1 + 4 = 5, 1 + 4 = 5, 0: trace 10 / 2 = 5; s.e. = std([5, 5, 0]) / sqrt(3)
    assert ex._variance_se(rows) == pytest.approx((5.0, math.sqrt(25 / 3) / math.sqrt(3)), abs=1e-15)
    assert ex._variance_se(np.array([1.0, 3.0])) == (2.0, 0.0)
    np.testing.assert_array_equal(ex._theta(3, 4), numpy_stream(3, 0).uniform(-math.pi, math.pi, 4))


def test_exp_experiment_parameters_are_declared():
    assert [(p.name, p.default, p.full, p.low, p.high) for p in ex.shot_variance.parameters] == [
        ("repeats", 2000, 20000, 400, 10**6),
        ("shots", 1000, None, 10, 10**6),
    ]
    assert [(p.name, p.default, p.full, p.low, p.high) for p in ex.spsa_h2.parameters] == [("runs", 5, 10, 1, 100)]
    assert [(p.name, p.default, p.full, p.low, p.high) for p in ex.adaptive_shots.parameters] == [
        ("steps", 150, 300, 40, 10_000)
    ]
    assert ex.SNR_FLOOR == 0.4


def test_exp_shot_variance_at_a_tiny_size_is_its_re_implementation():
    seed, repeats, shots = 2, 8, 10
    findings = ex.shot_variance.__wrapped__(seed=seed, quick=True, repeats=repeats, shots=shots)
    rng = numpy_stream(seed, 1)
    cases = (("torch", "shots", 8, "sum_g Var_g / S"), ("aer-sampler", "shots", 2, "sum_g Var_g / S"))
    cases += (("torch", "gaussian-precision", 8, "1 / S"),)
    assert len(findings) == 3
    for finding, (backend, noise, n, formula) in zip(findings, cases, strict=True):
        objective = EnergyObjective(h2(), efficient_su2(2, reps=1), shots=shots, backend=backend, noise=noise)
        theta = numpy_stream(seed, 0).uniform(-math.pi, math.pi, 8)
        estimates = objective.sample(np.repeat(theta[None], n, 0), rng)
        measured, se = _variance_and_se(estimates)
        assert finding.experiment == "quantum.shot-variance"
        assert finding.claim == f"H2 energy estimates ({noise}, {backend} backend, S={shots}) have variance {formula}"
        assert finding.predicted == float(objective.predicted_std(theta)[0] ** 2)
        assert finding.measured == pytest.approx(measured, rel=1e-12)
        assert finding.uncertainty == pytest.approx(se, rel=1e-12)
        assert finding.tolerance == pytest.approx(4 * se, rel=1e-12)
        assert finding.unit == "Ha^2"
        assert finding.details == {"repeats": n, "shots": shots, "groups": 2, "theta_seed": seed}


def test_exp_gradient_variance_with_three_draws_is_its_re_implementation(monkeypatch):
    import builtins

    monkeypatch.setattr(ex, "range", lambda n: builtins.range(min(n, 3)), raising=False)  # 3 draws per estimator
    findings = ex.gradient_variance(seed=1)
    shots, c, step, p = 1000, 0.05, 0.2, 8
    objective = EnergyObjective(h2(), efficient_su2(2, reps=1), shots=shots)
    theta = numpy_stream(1, 0).uniform(-math.pi, math.pi, p)
    x = torch.as_tensor(theta)
    generator = torch_stream(1, 1)
    eye = np.eye(p)

    def scatter(estimator):
        return _variance_and_se(np.stack([estimator.estimate(x, generator).grad.numpy() for _ in builtins.range(3)]))

    assert len(findings) == 4
    assert {f.experiment for f in findings} == {"quantum.gradient-variance"}
    for finding, estimator, h, scale in (
        (findings[0], ParameterShift(objective), math.pi / 2, 4.0),
        (findings[1], finite_difference(objective, step=step), step, 4.0 * step**2),
    ):
        predicted = (
            (objective.variance(theta + h * eye) + objective.variance(theta - h * eye)) / (scale * shots)
        ).sum()
        assert finding.predicted == pytest.approx(predicted, rel=1e-12)
        measured, se = scatter(estimator)
        assert (finding.measured, finding.uncertainty) == pytest.approx((measured, se), rel=1e-12)
        assert finding.tolerance == pytest.approx(4 * se, rel=1e-12)
        assert finding.unit == "Ha^2"
        key = "sigma^2(theta) / (2 S) per component (the usual approximation)"
        usual = objective.variance(theta)[0] / (2 * shots * (1 if h == math.pi / 2 else h**2))
        assert finding.details["draws"] == 1000
        assert finding.details["P"] == p
        assert finding.details["shots"] == shots
        assert finding.details[key] == pytest.approx(usual, rel=1e-12)
    assert findings[0].claim.startswith("parameter shift (+-pi/2): tr Cov")
    assert findings[0].claim.endswith("/ (4 S)")
    assert findings[1].claim.startswith("central difference (h=0.2)")
    assert findings[1].claim.endswith("/ (4 h^2 S)")
    # SPSA: the exact average over all 2^P directions, in a loop of its own
    deltas = np.array([[1.0 if (d >> i) & 1 else -1.0 for i in builtins.range(p)] for d in builtins.range(2**p)])
    diff = (objective.exact(theta + c * deltas) - objective.exact(theta - c * deltas)) / (2 * c)
    noise = (objective.variance(theta + c * deltas) + objective.variance(theta - c * deltas)) / (4 * c**2 * shots)
    second = (diff**2 + noise).mean() * p
    mean_grad = (diff[:, None] * deltas).mean(0)
    exact_trace = second - (mean_grad**2).sum()
    assert findings[2].predicted == pytest.approx(exact_trace, rel=1e-10)
    ps_exact = ParameterShift(EnergyObjective(h2(), objective.ansatz, noise="exact"))
    true_grad = ps_exact.estimate(x, generator).grad.numpy()
    sigma2 = float(objective.variance(theta)[0])
    g2 = float((true_grad**2).sum())
    spall = (p - 1) * g2 + p * sigma2 / (2 * c**2 * shots)
    measured, se = scatter(SPSAEstimator(objective, c=c, gamma=0.0))
    for finding in findings[2:]:
        assert (finding.measured, finding.uncertainty) == pytest.approx((measured, se), rel=1e-12)
        assert finding.details["draws"] == 3000
        assert finding.details["c"] == c
        assert finding.details["|g|^2"] == pytest.approx(g2, rel=1e-12)
        assert finding.details["sigma^2"] == pytest.approx(sigma2, rel=1e-12)
    assert findings[2].tolerance == pytest.approx(4 * se, rel=1e-12)
    assert findings[3].predicted == pytest.approx(spall, rel=1e-12)
    assert findings[3].tolerance == pytest.approx(0.1 * spall, rel=1e-12)
    assert findings[3].details["4 s.e. of the measurement, % of the formula"] == round(100 * 4 * se / spall, 1)
    key = "formula's own error against the exact average, %"
    assert findings[3].details[key] == round(100 * (spall / exact_trace - 1), 2)
    full = ex.gradient_variance(seed=1, quick=False)  # the full size's draw counts (each loop still cut to 3)
    assert [f.details["draws"] for f in full] == [15000] * 4
    assert [f.predicted for f in full] == [f.predicted for f in findings]


def test_exp_spsa_h2_passes_its_settings_to_vqe_and_reports_the_median(monkeypatch):
    calls = []

    def short_vqe(hamiltonian, ansatz, **kwargs):  # the real run, 3 iterations instead of 1000
        calls.append((hamiltonian, ansatz.num_parameters, dict(kwargs)))
        return vqe(hamiltonian, ansatz, **{**kwargs, "maxiter": 3})

    monkeypatch.setattr(ex, "vqe", short_vqe)
    start = time.perf_counter()
    (finding,) = ex.spsa_h2.__wrapped__(seed=4, quick=True, runs=3)
    elapsed = time.perf_counter() - start
    assert 0 <= finding.details["wall_s"] <= round(elapsed, 1) + 0.1  # the run's own wall time
    seeds = [substream_seed(4, k) for k in range(3)]
    assert [c[2] for c in calls] == [
        {"shots": 1000, "maxiter": 1000, "seed": s, "track_exact": False, "stability": 100.0} for s in seeds
    ]
    assert all(c[0] == h2() and c[1] == 8 for c in calls)
    fits = [
        vqe(h2(), efficient_su2(2, reps=1), shots=1000, maxiter=3, seed=s, track_exact=False, stability=100.0)
        for s in seeds
    ]
    errors = np.array([f.error for f in fits])
    assert finding.experiment == "quantum.spsa-h2"
    assert finding.bound == "upper"
    assert (finding.predicted, finding.tolerance) == (0.0, CHEMICAL_ACCURACY)
    assert finding.unit == "Ha"
    assert finding.measured == float(np.median(errors))
    assert finding.uncertainty == pytest.approx(np.std(errors) / math.sqrt(3), rel=1e-12)
    assert finding.details["seeds"] == seeds
    assert finding.details["errors_mHa"] == [round(float(e) * 1000, 3) for e in errors]
    assert finding.details["within_chemical_accuracy"] == int((errors < CHEMICAL_ACCURACY).sum())
    assert (finding.details["evaluations_per_run"], finding.details["shots_per_run"]) == (
        fits[0].evaluations,
        fits[0].shots,
    )
    assert "1000 iterations" in finding.claim


def test_exp_adaptive_shots_at_a_tiny_size_is_its_re_implementation():
    steps = 24
    start = time.perf_counter()
    noise_finding, snr_finding = ex.adaptive_shots.__wrapped__(seed=1, quick=True, steps=steps)
    elapsed = time.perf_counter() - start
    assert 0 <= noise_finding.details["wall_s"] <= round(elapsed, 1) + 0.1
    objective = EnergyObjective(h2(), efficient_su2(2, reps=1), shots=10)
    adaptive = AdaptiveShots(objective, snr=1.0, min_shots=10, max_shots=100_000, smoothing=0.8)
    x = torch.as_tensor(numpy_stream(1, 0).uniform(-math.pi, math.pi, 8))
    generator = torch_stream(1, 1)
    points, chosen, measured = [], [], []
    for _ in range(steps):
        points.append(x.numpy().copy())
        estimate = adaptive.estimate(x, generator)
        chosen.append(adaptive.history[-1]["shots"])
        measured.append(adaptive.history[-1]["noise"])
        x = x - 0.2 * estimate.grad
    shift = math.pi / 2 * np.eye(8)
    single = np.array([((objective.variance(t + shift) + objective.variance(t - shift)) / 4).sum() for t in points])
    grad = np.array([(objective.exact(t + shift) - objective.exact(t - shift)) / 2 for t in points])
    signal = (grad**2).sum(1)
    ratio = np.array(measured) / (single / np.array(chosen))
    assert noise_finding.experiment == snr_finding.experiment == "quantum.adaptive-shots"
    assert noise_finding.predicted == 1.0
    assert noise_finding.measured == pytest.approx(ratio.mean(), rel=1e-12)
    assert noise_finding.uncertainty == pytest.approx(ratio.std(ddof=1) / math.sqrt(steps), rel=1e-12)
    assert noise_finding.tolerance == pytest.approx(4 * noise_finding.uncertainty, rel=1e-12)
    curve = noise_finding.curve
    assert (list(curve.x), list(curve.measured), curve.log_y) == (list(range(steps)), chosen, True)
    np.testing.assert_allclose(curve.predicted, single / signal, rtol=1e-12)
    realized = np.sqrt(signal / (single / np.array(chosen)))
    free = (np.array(chosen) > 10) & (np.array(chosen) < 100_000)
    free[:20] = False
    expected_snr = float(np.median(realized[free])) if free.any() else math.nan
    assert snr_finding.bound == "lower"
    assert snr_finding.predicted == 1.0
    assert snr_finding.tolerance == pytest.approx(0.6, rel=1e-12)
    if math.isnan(expected_snr):
        assert math.isnan(snr_finding.measured)
    else:
        assert snr_finding.measured == pytest.approx(expected_snr, rel=1e-12)
    details = noise_finding.details
    assert details["steps"] == steps
    assert details["shots_used"] == int(objective.shots_used)
    assert details["shots per group: first, last"] == [chosen[0], chosen[-1]]
    assert details["steps between the shot limits (after 20)"] == int(free.sum())
    final = float(objective.exact(x.numpy()[None])[0]) - exact_ground_energy(h2())
    assert details["final exact error, Ha"] == pytest.approx(final, abs=1e-12)
    assert snr_finding.details["steps"] == steps


def test_problem_is_hashable_and_compares_by_identity():
    """A benchmark problem holds a Hamiltonian and a circuit, which have no value hash: a ``Problem`` is compared
    by identity, so that it can key a dict of results (or a cache) and two builds of the same name stay distinct
    objects."""
    from noisygrad.quantum.problems import problem

    first, again = problem("h2"), problem("h2")
    results = {first: 1.0, again: 2.0}
    assert results[first] == 1.0
    assert first == first
    assert first != again
    assert first != dataclasses.replace(first)


def test_shard_sample_points_start_at_point_zero_by_default():
    """Without ``first`` the rows are points 0, 1, ... of the batch: the same draws as ``first=0``, not ``first=1``."""
    ansatz, plan, values = _tfim_case()
    backend = TorchBackend(ansatz)
    default = sh.sample_points(backend, plan, values, 64, 7)
    np.testing.assert_array_equal(default[0], sh.sample_points(backend, plan, values, 64, 7, 0)[0])
    assert not np.array_equal(default[0], sh.sample_points(backend, plan, values, 64, 7, 1)[0])


def test_shard_is_frozen_and_sampled_on_one_torch_thread(monkeypatch):
    """A shard is an immutable task; it is sampled with one torch thread in whichever process runs it."""
    ansatz, plan, values = _tfim_case()
    shard = sh.Shard("tok-t", ansatz, "torch", "CPU", plan, values, 32, "shots", None, 99, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shard.shots = 1
    threads = []
    real_sample = sh.sample_points
    monkeypatch.setattr(
        sh, "sample_points", lambda *args: threads.append(torch.get_num_threads()) or real_sample(*args)
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the test session runs on one thread: start from another count
    try:
        sh.evaluate_shard(shard, TorchBackend(ansatz))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert threads == [1]
