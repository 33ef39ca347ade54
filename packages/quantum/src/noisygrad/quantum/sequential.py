"""Sequential minimal optimization (Nakanishi, Fujii and Todo 2020; "Rotosolve"): one parameter at a time, to its
exact minimum along that axis, from two energy estimates per step.

When a parameter ``theta_i`` enters the circuit once, in a rotation ``exp(-i theta_i P / 2)`` with ``P`` a Pauli
string, the energy along that axis is a sinusoid ``A cos(x) + B sin(x) + C`` (``x`` the shift of ``theta_i``).
Three estimates at ``x = 0, +2 pi / 3, -2 pi / 3`` (equally spaced: each coefficient then has the smallest
variance, ``2 Var / 3`` for ``A`` and ``B``) give the three coefficients, and the minimum lies at
``x* = atan2(B, A) + pi`` with value ``C - sqrt(A**2 + B**2)``. The estimate at ``x = 0`` is not measured: it is
the value the previous step predicted for its minimum (NFT's recycling), so a step costs two estimates.

The recycled value (the *anchor*) is biased low by the noise: the fitted amplitude ``R = sqrt(A**2 + B**2)`` is
biased up by about ``Var_perp / (2 R)`` (``Var_perp`` the variance of ``(A, B)`` across its direction; ``2 Var / 3``
for three estimates of variance ``Var``, so the bias is ``Var / (3 R)``). Carried from step to step the bias is kept
and each step adds its own. An anchor low by ``b`` makes the fitted ``A`` lower by ``2 b / 3``, so near an axis'
minimum the fitted amplitude is about ``R + 2 b / 3``: the next minimum comes out ``b`` low again, plus that step's
bias ``Var / (3 (R + 2 b / 3))``. Once ``b`` dwarfs ``R`` each step adds about ``Var / (2 b)``, so ``b`` grows like
``sqrt(Var * k)`` after ``k`` steps (measured on H2 at 2 shots per group: 5.6, 7.8 and 11.1 Ha after 400, 800 and
1600 steps, where this estimate gives about 6.5 Ha at 400). That drift is what makes the method work with very few
shots: the current point looks lower than it is, so a step moves its coordinate by about ``R / (R + 2 b / 3)`` of
the fitted shift, a gain that decays like ``1 / sqrt(k)`` with a constant set by the noise, and does not decay at
all without noise. The anchor is therefore not an energy estimate; measure the final point for one.
``reset_interval`` re-measures the current point every that many steps, which resets the drift and the decay.
qiskit-algorithms' ``NFT`` re-measures every 32 steps; here the default is never. Measured at 2 shots per group,
5 seeds (package README): re-measuring every 32 steps, the median shots to chemical accuracy were 7.3e4 on H2 and
6.1e3 on HeH+; never re-measuring, 9.7e3 and 2.5e3.

``shots_growth`` (default 1: fixed shots) multiplies the shots per group by that factor every sweep (``P`` steps
for ``P`` parameters), from the objective's ``shots``, and re-measures the current point at each sweep's start, so
that each sweep's recycled value comes from its own shot count. Far from a minimum few shots move every coordinate
the right way; near it the noise of a step, about ``Var / (3 R)`` of energy, has to fall below the target, and the
schedule gets there without knowing the problem's noise, amplitude or target. Why a schedule and not a rule on the
measured progress: a sweep's measured decrease is small both when the noise floor is reached and when coordinate
descent crawls along a valley (measured with a prototype, not kept, on ``tfim_4``, seed 1: a rule that doubled
the shots when a sweep's decrease was below twice its noise expectation ran them to 5e5 per group while the error
sat between 0.013 and 0.017 for ten sweeps), and the two cannot be told apart from one sweep. Measured on the
benchmark family (package README), a growth of 1.1 from 2 shots reaches the target on more problems than qiskit's
SPSA at its best fixed count, with 0.2x-1.4x its shots where both do, and on the small molecules with 3-6x more
shots than fixed 2 shots per group.

Measured with the objective's own shots (and its :class:`~noisygrad.quantum.allocation.ShotAllocator`, if it has
one, which then spreads each estimate's shots over the measurement groups by their measured noise). Every shot goes
through the objective and is counted there. :class:`SequentialOptimizer` is the same method as a
``qiskit_algorithms`` optimizer with the arguments of its ``NFT``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterExpression
from qiskit_algorithms.optimizers import Optimizer, OptimizerResult, OptimizerSupportLevel

from noisygrad.checks import check_in_range, check_positive_int

from .objective import EnergyObjective
from .sampling import check_seed

SHIFT = 2 * math.pi / 3
MAX_SHOTS_PER_GROUP = 2**53
"""The most shots per group ``shots_growth`` may ask for (integers up to here are exact in a float)."""
# Gates ``exp(-i theta P / 2)`` (up to a global phase) with P a Pauli string: one frequency in each parameter.
SINGLE_FREQUENCY_GATES = frozenset({"rx", "ry", "rz", "p", "u1", "rxx", "ryy", "rzz", "rzx", "u", "u3"})


def _parameterized(instruction: Any) -> bool:
    return any(isinstance(value, ParameterExpression) for value in instruction.operation.params)


def check_single_frequency(ansatz: QuantumCircuit) -> None:
    """Raise a ``ValueError`` naming the parameter unless every parameter of ``ansatz`` enters once, in a gate of
    :data:`SINGLE_FREQUENCY_GATES`, as ``+-theta + constant`` (then the energy along its axis is one sinusoid)."""
    circuit = ansatz
    # library blocks (EfficientSU2, controlled rotations) unfold until their parameterized gates are known ones, or
    # unfolding changes nothing more
    while not all(inst.operation.name in SINGLE_FREQUENCY_GATES for inst in circuit.data if _parameterized(inst)):
        unfolded = circuit.decompose()
        if [inst.operation.name for inst in unfolded.data] == [inst.operation.name for inst in circuit.data]:
            break
        circuit = unfolded
    seen: dict[Any, str] = {}
    for index, inst in enumerate(circuit.data):
        for slot, value in enumerate(inst.operation.params):
            if not isinstance(value, ParameterExpression):
                continue
            for parameter in value.parameters:
                where = f"{inst.operation.name} gate (instruction {index}, argument {slot})"
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
                if isinstance(slope, ParameterExpression) or not _is_unit(complex(slope)):
                    raise ValueError(
                        f"ansatz parameter {parameter.name!r} enters its {where} as {value}: sequential "
                        "minimization needs +-theta + constant (period 2 pi)"
                    )
                seen[parameter] = where


def _is_unit(slope: complex) -> bool:
    """Whether a parameter's slope is +-1 (real): then its gate has period 2 pi in it."""
    return slope.imag == 0 and abs(abs(slope.real) - 1.0) <= 1e-12


