"""Tests of noisygrad.quantum's QNSPSA and test Hamiltonians: the behaviours mutation testing found unchecked
(tools/mutation.py, issue 18).

Hamiltonians are compared term by term (label -> coefficient) with the operators their docstrings write down, the
random ones with a twin of their documented ``numpy.random.default_rng(seed)`` draws, so every check is exact (or
to eigensolver rounding, 1e-9). QNSPSA runs on a 2-qubit statevector problem with the exact fidelity, so its only
randomness is its seeded generator: settings, evaluation counts and qiskit-algorithms' own steps are compared
exactly. The one statistical check, ``get_fidelity`` through a seeded ``StatevectorSampler``, allows 5 binomial
standard errors of a 4000-shot frequency.
"""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from importlib import resources

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from qiskit.circuit.library import pauli_two_design
from qiskit.quantum_info import SparsePauliOp, Statevector

from noisygrad.quantum import QNSPSA
from noisygrad.quantum import hamiltonians as hm

# -- Hamiltonians -------------------------------------------------------------------------------------------------


def _terms(op: SparsePauliOp) -> dict[str, complex]:
    """``op`` as label -> coefficient, duplicates merged and zero terms dropped."""
    op = op.simplify(atol=0.0)
    return {label: complex(c) for label, c in zip(op.paulis.to_labels(), op.coeffs, strict=True) if c != 0}


def _sparse(n: int, terms: list[tuple[str, list[int], float]]) -> dict[str, complex]:
    return _terms(SparsePauliOp.from_sparse_list(terms, num_qubits=n))


def test_h2_operator_and_constants_are_the_documented_ones():
    assert _terms(hm.h2()) == {
        "II": -1.052373245772859,
        "IZ": 0.39793742484318045,
        "ZI": -0.39793742484318045,
        "ZZ": -0.01128010425623538,
        "XX": 0.18093119978423156,
    }
    assert hm.h2().num_qubits == 2
    assert hm.H2_NUCLEAR_REPULSION == 0.7199689944489797
    assert hm.CHEMICAL_ACCURACY == 1.6e-3
    assert hm.exact_ground_energy(hm.h2()) == pytest.approx(-1.857275030202, abs=1e-11)


def test_tfim_is_minus_j_zz_minus_h_x_on_an_open_chain():
    zz = [("ZZ", [0, 1], -0.5), ("ZZ", [1, 2], -0.5)]
    x = [("X", [i], -0.25) for i in range(3)]
    op = hm.tfim(3, coupling=0.5, field=0.25)
    assert op.num_qubits == 3
    assert len(op) == 5
    assert _terms(op) == _sparse(3, zz + x)
    # defaults: 4 qubits, J = h = 1 (critical)
    default = [("ZZ", [i, i + 1], -1.0) for i in range(3)] + [("X", [i], -1.0) for i in range(4)]
    assert hm.tfim().num_qubits == 4
    assert _terms(hm.tfim()) == _sparse(4, default)
    assert _terms(hm.tfim(2)) == _sparse(2, [("ZZ", [0, 1], -1.0), ("X", [0], -1.0), ("X", [1], -1.0)])
    for builder in (hm.tfim, hm.tfim_ansatz, hm.xxz, hm.random_field_ising):
        with pytest.raises(ValueError, match="num_qubits"):
            builder(1)


def test_tfim_ansatz_is_plus_states_then_rzz_and_rx_layers_with_own_angles():
    qc = hm.tfim_ansatz(3, layers=2)
    assert qc.name == "tfim_hva"
    assert qc.num_qubits == 3
    assert qc.num_parameters == 2 * (2 * 3 - 1)
    assert [p.name for p in qc.parameters] == [f"t[{i}]" for i in range(10)]
    ops = [
        (i.operation.name, tuple(qc.find_bit(q).index for q in i.qubits), tuple(map(str, i.operation.params)))
        for i in qc.data
    ]
    expected = [("h", (q,), ()) for q in range(3)]
    angle = iter(range(10))
    for _ in range(2):
        expected += [("rzz", (i, i + 1), (f"t[{next(angle)}]",)) for i in range(2)]
        expected += [("rx", (i,), (f"t[{next(angle)}]",)) for i in range(3)]
    assert ops == expected
    assert hm.tfim_ansatz().num_qubits == 4
    assert hm.tfim_ansatz().num_parameters == 14
    assert hm.tfim_ansatz(2, layers=1).num_parameters == 3


