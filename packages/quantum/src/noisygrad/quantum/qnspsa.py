"""``QNSPSA``: quantum-natural SPSA (Gacon et al. 2021), argument for argument as in qiskit-algorithms 0.4.

Each iteration estimates the gradient of the loss from two evaluations (as SPSA) and the Fubini-Study metric
from four evaluations of the state fidelity ``F(x, y) = |<psi(x)|psi(y)>|^2``; the gradient is preconditioned
with the smoothed, regularised metric. ``QNSPSA.get_fidelity(ansatz, sampler)`` builds ``F`` from a Qiskit
sampler with ``qiskit_algorithms.state_fidelities.ComputeUncompute``, as qiskit does.

What differs from ``qiskit_algorithms.optimizers.QNSPSA`` is what :class:`~noisygrad.quantum.SPSA` adds:
a seed of its own, every direction's loss points in one call and every direction's fidelity pairs in one call,
``result.nfev_total`` (loss and fidelity evaluations, calibration and blocking included), divergence reported
with ``success=False``, ``last_avg``/``final_evaluations`` options, and checkpoints: ``result.checkpoint`` (or
:meth:`QNSPSA.state_dict`) holds the iterate, the direction generator's state, the gains, the smoothed metric,
blocking's state, the divergence guard and the counters (the fidelity's among them), and
``minimize(fun, resume=...)`` continues the run bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BaseSamplerV2
from qiskit_algorithms.state_fidelities import ComputeUncompute

from . import _spsa_checkpoint
from .spsa import (
    DEFAULT_AVERAGE_FRACTION,
    DEFAULT_TARGET_MAGNITUDE,
    SPALL_ALPHA,
    SPALL_GAMMA,
    SPSA,
    Callback,
    SPSAResult,
    TerminationChecker,
    _as_value,
    _Counter,
)

Fidelity = Callable[[np.ndarray, np.ndarray], Any]


class QNSPSA(SPSA):
    """The quantum natural SPSA optimizer (qiskit-algorithms' arguments and meaning; noisygrad's extras keyword-only).

    Args:
        fidelity: ``fidelity(x, y)`` of the ansatz states; with grouped evaluation it receives lists of points
            and returns one fidelity per pair. :meth:`get_fidelity` builds one from a sampler.
        maxiter: iterations; each direction costs 2 loss and 4 fidelity evaluations (qiskit counts all six in
            ``nfev``).
        blocking: as in :class:`~noisygrad.quantum.SPSA`, but on by default, as in qiskit.

    The other arguments (``allowed_increase``, ``learning_rate``, ``perturbation``, ``resamplings``,
    ``perturbation_dims``, ``regularization``, ``hessian_delay``, ``lse_solver``, ``initial_hessian``,
    ``callback``, ``termination_checker``) and noisygrad's keyword-only options (``last_avg``, ``seed``,
    ``stability``, ``learning_rate_decay``, ``perturbation_decay``, ``average_fraction``, ``calibration_samples``,
    ``target_magnitude``, ``final_evaluations``, ``batch``) mean what they mean for
    :class:`~noisygrad.quantum.SPSA`. QNSPSA keeps qiskit's defaults (``last_avg=1``, decays 0.602 and 0.101):
    the problem family was used to choose SPSA's defaults, not QNSPSA's.
    """

    def __init__(
        self,
        fidelity: Fidelity,
        maxiter: int = 100,
        blocking: bool = True,
        allowed_increase: float | None = None,
        learning_rate: float | Callable[[], Iterator[float]] | None = None,
        perturbation: float | Callable[[], Iterator[float]] | None = None,
        resamplings: int | dict[int, int] = 1,
        perturbation_dims: int | None = None,
        regularization: float | None = None,
        hessian_delay: int = 0,
        lse_solver: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        initial_hessian: np.ndarray | None = None,
        callback: Callback | None = None,
        termination_checker: TerminationChecker | None = None,
        *,
        last_avg: int | None = 1,
        seed: int | np.random.Generator | None = None,
        stability: float = 0.0,
        learning_rate_decay: float = SPALL_ALPHA,
        perturbation_decay: float = SPALL_GAMMA,
        average_fraction: float = DEFAULT_AVERAGE_FRACTION,
        calibration_samples: int = 25,
        target_magnitude: float = DEFAULT_TARGET_MAGNITUDE,
        final_evaluations: int = 1,
        batch: bool = True,
    ) -> None:
        if not callable(fidelity):
            raise TypeError(f"fidelity must be callable (see QNSPSA.get_fidelity), got {type(fidelity).__name__}")
        super().__init__(
            maxiter,
            blocking,
            allowed_increase,
            trust_region=False,
            learning_rate=learning_rate,
            perturbation=perturbation,
            last_avg=last_avg,
            resamplings=resamplings,
            perturbation_dims=perturbation_dims,
            second_order=True,
            regularization=regularization,
            hessian_delay=hessian_delay,
            lse_solver=lse_solver,
            initial_hessian=initial_hessian,
            callback=callback,
            termination_checker=termination_checker,
            seed=seed,
            stability=stability,
            learning_rate_decay=learning_rate_decay,
            perturbation_decay=perturbation_decay,
            average_fraction=average_fraction,
            calibration_samples=calibration_samples,
            target_magnitude=target_magnitude,
            final_evaluations=final_evaluations,
            batch=batch,
        )
        self.fidelity = fidelity
        self._fidelity_evaluations = 0

    @property
    def _evaluations_per_sample(self) -> int:
        return 6

    def _evaluate_samples(
        self,
        evaluate: _Counter,
        x: np.ndarray,
        eps: float,
        deltas1: list[np.ndarray],
        deltas2: list[np.ndarray | None],
    ) -> list[tuple[float, float, np.ndarray, np.ndarray | None]]:
        """The loss at ``x +- eps d1`` and the fidelity of ``x`` with four displaced points, per direction; the
        metric sample is ``-1/2`` of the fidelity's second difference (Gacon et al., eq. 4)."""
        loss_points: list[np.ndarray] = []
        fidelity_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for delta1, delta2 in zip(deltas1, deltas2, strict=True):
            assert delta2 is not None
            loss_points += [x + eps * delta1, x - eps * delta1]
            fidelity_pairs += [
                (x, x + eps * delta1),
                (x, x - eps * delta1),
                (x, x + eps * (delta1 + delta2)),
                (x, x + eps * (-delta1 + delta2)),
            ]
        losses = [_as_value("fun", v) for v in evaluate(loss_points)]
        fidelities = _Counter(self.fidelity, evaluate.group)
        values = np.asarray([_as_value("fidelity", v) for v in fidelities(fidelity_pairs, unpack=True)])
        self._fidelity_evaluations += fidelities.total
        samples = []
        for i, (delta1, delta2) in enumerate(zip(deltas1, deltas2, strict=True)):
            plus, minus = losses[2 * i], losses[2 * i + 1]
            f = values[4 * i : 4 * i + 4]
            assert delta2 is not None  # QNSPSA always draws a second direction
            gradient = (plus - minus) / (2 * eps) * delta1
            diff = ((f[2] - f[0]) - (f[3] - f[1])) / (2 * eps**2)
            rank_one = np.outer(delta1, delta2)
            metric = -0.5 * diff * (rank_one + rank_one.T) / 2
            samples.append((float(np.mean([plus, minus])), abs(plus - minus), gradient, metric))
        return samples

    def _run(
        self, fun: Callable[[np.ndarray], Any], x0: Any, bounds: Any, group: int, resume: Any = None
    ) -> SPSAResult:
        """SPSA's run with the fidelity's evaluations counted, from (and into) a checkpoint of QNSPSA's format.

        A ``resume`` checkpoint is checked as QNSPSA's (format, version, checksum, settings, counters) before any
        evaluation, then handed to SPSA's run re-stamped in SPSA's format, less ``fidelity_evaluations``, from
        which the fidelity counter continues. The run's own checkpoint is re-stamped the other way. The metric's
        smoothing, gains, blocking state and generator are SPSA's state (``hessian`` is the smoothed metric).
        The fidelity's own noise stream, if any, is the caller's to save and restore.
        """
        fidelity_evaluations, spsa_resume = 0, None
        if resume is not None:
            if x0 is not None:
                raise ValueError("pass either x0 (a new run) or resume= (continue a run), not both")
            saved = self._check_resume(resume)
            fidelity_evaluations = int(saved["fidelity_evaluations"])
            spsa_resume = _spsa_checkpoint.stamp(
                {key: value for key, value in saved.items() if key != "fidelity_evaluations"}
            )
        self._fidelity_evaluations = fidelity_evaluations
        result = super()._run(fun, x0, bounds, group, spsa_resume)
        result.nfev_total += self._fidelity_evaluations
        assert self._checkpoint is not None  # SPSA's run always leaves one
        self._checkpoint = _spsa_checkpoint.stamp(
            {**self._checkpoint, "fidelity_evaluations": int(self._fidelity_evaluations)},
            _spsa_checkpoint.QNSPSA_CHECKPOINT_FORMAT,
        )
        result.checkpoint = self._checkpoint
        return result

    def _check_resume(self, resume: object) -> Mapping[str, Any]:
        """``resume`` if it is a QNSPSA checkpoint this optimizer can continue; raises before any evaluation."""
        probe = resume.get("x") if isinstance(resume, Mapping) else None
        dim = int(probe.numel()) if isinstance(probe, torch.Tensor) else -1
        return _spsa_checkpoint.check(
            resume, self._checkpoint_settings(dim), self.maxiter, _spsa_checkpoint.QNSPSA_CHECKPOINT_FORMAT
        )

    @property
    def settings(self) -> dict[str, Any]:
        """qiskit's QNSPSA settings (``fidelity`` in, ``trust_region``/``second_order`` out) plus changed extras."""
        settings = super().settings
        settings["fidelity"] = self.fidelity
        settings.pop("trust_region")
        settings.pop("second_order")
        return settings

    @staticmethod
    def get_fidelity(
        circuit: QuantumCircuit,
        sampler: BaseSamplerV2,
        *,
        transpiler: Any = None,
        transpiler_options: dict[str, Any] | None = None,
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``F(x, y) = |<0| U(x)^dagger U(y) |0>|^2`` of ``circuit`` with itself, from ``sampler`` (a batch of
        pairs in one sampler job), through qiskit-algorithms' ``ComputeUncompute``."""
        if not isinstance(circuit, QuantumCircuit):
            raise TypeError(f"circuit must be a qiskit QuantumCircuit, got {type(circuit).__name__}")
        compute_uncompute = ComputeUncompute(sampler, transpiler=transpiler, transpiler_options=transpiler_options)
        num_parameters = circuit.num_parameters

        def fidelity(values_x: np.ndarray, values_y: np.ndarray) -> np.ndarray:
            left = np.reshape(values_x, (-1, num_parameters)).tolist()
            right = np.reshape(values_y, (-1, num_parameters)).tolist()
            job = compute_uncompute.run(len(left) * [circuit], len(right) * [circuit], left, right)
            return np.asarray(job.result().fidelities)

        return fidelity
