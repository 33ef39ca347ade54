"""A measured claim: what the theory predicts, what a run measured, and whether they agree.

Every headline experiment of the tour (the core's and each plugin's) returns a list of :class:`Finding`,
so one report can hold every claim of the suite to a number. A finding may carry a :class:`Curve`: the
prediction and the measurement along a swept parameter (batch size, step size, shots ...), which the report
draws beside each other. This module imports nothing heavy, so reports can be read without torch.

Most claims predict a value: they pass when ``|measured - predicted| <= tolerance``. Some claims are bounds
("the relative L2 error is at most 1e-3", "fewer than 1% of pairs are skipped"): build those with
:meth:`Finding.at_most` or :meth:`Finding.at_least`, so that the report draws them as bounds, not as a
prediction of 0 with a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def _floats(name: str, values: Sequence[float]) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        try:  # numpy arrays and torch tensors are not Sequences but iterate as numbers
            values = list(values)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from None
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers: {exc}") from None


@dataclass(frozen=True)
class Curve:
    """A prediction and a measurement along one swept parameter, for the report to draw side by side.

    Attributes:
        x_label: the x axis label with its unit, e.g. ``"batch size b (examples)"``.
        y_label: the y axis label with its unit, e.g. ``"E|g_b - g|^2 (gradient units^2)"``.
        x: the swept values at which the measurement was taken.
        measured: the measurement at each ``x`` (NaN marks a point that diverged; it is not drawn).
        predicted: the theory, at each ``predicted_x`` (or at each ``x`` when ``predicted_x`` is empty).
        uncertainty: one standard error of each measured point; empty when not known.
        predicted_x: a finer grid for a smooth theory curve; empty to use ``x``.
        log_x: draw the x axis on a log scale.
        log_y: draw the y axis on a log scale.

    Raises:
        ValueError: if the series lengths do not match or an ``x`` value is not finite.
    """

    x_label: str
    y_label: str
    x: Sequence[float]
    measured: Sequence[float]
    predicted: Sequence[float]
    uncertainty: Sequence[float] = ()
    predicted_x: Sequence[float] = ()
    log_x: bool = False
    log_y: bool = False

    def __post_init__(self) -> None:
        for name in ("x", "measured", "predicted", "uncertainty", "predicted_x"):
            object.__setattr__(self, name, _floats(f"Curve.{name}", getattr(self, name)))
        n = len(self.x)
        if n == 0:
            raise ValueError("Curve.x must hold at least one value")
        if not all(math.isfinite(v) for v in (*self.x, *self.predicted_x)):
            raise ValueError("Curve.x and Curve.predicted_x must be finite")
        if len(self.measured) != n:
            raise ValueError(f"Curve.measured has {len(self.measured)} values but Curve.x has {n}; they must match")
        if self.uncertainty and len(self.uncertainty) != n:
            raise ValueError(
                f"Curve.uncertainty has {len(self.uncertainty)} values but Curve.x has {n}; give one per x or none"
            )
        grid = len(self.predicted_x) or n
        if len(self.predicted) != grid:
            where = "Curve.predicted_x" if self.predicted_x else "Curve.x"
            raise ValueError(
                f"Curve.predicted has {len(self.predicted)} values but {where} has {grid}; they must match"
            )

    @property
    def prediction_grid(self) -> tuple[float, ...]:
        """The abscissae of ``predicted``: ``predicted_x`` if given, else ``x``."""
        return tuple(self.predicted_x or self.x)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Curve:
        """Rebuild a curve from :meth:`Finding.as_dict` output (``results.json``)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


#: The kinds of claim a :class:`Finding` states: a predicted value (``""``), an upper or a lower bound.
BOUNDS = ("", "upper", "lower")


