"""The parameters an experiment declares: name, type, default (per size), allowed range and help.

An experiment declares its own parameters (besides ``seed`` and ``quick``) with :func:`takes`::

    @takes(
        Parameter("chains", int, 4000, "independent chains", full=40000, low=100, high=10**6),
        Parameter("steps", int, 400, "SGD steps per chain", low=100, high=100_000),
    )
    def noise_ball(seed: int = 0, quick: bool = True, *, chains: int, steps: int) -> list[Finding]: ...

The wrapped function fills in the defaults of the run's size and checks every value it is given before any work,
so ``noise_ball(chains=50)`` and ``noisygrad run core.noise-ball -p chains=50`` fail alike, naming the parameter
and what it allows. ``noisygrad list --describe`` shows the declarations, and ``-p NAME=VALUE`` is parsed by them.
This module imports nothing heavy: the command reads it without importing torch.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

#: The types a parameter may take (what a command line can spell).
TYPES: tuple[type, ...] = (int, float, bool, str)
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_RESERVED = ("seed", "quick")

R = TypeVar("R")


class ParameterError(ValueError, TypeError):
    """A parameter value an experiment does not take: an unknown name, a wrong type or a value out of range.

    A ``ValueError`` and a ``TypeError`` alike, so that callers catching either see it.
    """


def _number(value: float) -> str:
    """A bound as people write it: ``100``, ``1e+06`` -> ``1000000``, ``0.5``."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Parameter:
    """One parameter of an experiment.

    Attributes:
        name: the keyword the experiment takes (a Python identifier other than ``seed`` and ``quick``).
        type: ``int``, ``float``, ``bool`` or ``str``.
        default: the value at the quick size (``noisygrad tour``, ``noisygrad run``).
        help: what it sets, in words, with its unit.
        full: the value at the full size (``--full``), when it differs from ``default``.
        low: the smallest value allowed (inclusive), for numbers; ``None`` for no limit.
        high: the largest value allowed (inclusive), for numbers; ``None`` for no limit.
        choices: the values allowed, when they are a list (empty: any value of the type within the range).

    Raises:
        ValueError: if the declaration is inconsistent (unknown type, a default outside the allowed values, ...).
    """

    name: str
    type: type
    default: Any
    help: str
    full: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in _RESERVED:
            raise ValueError(f"a parameter name must be an identifier other than seed and quick, got {self.name!r}")
        if self.type not in TYPES:
            names = ", ".join(t.__name__ for t in TYPES)
            raise ValueError(f"parameter {self.name}: type must be one of {names}, got {self.type!r}")
        if (self.low is not None or self.high is not None) and self.type not in (int, float):
            raise ValueError(f"parameter {self.name}: low and high apply to int and float parameters only")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"parameter {self.name}: low={self.low} is above high={self.high}")
        object.__setattr__(self, "choices", tuple(self.choices))
        for value in (self.default, *(() if self.full is None else (self.full,)), *self.choices):
            self.check(value)  # a declaration's own values must be allowed

    def default_for(self, quick: bool) -> Any:
        """The default at the quick size (``quick=True``) or at the full size."""
        return self.default if quick or self.full is None else self.full

    def allowed(self) -> str:
        """What the parameter accepts, in words: ``"an integer in [100, 1000000]"``, ``"one of 'a', 'b'"``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = _TYPE_NAMES[self.type]
        if self.low is not None and self.high is not None:
            return f"{kind} in [{_number(self.low)}, {_number(self.high)}]"
        if self.low is not None:
            return f"{kind} >= {_number(self.low)}"
        if self.high is not None:
            return f"{kind} <= {_number(self.high)}"
        return kind

    def defaults_text(self) -> str:
        """The default as ``list --describe`` shows it: ``"4000"``, or ``"4000 (full: 40000)"``."""
        quick = self.format(self.default)
        return quick if self.full is None or self.full == self.default else f"{quick} (full: {self.format(self.full)})"

    def format(self, value: Any) -> str:
        """A value as it would be typed after ``-p NAME=``."""
        if self.type is bool:
            return "true" if value else "false"
        return str(value)

    def check(self, value: Any) -> Any:
        """``value`` if the parameter allows it (an int is accepted for a float parameter, as a float).

        Raises:
            ParameterError: naming the parameter and what it allows, for a wrong type, a NaN or an Inf, a value
                out of range or not among the choices.
        """
        ok_type = (
            isinstance(value, bool)
            if self.type is bool
            else isinstance(value, str)
            if self.type is str
            else isinstance(value, int) and not isinstance(value, bool)
            if self.type is int
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok_type:
            raise ParameterError(
                f"parameter {self.name} takes {self.allowed()}, got {value!r} ({type(value).__name__})"
            )
        if self.type is float:
            value = float(value)
            if not math.isfinite(value):
                raise ParameterError(f"parameter {self.name} takes {self.allowed()}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ParameterError(f"parameter {self.name} takes {self.allowed()}, got {value!r}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ParameterError(f"parameter {self.name} takes {self.allowed()}, got {value!r}")
        return value

    def parse(self, text: str) -> Any:
        """The value ``text`` spells (as typed after ``-p NAME=``), checked.

        Raises:
            ParameterError: naming the parameter and what it allows, if ``text`` is not such a value.
        """
        raw = text.strip()
        value: Any
        try:
            if self.type is bool:
                if raw.lower() not in _TRUE + _FALSE:
                    raise ValueError(raw)
                value = raw.lower() in _TRUE
            elif self.type is int:
                value = int(raw.replace("_", ""))
            elif self.type is float:
                value = float(raw)
            else:
                value = text
        except ValueError:
            raise ParameterError(f"parameter {self.name} takes {self.allowed()}, got {text!r}") from None
        return self.check(value)

    def as_dict(self) -> dict[str, Any]:
        """Plain data: the declaration as ``list --describe`` reports it."""
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "full": self.default if self.full is None else self.full,
            "allowed": self.allowed(),
            "help": self.help,
        }

    @classmethod
    def inferred(cls, name: str, default: Any) -> Parameter:
        """The parameter an undeclared experiment takes as ``name=default``: the default's type, no range."""
        kind = type(default) if type(default) in TYPES else str
        return cls(name, kind, default if kind is type(default) else str(default), "")


