"""A measured claim: what the theory predicts, what a run measured, and whether they agree.

Every headline experiment of the tour (the core's and each plugin's) returns a list of :class:`Finding`,
so one report can hold every claim of the suite to a number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One claim held to a number.

    Attributes:
        experiment: the experiment that produced it (``"core.minibatch-variance"``).
        claim: the statement under test, in words.
        predicted: the value the theory predicts.
        measured: the value the run measured.
        uncertainty: one standard error of ``measured`` (Monte-Carlo error), or 0 for exact quantities.
        tolerance: the largest ``|measured - predicted|`` that still passes.
        unit: the unit of ``predicted`` and ``measured`` (empty when dimensionless).
        details: any further numbers worth reporting (seeds, sizes, wall time).
    """

    experiment: str
    claim: str
    predicted: float
    measured: float
    uncertainty: float
    tolerance: float
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        if not (math.isfinite(self.measured) and math.isfinite(self.predicted)):
            return False
        return abs(self.measured - self.predicted) <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out
