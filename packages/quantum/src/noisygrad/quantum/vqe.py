"""``vqe``: the native VQE loop with shot-noise-honest accounting.

Every energy evaluation (gradient points, SPSA calibration, blocking checks, the final estimate) is made
through one :class:`~noisygrad.quantum.EnergyObjective`, so ``result.shots`` is everything the run spent.
The reported ``energy`` is the exact (statevector) energy of the final parameters, which a simulator can
afford; ``energy_estimate`` +- ``energy_std`` is what the run would report on hardware, from ``final_shots``
shots per group (counted in ``shots``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit

from noisygrad import SGD, Adam, Estimator, Optimizer
from noisygrad.checks import check_positive_int

from . import _loop
from ._gains import SPSAGains
from .gradients import ParameterShift, finite_difference
from .hamiltonians import exact_ground_energy
from .objective import EnergyObjective
from .sampling import generator_seed
from .spsa import SPALL_GAMMA

GRADIENTS = ("spsa", "parameter-shift", "finite-difference")


@dataclass
class VQEResult:
    """The outcome of :func:`vqe`.

    Attributes:
        energy: the exact energy of ``parameters`` (statevector; the honest final answer).
        energy_estimate: the energy re-estimated with ``final_shots`` shots per group (counted in ``shots``).
        energy_std: the standard error of ``energy_estimate`` (from its samples).
        final_shots: shots per measurement group of that final estimate.
        parameters: the final parameters.
        evaluations: every energy evaluation of the run (calibration and final estimate included).
        shots: every shot of the run.
        iterations: optimizer steps.
        reference_energy: the exact ground energy (dense diagonalisation; ``None`` above 12 qubits).
        calibration: what SPSA's gain calibration spent and chose (empty when not calibrated).
        history: one dict per step: ``step``, ``estimate`` (the estimator's noisy value, if any), ``exact``
            (the iterate's exact energy, if tracked), cumulative ``evaluations`` and ``shots``.
        wall_time: seconds.
    """

    energy: float
    energy_estimate: float
    energy_std: float
    final_shots: int
    parameters: np.ndarray
    evaluations: int
    shots: int
    iterations: int
    reference_energy: float | None
    calibration: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    wall_time: float = 0.0

    @property
    def error(self) -> float | None:
        """``energy - reference_energy`` (Hartree for molecules), or ``None`` without a reference."""
        return None if self.reference_energy is None else self.energy - self.reference_energy

    def shots_to_reach(self, tolerance: float) -> int | None:
        """Shots spent when the iterate's exact error first fell below ``tolerance`` and stayed there."""
        if self.reference_energy is None or not self.history or "exact" not in self.history[0]:
            return None
        errors = np.array([h["exact"] - self.reference_energy for h in self.history])
        above = np.flatnonzero(errors >= tolerance)
        first = 0 if len(above) == 0 else above[-1] + 1
        return None if first >= len(errors) else int(self.history[first]["shots"])


def vqe(
    hamiltonian: object,
    ansatz: QuantumCircuit,
    *,
    optimizer: Optimizer | None = None,
    gradient: str = "spsa",
    shots: int = 1000,
    maxiter: int = 300,
    seed: int = 0,
    initial_point: np.ndarray | list[float] | None = None,
    noise: str = "shots",
    backend: str = "auto",
    device: str = "CPU",
    perturbation: float = 0.2,
    perturbation_decay: float = SPALL_GAMMA,
    stability: float | None = None,
    target_step: float = 2 * math.pi / 10,
    resamplings: int = 1,
    calibration_samples: int = 25,
    blocking: bool = False,
    average_last: int | None = None,
    step: float = 0.1,
    final_shots: int | None = None,
    track_exact: bool = True,
) -> VQEResult:
    """Minimise the energy of ``hamiltonian`` over ``ansatz`` from shot-noise estimates.

    Args:
        hamiltonian: a Hermitian ``SparsePauliOp`` on the ansatz's qubits.
        ansatz: the parameterised circuit.
        optimizer: a noisygrad optimizer (``noisygrad.SGD``, ``noisygrad.Adam``, ...). Default: for
            ``"spsa"`` SGD with Spall's gain ``a / (A + k + 1)^0.602``, ``a`` calibrated at the initial point
            (50 evaluations, counted); for the other gradients ``Adam(lr=0.1)``.
        gradient: ``"spsa"`` (2 evaluations per step), ``"parameter-shift"`` (``2P``, exact for rotation gates)
            or ``"finite-difference"`` (central, step ``step``; ``2P``).
        shots: shots per measurement group per evaluation.
        maxiter: optimizer steps.
        seed: seeds everything random (initial point, perturbations, shots).
        initial_point: ``P`` starting parameters; default uniform in ``[-pi, pi)`` from ``seed``.
        noise, backend, device: see :class:`~noisygrad.quantum.EnergyObjective`.
        perturbation: SPSA's ``c`` of ``c_k = c / (k + 1)^gamma``.
        perturbation_decay: ``gamma`` (Spall's 0.101; see :class:`~noisygrad.quantum.SPSA`).
        stability: Spall's ``A`` (``None``: 0, qiskit's; 10% of ``maxiter`` random-walked on the problem family).
        target_step: the calibrated size of SPSA's first step per parameter (Qiskit's ``2 pi / 10``).
        resamplings: SPSA perturbations averaged per step (one call).
        calibration_samples: SPSA estimates at the initial point that calibrate the gain ``a``
            (``2 * calibration_samples`` evaluations, one call, counted); the same set-up as
            :class:`~noisygrad.quantum.SPSA`.
        blocking: reject steps whose measured energy rose by more than twice its standard error
            (one more evaluation per step).
        average_last: report the mean of the last ``average_last`` accepted iterates (Polyak-Ruppert
            averaging). Default: a quarter of ``maxiter`` for SPSA, 1 for the other gradients. Measured on H2
            (1000 shots, 10 seeds): 1000 iterations, median exact error 2.8 mHa without averaging, 0.34 averaging
            the last 100; 300 iterations, 1.49 / 0.86 / 0.78 mHa averaging the last 30 / 75 / 150. Averaging
            more iterates risks averaging over a still-moving trajectory.
        step: the finite-difference step.
        final_shots: shots per group for the final estimate (default ``10 * shots``).
        track_exact: record each iterate's exact energy in the history (free on a simulator).
    """
    start = time.perf_counter()
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    objective = EnergyObjective(hamiltonian, ansatz, shots=shots, noise=noise, backend=backend, device=device)
    maxiter = check_positive_int("maxiter", maxiter)
    seed = check_positive_int("seed", seed, allow_zero=True)
    final_shots = 10 * objective.shots if final_shots is None else check_positive_int("final_shots", final_shots)
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a noisygrad optimizer (SGD, Adam, ...), got {type(optimizer).__name__}")
    generator = torch.Generator().manual_seed(seed)
    p = objective.num_parameters
    if initial_point is None:
        x0 = (torch.rand(p, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    else:
        if len(np.shape(initial_point)) != 1:
            shape = np.shape(initial_point)
            raise ValueError(f"initial_point must be a 1-D array of {p} parameters, got shape {shape}")
        x0 = torch.as_tensor(objective.points(initial_point, "initial_point")[0])

    calibration: dict[str, float] = {}
    estimator: Estimator
    average = 1 if average_last is None else check_positive_int("average_last", average_last)
    if gradient == "spsa":
        gains = SPSAGains(
            maxiter,
            perturbation=perturbation,
            perturbation_decay=perturbation_decay,
            stability=stability,
            target_step=target_step,
            resamplings=resamplings,
            calibration_samples=calibration_samples,
            average_last=average_last,
        )
        average = gains.average_window
        if optimizer is None:  # Spall's gains, calibrated at x0 (counted in the objective's totals)
            before_shots = objective.shots_used
            estimator, schedule, calibration = gains.start(objective, x0, generator)
            calibration["shots"] = float(objective.shots_used - before_shots)
            optimizer = SGD(schedule)
        else:
            estimator = gains.estimator(objective)
    elif gradient == "parameter-shift":
        estimator = ParameterShift(objective)
    else:
        estimator = finite_difference(objective, step=step)
    if optimizer is None:
        optimizer = Adam(lr=0.1)

    def value_fn(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = objective.sample(points, np.random.default_rng(generator_seed(generator)))
        return torch.as_tensor(values), torch.as_tensor(objective.last_stds)

    history: list[dict[str, Any]] = []

    def on_step(t: int, x: torch.Tensor, record: dict[str, Any]) -> None:
        entry = {**record, "evaluations": objective.evaluations, "shots": objective.shots_used}
        if track_exact:
            entry["exact"] = float(objective.exact(x)[0])
        history.append(entry)

    loop = _loop.run(
        estimator,
        optimizer,
        x0,
        steps=maxiter,
        generator=generator,
        value_fn=value_fn,
        blocking=blocking,
        average_last=average,
        on_step=on_step,
    )
    x_final = loop.x.numpy().copy()
    estimate = float(objective.sample(x_final, np.random.default_rng(generator_seed(generator)), final_shots)[0])
    reference = exact_ground_energy(objective.plan.observable) if ansatz.num_qubits <= 12 else None
    return VQEResult(
        energy=float(objective.exact(x_final)[0]),
        energy_estimate=estimate,
        energy_std=float(objective.last_stds[0]),
        final_shots=final_shots,
        parameters=x_final,
        evaluations=objective.evaluations,
        shots=objective.shots_used,
        iterations=maxiter,
        reference_energy=reference,
        calibration=calibration,
        history=history,
        wall_time=time.perf_counter() - start,
    )
