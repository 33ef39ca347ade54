"""A family of VQE benchmark problems: molecules, spin chains and random Hamiltonians, split into two halves.

Why a family: optimizer defaults tuned on one problem (H2, the 4-qubit Ising chain) fit that problem. Here
defaults are chosen on the ``"tuning"`` half and reported, untouched, on the ``"held_out"`` half; each half mixes
molecules, spin models and random Hamiltonians. Every :class:`Problem` states its Hamiltonian, its exact ground
energy (``numpy.linalg.eigvalsh``), its ansatz, its shots per measurement group and iteration budget, and its rule
for initial points. The figure of merit is the relative error ``(E - E0) / |E0|`` of the returned parameters,
evaluated exactly (statevector), so shot noise in the final estimate does not blur the comparison.

Ansatz families: ``efficient_su2`` (for the complex random Hamiltonians), ``real_amplitudes`` (real
Hamiltonians), the Hamiltonian-variational :func:`~noisygrad.quantum.hamiltonians.tfim_ansatz` and the
Hartree-Fock-started ``ry`` + ``cz`` :func:`~noisygrad.quantum.hamiltonians.hartree_fock_ansatz`. Each ansatz
was checked to reach the ground energy noise-free (BFGS on exact energies, 3-5 random starts; the largest
relative gap over starts is given as ``floor``): where a shallower ansatz or another entanglement got stuck, the
deeper one below was taken, so that what a benchmark measures is the optimizer under shot noise, not the ansatz.

The split is a rule, not a choice: within each kind (molecules, spin models, random), problems on which earlier
defaults were already tuned (``h2``, ``tfim_4``) come first, the rest by qubit count and then by the CRC-32 of
their names; the concatenated list alternates tuning, held-out, tuning, ... So the halves have equal size, and
each gets small and large problems of every kind. Usage::

    from noisygrad.quantum.problems import family, problem
    for p in family("tuning"):
        x0 = p.initial_point(seed=0)
        p.relative_error(x0), p.shots, p.maxiter
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2, real_amplitudes
from qiskit.quantum_info import SparsePauliOp, Statevector

from noisygrad.checks import check_positive_int

from .hamiltonians import (
    hartree_fock_ansatz,
    molecule,
    molecule_data,
    random_field_ising,
    random_fields,
    random_k_local,
    tfim,
    tfim_ansatz,
    xxz,
)

KINDS = ("molecule", "spin", "random")
SPLITS = ("tuning", "held_out")
STARTS = ("uniform", "hartree-fock")
HARTREE_FOCK_SPREAD = 0.1
"""Standard deviation (radians) of the angles of a ``"hartree-fock"`` initial point around zero (the HF state)."""


@dataclass(frozen=True, eq=False)
class Problem:
    """One benchmark problem (build it with :func:`problem` or :func:`family`).

    Attributes:
        name: the problem's name (``"lih"``, ``"tfim_4"``, ...).
        kind: ``"molecule"``, ``"spin"`` or ``"random"``.
        description: the Hamiltonian, its parameters and the ansatz, in words.
        hamiltonian: the qubit Hamiltonian (molecules: the electronic part, in Hartree).
        ansatz: the parameterised circuit (parameters in ``ansatz.parameters`` order).
        exact_energy: the lowest eigenvalue of ``hamiltonian`` (``numpy.linalg.eigvalsh``).
        shots: shots per measurement group per energy evaluation.
        maxiter: the iteration budget of one run.
        split: ``"tuning"`` or ``"held_out"``.
        start: the initial-point rule: ``"uniform"`` (angles uniform in ``[-pi, pi)``) or ``"hartree-fock"``
            (angles ``N(0, 0.1^2)`` around zero, which is the Hartree-Fock state of the ansatz).
        floor: the largest relative error BFGS ended at on exact energies over a few random starts (measured once,
            documentation only): how far the ansatz's landscape alone can leave a run.
        energy_shift: add it to an energy of ``hamiltonian`` for the total energy (molecules; 0 otherwise).
    """

    name: str
    kind: str
    description: str
    hamiltonian: SparsePauliOp
    ansatz: QuantumCircuit
    exact_energy: float
    shots: int
    maxiter: int
    split: str
    start: str
    floor: float
    energy_shift: float = 0.0

    @property
    def num_qubits(self) -> int:
        return int(self.ansatz.num_qubits)

    @property
    def num_parameters(self) -> int:
        return int(self.ansatz.num_parameters)

    @property
    def num_groups(self) -> int:
        """Qubit-wise commuting measurement groups of the non-identity terms (each costs ``shots`` shots)."""
        return count_groups(self.hamiltonian)

    @property
    def shots_per_evaluation(self) -> int:
        return self.shots * self.num_groups

    def initial_point(self, seed: int) -> np.ndarray:
        """The initial point of run ``seed``: reproducible, different for every seed and every problem."""
        seed = check_positive_int("seed", seed, allow_zero=True)
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        if self.start == "hartree-fock":
            return rng.normal(0.0, HARTREE_FOCK_SPREAD, self.num_parameters)
        return rng.uniform(-math.pi, math.pi, self.num_parameters)

    def energy(self, parameters: np.ndarray | list[float]) -> float:
        """The exact energy ``<psi(parameters)| H |psi(parameters)>`` (Qiskit's ``Statevector``, no shots)."""
        x = np.asarray(parameters, dtype=float)
        if x.shape != (self.num_parameters,) or not np.all(np.isfinite(x)):
            raise ValueError(f"parameters must be {self.num_parameters} finite numbers, got shape {x.shape}")
        state = Statevector(self.ansatz.assign_parameters(x))
        return float(np.real(state.expectation_value(self.hamiltonian)))

    def relative_error(self, parameters: np.ndarray | list[float]) -> float:
        """``(E - E0) / |E0|`` with ``E`` the exact energy of ``parameters`` and ``E0`` the ground energy."""
        return (self.energy(parameters) - self.exact_energy) / abs(self.exact_energy)


def count_groups(hamiltonian: SparsePauliOp) -> int:
    """Qubit-wise commuting groups (Qiskit's ``group_commuting(qubit_wise=True)``) of the non-identity terms."""
    keep = [i for i, label in enumerate(hamiltonian.paulis.to_labels()) if set(label) != {"I"}]
    if not keep:
        return 0
    return len(hamiltonian[keep].group_commuting(qubit_wise=True))


class _Spec(NamedTuple):
    name: str
    kind: str
    description: str
    hamiltonian: Callable[[], SparsePauliOp]
    ansatz: Callable[[], QuantumCircuit]
    shots: int
    maxiter: int
    floor: float
    start: str = "uniform"
    tuned_before: bool = False  # earlier defaults were chosen on it: it belongs to the tuning half


def _hf(name: str, reps: int = 3) -> Callable[[], QuantumCircuit]:
    def build() -> QuantumCircuit:
        data = molecule_data(name)
        return hartree_fock_ansatz(data["num_qubits"], data["hartree_fock_qubits"], reps=reps)

    return build


_SPECS: tuple[_Spec, ...] = (
    # molecules (STO-3G, parity mapping with two-qubit reduction; data/molecules.json)
    _Spec(
        "h2",
        "molecule",
        "H2 at 0.735 A (2 qubits); efficient_su2(reps=1)",
        lambda: molecule("h2"),
        lambda: efficient_su2(2, reps=1),
        shots=1000,
        maxiter=300,
        floor=1e-15,
        tuned_before=True,
    ),
    _Spec(
        "heh+",
        "molecule",
        "HeH+ at 0.772 A (2 qubits); Hartree-Fock start, ry + cz (reps=1)",
        lambda: molecule("heh+"),
        _hf("heh+", reps=1),
        shots=2000,
        maxiter=300,
        floor=1e-15,
        start="hartree-fock",
    ),
    _Spec(
        "lih",
        "molecule",
        "LiH at 1.595 A, Li 1s frozen, pi orbitals removed, (2e, 3o) (4 qubits); Hartree-Fock start, ry + cz (reps=3)",
        lambda: molecule("lih"),
        _hf("lih", reps=3),
        shots=4000,
        maxiter=500,
        floor=1e-15,
        start="hartree-fock",
    ),
    _Spec(
        "h3+",
        "molecule",
        "H3+, equilateral, side 0.873 A (4 qubits); real_amplitudes(reps=2)",
        lambda: molecule("h3+"),
        lambda: real_amplitudes(4, reps=2),
        shots=2000,
        maxiter=500,
        floor=1e-15,
    ),
    # spin chains (open ends, Pauli units)
    _Spec(
        "tfim_4",
        "spin",
        "critical transverse-field Ising chain, J = h = 1 (4 qubits); tfim_ansatz(layers=2)",
        lambda: tfim(4),
        lambda: tfim_ansatz(4, 2),
        shots=1000,
        maxiter=500,
        floor=2e-15,
        tuned_before=True,
    ),
    _Spec(
        "tfim_6",
        "spin",
        "ordered transverse-field Ising chain, J = 1, h = 0.7 (6 qubits); tfim_ansatz(layers=3)",
        lambda: tfim(6, field=0.7),
        lambda: tfim_ansatz(6, 3),
        shots=1000,
        maxiter=1000,
        floor=2e-8,
    ),
    _Spec(
        "xxz_4",
        "spin",
        "XXZ chain, Delta = 0.5 (4 qubits); real_amplitudes(reps=4)",
        lambda: xxz(4, anisotropy=0.5),
        lambda: real_amplitudes(4, reps=4),
        shots=2000,
        maxiter=500,
        floor=1e-15,
    ),
    _Spec(
        "heisenberg_field_5",
        "spin",
        "Heisenberg chain in fields hz = 0.5, hx = 0.3 (5 qubits); real_amplitudes(reps=6)",
        lambda: xxz(5, field_z=0.5, field_x=0.3),
        lambda: real_amplitudes(5, reps=6),
        shots=1000,
        maxiter=1000,
        floor=2e-15,
    ),
    _Spec(
        "j1j2_6",
        "spin",
        "J1-J2 Heisenberg chain at the Majumdar-Ghosh point J2 = 0.5 (6 qubits); real_amplitudes(reps=3)",
        lambda: xxz(6, next_coupling=0.5),
        lambda: real_amplitudes(6, reps=3),
        shots=2000,
        maxiter=1000,
        floor=4e-12,
    ),
    _Spec(
        "random_field_heisenberg_4",
        "spin",
        "Heisenberg chain, random z fields U(-2, 2) from seed 11 (4 qubits); real_amplitudes(reps=3)",
        lambda: xxz(4, field_z=random_fields(4, 2.0, 11)),
        lambda: real_amplitudes(4, reps=3),
        shots=4000,
        maxiter=500,
        floor=1e-15,
    ),
    _Spec(
        "random_field_xxz_5",
        "spin",
        "XXZ chain, Delta = 0.5, random z fields U(-1, 1) from seed 13 (5 qubits); real_amplitudes(reps=5)",
        lambda: xxz(5, anisotropy=0.5, field_z=random_fields(5, 1.0, 13)),
        lambda: real_amplitudes(5, reps=5),
        shots=1000,
        maxiter=1000,
        floor=6e-6,
    ),
    _Spec(
        "random_field_ising_5",
        "spin",
        "Ising chain, J = h = 1, random longitudinal fields U(-1, 1) from seed 12 (5 qubits); real_amplitudes(reps=3)",
        lambda: random_field_ising(5, seed=12),
        lambda: real_amplitudes(5, reps=3),
        shots=2000,
        maxiter=800,
        floor=1e-4,
    ),
    # random k-local Hamiltonians (complex: efficient_su2)
    _Spec(
        "random_2local_3",
        "random",
        "12 random 2-local Pauli terms, N(0, 1) coefficients, seed 21 (3 qubits); efficient_su2(reps=2)",
        lambda: random_k_local(3, locality=2, terms=12, seed=21),
        lambda: efficient_su2(3, reps=2),
        shots=1000,
        maxiter=500,
        floor=1e-15,
    ),
    _Spec(
        "random_3local_3",
        "random",
        "10 random 3-local Pauli terms, N(0, 1) coefficients, seed 25 (3 qubits); efficient_su2(reps=3)",
        lambda: random_k_local(3, locality=3, terms=10, seed=25),
        lambda: efficient_su2(3, reps=3),
        shots=2000,
        maxiter=500,
        floor=1e-15,
    ),
    _Spec(
        "random_2local_4",
        "random",
        "16 random 2-local Pauli terms, N(0, 1) coefficients, seed 22 (4 qubits); efficient_su2(reps=3)",
        lambda: random_k_local(4, locality=2, terms=16, seed=22),
        lambda: efficient_su2(4, reps=3),
        shots=2000,
        maxiter=1000,
        floor=2e-15,
    ),
    _Spec(
        "random_3local_4",
        "random",
        "12 random 3-local Pauli terms, N(0, 1) coefficients, seed 23 (4 qubits); efficient_su2(reps=3)",
        lambda: random_k_local(4, locality=3, terms=12, seed=23),
        lambda: efficient_su2(4, reps=3),
        shots=4000,
        maxiter=1000,
        floor=1e-15,
    ),
)


def split_order(specs: tuple[_Spec, ...] = _SPECS) -> list[str]:
    """The names in the order the split rule alternates over (see the module docstring)."""

    def key(spec: _Spec) -> tuple[bool, int, int]:
        return (not spec.tuned_before, spec.hamiltonian().num_qubits, zlib.crc32(spec.name.encode()))

    return [spec.name for kind in KINDS for spec in sorted((s for s in specs if s.kind == kind), key=key)]


@cache
def _split_table() -> dict[str, str]:
    return {name: SPLITS[i % 2] for i, name in enumerate(split_order())}


def names(split: str | None = None) -> tuple[str, ...]:
    """The problems' names in family order (all of them, or one split's)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    return tuple(s.name for s in _SPECS if split is None or _split_table()[s.name] == split)


def _build(spec: _Spec) -> Problem:
    hamiltonian = spec.hamiltonian()
    ansatz = spec.ansatz()
    if ansatz.num_qubits != hamiltonian.num_qubits:
        raise AssertionError(
            f"{spec.name}: {ansatz.num_qubits}-qubit ansatz, {hamiltonian.num_qubits}-qubit Hamiltonian"
        )
    shift = float(molecule_data(spec.name)["energy_shift"]) if spec.kind == "molecule" else 0.0
    return Problem(
        name=spec.name,
        kind=spec.kind,
        description=spec.description,
        hamiltonian=hamiltonian,
        ansatz=ansatz,
        exact_energy=float(np.linalg.eigvalsh(hamiltonian.to_matrix())[0]),
        shots=spec.shots,
        maxiter=spec.maxiter,
        split=_split_table()[spec.name],
        start=spec.start,
        floor=spec.floor,
        energy_shift=shift,
    )


def problem(name: str) -> Problem:
    """The problem called ``name`` (built afresh: its Hamiltonian and circuit are the caller's to keep)."""
    for spec in _SPECS:
        if spec.name == name:
            return _build(spec)
    raise KeyError(f"unknown problem {name!r}; known: {', '.join(names())}")


def family(split: str | None = None) -> list[Problem]:
    """Every problem in family order, or only those of ``split`` (``"tuning"`` or ``"held_out"``)."""
    return [problem(name) for name in names(split)]
