"""Test Hamiltonians and their exact ground energies, with no chemistry package and no download.

Spin models are written in code (open chains, Pauli units: ``X_i X_{i+1}``, not spin-1/2 operators), random
models take a fixed seed, and molecules are read from ``data/molecules.json``, which
``packages/quantum/scripts/make_molecules.py`` computed once with PySCF and Qiskit Nature (neither is needed to
read it). :mod:`noisygrad.quantum.problems` assembles them into the benchmark family.
"""

from __future__ import annotations

import itertools
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from noisygrad.checks import check_positive, check_positive_int, check_real

from .measurement import as_observable

# H2, STO-3G, R = 0.735 Angstrom, parity mapping with two-qubit reduction; electronic energy in Hartree.
# The operator of the Qiskit tutorials and qiskit-algorithms' tests (computed there with Qiskit Nature).
_H2_TERMS = (
    ("II", -1.052373245772859),
    ("IZ", 0.39793742484318045),
    ("ZI", -0.39793742484318045),
    ("ZZ", -0.01128010425623538),
    ("XX", 0.18093119978423156),
)
H2_NUCLEAR_REPULSION = 0.7199689944489797
"""Nuclear repulsion of H2 at 0.735 Angstrom (Hartree); add it to an electronic energy for the total energy."""

CHEMICAL_ACCURACY = 1.6e-3
"""1 kcal/mol in Hartree (1.5936e-3, rounded as usual)."""


def h2() -> SparsePauliOp:
    """H2 (STO-3G, 0.735 Angstrom, parity-reduced, 2 qubits): electronic ground energy -1.857275030202 Ha."""
    return SparsePauliOp.from_list(list(_H2_TERMS))


def tfim(num_qubits: int = 4, *, coupling: float = 1.0, field: float = 1.0) -> SparsePauliOp:
    """Transverse-field Ising chain with open ends: ``H = -J sum_i Z_i Z_{i+1} - h sum_i X_i``.

    Two measurement groups (all ``ZZ`` terms, all ``X`` terms). At ``h = J`` (the default) it is critical.
    ``coupling`` and ``field`` must be finite real numbers (NaN would give NaN energies, a string a ``ValueError``
    from deep inside float conversion).
    """
    n = check_positive_int("num_qubits", num_qubits)
    if n < 2:
        raise ValueError(f"num_qubits must be >= 2 for a chain, got {n}")
    j, h = check_real("coupling", coupling), check_real("field", field)
    terms: list[tuple[str, list[int], float]] = [("ZZ", [i, i + 1], -j) for i in range(n - 1)]
    terms += [("X", [i], -h) for i in range(n)]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n)


def tfim_ansatz(num_qubits: int = 4, layers: int = 2) -> QuantumCircuit:
    """A Hamiltonian-variational ansatz for :func:`tfim`: ``|+>^n``, then ``layers`` times an ``rzz`` on every bond
    and an ``rx`` on every qubit, each gate with its own angle (``layers * (2n - 1)`` parameters).

    Measured on the 4-qubit critical chain (BFGS on exact energies, 10 random starts): 2 layers (14 parameters)
    reach the ground energy to 1e-9 from every start, while the hardware-efficient ``real_amplitudes(4, reps=2)``
    (12 parameters) bottoms out 0.10 mHa above it and has a Hessian eigenvalue 700x below its largest there, a
    soft direction along which first-order SPSA crawls.
    """
    n = check_positive_int("num_qubits", num_qubits)
    if n < 2:
        raise ValueError(f"num_qubits must be >= 2 for a chain, got {n}")
    depth = check_positive_int("layers", layers)
    theta = ParameterVector("t", depth * (2 * n - 1))
    qc = QuantumCircuit(n, name="tfim_hva")
    qc.h(range(n))
    angles = iter(theta)
    for _ in range(depth):
        for i in range(n - 1):
            qc.rzz(next(angles), i, i + 1)
        for i in range(n):
            qc.rx(next(angles), i)
    return qc


def _check_chain(num_qubits: int) -> int:
    n = check_positive_int("num_qubits", num_qubits)
    if n < 2:
        raise ValueError(f"num_qubits must be >= 2 for a chain, got {n}")
    return n


