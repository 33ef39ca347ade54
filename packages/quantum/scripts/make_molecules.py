"""Write ``noisygrad/quantum/data/molecules.json``: molecular qubit Hamiltonians computed once, shipped as data.

The benchmark family (:mod:`noisygrad.quantum.problems`) needs molecules without a chemistry stack at run or
test time, so this script does the chemistry once: PySCF (RHF and integrals in STO-3G), Qiskit Nature (frozen
core and removed orbitals, the second-quantised Hamiltonian, the parity mapping with its two-qubit reduction,
the Hartree-Fock bit string), numpy (the exact ground energy of the qubit operator). Every molecule is checked
before it is written, and the script stops on any mismatch:

* ``exact_energy + energy_shift`` equals PySCF's CASCI energy in the same active space (1e-8 Ha): the mapping,
  the reduction and the frozen-core shift are right, and the reduced symmetry sector's ground state is the
  molecule's (the parity reduction fixes only the parities of the electron counts);
* the Hartree-Fock bit string's energy plus the shift equals PySCF's RHF energy (1e-8 Ha);
* H2 equals the operator written in :func:`noisygrad.quantum.hamiltonians.h2` (1e-9).

Energies are in Hartree. ``pauli_terms`` hold the electronic part only (what a VQE minimises); ``energy_shift``
(nuclear repulsion plus the frozen core's energy) turns its eigenvalues into total energies, and ``fci_energy``
(all orbitals, nothing frozen) says what the active space leaves out.

Needs the chemistry packages, which are NOT dependencies of noisygrad (install them where you run this)::

    .venv/bin/pip install pyscf qiskit-nature
    .venv/bin/python packages/quantum/scripts/make_molecules.py [--check]   # --check: compare, do not write
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "src" / "noisygrad" / "quantum" / "data" / "molecules.json"
BASIS = "sto-3g"
TOLERANCE = 1e-8

# name -> geometry (Angstrom), charge, frozen core?, spatial orbitals removed (indices of the full RHF basis)
H3_SIDE = 0.873  # equilateral H3+ near its equilibrium bond length
MOLECULES: dict[str, dict[str, Any]] = {
    "h2": {
        "formula": "H2",
        "atoms": [("H", 0.0, 0.0, 0.0), ("H", 0.0, 0.0, 0.735)],
        "charge": 0,
        "freeze_core": False,
        "remove": [],
    },
    "heh+": {
        "formula": "HeH+",
        "atoms": [("He", 0.0, 0.0, 0.0), ("H", 0.0, 0.0, 0.772)],
        "charge": 1,
        "freeze_core": False,
        "remove": [],
    },
    # Li 1s frozen; the two pi orbitals (3, 4) do not mix with the sigma ground state by symmetry: (2e, 3o) -> 4 qubits
    "lih": {
        "formula": "LiH",
        "atoms": [("Li", 0.0, 0.0, 0.0), ("H", 0.0, 0.0, 1.595)],
        "charge": 0,
        "freeze_core": True,
        "remove": [3, 4],
    },
    "h3+": {
        "formula": "H3+",
        "atoms": [
            ("H", 0.0, 0.0, 0.0),
            ("H", H3_SIDE, 0.0, 0.0),
            ("H", H3_SIDE / 2, H3_SIDE * math.sqrt(3) / 2, 0.0),
        ],
        "charge": 1,
        "freeze_core": False,
        "remove": [],
    },
}


def _atom_string(atoms: list[tuple[str, float, float, float]]) -> str:
    return "; ".join(f"{sym} {x!r} {y!r} {z!r}" for sym, x, y, z in atoms)


def build(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Compute and check one molecule's record."""
    from pyscf import fci, gto, mcscf, scf
    from qiskit_nature.second_q.circuit.library import HartreeFock
    from qiskit_nature.second_q.drivers import PySCFDriver
    from qiskit_nature.second_q.mappers import ParityMapper
    from qiskit_nature.second_q.transformers import FreezeCoreTransformer
    from qiskit_nature.units import DistanceUnit

    atom = _atom_string(spec["atoms"])
    driver = PySCFDriver(atom=atom, basis=BASIS, charge=spec["charge"], spin=0, unit=DistanceUnit.ANGSTROM)
    problem = driver.run()
    num_orbitals = problem.num_spatial_orbitals
    if spec["freeze_core"] or spec["remove"]:
        problem = FreezeCoreTransformer(freeze_core=spec["freeze_core"], remove_orbitals=spec["remove"]).transform(
            problem
        )
    mapper = ParityMapper(num_particles=problem.num_particles)
    op = mapper.map(problem.hamiltonian.second_q_op()).simplify(atol=1e-12)
    if np.abs(op.coeffs.imag).max() > 1e-12:
        raise RuntimeError(f"{name}: complex Pauli coefficients")
    matrix = op.to_matrix()
    exact = float(np.linalg.eigvalsh(matrix)[0])
    constants = {k: float(v) for k, v in problem.hamiltonian.constants.items()}
    shift = sum(constants.values())

    hf_circuit = HartreeFock(problem.num_spatial_orbitals, problem.num_particles, mapper)
    occupied = sorted(hf_circuit.find_bit(q).index for inst in hf_circuit.data for q in inst.qubits)
    hf_index = sum(1 << q for q in occupied)
    hf_energy = float(matrix[hf_index, hf_index].real) + shift

    mol = gto.M(atom=atom, basis=BASIS, charge=spec["charge"], spin=0, unit="Angstrom", verbose=0)
    mf = scf.RHF(mol).run()
    fci_energy = float(fci.FCI(mf).kernel()[0])
    frozen = [0] if spec["freeze_core"] else []  # the molecules here have at most one core orbital (Li, He: none)
    active = [i for i in range(num_orbitals) if i not in frozen and i not in spec["remove"]]
    electrons = sum(problem.num_particles)
    casci = mcscf.CASCI(mf, len(active), electrons)
    casci_energy = float(casci.kernel(casci.sort_mo(active, base=0))[0])

    checks = {
        "exact + shift vs PySCF CASCI": exact + shift - casci_energy,
        "Hartree-Fock bit string vs PySCF RHF": hf_energy - float(mf.e_tot),
    }
    for what, diff in checks.items():
        if abs(diff) > TOLERANCE:
            raise RuntimeError(f"{name}: {what} differ by {diff:.3e} Ha")
    labels = op.paulis.to_labels()
    return {
        "formula": spec["formula"],
        "geometry": [[sym, x, y, z] for sym, x, y, z in spec["atoms"]],
        "units": "angstrom",
        "charge": spec["charge"],
        "multiplicity": 1,
        "basis": BASIS,
        "frozen_orbitals": frozen,
        "removed_orbitals": list(spec["remove"]),
        "active_orbitals": active,
        "num_spatial_orbitals": problem.num_spatial_orbitals,
        "num_particles": list(problem.num_particles),
        "mapping": "parity, two-qubit reduction (Qiskit Nature ParityMapper(num_particles))",
        "num_qubits": op.num_qubits,
        "pauli_terms": [[label, float(c.real)] for label, c in zip(labels, op.coeffs, strict=True)],
        "nuclear_repulsion_energy": constants.get("nuclear_repulsion_energy", 0.0),
        "frozen_core_energy": constants.get("FreezeCoreTransformer", 0.0),
        "energy_shift": shift,
        "hartree_fock_qubits": occupied,
        "hartree_fock_energy": float(mf.e_tot),
        "exact_energy": exact,
        "casci_energy": casci_energy,
        "fci_energy": fci_energy,
    }