def fit_sinusoid(now: float, plus: float, minus: float) -> tuple[float, float, float]:
    """The sinusoid ``A cos(x) + B sin(x) + C`` through the values at ``x = 0, +2 pi / 3, -2 pi / 3``: the shift
    ``x*`` to its minimum, the minimum ``C - R`` and the amplitude ``R = sqrt(A**2 + B**2)``."""
    mean = (now + plus + minus) / 3
    cos_part = (2 * now - plus - minus) / 3
    sin_part = (plus - minus) / math.sqrt(3)
    amplitude = math.hypot(cos_part, sin_part)
    if amplitude == 0.0:  # a flat axis: stay (atan2(0, 0) + pi would move by pi for nothing)
        return 0.0, mean, 0.0
    return math.atan2(sin_part, cos_part) + math.pi, mean - amplitude, amplitude


def shifted_points(x: np.ndarray, i: int) -> np.ndarray:
    """The two points ``(2, P)`` of a step on coordinate ``i``: ``x`` with ``x_i`` shifted by ``+-2 pi / 3``."""
    points = np.repeat(x[None, :], 2, axis=0)
    points[0, i] += SHIFT
    points[1, i] -= SHIFT
    return points


def step_to_minimum(x: np.ndarray, i: int, now: float, plus: float, minus: float) -> tuple[float, float]:
    """Move ``x[i]`` (in place, wrapped to ``[-pi, pi]``: the energy has period 2 pi in it) to the minimum of the
    sinusoid through ``now`` and the values at ``x[i] +- 2 pi / 3``; return that minimum (the next anchor) and the
    amplitude. The one step both :class:`SequentialMinimizer` and :class:`SequentialOptimizer` take."""
    shift, minimum, amplitude = fit_sinusoid(now, plus, minus)
    x[i] = math.remainder(x[i] + shift, 2 * math.pi)
    return minimum, amplitude


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise FloatingPointError(f"{what} are not finite: {values}")
    return values