def _site_values(name: str, value: float | np.ndarray | list[float], n: int) -> np.ndarray:
    """A per-site array of ``n`` values from a scalar or a sequence (checked for length and finiteness)."""
    values = np.broadcast_to(np.asarray(value, dtype=float), (n,)) if np.ndim(value) == 0 else np.asarray(value, float)
    if values.shape != (n,) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a finite number or {n} finite numbers, got {value!r}")
    return values


def xxz(
    num_qubits: int = 4,
    *,
    coupling: float = 1.0,
    anisotropy: float = 1.0,
    field_z: float | np.ndarray | list[float] = 0.0,
    field_x: float | np.ndarray | list[float] = 0.0,
    next_coupling: float = 0.0,
) -> SparsePauliOp:
    """An open XXZ chain with fields and an optional next-nearest-neighbour coupling::

        H = J sum_i (X_i X_{i+1} + Y_i Y_{i+1} + Delta Z_i Z_{i+1})
            + J2 sum_i (X_i X_{i+2} + Y_i Y_{i+2} + Delta Z_i Z_{i+2}) + sum_i (hz_i Z_i + hx_i X_i)

    ``anisotropy`` (``Delta``) 1 is the Heisenberg chain, ``next_coupling`` (``J2``) > 0 the frustrated J1-J2
    chain; ``field_z`` and ``field_x`` are one value for every site or one per site (random-field chains).
    All coefficients are real, so the ground state can be chosen real (``real_amplitudes`` can represent it).
    """
    n = _check_chain(num_qubits)
    hz, hx = _site_values("field_z", field_z, n), _site_values("field_x", field_x, n)
    j1, j2 = check_real("coupling", coupling), check_real("next_coupling", next_coupling)
    delta = check_real("anisotropy", anisotropy)
    terms: list[tuple[str, list[int], float]] = []
    for distance, strength in ((1, j1), (2, j2)):
        if strength == 0.0:
            continue
        for i in range(n - distance):
            bond = [i, i + distance]
            terms += [("XX", bond, strength), ("YY", bond, strength), ("ZZ", bond, strength * delta)]
    terms += [("Z", [i], float(hz[i])) for i in range(n) if hz[i] != 0.0]
    terms += [("X", [i], float(hx[i])) for i in range(n) if hx[i] != 0.0]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n).simplify()


def random_fields(num_qubits: int, disorder: float, seed: int) -> np.ndarray:
    """``num_qubits`` fields drawn uniformly from ``[-disorder, disorder]`` by ``numpy.random.default_rng(seed)``."""
    n = check_positive_int("num_qubits", num_qubits)
    return np.random.default_rng(check_positive_int("seed", seed, allow_zero=True)).uniform(-disorder, disorder, n)


def random_field_ising(
    num_qubits: int = 5, *, coupling: float = 1.0, field: float = 1.0, disorder: float = 1.0, seed: int = 0
) -> SparsePauliOp:
    """An open Ising chain in a transverse field and random longitudinal fields::

        H = -J sum_i Z_i Z_{i+1} - h sum_i X_i + sum_i g_i Z_i,   g_i ~ U(-W, W) from ``seed``

    The random fields break the chain's Z2 symmetry differently on every site (no two seeds alike).
    """
    n = _check_chain(num_qubits)
    j, h = check_real("coupling", coupling), check_real("field", field)
    g = random_fields(n, check_positive("disorder", disorder, allow_zero=True), seed)
    terms: list[tuple[str, list[int], float]] = [("ZZ", [i, i + 1], -j) for i in range(n - 1)]
    terms += [("X", [i], -h) for i in range(n)]
    terms += [("Z", [i], float(g[i])) for i in range(n)]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=n)


def random_k_local(num_qubits: int = 4, *, locality: int = 2, terms: int = 12, seed: int = 0) -> SparsePauliOp:
    """``terms`` distinct Pauli strings, each acting on exactly ``locality`` qubits (X, Y or Z on each), with
    standard-normal coefficients, all drawn by ``numpy.random.default_rng(seed)``.

    Strings with an odd number of ``Y`` make the Hamiltonian complex, so its ground state generally is too (an
    ansatz with ``rz`` rotations, such as ``efficient_su2``, is needed).
    """
    n = check_positive_int("num_qubits", num_qubits)
    k = check_positive_int("locality", locality)
    count = check_positive_int("terms", terms)
    if k > n:
        raise ValueError(f"locality must be <= num_qubits ({n}), got {k}")
    available = len(list(itertools.combinations(range(n), k))) * 3**k
    if count > available:
        raise ValueError(f"only {available} distinct {k}-local Pauli strings exist on {n} qubits, asked for {count}")
    rng = np.random.default_rng(check_positive_int("seed", seed, allow_zero=True))
    chosen: dict[tuple[str, tuple[int, ...]], float] = {}
    while len(chosen) < count:
        qubits = tuple(sorted(int(q) for q in rng.choice(n, size=k, replace=False)))
        label = "".join(str(p) for p in rng.choice(["X", "Y", "Z"], size=k))
        key = (label, qubits)
        if key not in chosen:
            chosen[key] = float(rng.standard_normal())
    sparse = [(label, list(qubits), coeff) for (label, qubits), coeff in chosen.items()]
    return SparsePauliOp.from_sparse_list(sparse, num_qubits=n)