def test_xxz_terms_fields_and_next_neighbour_coupling():
    # defaults: the 4-site Heisenberg chain, J = Delta = 1, no fields, no J2
    heis = [(p, [i, i + 1], 1.0) for i in range(3) for p in ("XX", "YY", "ZZ")]
    assert hm.xxz().num_qubits == 4
    assert _terms(hm.xxz()) == _sparse(4, heis)
    op = hm.xxz(3, coupling=0.5, anisotropy=2.0, field_z=[0.1, 0.0, 1.0], field_x=1.0, next_coupling=0.25)
    expected = [(p, [i, i + 1], c) for i in range(2) for p, c in (("XX", 0.5), ("YY", 0.5), ("ZZ", 1.0))]
    expected += [(p, [0, 2], c) for p, c in (("XX", 0.25), ("YY", 0.25), ("ZZ", 0.5))]
    expected += [("Z", [0], 0.1), ("Z", [2], 1.0)] + [("X", [i], 1.0) for i in range(3)]
    assert _terms(op) == _sparse(3, expected)
    assert op.num_qubits == 3
    # a zero coupling leaves its bonds out; a real scalar field of any kind is one value for every site
    only_fields = hm.xxz(2, coupling=0.0, field_z=Fraction(1, 2))
    assert _terms(only_fields) == _sparse(2, [("Z", [0], 0.5), ("Z", [1], 0.5)])
    assert only_fields.num_qubits == 2
    assert _terms(hm.xxz(2, coupling=1.0, field_x=np.array([0.0, -2.0]))) == _sparse(
        2, [("XX", [0, 1], 1.0), ("YY", [0, 1], 1.0), ("ZZ", [0, 1], 1.0), ("X", [1], -2.0)]
    )


@pytest.mark.parametrize("name", ["field_z", "field_x"])
@pytest.mark.parametrize("value", [[0.1, 0.2], [0.1, 0.2, 0.3, 0.4], np.nan, [0.1, np.inf, 0.2]])
def test_xxz_fields_of_wrong_length_or_not_finite_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        hm.xxz(3, **{name: value})


def test_random_fields_and_random_field_ising_are_the_documented_draws():
    np.testing.assert_array_equal(hm.random_fields(5, 0.7, 3), np.random.default_rng(3).uniform(-0.7, 0.7, 5))
    np.testing.assert_array_equal(hm.random_fields(4, 2.0, 0), np.random.default_rng(0).uniform(-2.0, 2.0, 4))
    with pytest.raises(ValueError, match="seed"):
        hm.random_fields(3, 1.0, -1)
    g = np.random.default_rng(0).uniform(-1.0, 1.0, 5)  # the defaults: 5 qubits, J = h = W = 1, seed 0
    expected = [("ZZ", [i, i + 1], -1.0) for i in range(4)] + [("X", [i], -1.0) for i in range(5)]
    expected += [("Z", [i], float(g[i])) for i in range(5)]
    assert hm.random_field_ising().num_qubits == 5
    assert _terms(hm.random_field_ising()) == _sparse(5, expected)
    g = np.random.default_rng(7).uniform(-0.5, 0.5, 3)
    expected = [("ZZ", [0, 1], -2.0), ("ZZ", [1, 2], -2.0)] + [("X", [i], -0.3) for i in range(3)]
    expected += [("Z", [i], float(g[i])) for i in range(3)]
    op = hm.random_field_ising(3, coupling=2.0, field=0.3, disorder=0.5, seed=7)
    assert _terms(op) == _sparse(3, expected)
    assert op.num_qubits == 3
    clean = hm.random_field_ising(3, disorder=0.0)  # no disorder is allowed: the clean chain
    assert _terms(clean) == _terms(hm.tfim(3))
    with pytest.raises(ValueError, match="disorder"):
        hm.random_field_ising(3, disorder=-0.1)