@dataclass
class SequentialResult:
    """What :meth:`SequentialMinimizer.run` returns.

    ``x`` the final parameters (each wrapped to ``[-pi, pi]``: the energy has period 2 pi in each); ``anchor``
    the value the last step predicted for them (it drifts below the energy with the noise, see the module: not an
    energy estimate); ``steps`` the coordinate steps taken;
    ``evaluations`` and ``shots`` the objective's running totals; ``history`` one entry per step: ``step``,
    ``coordinate``, ``shots`` (cumulative), ``estimate_shots`` (the shots of each of its two estimates, over all
    groups), ``anchor`` and ``amplitude`` (the fitted ``sqrt(A**2 + B**2)``).
    """

    x: np.ndarray
    anchor: float
    steps: int
    evaluations: int
    shots: int
    history: list[dict[str, float]]  # step and coordinate are whole numbers


class SequentialMinimizer:
    """Minimizes an :class:`~noisygrad.quantum.EnergyObjective` one parameter at a time (see the module).

    Args:
        objective: the energy to minimize; its ansatz must pass :func:`check_single_frequency`. Its ``shots``
            (or its ``allocation``) decide each estimate's shots.
        initial_point: the starting parameters (copied, never changed).
        seed: an int >= 0, a ``numpy.random.Generator`` (used as is: its stream goes on) or ``None``: every shot
            is drawn from it. :meth:`load_state_dict` replaces it with a generator of the saved state (the
            caller's is left as it is).
        reset_interval: re-measure the current point every this many steps (``0``: never, the default).
        shots_growth: a real >= 1: the shots per group of sweep ``s`` (``s = steps // P``) are
            ``round(objective.shots * shots_growth ** s)``, and each sweep starts by re-measuring the current point
            (see the module). ``1`` (the default): the objective's shots (or its allocation) throughout. Not with
            an objective that allocates its shots across groups.

    :meth:`step` takes one coordinate step (coordinates in order, cycling); :meth:`run` takes many;
    :attr:`shots_per_group` says what the next step measures with.
    :meth:`state_dict` and :meth:`load_state_dict` continue a run bit for bit.
    """

    def __init__(
        self,
        objective: EnergyObjective,
        initial_point: object,
        *,
        seed: int | np.random.Generator | None = None,
        reset_interval: int = 0,
        shots_growth: float = 1.0,
    ) -> None:
        if not isinstance(objective, EnergyObjective):
            raise TypeError(f"objective must be an EnergyObjective, got {type(objective).__name__}")
        check_single_frequency(objective.ansatz)
        self.objective = objective
        self.x = objective.points(initial_point, "initial_point")[0].copy()
        self.reset_interval = check_positive_int("reset_interval", reset_interval, allow_zero=True)
        self.shots_growth = check_in_range("shots_growth", shots_growth, 1.0, math.inf)
        if self.shots_growth != 1.0 and objective.allocation is not None:
            raise ValueError(
                "shots_growth must be 1 for an objective that allocates its shots across groups (its allocator "
                "sets every estimate's shots)"
            )
        self.rng = check_seed(seed)
        self.steps = 0
        self.anchor: float | None = None  # the current point's value, measured or recycled
        self.history: list[dict[str, float]] = []

    @property
    def shots_per_group(self) -> int | None:
        """The shots per group of the next step's estimates (``None``: the objective's own, or its allocation's)."""
        if self.shots_growth == 1.0:
            return None
        sweep = self.steps // self.x.size
        shots = self.objective.shots * self.shots_growth**sweep  # >= 1: shots >= 1 and shots_growth >= 1
        if shots > MAX_SHOTS_PER_GROUP:
            raise OverflowError(
                f"shots_growth={self.shots_growth} asks for {shots:.3g} shots per group at sweep {sweep}, more than "
                f"{MAX_SHOTS_PER_GROUP:.3g}: cap the run with max_shots or max_steps, or grow more slowly"
            )
        return round(shots)

    def _measure(self, points: np.ndarray) -> np.ndarray:
        return self.objective.sample(points, self.rng, shots=self.shots_per_group)

    def step(self) -> None:
        """One coordinate step: two estimates, the sinusoid through them and the current value, its minimum."""
        i = self.steps % self.x.size
        growing_sweep_starts = self.shots_growth != 1.0 and i == 0
        if (
            self.anchor is None
            or growing_sweep_starts
            or (self.reset_interval and self.steps % self.reset_interval == 0)
        ):
            measured = self._measure(self.x[None, :])
            self.anchor = float(_finite(measured, f"the energy estimate of the current point at step {self.steps}")[0])
        assert self.anchor is not None
        before = self.objective.shots_used
        plus, minus = _finite(self._measure(shifted_points(self.x, i)), f"the energy estimates at step {self.steps}")
        self.anchor, amplitude = step_to_minimum(self.x, i, self.anchor, float(plus), float(minus))
        self.steps += 1
        self.history.append(
            {
                "step": self.steps,
                "coordinate": i,
                "shots": self.objective.shots_used,
                "estimate_shots": (self.objective.shots_used - before) / 2,
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
        """Steps until ``max_steps`` more steps are taken, the objective's running total reaches ``max_shots``
        shots (checked before each step, so the last step may pass it by one step's shots), or
        ``callback(x, history_entry)`` returns ``True`` (it gets a copy of the parameters after each step)."""
        if max_steps is None and max_shots is None and callback is None:
            raise ValueError("run needs max_steps, max_shots or a callback that returns True to stop")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
        limit = None if max_steps is None else self.steps + check_positive_int("max_steps", max_steps)
        budget = None if max_shots is None else check_positive_int("max_shots", max_shots)
        while (limit is None or self.steps < limit) and (budget is None or self.objective.shots_used < budget):
            self.step()
            if callback is not None and callback(self.x.copy(), self.history[-1]):
                break
        return self.result()

    def result(self) -> SequentialResult:
        """Where the run stands (``anchor`` NaN before the first step)."""
        return SequentialResult(
            x=self.x.copy(),
            anchor=math.nan if self.anchor is None else self.anchor,
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
            "reset_interval": self.reset_interval,
            "shots_growth": self.shots_growth,
            "objective_shots": self.objective.shots,
            "rng": self.rng.bit_generator.state,
            "evaluations": self.objective.evaluations,
            "shots_used": self.objective.shots_used,
            "allocation": None if allocation is None else allocation.state_dict(),
            "history": [dict(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s ``state``: everything is checked before anything is set, so a refused
        state leaves this minimizer (and the objective) as it was. The objective's ``last_stds`` and
        ``last_group_shots`` are not part of the state: they describe the last call, made again on the next step."""
        x = np.asarray(state["x"], dtype=float)
        if x.shape != self.x.shape or not np.all(np.isfinite(x)):
            raise ValueError(f"state holds {x.size} parameters (finite ones needed), this objective has {self.x.size}")
        if int(state["reset_interval"]) != self.reset_interval:
            raise ValueError(
                f"state was saved with reset_interval={state['reset_interval']}, this minimizer has "
                f"{self.reset_interval}: the continuation would take other steps"
            )
        # states saved before these entries existed had no growth, and did not record the objective's shots
        saved_growth, saved_shots = state.get("shots_growth", 1.0), state.get("objective_shots")
        if float(saved_growth) != self.shots_growth or saved_shots not in (None, self.objective.shots):
            raise ValueError(
                f"state was saved with shots_growth={saved_growth} and objective shots {saved_shots}, this "
                f"minimizer has {self.shots_growth} and {self.objective.shots}: the continuation would measure "
                "with other shots"
            )
        allocation = self.objective.allocation
        if (state["allocation"] is None) != (allocation is None):
            raise ValueError("state and objective differ in whether shots are allocated across groups")
        rng = np.random.Generator(getattr(np.random, state["rng"]["bit_generator"])())
        rng.bit_generator.state = state["rng"]
        if allocation is not None:  # the first change, and it checks the shapes before it changes anything
            allocation.load_state_dict(state["allocation"])
        self.x = x.copy()
        self.anchor = None if state["anchor"] is None else float(state["anchor"])
        self.steps = int(state["steps"])
        self.rng = rng
        self.objective.evaluations = int(state["evaluations"])
        self.objective.shots_used = int(state["shots_used"])
        self.history = [dict(h) for h in state["history"]]


class SequentialOptimizer(Optimizer):  # type: ignore[misc]
    """The same method as a ``qiskit_algorithms`` optimizer, for ``VQE(estimator, ansatz, optimizer=...)``: the
    arguments ``maxiter``, ``maxfev``, ``disp`` and ``reset_interval`` of qiskit-algorithms' ``NFT`` (which fits with
    shifts of pi/2 and re-measures every 32 steps), with shifts of 2 pi / 3 and, by default, no re-measuring (see the
    module). It cannot see the ansatz: check it with :func:`check_single_frequency`.

    Args:
        maxiter: coordinate steps (``None``: no limit but ``maxfev``).
        maxfev: evaluations of ``fun`` (``None``: no limit but ``maxiter``); each step costs two, and one more
            for the first and every re-measured point. Checked after each step (as qiskit's ``NFT`` does), so a run
            stops once ``nfev >= maxfev``; the final point's evaluation comes on top (qiskit's ``nfev`` leaves it
            out, here it is counted).
        disp: accepted for qiskit's signature; nothing is printed.
        reset_interval: re-measure the current point every this many steps (``0`` or negative: never, as in
            qiskit's ``NFT``).
        callback: ``callback(x)`` after each step, as qiskit's ``NFT`` calls it.

    ``fun`` measures with its own shots, so there is no ``shots_growth`` here: grow the shots inside ``fun``, or use
    :class:`SequentialMinimizer` on an :class:`~noisygrad.quantum.EnergyObjective`.

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
        if isinstance(reset_interval, bool) or not isinstance(reset_interval, Integral):
            raise TypeError(f"reset_interval must be an integer, got {type(reset_interval).__name__}")
        self.reset_interval: int = max(int(reset_interval), 0)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
        self.callback: Callable[[np.ndarray], None] | None = callback

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
        x = np.array(x0, dtype=float)
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"x0 must be a non-empty 1-D array of finite numbers, got {x0!r}")
        grouped = (self._max_evals_grouped or 1) >= 2
        nfev = 0

        def evaluate(points: np.ndarray) -> np.ndarray:
            nonlocal nfev
            nfev += len(points)
            if grouped:
                values = np.asarray(fun(points), dtype=float).ravel()
            else:
                values = np.array([float(np.ravel(fun(p))[0]) for p in points])
            if values.shape != (len(points),):
                raise ValueError(f"fun returned {values.shape[0]} values for {len(points)} points")
            return _finite(values, f"fun's values at {len(points)} points")

        now: float | None = None
        steps = 0
        while (self.maxiter is None or steps < self.maxiter) and (self.maxfev is None or nfev < self.maxfev):
            if now is None or (self.reset_interval and steps % self.reset_interval == 0):
                now = float(evaluate(x[None, :])[0])
            i = steps % x.size
            plus, minus = evaluate(shifted_points(x, i))
            now, _ = step_to_minimum(x, i, now, float(plus), float(minus))
            steps += 1
            if self.callback is not None:
                self.callback(x.copy())
        result = OptimizerResult()
        result.fun = float(evaluate(x[None, :])[0])
        result.x, result.nfev, result.nit = x, nfev, steps
        return result
