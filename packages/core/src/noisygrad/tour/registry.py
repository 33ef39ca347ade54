"""The tour: run the headline experiments of the core and of every installed plugin.

Experiments are named ``"<plugin>.<experiment>"``. The core and every plugin declare theirs the same way, as
``noisygrad.experiments`` entry points (``"module:function"``) in their ``pyproject.toml``, so listing them
imports nothing heavy; the core's functions live in :mod:`noisygrad.tour.experiments`.
"""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import functools
import importlib
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from noisygrad import plugins as _plugins
from noisygrad.sweeps import SweepError, _start_worker, sweep
from noisygrad.tour.findings import Finding
from noisygrad.tour.parameters import Parameter, check_names, declared, resolve

ExperimentFn = Callable[..., list[Finding]]


@dataclass(frozen=True)
class Experiment:
    """A runnable experiment, resolved on demand."""

    name: str
    target: str  # "module:function"
    plugin: _plugins.Plugin | None = None

    def load(self) -> ExperimentFn:
        """Import the experiment's function (checking the plugin's field packages first)."""
        if self.plugin is not None:
            _plugins.require(self.plugin)
        module, _, func = self.target.partition(":")
        fn: ExperimentFn = getattr(importlib.import_module(module), func)
        return fn

    def describe(self) -> str:
        """The first paragraph of the experiment function's docstring, on one line (imports it)."""
        doc = (self.load().__doc__ or "").strip()
        return " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())

    def parameters(self) -> tuple[Parameter, ...]:
        """The experiment's own parameters (besides ``seed`` and ``quick``): its declarations
        (:func:`noisygrad.tour.parameters.takes`), else what its keyword defaults imply (imports it)."""
        return declared(self.load())

    def parse(self, texts: Mapping[str, str]) -> dict[str, Any]:
        """The values that ``-p NAME=VALUE`` texts spell for this experiment, checked against its declarations.

        Raises:
            ParameterError: naming the parameter and what it allows, for an unknown name, a text of the wrong
                type or a value out of range.
        """
        known = {p.name: p for p in self.parameters()}
        check_names(tuple(known.values()), texts, owner=self._owner)
        return {name: known[name].parse(text) for name, text in texts.items()}

    @property
    def _owner(self) -> str:
        return f"experiment {self.name}"

    def run(self, *, seed: int = 0, quick: bool = True, **params: Any) -> list[Finding]:
        """Run the experiment and return its findings.

        Args:
            seed: seed of every random choice the experiment makes.
            quick: the tour's size (``True``) or the publication size (``False``).
            **params: values for the experiment's own parameters (see :meth:`parameters`); the others take the
                size's default.

        Raises:
            ParameterError: (a ``TypeError`` and a ``ValueError``) if a parameter is not one the experiment takes
                or its value is not allowed, before the experiment starts.
            TypeError: if the experiment does not return a list of :class:`Finding`.
        """
        fn = self.load()
        if params:
            resolve(declared(fn), params, quick=quick, owner=self._owner)  # checked here to name the experiment
        findings = fn(seed=seed, quick=quick, **params)
        if not isinstance(findings, list) or not all(isinstance(f, Finding) for f in findings):
            raise TypeError(f"experiment {self.name} ({self.target}) must return a list of noisygrad.Finding")
        return findings


def experiments(include_unusable: bool = False) -> dict[str, Experiment]:
    """Every experiment the installed distributions offer, core first, then plugins by name."""
    found = {name: Experiment(name, target) for name, target in _plugins.core_experiments().items()}
    for status in _plugins.available():
        if not status.usable and not include_unusable:
            continue
        for name, target in status.plugin.experiments.items():
            full = name if name.startswith(f"{status.plugin.name}.") else f"{status.plugin.name}.{name}"
            found[full] = Experiment(full, target, status.plugin)
    return found


def select(patterns: Iterable[str], available: dict[str, Experiment] | None = None) -> list[Experiment]:
    """The experiments matching any of ``patterns``, in the order of ``available``.

    A pattern is an experiment name (``"core.noise-ball"``), a plugin name (``"dsp"``: all of its experiments)
    or a shell-style wildcard (``"core.*"``).

    Raises:
        KeyError: if a pattern matches nothing.
    """
    available = experiments(include_unusable=True) if available is None else available
    chosen: dict[str, Experiment] = {}
    for pattern in patterns:
        hits = [
            name
            for name in available
            if name == pattern or name.startswith(f"{pattern}.") or fnmatch.fnmatchcase(name, pattern)
        ]
        if not hits:
            raise KeyError(f"no experiment named {pattern!r}; `noisygrad list` shows them")
        chosen.update((name, available[name]) for name in hits)
    return [exp for name, exp in available.items() if name in chosen]