def _dumps(document: dict[str, Any]) -> str:
    """JSON with one line per list of scalars (a Pauli term, an atom), so the file reads and diffs well."""
    text = json.dumps(document, indent=1)
    flat = re.compile(r"\[\s*([^\[\]{}]*?)\s*\]", re.DOTALL)
    return flat.sub(lambda m: "[" + ", ".join(part.strip() for part in m.group(1).split(",")) + "]", text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored file instead of writing it")
    args = parser.parse_args()
    records = {name: build(name, spec) for name, spec in MOLECULES.items()}
    h2_stored = {
        "II": -1.052373245772859,
        "IZ": 0.39793742484318045,
        "ZI": -0.39793742484318045,
        "ZZ": -0.01128010425623538,
        "XX": 0.18093119978423156,
    }
    h2_new = dict(records["h2"]["pauli_terms"])
    if set(h2_new) != set(h2_stored) or max(abs(h2_new[k] - h2_stored[k]) for k in h2_stored) > 1e-9:
        raise RuntimeError(f"H2 differs from hamiltonians.h2(): {h2_new}")
    versions = {pkg: metadata.version(pkg) for pkg in ("pyscf", "qiskit-nature", "qiskit", "numpy")}
    document = {
        "description": "Molecular qubit Hamiltonians (electronic part, Hartree) for noisygrad.quantum.problems; "
        "written by packages/quantum/scripts/make_molecules.py",
        "software": versions,
        "molecules": records,
    }
    for name, rec in records.items():
        print(
            f"{name:5} {rec['num_qubits']} qubits {len(rec['pauli_terms']):4} terms  exact {rec['exact_energy']:.10f}"
            f"  CASCI {rec['casci_energy']:.10f}  FCI {rec['fci_energy']:.10f}  HF {rec['hartree_fock_energy']:.10f}"
            f"  HF qubits {rec['hartree_fock_qubits']}"
        )
    if args.check:
        stored = json.loads(OUT.read_text())["molecules"]
        worst = max(abs(stored[n]["exact_energy"] - r["exact_energy"]) for n, r in records.items())
        print(f"largest difference of exact energies from {OUT}: {worst:.2e} Ha")
        sys.exit(0 if worst < TOLERANCE else 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(_dumps(document))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
