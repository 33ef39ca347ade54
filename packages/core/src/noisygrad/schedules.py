"""Learning-rate schedules: plain callables ``t -> lr`` for step ``t = 0, 1, 2, ...``.

A float where a schedule is expected means a constant rate. Robbins-Monro ``a / (b + t)**alpha`` with
``1/2 < alpha <= 1`` makes the steps sum to infinity while their squares stay summable, which is what
lets stochastic-gradient iterates converge instead of hovering in a noise ball.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from noisygrad.checks import check_in_range, check_positive, check_positive_int

Schedule = Callable[[int], float]


@dataclass(frozen=True)
class Constant:
    """``lr(t) = value`` (0 allowed, as ``torch.optim`` allows it: a frozen run, or a warm-up's first step)."""

    value: float

    def __post_init__(self) -> None:
        check_positive("value", self.value, allow_zero=True)

    def __call__(self, t: int) -> float:
        return self.value


@dataclass(frozen=True)
class RobbinsMonro:
    """``lr(t) = a / (b + t)**alpha`` (Robbins and Monro 1951; alpha in (1/2, 1])."""

    a: float
    b: float = 1.0
    alpha: float = 1.0

    def __post_init__(self) -> None:
        check_positive("a", self.a)
        check_positive("b", self.b)
        check_in_range("alpha", self.alpha, 0.5, 1.0, low_open=True, high_open=False)

    def __call__(self, t: int) -> float:
        return self.a / float((self.b + t) ** self.alpha)


@dataclass(frozen=True)
class Cosine:
    """Cosine decay from ``value`` to ``final`` over ``steps`` steps, then ``final``."""

    value: float
    steps: int
    final: float = 0.0

    def __post_init__(self) -> None:
        check_positive("value", self.value)
        check_positive_int("steps", self.steps)
        check_positive("final", self.final, allow_zero=True)

    def __call__(self, t: int) -> float:
        frac = min(t, self.steps) / self.steps
        return self.final + 0.5 * (self.value - self.final) * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class StepDecay:
    """``lr(t) = value * factor**(t // every)``."""

    value: float
    every: int
    factor: float = 0.1

    def __post_init__(self) -> None:
        check_positive("value", self.value)
        check_positive_int("every", self.every)
        check_in_range("factor", self.factor, 0.0, 1.0, low_open=True, high_open=False)

    def __call__(self, t: int) -> float:
        return self.value * self.factor ** (t // self.every)


def as_schedule(name: str, lr: float | Schedule) -> Schedule:
    """Turn a float into :class:`Constant`; check a callable gives a finite rate >= 0 at ``t = 0``.

    A schedule is checked again at every step where it is used (:meth:`noisygrad.optim.base.Rule.update`).
    """
    if callable(lr):
        check_rate(lr, 0, name)
        return lr
    return Constant(check_positive(name, lr, allow_zero=True))


def check_rate(schedule: Schedule, t: int, name: str = "lr") -> float:
    """``schedule(t)`` as a float, if it is a finite number >= 0; the error names the step (``lr(3) must be...``)."""
    return check_positive(f"{name}({t})", schedule(t), allow_zero=True)