def _twin_k_local(n: int, k: int, count: int, seed: int) -> dict[str, complex]:
    """The documented draw: qubits without replacement, a Pauli per qubit, a standard normal, until ``count``."""
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[str, tuple[int, ...]], float] = {}
    while len(chosen) < count:
        qubits = tuple(sorted(int(q) for q in rng.choice(n, size=k, replace=False)))
        label = "".join(str(p) for p in rng.choice(["X", "Y", "Z"], size=k))
        if (label, qubits) not in chosen:
            chosen[(label, qubits)] = float(rng.standard_normal())
    return _sparse(n, [(label, list(q), c) for (label, q), c in chosen.items()])


def test_random_k_local_is_the_documented_draw_and_counts_the_available_strings():
    op = hm.random_k_local(3, locality=2, terms=7, seed=5)
    assert len(op) == 7
    assert op.num_qubits == 3
    assert _terms(op) == _twin_k_local(3, 2, 7, 5)
    default = hm.random_k_local()  # defaults: 4 qubits, 2-local, 12 terms, seed 0
    assert len(default) == 12
    assert default.num_qubits == 4
    assert _terms(default) == _twin_k_local(4, 2, 12, 0)
    assert all(label.count("I") == 2 for label in default.paulis.to_labels())
    # C(n, k) 3^k strings exist: all of them can be asked for, one more cannot
    every = hm.random_k_local(2, locality=2, terms=9, seed=1)
    assert sorted(every.paulis.to_labels()) == sorted(a + b for a, b in itertools.product("XYZ", repeat=2))
    assert len(hm.random_k_local(3, locality=2, terms=27, seed=0)) == 27
    with pytest.raises(ValueError, match="27 distinct"):
        hm.random_k_local(3, locality=2, terms=28)
    with pytest.raises(ValueError, match="distinct"):
        hm.random_k_local(2, locality=2, terms=10)
    with pytest.raises(ValueError, match="locality"):
        hm.random_k_local(2, locality=3)
    with pytest.raises(ValueError, match="seed"):
        hm.random_k_local(2, terms=4, seed=-1)


def test_molecules_are_read_from_the_packaged_file_and_copied():
    text = resources.files("noisygrad.quantum").joinpath("data/molecules.json").read_text(encoding="utf-8")
    stored = json.loads(text)["molecules"]
    assert hm.MOLECULE_DATA == "data/molecules.json"
    assert hm.molecule_names() == tuple(stored) == ("h2", "heh+", "lih", "h3+")
    data = hm.molecule_data("lih")
    assert data == stored["lih"]
    data["pauli_terms"].clear()
    assert hm.molecule_data("lih") == stored["lih"]  # a copy: the caller's edits do not reach the store
    op = hm.molecule("lih")
    assert op == SparsePauliOp.from_list([(label, float(c)) for label, c in stored["lih"]["pauli_terms"]])
    assert _terms(hm.molecule("h2")) == pytest.approx(_terms(hm.h2()), abs=1e-12)
    with pytest.raises(KeyError, match="h2o"):
        hm.molecule_data("h2o")


def test_hartree_fock_ansatz_is_x_gates_then_full_ry_cz():
    qc = hm.hartree_fock_ansatz(3, [0, 2], reps=2)
    assert qc.name == "hf_ry_cz"
    names = [i.operation.name for i in qc.data]
    assert names[:2] == ["x", "x"]
    assert [qc.find_bit(q).index for i in qc.data[:2] for q in i.qubits] == [0, 2]
    assert names.count("ry") == 3 * 3
    assert names.count("cz") == 2 * 3
    assert qc.num_parameters == 3 * 3
    assert hm.hartree_fock_ansatz(3, []).num_parameters == 3 * 4  # reps defaults to 3
    state = Statevector(qc.assign_parameters(np.zeros(qc.num_parameters)))
    np.testing.assert_allclose(np.abs(state.data) ** 2, np.eye(8)[0b101], atol=1e-12)
    assert hm.hartree_fock_ansatz(2, [0, 1]).num_qubits == 2  # the last qubit is a valid one
    for bad in ([2], [-1]):
        with pytest.raises(ValueError, match="occupied"):
            hm.hartree_fock_ansatz(2, bad)


def _shifted_chain(n: int) -> SparsePauliOp:
    """Non-degenerate spectrum, all positive: lowest and largest-magnitude eigenvalues differ."""
    terms = [("Z", [i], 1.0 + 0.1 * i) for i in range(n)] + [("X", [i], 0.3) for i in range(n)]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n) + SparsePauliOp("I" * n, 20.0)