@dataclass(frozen=True)
class Finding:
    """One claim held to a number.

    Attributes:
        experiment: the experiment that produced it (``"core.minibatch-variance"``).
        claim: the statement under test, in words.
        predicted: the value the theory predicts (for a bound: the ideal value, e.g. 0 for an error).
        measured: the value the run measured.
        uncertainty: one standard error of ``measured`` (Monte-Carlo error), or 0 for exact quantities.
        tolerance: the largest ``|measured - predicted|`` that still passes (for a bound: how far past the
            ideal value the measurement may go; the bound is ``predicted +/- tolerance``).
        unit: the unit of ``predicted`` and ``measured`` (empty when dimensionless).
        details: any further numbers worth reporting (seeds, sizes, wall time).
        curve: optionally, the prediction and measurement along a swept parameter, drawn in the report.
        bound: ``""`` for a predicted value; ``"upper"`` for a claim ``measured <= predicted + tolerance``;
            ``"lower"`` for a claim ``measured >= predicted - tolerance`` (see :meth:`at_most`, :meth:`at_least`).

    Raises:
        ValueError: if ``bound`` is not one of :data:`BOUNDS`.
    """

    experiment: str
    claim: str
    predicted: float
    measured: float
    uncertainty: float
    tolerance: float
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    curve: Curve | None = None
    bound: str = ""

    def __post_init__(self) -> None:
        if self.bound not in BOUNDS:
            raise ValueError(f"Finding.bound must be one of {BOUNDS}, got {self.bound!r}")

    @classmethod
    def at_most(
        cls,
        experiment: str,
        claim: str,
        bound: float,
        measured: float,
        uncertainty: float = 0.0,
        unit: str = "",
        details: dict[str, Any] | None = None,
        curve: Curve | None = None,
        *,
        ideal: float = 0.0,
    ) -> Finding:
        """An upper-bound claim, ``measured <= bound``: an error, a distance, a fraction of failures.

        Args:
            bound: the largest measurement that passes.
            ideal: the value a perfect run would measure (0 for an error), at or below ``bound``.

        Raises:
            ValueError: if ``bound`` is below ``ideal``.
        """
        if not bound >= ideal:
            raise ValueError(f"an upper bound must be at least the ideal value {ideal!r}, got bound={bound!r}")
        return cls(
            experiment, claim, ideal, measured, uncertainty, bound - ideal, unit, dict(details or {}), curve, "upper"
        )

    @classmethod
    def at_least(
        cls,
        experiment: str,
        claim: str,
        bound: float,
        measured: float,
        uncertainty: float = 0.0,
        unit: str = "",
        details: dict[str, Any] | None = None,
        curve: Curve | None = None,
        *,
        ideal: float,
    ) -> Finding:
        """A lower-bound claim, ``measured >= bound``: a fraction of successes, a speed-up.

        Args:
            bound: the smallest measurement that passes.
            ideal: the value a perfect run would measure (1 for a fraction of successes), at or above ``bound``.

        Raises:
            ValueError: if ``bound`` is above ``ideal``.
        """
        if not bound <= ideal:
            raise ValueError(f"a lower bound must be at most the ideal value {ideal!r}, got bound={bound!r}")
        return cls(
            experiment, claim, ideal, measured, uncertainty, ideal - bound, unit, dict(details or {}), curve, "lower"
        )

    @property
    def limit(self) -> float | None:
        """The bound the measurement is held to (``predicted +/- tolerance``), or ``None`` for a predicted value."""
        if self.bound == "upper":
            return self.predicted + self.tolerance
        if self.bound == "lower":
            return self.predicted - self.tolerance
        return None

    @property
    def passed(self) -> bool:
        """Whether the claim holds: ``|measured - predicted| <= tolerance`` for a predicted value, the measurement
        on the passing side of the bound for a bound (a NaN or Inf never passes)."""
        if not (math.isfinite(self.measured) and math.isfinite(self.predicted)):
            return False
        if self.bound == "upper":
            return self.measured - self.predicted <= self.tolerance
        if self.bound == "lower":
            return self.predicted - self.measured <= self.tolerance
        return abs(self.measured - self.predicted) <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain data, plus ``passed``; ``curve`` is a dict or ``None``."""
        out = asdict(self)
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding from :meth:`as_dict` output (``passed`` is recomputed, not read).

        A ``null`` number (how ``results.json`` stores NaN and Inf) comes back as NaN; data written before
        findings had a ``bound`` reads as a predicted value.
        """
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for name in ("predicted", "measured", "uncertainty", "tolerance"):
            if name in fields and fields[name] is None:  # JSON writes NaN and Inf as null
                fields[name] = math.nan
        if fields.get("curve") is not None:
            fields["curve"] = Curve.from_dict(fields["curve"])
        return cls(**fields)