def check_names(parameters: Sequence[Parameter], names: Iterable[str], *, owner: str) -> None:
    """Raise :class:`ParameterError` naming every name in ``names`` that ``owner`` does not take, and those it does."""
    known = [p.name for p in parameters]
    unknown = sorted(set(names) - set(known))
    if unknown:
        takes_text = ", ".join(known) or "no parameters besides seed and quick"
        raise ParameterError(f"{owner} has no parameter {', '.join(unknown)}; it takes: {takes_text}")


def resolve(parameters: Sequence[Parameter], values: Mapping[str, Any], *, quick: bool, owner: str) -> dict[str, Any]:
    """Every parameter's value for one run: the ones given, checked, and the size's default for the rest.

    Raises:
        ParameterError: for a name ``owner`` does not take (listing those it takes) or a value not allowed.
    """
    known = {p.name: p for p in parameters}
    check_names(parameters, values, owner=owner)
    return {name: p.check(values[name]) if name in values else p.default_for(quick) for name, p in known.items()}


def takes(*parameters: Parameter) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Declare an experiment's own parameters (see the module docstring).

    The experiment function takes ``seed`` and ``quick`` and each declared parameter as a keyword-only argument
    without default; the wrapper gives every one of them its value (the size's default unless given), after
    checking the values given. The declarations are the wrapper's ``parameters`` attribute.

    Raises:
        ValueError: if two parameters share a name or the function does not take one of them by keyword.
    """
    names = [p.name for p in parameters]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names must be distinct, got {names}")

    def declare(fn: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(fn)
        for p in parameters:
            arg = signature.parameters.get(p.name)
            if arg is None or arg.kind not in (arg.KEYWORD_ONLY, arg.POSITIONAL_OR_KEYWORD):
                raise ValueError(f"{fn.__qualname__} declares parameter {p.name} but does not take it by keyword")

        @functools.wraps(fn)
        def experiment(seed: int = 0, quick: bool = True, **values: Any) -> R:
            return fn(seed=seed, quick=quick, **resolve(parameters, values, quick=quick, owner=fn.__qualname__))

        keep = [signature.parameters[n] for n in _RESERVED if n in signature.parameters]
        shown = [  # each with its quick-size default, as help() and inspect show it
            signature.parameters[p.name].replace(kind=inspect.Parameter.KEYWORD_ONLY, default=p.default)
            for p in parameters
        ]
        experiment.__signature__ = signature.replace(parameters=[*keep, *shown])  # type: ignore[attr-defined]
        experiment.parameters = tuple(parameters)  # type: ignore[attr-defined]
        return experiment

    return declare


def declared(fn: Callable[..., Any]) -> tuple[Parameter, ...]:
    """The parameters ``fn`` takes: its :func:`takes` declarations, else inferred from its keyword defaults."""
    found = getattr(fn, "parameters", None)
    if found is not None:
        return tuple(found)
    out = []
    for name, arg in inspect.signature(fn).parameters.items():
        if name in _RESERVED or arg.kind not in (arg.KEYWORD_ONLY, arg.POSITIONAL_OR_KEYWORD):
            continue
        out.append(Parameter.inferred(name, None if arg.default is arg.empty else arg.default))
    return tuple(out)
