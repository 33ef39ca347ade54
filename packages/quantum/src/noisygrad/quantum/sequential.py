"""Sequential minimal optimization (Nakanishi, Fujii and Todo 2020; "Rotosolve"): one parameter at a time, to its
exact minimum along that axis, from two energy estimates per step.

When a parameter ``theta_i`` enters the circuit once, in a rotation ``exp(-i theta_i P / 2)`` with ``P`` a Pauli
string, the energy along that axis is a sinusoid ``A cos(x) + B sin(x) + C`` (``x`` the shift of ``theta_i``).
Three estimates at ``x = 0, +2 pi / 3, -2 pi / 3`` (equally spaced: each coefficient then has the smallest
variance, ``2 Var / 3`` for ``A`` and ``B``) give the three coefficients, and the minimum lies at
``x* = atan2(B, A) + pi`` with value ``C - sqrt(A**2 + B**2)``. The estimate at ``x = 0`` is not measured: it is
the value the previous step predicted for its minimum (NFT's recycling), so a step costs two estimates.

The recycled value (the *anchor*) is biased low by the noise: the fitted amplitude ``R = sqrt(A**2 + B**2)`` is
biased up by about ``Var / (3 R)`` (``Var`` one estimate's variance). Carried from step to step the bias is kept
and each step adds its own, so without re-measuring the anchor drifts below the energy: a low anchor ``E - b``
makes ``A`` about ``-2 b / 3``, so ``R`` grows with ``b``, the next minimum comes out ``b`` low again plus that
step's bias ``Var / (3 R)``, and ``b`` grows like the square root of the steps (measured on H2 at 2 shots per
group: 5.6, 7.8 and 11.1 Ha after 400, 800 and 1600 steps). That drift is what makes the method work with very
few shots: the current point looks lower than it is, so a step moves its coordinate by about ``R / (R + 3 b / 2)``
of the fitted shift, a gain that decays like ``1 / sqrt(k)`` with a constant set by the noise, and does not
decay at all without noise. The anchor is therefore not an energy estimate; measure the final point for one.
``reset_interval`` re-measures the current point every that many steps, which resets the drift and the decay
(qiskit-algorithms' ``NFT`` default is 32; here the default is never: measured on the benchmark family, the
decaying gain wins at low shot counts, see the package README).

Measured with the objective's own shots (and its :class:`~noisygrad.quantum.allocation.ShotAllocator`, if it has
one, which then spreads each estimate's shots over the measurement groups by their measured noise). Every shot goes
through the objective and is counted there. :class:`SequentialOptimizer` is the same method as a
``qiskit_algorithms`` optimizer, a drop-in for its ``NFT``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit_algorithms.optimizers import Optimizer, OptimizerResult, OptimizerSupportLevel

from noisygrad.checks import check_positive_int

from .objective import EnergyObjective
from .sampling import check_seed

SHIFT = 2 * math.pi / 3
# Gates ``exp(-i theta P / 2)`` (up to a global phase) with P a Pauli string: one frequency in each parameter.
SINGLE_FREQUENCY_GATES = frozenset({"rx", "ry", "rz", "p", "u1", "rxx", "ryy", "rzz", "rzx", "u", "u3"})


def _parameterized(instruction: Any) -> bool:
    return any(isinstance(value, ParameterExpression) for value in instruction.operation.params)


def check_single_frequency(ansatz: QuantumCircuit) -> None:
    """Raise a ``ValueError`` naming the parameter unless every parameter of ``ansatz`` enters once, in a gate of
    :data:`SINGLE_FREQUENCY_GATES`, as ``+-theta + constant`` (then the energy along its axis is one sinusoid)."""
    circuit = ansatz
    for _ in range(8):  # library blocks (EfficientSU2, controlled rotations) unfold until their parameters show
        if all(inst.operation.name in SINGLE_FREQUENCY_GATES for inst in circuit.data if _parameterized(inst)):
            break
        circuit = circuit.decompose()
    seen: dict[Any, str] = {}
    for inst in circuit.data:
        for value in inst.operation.params:
            if not isinstance(value, ParameterExpression):
                continue
            for parameter in value.parameters:
                where = f"{inst.operation.name} gate"
                if inst.operation.name not in SINGLE_FREQUENCY_GATES:
                    raise ValueError(
                        f"ansatz parameter {parameter.name!r} enters a {where}: sequential minimization needs each "
                        f"parameter in one of {sorted(SINGLE_FREQUENCY_GATES)}"
                    )
                if parameter in seen:
                    raise ValueError(
                        f"ansatz parameter {parameter.name!r} enters more than one gate ({seen[parameter]} and "
                        f"{where}): the energy along its axis is then not one sinusoid"
                    )
                slope = value.gradient(parameter)
                if isinstance(slope, ParameterExpression) or abs(abs(complex(slope)) - 1.0) > 1e-12:
                    raise ValueError(
                        f"ansatz parameter {parameter.name!r} enters its {where} as {value}: sequential "
                        "minimization needs +-theta + constant (period 2 pi)"
                    )
                seen[parameter] = where


def fit_sinusoid(now: float, plus: float, minus: float) -> tuple[float, float, float]:
    """The sinusoid ``A cos(x) + B sin(x) + C`` through the values at ``x = 0, +2 pi / 3, -2 pi / 3``: the shift
    ``x*`` to its minimum, the minimum ``C - R`` and the amplitude ``R = sqrt(A**2 + B**2)``."""
    mean = (now + plus + minus) / 3
    cos_part = (2 * now - plus - minus) / 3
    sin_part = (plus - minus) / math.sqrt(3)
    amplitude = math.hypot(cos_part, sin_part)
    return math.atan2(sin_part, cos_part) + math.pi, mean - amplitude, amplitude


@dataclass
class SequentialResult:
    """What :meth:`SequentialMinimizer.run` returns.

    ``x`` the final parameters; ``anchor`` the value the last step predicted for them (it drifts below the
    energy with the noise, see the module: not an energy estimate); ``steps`` the coordinate steps taken;
    ``evaluations`` and ``shots`` the objective's running totals; ``history`` one entry per step: ``step``,
    ``coordinate``, ``shots`` (cumulative), ``anchor`` and ``amplitude`` (the fitted ``sqrt(A**2 + B**2)``).
    """

    x: np.ndarray
    anchor: float
    steps: int
    evaluations: int
    shots: int
    history: list[dict[str, float]] = field(default_factory=list)


class SequentialMinimizer:
    """Minimizes an :class:`~noisygrad.quantum.EnergyObjective` one parameter at a time (see the module).

    Args:
        objective: the energy to minimize; its ansatz must pass :func:`check_single_frequency`. Its ``shots``
            (or its ``allocation``) decide each estimate's shots.
        initial_point: the starting parameters (copied, never changed).
        seed: an int >= 0, a ``numpy.random.Generator`` (used as is) or ``None``: every shot is drawn from it.
        reset_interval: re-measure the current point every this many steps (``0``: never, the default).

    :meth:`step` takes one coordinate step (coordinates in order, cycling); :meth:`run` takes many.
    :meth:`state_dict` and :meth:`load_state_dict` continue a run bit for bit.
    """

    def __init__(
        self,
        objective: EnergyObjective,
        initial_point: object,
        *,
        seed: int | np.random.Generator | None = None,
        reset_interval: int = 0,
    ) -> None:
        if not isinstance(objective, EnergyObjective):
            raise TypeError(f"objective must be an EnergyObjective, got {type(objective).__name__}")
        check_single_frequency(objective.ansatz)
        self.objective = objective
        self.x = objective.points(initial_point, "initial_point")[0].copy()
        self.reset_interval = check_positive_int("reset_interval", reset_interval, allow_zero=True)
        self.rng = check_seed(seed)
        self.steps = 0
        self.anchor: float | None = None  # the current point's value, measured or recycled
        self.history: list[dict[str, float]] = []

    def _measure_current(self) -> None:
        self.anchor = float(self.objective.sample(self.x[None, :], self.rng)[0])

    def step(self) -> None:
        """One coordinate step: two estimates, the sinusoid through them and the current value, its minimum."""
        if self.anchor is None or (self.reset_interval and self.steps % self.reset_interval == 0):
            self._measure_current()
        assert self.anchor is not None
        i = self.steps % self.x.size
        points = np.repeat(self.x[None, :], 2, axis=0)
        points[0, i] += SHIFT
        points[1, i] -= SHIFT
        plus, minus = self.objective.sample(points, self.rng)
        if not (math.isfinite(plus) and math.isfinite(minus)):
            raise FloatingPointError(f"the energy estimates at step {self.steps} are not finite: {plus}, {minus}")
        shift, self.anchor, amplitude = fit_sinusoid(self.anchor, float(plus), float(minus))
        self.x[i] = math.remainder(self.x[i] + shift, 2 * math.pi)  # the energy has period 2 pi in each parameter
        self.steps += 1
        self.history.append(
            {
                "step": self.steps,
                "coordinate": i,
                "shots": self.objective.shots_used,
                "anchor": self.anchor,
                "amplitude": amplitude,
            }
        )

    def run(
        self,
        *,
        max_steps: int | None = None,
        max_shots: int | None = None,
        callback: Callable[[np.ndarray, dict[str, float]], bool | None] | None = None,
    ) -> SequentialResult:
        """Steps until ``max_steps`` more steps are taken, the objective has used ``max_shots`` shots, or
        ``callback(x, history_entry)`` returns ``True`` (it gets a copy of the parameters after each step)."""
        if max_steps is None and max_shots is None and callback is None:
            raise ValueError("run needs max_steps, max_shots or a callback that returns True to stop")
        limit = None if max_steps is None else self.steps + check_positive_int("max_steps", max_steps)
        budget = None if max_shots is None else check_positive_int("max_shots", max_shots)
        while (limit is None or self.steps < limit) and (budget is None or self.objective.shots_used < budget):
            self.step()
            if callback is not None and callback(self.x.copy(), self.history[-1]):
                break
        return self.result()

    def result(self) -> SequentialResult:
        energy = math.nan if self.anchor is None else self.anchor
        return SequentialResult(
            x=self.x.copy(),
            anchor=energy,
            steps=self.steps,
            evaluations=self.objective.evaluations,
            shots=self.objective.shots_used,
            history=[dict(h) for h in self.history],
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything a continuation needs: parameters, recycled value, step count, the shot stream, the
        objective's counters and its allocator's running noise estimates."""
        allocation = self.objective.allocation
        return {
            "x": self.x.tolist(),
            "anchor": self.anchor,
            "steps": self.steps,
            "rng": self.rng.bit_generator.state,
            "evaluations": self.objective.evaluations,
            "shots_used": self.objective.shots_used,
            "allocation": None if allocation is None else allocation.state_dict(),
            "history": [dict(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        x = np.asarray(state["x"], dtype=float)
        if x.shape != self.x.shape:
            raise ValueError(f"state holds {x.size} parameters, this objective has {self.x.size}")
        if (state["allocation"] is None) != (self.objective.allocation is None):
            raise ValueError("state and objective differ in whether shots are allocated across groups")
        self.x = x.copy()
        self.anchor = state["anchor"]
        self.steps = int(state["steps"])
        self.rng.bit_generator.state = state["rng"]
        self.objective.evaluations = int(state["evaluations"])
        self.objective.shots_used = int(state["shots_used"])
        if self.objective.allocation is not None:
            self.objective.allocation.load_state_dict(state["allocation"])
        self.history = [dict(h) for h in state["history"]]


class SequentialOptimizer(Optimizer):  # type: ignore[misc]
    """The same method as a ``qiskit_algorithms`` optimizer, for ``VQE(estimator, ansatz, optimizer=...)``: the
    arguments of qiskit-algorithms' ``NFT`` (which fits with shifts of pi/2 and re-measures every 32 steps), with
    shifts of 2 pi / 3 and, by default, no re-measuring (see the module).

    Args:
        maxiter: coordinate steps (``None``: no limit but ``maxfev``).
        maxfev: evaluations of ``fun`` (``None``: no limit but ``maxiter``); each step costs two, and one more
            for the first and every re-measured point.
        disp: accepted for qiskit's signature; nothing is printed.
        reset_interval: re-measure the current point every this many steps (``0``: never).
        callback: ``callback(x)`` after each step, as qiskit's ``NFT`` calls it.

    ``fun`` must be the energy of an ansatz whose parameters each enter one rotation by ``+-theta + constant``
    (:func:`check_single_frequency` checks a circuit). The two points of a step go to ``fun`` in one call when
    ``set_max_evals_grouped(2)`` (or more) was called (``qiskit_algorithms.VQE`` then measures both at once).
    """

    def __init__(
        self,
        maxiter: int | None = None,
        maxfev: int | None = 1024,
        disp: bool = False,
        reset_interval: int = 0,
        callback: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        super().__init__()
        if maxiter is None and maxfev is None:
            raise ValueError("maxiter and maxfev cannot both be None: the run would never end")
        self.maxiter = None if maxiter is None else check_positive_int("maxiter", maxiter)
        self.maxfev = None if maxfev is None else check_positive_int("maxfev", maxfev)
        self.disp = bool(disp)
        self.reset_interval = check_positive_int("reset_interval", reset_interval, allow_zero=True)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
        self.callback = callback

    def get_support_level(self) -> dict[str, OptimizerSupportLevel]:
        """Gradients and bounds are ignored (as by qiskit's ``NFT``); an initial point is required."""
        return {
            "gradient": OptimizerSupportLevel.ignored,
            "bounds": OptimizerSupportLevel.ignored,
            "initial_point": OptimizerSupportLevel.required,
        }

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "maxiter": self.maxiter,
            "maxfev": self.maxfev,
            "disp": self.disp,
            "reset_interval": self.reset_interval,
            "callback": self.callback,
        }

    def minimize(
        self,
        fun: Callable[[np.ndarray], Any],
        x0: Sequence[float] | np.ndarray,
        jac: Callable[[np.ndarray], np.ndarray] | None = None,
        bounds: Sequence[tuple[float | None, float | None]] | None = None,
    ) -> OptimizerResult:
        """Minimize ``fun`` from ``x0`` (copied); ``result.fun`` is a fresh evaluation at the final point (as in
        qiskit's ``NFT``: the recycled value drifts below the energy, see the module), ``nfev`` the evaluations
        (that one included), ``nit`` the steps."""
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        x = np.array(x0, dtype=float).reshape(-1)
        if x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"x0 must be a non-empty array of finite numbers, got {x0!r}")
        grouped = (self._max_evals_grouped or 1) >= 2
        nfev = 0

        def evaluate(points: np.ndarray) -> np.ndarray:
            nonlocal nfev
            nfev += len(points)
            if grouped:
                values = np.asarray(fun(points), dtype=float).reshape(-1)
            else:
                values = np.array([float(np.asarray(fun(p), dtype=float).reshape(-1)[0]) for p in points])
            if values.shape != (len(points),) or not np.all(np.isfinite(values)):
                raise FloatingPointError(f"fun returned {values!r} for {len(points)} points: not finite values")
            return values

        now: float | None = None
        steps = 0
        while (self.maxiter is None or steps < self.maxiter) and (self.maxfev is None or nfev < self.maxfev):
            if now is None or (self.reset_interval and steps % self.reset_interval == 0):
                now = float(evaluate(x[None, :])[0])
            i = steps % x.size
            points = np.repeat(x[None, :], 2, axis=0)
            points[0, i] += SHIFT
            points[1, i] -= SHIFT
            plus, minus = evaluate(points)
            shift, now, _ = fit_sinusoid(now, float(plus), float(minus))
            x[i] = math.remainder(x[i] + shift, 2 * math.pi)
            steps += 1
            if self.callback is not None:
                self.callback(x.copy())
        result = OptimizerResult()
        result.fun = float(evaluate(x[None, :])[0])
        result.x, result.nfev, result.nit = x, nfev, steps
        return result