@dataclass(frozen=True)
class TourEntry:
    """The findings of one experiment and how long it took."""

    experiment: str
    findings: list[Finding]
    seconds: float
    error: str | None = None

    @property
    def passed(self) -> bool:
        """No error, at least one finding, and every finding passed."""
        return self.error is None and bool(self.findings) and all(f.passed for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``results.json``: the name, wall time, error and every finding."""
        return {
            "experiment": self.experiment,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
        }


class TourInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_experiments`; the experiments that had finished are kept.

    Attributes:
        entries: the finished experiments' entries, in the order of ``selected``.
        not_run: the names of the others (running or not started when the interruption came).
    """

    def __init__(self, entries: list[TourEntry], not_run: list[str]) -> None:
        super().__init__(f"interrupted after {len(entries)} of {len(entries) + len(not_run)} experiments")
        self.entries = entries
        self.not_run = not_run


def run_one(exp: Experiment, *, seed: int = 0, quick: bool = True, params: dict[str, Any] | None = None) -> TourEntry:
    """Run one experiment; an exception becomes an entry with ``error`` set instead of propagating."""
    start = time.perf_counter()
    try:
        findings, error = exp.run(seed=seed, quick=quick, **(params or {})), None
    except Exception as exc:  # a broken experiment is reported, the others still run
        findings, error = [], f"{type(exc).__name__}: {exc}"
    return TourEntry(exp.name, findings, time.perf_counter() - start, error)


def _tour_worker(threads: int) -> None:
    """Initializer of a tour worker process: the sweep's thread pinning, and Ctrl-C left to the parent.

    A terminal's Ctrl-C reaches every process of the group; a worker that took it would print a traceback from
    inside ``multiprocessing``. The parent, which takes it, stops the workers itself (:func:`_stop_workers`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _start_worker(threads)


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """End a pool at once on Ctrl-C: pending experiments cancelled, running ones terminated (not waited for)."""
    for process in list(getattr(pool, "_processes", {}).values()):  # Python < 3.14 has no terminate_workers()
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def run_experiments(
    selected: Iterable[Experiment],
    *,
    seed: int = 0,
    quick: bool = True,
    params: dict[str, Any] | None = None,
    jobs: int = 1,
    on_start: Callable[[Experiment], None] | None = None,
    on_done: Callable[[TourEntry], None] | None = None,
) -> list[TourEntry]:
    """Run each experiment through :func:`noisygrad.sweeps.sweep`; an exception becomes a failed entry instead of
    ending the tour.

    Every experiment draws its randomness from ``seed`` alone and runs with one torch (and BLAS) thread whatever
    ``jobs`` is, so running several at once (``jobs > 1``, each in its own spawned interpreter) gives the same
    findings, bit for bit, as running them one after another in this process. On 2 cores ``jobs=1`` is the
    faster choice for the quick tour: each worker imports torch and the field packages again (3-4 s).

    Args:
        selected: the experiments to run, in order.
        seed: passed to every experiment; the same seed reproduces the same findings.
        quick: the tour's size (``True``) or the publication size (``False``).
        params: experiment parameters passed to every experiment (for a single ``noisygrad run``).
        jobs: how many experiments run at once, each in its own process (1: one by one, in this process).
        on_start: called with each experiment as it is started (progress display).
        on_done: called with each finished :class:`TourEntry`, in the order they finish.

    Returns:
        One :class:`TourEntry` per experiment, in the order of ``selected``.

    Raises:
        TourInterrupted: (a ``KeyboardInterrupt``) on Ctrl-C, carrying the entries of the experiments that had
            finished, so that a caller can still report them.
    """
    selected = list(selected)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    workers = min(jobs, len(selected))
    entries: dict[int, TourEntry] = {}
    started = 0

    def start_next() -> None:  # a worker takes the next experiment when one finishes
        nonlocal started
        if started < len(selected):
            if on_start is not None:
                on_start(selected[started])
            started += 1

    def finished(index: int, entry: TourEntry) -> None:
        entries[index] = entry
        if on_done is not None:
            on_done(entry)
        start_next()

    for _ in range(max(workers, 1)):
        start_next()
    task = functools.partial(run_one, seed=seed, quick=quick, params=params)

    def interrupted() -> TourInterrupted:
        done = [entries[index] for index in range(len(selected)) if index in entries]
        return TourInterrupted(done, [exp.name for index, exp in enumerate(selected) if index not in entries])

    pool = None
    if workers > 1:  # "spawn": a fresh interpreter per worker, as sweep(executor="process") starts them
        context = multiprocessing.get_context("spawn")
        pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_tour_worker, initargs=(1,))
    try:
        sweep(task, selected, executor=pool if pool is not None else "serial", on_done=finished)
    except KeyboardInterrupt as exc:  # Ctrl-C: what finished is kept, the running experiments are stopped
        if pool is not None:
            _stop_workers(pool)
        raise interrupted() from exc
    except SweepError as exc:  # a worker process died (a crash in compiled code, out of memory), or Ctrl-C there
        cause = exc.__cause__
        if isinstance(cause, KeyboardInterrupt):
            raise interrupted() from exc
        for index, exp in enumerate(selected):
            if index not in entries:  # its worker, or the pool, is gone: which one crashed is not known
                entries[index] = TourEntry(exp.name, [], 0.0, f"worker process failed: {type(cause).__name__}: {cause}")
                if on_done is not None:
                    on_done(entries[index])
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [entries[index] for index in range(len(selected))]
