"""noisygrad.quantum: VQE with real shot noise on Qiskit Aer: SPSA, parameter shift, shot budgets.

Two ways in:

* Qiskit's own: ``VQE(shot_estimator(shots=1000, seed=7), ansatz, optimizer=SPSA(maxiter=300, seed=7))``
  with ``qiskit_algorithms.VQE``; :func:`shot_estimator` samples shots for real (a seed stream, a shot
  counter); :class:`SPSA` and :class:`QNSPSA` are qiskit-algorithms' optimizers argument for argument, with a
  seed of their own, every evaluation counted and divergence reported.
* The native loop: :func:`vqe` with ``gradient="spsa" | "parameter-shift" | "finite-difference"`` and any
  noisygrad optimizer, returning energies, parameters, evaluations, shots and a history.
"""

from noisygrad.plugins import require as _require

_require("quantum")  # a missing field package names the extra to install

from .adaptive import AdaptiveShots  # noqa: E402
from .allocation import ShotAllocator  # noqa: E402
from .backends import DeviceFallbackWarning, gpu_available  # noqa: E402
from .estimator import ShotEstimator, shot_estimator  # noqa: E402
from .gradients import ParameterShift, finite_difference  # noqa: E402
from .hamiltonians import (  # noqa: E402
    CHEMICAL_ACCURACY,
    H2_NUCLEAR_REPULSION,
    exact_ground_energy,
    h2,
    tfim,
    tfim_ansatz,
)
from .measurement import MeasurementPlan  # noqa: E402
from .objective import EnergyObjective  # noqa: E402
from .qnspsa import QNSPSA  # noqa: E402
from .sequential import SequentialMinimizer, SequentialOptimizer, SequentialResult  # noqa: E402
from .spsa import SPSA, SPSAResult  # noqa: E402
from .stopping import ShotAwareStopping  # noqa: E402
from .vqe import GRADIENTS, VQEResult, vqe  # noqa: E402

__all__ = [
    "CHEMICAL_ACCURACY",
    "GRADIENTS",
    "H2_NUCLEAR_REPULSION",
    "QNSPSA",
    "SPSA",
    "AdaptiveShots",
    "DeviceFallbackWarning",
    "EnergyObjective",
    "MeasurementPlan",
    "ParameterShift",
    "SPSAResult",
    "SequentialMinimizer",
    "SequentialOptimizer",
    "SequentialResult",
    "ShotAllocator",
    "ShotAwareStopping",
    "ShotEstimator",
    "VQEResult",
    "exact_ground_energy",
    "finite_difference",
    "gpu_available",
    "h2",
    "shot_estimator",
    "tfim",
    "tfim_ansatz",
    "vqe",
]