def test_exact_ground_energy_dense_up_to_8_qubits_sparse_lanczos_above(monkeypatch):
    calls = []
    eigsh = scipy.sparse.linalg.eigsh

    def recording(matrix, **kwargs):
        calls.append(scipy.sparse.issparse(matrix))
        return eigsh(matrix, **kwargs)

    monkeypatch.setattr(scipy.sparse.linalg, "eigsh", recording)
    for n in (3, 8):
        op = _shifted_chain(n)
        assert hm.exact_ground_energy(op) == np.linalg.eigvalsh(op.to_matrix())[0]
    assert calls == []  # dense up to 8 qubits
    op = _shifted_chain(9)
    energy = hm.exact_ground_energy(op)
    assert calls == [True]  # a sparse matrix above
    assert isinstance(energy, float)
    assert energy == pytest.approx(np.linalg.eigvalsh(op.to_matrix())[0], abs=1e-9)
    assert hm.exact_ground_energy(SparsePauliOp("Z" * 14)) == pytest.approx(-1.0, abs=1e-9)  # 14 is allowed
    assert calls == [True, True]
    with pytest.raises(ValueError, match="14"):
        hm.exact_ground_energy(SparsePauliOp("Z" * 15))


# -- QNSPSA -------------------------------------------------------------------------------------------------------

CIRCUIT = pauli_two_design(2, reps=1, seed=2)  # 2 qubits, 4 parameters
X = np.array([0.4, 0.1, -0.3, 0.2])
Y = np.array([0.9, -0.5, 0.3, 0.1])


def _state(x) -> np.ndarray:
    return Statevector(CIRCUIT.assign_parameters(np.asarray(x, dtype=float))).data


def _fidelity(x, y) -> float:
    return float(np.abs(np.vdot(_state(x), _state(y))) ** 2)


def test_qnspsa_defaults_are_qiskits_and_settings_name_the_fidelity():
    q = QNSPSA(_fidelity)
    assert (q.maxiter, q.blocking, q.resamplings, q.hessian_delay, q.last_avg) == (100, True, 1, 0, 1)
    assert (q.trust_region, q.second_order) == (False, True)
    assert (q.stability, q.calibration_samples, q.final_evaluations, q.batch) == (0.0, 25, 1, True)
    assert (q.learning_rate_decay, q.perturbation_decay) == (0.602, 0.101)
    settings = q.settings
    assert settings["fidelity"] is _fidelity
    assert "trust_region" not in settings
    assert "second_order" not in settings
    assert not set(settings) & {"last_avg", "stability", "calibration_samples", "final_evaluations", "batch"}
    assert QNSPSA(**settings).settings.keys() == settings.keys()  # rebuilds from its settings


def test_qnspsa_hands_every_argument_to_spsa():
    def solver(a, b):
        return np.linalg.solve(a, b)

    def callback(*args):
        return None

    def checker(*args):
        return False

    qiskit_args = {
        "maxiter": 7,
        "blocking": False,
        "allowed_increase": 0.3,
        "learning_rate": 0.02,
        "perturbation": 0.03,
        "resamplings": 2,
        "perturbation_dims": 1,
        "regularization": 0.05,
        "hessian_delay": 2,
        "lse_solver": solver,
        "initial_hessian": 2.0 * np.eye(4),
        "callback": callback,
        "termination_checker": checker,
    }
    extras = {
        "last_avg": 2,
        "seed": 4,
        "stability": 1.5,
        "learning_rate_decay": 0.5,
        "perturbation_decay": 0.2,
        "average_fraction": 0.3,
        "calibration_samples": 10,
        "target_magnitude": 0.4,
        "final_evaluations": 3,
        "batch": False,
    }
    settings = QNSPSA(_fidelity, **qiskit_args, **extras).settings
    for name, value in {**qiskit_args, **extras}.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(settings[name], value)
        else:
            assert settings[name] == value, name


