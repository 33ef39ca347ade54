"""The tour: run the headline experiments of the core and of every installed plugin.

Experiments are named ``"<plugin>.<experiment>"``; the core's live in :mod:`noisygrad.experiments`,
plugins declare theirs in their :class:`~noisygrad.plugins.Plugin` record as ``"module:function"`` so that
listing them imports nothing heavy.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import plugins as _plugins
from .findings import Finding

ExperimentFn = Callable[..., list[Finding]]


@dataclass(frozen=True)
class Experiment:
    """A runnable experiment, resolved on demand."""

    name: str
    target: str  # "module:function"
    plugin: _plugins.Plugin | None = None

    def load(self) -> ExperimentFn:
        if self.plugin is not None:
            _plugins.require(self.plugin)
        module, _, func = self.target.partition(":")
        fn: ExperimentFn = getattr(importlib.import_module(module), func)
        return fn

    def run(self, *, seed: int = 0, quick: bool = True) -> list[Finding]:
        return self.load()(seed=seed, quick=quick)


def experiments(include_unusable: bool = False) -> dict[str, Experiment]:
    """Every experiment the installed distributions offer, core first, then plugins by name."""
    from .experiments import CORE_EXPERIMENTS

    found = {name: Experiment(name, f"noisygrad.experiments:{fn.__name__}") for name, fn in CORE_EXPERIMENTS.items()}
    for status in _plugins.available():
        if not status.usable and not include_unusable:
            continue
        for name, target in status.plugin.experiments.items():
            full = name if name.startswith(f"{status.plugin.name}.") else f"{status.plugin.name}.{name}"
            found[full] = Experiment(full, target, status.plugin)
    return found


@dataclass(frozen=True)
class TourEntry:
    """The findings of one experiment and how long it took."""

    experiment: str
    findings: list[Finding]
    seconds: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.findings) and all(f.passed for f in self.findings)


def run_experiments(
    selected: Iterable[Experiment],
    *,
    seed: int = 0,
    quick: bool = True,
    on_start: Callable[[Experiment], None] | None = None,
) -> list[TourEntry]:
    """Run each experiment; an exception becomes a failed entry instead of ending the tour."""
    entries = []
    for exp in selected:
        if on_start is not None:
            on_start(exp)
        start = time.perf_counter()
        try:
            findings, error = exp.run(seed=seed, quick=quick), None
        except Exception as exc:  # a broken experiment is reported, the others still run
            findings, error = [], f"{type(exc).__name__}: {exc}"
        entries.append(TourEntry(exp.name, findings, time.perf_counter() - start, error))
    return entries
