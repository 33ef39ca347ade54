"""VQE on H2 with real shot noise, two ways: qiskit-algorithms' VQE with noisygrad's SPSA, and the native loop.

.venv/bin/python examples/quantum_vqe_h2.py
"""

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit_algorithms import VQE

import noisygrad as ng
from noisygrad.quantum import SPSA, EnergyObjective, exact_ground_energy, h2, shot_estimator, vqe

hamiltonian = h2()  # STO-3G, 0.735 Angstrom, parity-reduced: 2 qubits, 2 measurement groups
ansatz = efficient_su2(2, reps=1)  # 8 parameters
e0 = exact_ground_energy(hamiltonian)
exact = EnergyObjective(hamiltonian, ansatz, noise="exact")

# 1. The client users already have: every shot is sampled, counted, and the seed is a stream.
estimator = shot_estimator(shots=1000, seed=7)
x0 = np.random.default_rng(7).uniform(-np.pi, np.pi, ansatz.num_parameters)
result = VQE(estimator, ansatz, optimizer=SPSA(maxiter=300, seed=7), initial_point=x0).compute_minimum_eigenvalue(
    hamiltonian
)
error = exact.exact(result.optimal_point)[0] - e0
print(f"qiskit VQE + noisygrad SPSA: exact error {error * 1e3:.2f} mHa, reported {result.eigenvalue:.4f} Ha")
counted = f"evaluations {result.cost_function_evals} (the estimator counted {estimator.evaluations})"
print(f"  {counted}, shots {estimator.shots_used:,}")

# 2. The native loop: any gradient estimator, any noisygrad optimizer, a history.
for gradient, optimizer, maxiter in (("spsa", None, 300), ("parameter-shift", ng.Adam(lr=0.1), 60)):
    r = vqe(hamiltonian, ansatz, gradient=gradient, optimizer=optimizer, shots=1000, maxiter=maxiter, seed=7)
    print(
        f"vqe(gradient={gradient!r}): exact error {r.error * 1e3:.2f} mHa; re-estimated {r.energy_estimate:.4f} "
        f"+- {r.energy_std:.4f} Ha ({r.final_shots} shots/group); {r.evaluations} evaluations, {r.shots:,} shots"
    )