MOLECULE_DATA = "data/molecules.json"
"""The molecules' file inside the package (written by ``packages/quantum/scripts/make_molecules.py``)."""


@lru_cache(maxsize=1)
def _molecule_file() -> dict[str, dict[str, Any]]:
    text = resources.files("noisygrad.quantum").joinpath(MOLECULE_DATA).read_text(encoding="utf-8")
    data: dict[str, dict[str, Any]] = json.loads(text)["molecules"]
    return data


def molecule_names() -> tuple[str, ...]:
    """The molecules in ``data/molecules.json``, in file order."""
    return tuple(_molecule_file())


def molecule_data(name: str) -> dict[str, Any]:
    """Everything stored about molecule ``name``: geometry, basis, mapping, reductions, Pauli terms, constants
    (nuclear repulsion, frozen-core energy), the Hartree-Fock bit string, the exact and FCI energies (a copy)."""
    data = _molecule_file()
    if name not in data:
        raise KeyError(f"unknown molecule {name!r}; stored: {', '.join(data)}")
    return json.loads(json.dumps(data[name]))


def molecule(name: str) -> SparsePauliOp:
    """The qubit Hamiltonian of molecule ``name`` (its electronic part in Hartree; add ``molecule_data(name)
    ["energy_shift"]`` for total energies). ``molecule("h2")`` equals :func:`h2`."""
    terms = molecule_data(name)["pauli_terms"]
    return SparsePauliOp.from_list([(label, float(coeff)) for label, coeff in terms])


def hartree_fock_ansatz(num_qubits: int, occupied: list[int] | tuple[int, ...], reps: int = 3) -> QuantumCircuit:
    """A hardware-efficient ``ry`` + ``cz`` ansatz (``n_local``, all-to-all ``cz``) behind ``x`` gates that
    prepare the Hartree-Fock bit string ``occupied``.

    All angles zero IS the Hartree-Fock state (``cz`` only adds signs to a basis state), so a run can start at
    the mean-field answer and only has to find the correlation energy. Measured (BFGS on exact energies, 3
    starts near zero): for LiH and H3+ (4 qubits) ``reps=3`` reaches the exact ground energy to 1e-15, while
    linear or circular ``cz`` entanglement stops 2.3e-3 (LiH) and 3.7e-3 (H3+) above it, relatively, at any depth.
    """
    from qiskit.circuit.library import n_local

    n = check_positive_int("num_qubits", num_qubits)
    bad = [q for q in occupied if not 0 <= int(q) < n]
    if bad:
        raise ValueError(f"occupied qubits must lie in [0, {n}), got {bad}")
    qc = QuantumCircuit(n, name="hf_ry_cz")
    for q in occupied:
        qc.x(int(q))
    return qc.compose(n_local(n, "ry", "cz", entanglement="full", reps=check_positive_int("reps", reps)))


def exact_ground_energy(hamiltonian: object) -> float:
    """The lowest eigenvalue of ``hamiltonian``: dense ``numpy.linalg.eigvalsh`` up to 8 qubits, sparse Lanczos
    (``scipy.sparse.linalg.eigsh``) above (measured: 38 s dense against 0.06 s sparse for a 12-qubit chain)."""
    op = as_observable(hamiltonian)
    if op.num_qubits > 14:
        raise ValueError(f"hamiltonian has {op.num_qubits} qubits; exact diagonalisation is limited to 14")
    if op.num_qubits <= 8:
        return float(np.linalg.eigvalsh(op.to_matrix())[0])
    from scipy.sparse.linalg import eigsh

    return float(eigsh(op.to_matrix(sparse=True), k=1, which="SA", return_eigenvectors=False)[0])
