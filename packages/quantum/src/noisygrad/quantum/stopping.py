"""Shot-aware stopping: stop when the energy no longer moves by more than its own standard error.

A fixed iteration budget either stops too early or pays for steps whose progress is buried in the shot noise.
:class:`ShotAwareStopping` measures the energy at the current iterate every ``every`` steps (``shots`` shots per
measurement group, counted by the objective like every other shot) and stops once, for ``window`` consecutive
checks, the change between successive measurements is below the standard error of that change,
``|E_k - E_{k-1}| < z * sqrt(se_k**2 + se_{k-1}**2)``. It then reports the last energy with its standard error
(:attr:`energy`, :attr:`stderr`) and the checks it made (:attr:`history`).

It is a :func:`noisygrad.minimize` callback (``callbacks=[stopping]``: it returns ``True`` to stop) and, through
:meth:`termination_checker`, a qiskit-algorithms ``termination_checker`` for ``SPSA`` (which passes the iterate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from noisygrad.checks import check_positive_int

from ._spsa_checkpoint import plain, unplain
from .objective import EnergyObjective


class ShotAwareStopping:
    """Stop a VQE run once the energy's change stays below its own standard error (see the module).

    Args:
        objective: the run's :class:`EnergyObjective` (its shots and counters are used and updated).
        seed: an int >= 0 or a ``numpy.random.Generator``: the stream of the check measurements.
        window: consecutive checks whose change must be below its standard error (>= 1).
        every: steps between checks (>= 1).
        shots: shots per measurement group of each check (default: the objective's ``shots``).
        z: how many standard errors count as "no change" (> 0; 1 is the plain rule).
    """

    def __init__(
        self,
        objective: EnergyObjective,
        seed: int | np.random.Generator = 0,
        *,
        window: int = 3,
        every: int = 10,
        shots: int | None = None,
        z: float = 1.0,
    ) -> None:
        if not isinstance(objective, EnergyObjective):
            raise TypeError(f"objective must be an EnergyObjective, got {type(objective).__name__}")
        self.objective = objective
        self.window = check_positive_int("window", window)
        self.every = check_positive_int("every", every)
        self.shots = objective.shots if shots is None else check_positive_int("shots", shots)
        if isinstance(z, bool) or not isinstance(z, (int, float)) or not math.isfinite(z) or z <= 0:
            raise ValueError(f"z must be a finite number > 0, got {z!r}")
        self.z = float(z)
        if isinstance(seed, np.random.Generator):
            self._rng = seed
        else:
            self._rng = np.random.default_rng(check_positive_int("seed", seed, allow_zero=True))
        self.history: list[dict[str, Any]] = []
        self._calls = 0
        self._quiet = 0
        self.stopped = False

    def state_dict(self) -> dict[str, Any]:
        """The rule's state as plain numbers (its check stream, checks and counters), for a checkpoint."""
        return {
            "rng": plain(self._rng.bit_generator.state),
            "history": [dict(entry) for entry in self.history],
            "calls": self._calls,
            "quiet": self._quiet,
            "stopped": self.stopped,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue where :meth:`state_dict` left off (checked before anything changes)."""
        if not isinstance(state, Mapping) or set(state) != {"rng", "history", "calls", "quiet", "stopped"}:
            raise ValueError(
                "state must be a ShotAwareStopping.state_dict() (keys rng, history, calls, quiet, stopped)"
            )
        calls = check_positive_int("state['calls']", state["calls"], allow_zero=True)
        quiet = check_positive_int("state['quiet']", state["quiet"], allow_zero=True)
        trial = np.random.Generator(type(self._rng.bit_generator)())
        try:
            trial.bit_generator.state = unplain(state["rng"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"state['rng'] is not a state of this rule's generator: {exc}") from None
        self._rng.bit_generator.state = trial.bit_generator.state
        self.history = [dict(entry) for entry in state["history"]]
        self._calls, self._quiet, self.stopped = calls, quiet, bool(state["stopped"])

    @property
    def energy(self) -> float | None:
        """The last measured energy (``None`` before the first check)."""
        return self.history[-1]["energy"] if self.history else None

    @property
    def stderr(self) -> float | None:
        """The standard error of :attr:`energy` (from its samples)."""
        return self.history[-1]["stderr"] if self.history else None

    def check(self, x: object, step: int) -> bool:
        """Measure the energy at ``x``; ``True`` once ``window`` successive changes were within their error."""
        energy = float(self.objective.sample(x, self._rng, shots=self.shots)[0])
        stderr = float(self.objective.last_stds[0])
        if not (math.isfinite(energy) and math.isfinite(stderr)):
            raise ValueError(f"the energy check at step {step} gave a non-finite value ({energy} +- {stderr})")
        entry: dict[str, Any] = {"step": step, "energy": energy, "stderr": stderr, "shots": self.objective.shots_used}
        if self.history:
            prev = self.history[-1]
            change, bound = energy - prev["energy"], self.z * math.hypot(stderr, prev["stderr"])
            self._quiet = self._quiet + 1 if abs(change) < bound else 0
            entry.update(change=change, bound=bound, quiet=self._quiet)
        self.history.append(entry)
        self.stopped = self._quiet >= self.window
        return self.stopped

    def __call__(self, info: Any) -> bool:
        """A :func:`noisygrad.minimize` callback: checks every ``every`` steps, ``True`` to stop."""
        self._calls += 1
        if self._calls % self.every:
            return False
        return self.check(info.x, info.step)

    def termination_checker(self, nfev: int, x: np.ndarray, fx: float, step: float, accepted: bool) -> bool:
        """qiskit-algorithms' ``TERMINATIONCHECKER`` signature ``(nfev, x, fx, |step|, accepted)``."""
        self._calls += 1
        if not accepted or self._calls % self.every:
            return False
        return self.check(x, self._calls)