def test_qnspsa_grouped_call_sends_every_directions_fidelity_pairs_at_once_and_counts_them():
    pairs = []

    def fidelity(xs, ys):
        assert len(xs) == len(ys)
        pairs.append(len(xs))
        return [_fidelity(x, y) for x, y in zip(xs, ys, strict=True)]

    losses = []

    def energy(points):
        points = np.atleast_2d(points)
        losses.append(len(points))
        return np.sum(np.cos(points), axis=1)

    opt = QNSPSA(fidelity, maxiter=3, blocking=False, learning_rate=0.05, perturbation=0.05, resamplings=2, seed=0)
    result = opt(energy, X)
    assert pairs == [8, 8, 8]  # 2 directions x 4 pairs, one call per step
    assert result.nfev_total == sum(losses) + sum(pairs)
    assert opt.state_dict()["fidelity_evaluations"] == 24


def test_get_fidelity_is_compute_uncompute_through_the_sampler():
    from qiskit.primitives import StatevectorSampler

    shots = 4000
    fidelity = QNSPSA.get_fidelity(CIRCUIT, StatevectorSampler(default_shots=shots, seed=11))
    values = fidelity(np.array([X, X, Y]), np.array([X, Y, X]))
    assert values.shape == (3,)
    assert values[0] == 1.0  # a state with itself: every shot returns to |00>
    exact = _fidelity(X, Y)
    # binomial sampling: 5 standard errors of a frequency from 4000 shots
    tolerance = 5 * np.sqrt(exact * (1 - exact) / shots)
    np.testing.assert_allclose(values[1:], exact, atol=tolerance)
    assert abs(exact - 0.5) < 0.45  # the check above is not trivially met at F = 0 or 1
    assert fidelity(X, X).shape == (1,)  # one pair of 1-D points

    class Recorder:
        def __init__(self):
            self.options = []

        def run(self, circuits, **options):
            self.options.append(options)
            return circuits

    recorder = Recorder()
    through = QNSPSA.get_fidelity(
        CIRCUIT, StatevectorSampler(seed=1), transpiler=recorder, transpiler_options={"marker": 3}
    )
    assert through(X, X)[0] == 1.0
    assert recorder.options
    assert all(options == {"marker": 3} for options in recorder.options)
    with pytest.raises(TypeError, match="circuit"):
        QNSPSA.get_fidelity("circuit", StatevectorSampler())


def test_qnspsa_with_sparse_resampled_directions_takes_qiskits_steps():
    """``perturbation_dims`` leaves zeros in the directions: the points and the gradient use ``eps * delta``, so
    the steps stay finite and equal to qiskit-algorithms' QNSPSA from the same global generator."""
    from qiskit_algorithms.optimizers import QNSPSA as QiskitQNSPSA
    from qiskit_algorithms.utils import algorithm_globals

    def energy(x):
        return float(np.sum(np.cos(x)) + 0.3 * np.sin(x[0] * x[1]))

    # two directions per step: each direction's own pair of loss values and four fidelities
    settings = {"maxiter": 5, "learning_rate": 0.05, "perturbation": 0.05, "perturbation_dims": 2, "resamplings": 2}
    steps = []
    for optimizer in (
        QNSPSA(_fidelity, **settings, learning_rate_decay=0.602, perturbation_decay=0.101),
        QiskitQNSPSA(_fidelity, **settings),
    ):
        algorithm_globals.random_seed = 12
        steps.append(optimizer.minimize(energy, X).x)
        algorithm_globals.random_seed = None
    assert np.all(np.isfinite(steps[0]))
    np.testing.assert_array_equal(steps[0], steps[1])
    assert not np.array_equal(steps[0], X)


def test_qnspsa_divergence_guard_is_scaled_by_the_spread_of_the_two_sides():
    """The first iteration sees f(x + c d) = 1 and f(x - c d) = -1: its value estimate is 0 and its spread
    |plus - minus| = 2, so the guard's scale is 2 and later values of 0.5 are nowhere near 1000 scales above the
    start. (A spread taken as |plus + minus| = 0 would make the scale 1e-12 and report a divergence.)"""
    values = iter([1.0, -1.0])

    def fun(x):
        points = np.asarray(x, dtype=float)
        if points.ndim == 2:
            return [next(values, 0.5) for _ in points]
        return next(values, 0.5)

    q = QNSPSA(_fidelity, maxiter=8, blocking=False, learning_rate=0.01, perturbation=0.01)
    result = q.minimize(fun, np.zeros(4))
    assert result.success, result.message
