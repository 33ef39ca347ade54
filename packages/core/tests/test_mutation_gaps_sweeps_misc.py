"""Exact tests that close the mutation-testing gaps of ``sweeps.py``, ``plugins.py``, ``molecules.py`` and
``compiled.py`` (issue 18).

``sweeps``: the runners are driven in this process. A thread pool stands in for the spawned process pool (its
constructor's arguments are recorded), and small scripted stand-ins for Ray and Dask's ``distributed`` record
what the sweep asks of them, so every path runs in milliseconds; the thread pinning and its restoration are
checked on torch's own thread count. ``plugins``: entry points and distributions are scripted stand-ins for
``importlib.metadata``. ``molecules``: closed-form energies and forces (two atoms, an equilateral triangle), the
inclusion factors as exact fractions, and the input checks at their boundaries. ``compiled``: the numba
dispatcher's options, inspected without compiling.

Every check is exact or float64 rounding of a closed form; nothing is statistical.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import sys
import threading
import types
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import noisygrad.sweeps as sweeps
from noisygrad import molecules, plugins
from noisygrad.sweeps import SweepError, sweep

F64 = torch.float64

# ------------------------------------------------------------------------------------------------------ sweeps


def _square(x: int) -> int:
    return x * x


def _threads_seen(_: Any) -> int:
    return torch.get_num_threads()


def _fails_at_two(x: int) -> int:
    if x == 2:
        raise KeyError("two")
    return x


class _RecordingPool(cf.ThreadPoolExecutor):
    """A thread pool that records the arguments a ProcessPoolExecutor would get, and its shutdown."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, max_workers: int, mp_context: Any, initializer: Any, initargs: tuple[Any, ...]) -> None:
        super().__init__(max_workers=max_workers)
        self.record = {"max_workers": max_workers, "mp_context": mp_context, "initializer": initializer}
        self.record.update(initargs=initargs, shutdown=None)
        _RecordingPool.made.append(self.record)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.record["shutdown"] = (wait, cancel_futures)
        super().shutdown(wait=wait, cancel_futures=cancel_futures)


def test_sweep_error_names_the_item_truncates_it_and_unwraps_a_ray_cause() -> None:
    err = SweepError._of(3, "x" * 200, ValueError("bad"))
    text = repr("x" * 200)[:77] + "..."
    assert str(err) == f"task failed on item 3 ({text}): ValueError: bad"
    assert (err.index, err.item) == (3, "x" * 200)
    edge = "z" * 79  # repr has 81 characters: cut to 77 and "..."
    assert str(SweepError._of(0, edge, KeyError(1))) == f"task failed on item 0 ({repr(edge)[:77]}...): KeyError: 1"
    short = "y" * 78  # repr has 80 characters: kept whole
    assert str(SweepError._of(0, short, KeyError(1))) == f"task failed on item 0 ({short!r}): KeyError: 1"
    wrapped = RuntimeError("remote traceback")
    wrapped.cause = TypeError("own")  # type: ignore[attr-defined]
    assert str(SweepError._of(1, 5, wrapped)) == "task failed on item 1 (5): TypeError: own"
    odd = RuntimeError("plain")
    odd.cause = "not an exception"  # type: ignore[attr-defined]
    assert str(SweepError._of(1, 5, odd)) == "task failed on item 1 (5): RuntimeError: plain"


def test_spawn_seeds_values_and_zero() -> None:
    from noisygrad.rng import substream_seed

    assert sweeps.spawn_seeds(7, 3) == [substream_seed(7, k) for k in range(3)]
    assert sweeps.spawn_seeds(0, 0) == []
    assert sweeps.EXECUTORS == ("serial", "process", "ray", "dask")


def test_serial_sweep_pins_threads_and_restores_them() -> None:
    before = torch.get_num_threads()
    target = 2 if before != 2 else 3
    done: list[tuple[int, int]] = []
    seen = sweep(_threads_seen, [0, 1], threads=target, on_done=lambda i, r: done.append((i, r)))
    assert seen == [target, target]
    assert done == [(0, target), (1, target)]
    assert torch.get_num_threads() == before
    assert sweep(_threads_seen, [0]) == [1]  # the default: one thread
    assert torch.get_num_threads() == before
    torch.set_num_threads(target)
    try:
        assert sweep(_threads_seen, [0], threads=None) == [target]  # left alone
    finally:
        torch.set_num_threads(before)
    assert sweep(_square, (k for k in range(4)), workers=1) == [0, 1, 4, 9]  # any iterable, workers 1 allowed


def test_call_pins_the_threads_of_the_process_it_runs_in() -> None:
    # what a Ray or Dask worker runs: the pin happens in the call, nothing else sets it there
    before = torch.get_num_threads()
    other = 2 if before != 2 else 3
    try:
        assert sweeps._call(_threads_seen, 0, other) == other
        torch.set_num_threads(before)
        assert sweeps._call(_threads_seen, 0, None) == before  # None: left alone
    finally:
        torch.set_num_threads(before)


def test_this_process_threads_restore_the_limiter_and_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[Any] = []

    class _Limiter:
        def restore_original_limits(self) -> None:
            events.append("restored")

    monkeypatch.setattr(sweeps, "_pin_threads", lambda t: events.append(("pin", t)) or _Limiter())
    restore = sweeps._this_process_threads(3)
    assert events == [("pin", 3)]
    restore()
    assert events == [("pin", 3), "restored"]
    events.clear()
    sweeps._this_process_threads(None)()
    assert events == []


def test_a_sweep_restores_the_blas_thread_limits() -> None:
    from threadpoolctl import threadpool_info

    original = [pool["num_threads"] for pool in threadpool_info()]
    limit = 1 if max(original) > 1 else 2  # differs from the current sizes, so that the change is visible
    restore = sweeps._this_process_threads(limit)
    try:
        assert all(pool["num_threads"] == limit for pool in threadpool_info())
    finally:
        restore()
    assert [pool["num_threads"] for pool in threadpool_info()] == original


def test_pin_threads_returns_the_limiter_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    # a limit that differs from the pools' current sizes, so that applying it is visible
    limit = 1 if max(pool["num_threads"] for pool in threadpool_info()) > 1 else 2
    limiter = sweeps._pin_threads(limit)
    try:
        assert torch.get_num_threads() == limit
        assert limiter is not None
        assert all(pool["num_threads"] == limit for pool in threadpool_info())
    finally:
        limiter.restore_original_limits()
        torch.set_num_threads(before)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    assert sweeps._pin_threads(before) is None


def test_start_worker_sets_the_thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned: list[int] = []
    monkeypatch.setattr(sweeps, "_pin_threads", pinned.append)
    for name in sweeps._THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    sweeps._start_worker(None)
    assert pinned == []
    assert all(name not in os.environ for name in sweeps._THREAD_VARIABLES)
    sweeps._start_worker(3)
    assert pinned == [3]
    assert {name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
        "OPENBLAS_NUM_THREADS": "3",
    }


def test_process_runner_sizes_and_closes_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeps.cf, "ProcessPoolExecutor", _RecordingPool)
    _RecordingPool.made.clear()
    assert sweep(_square, [1, 2, 3], executor="process", workers=2, threads=2) == [1, 4, 9]
    rec = _RecordingPool.made[-1]
    assert rec["max_workers"] == 2
    assert rec["initializer"] is sweeps._start_worker
    assert rec["initargs"] == (2,)
    assert rec["mp_context"].get_start_method() == "spawn"
    assert rec["shutdown"] == (True, True)
    assert sweep(_square, [1, 2], executor="process", workers=8) == [1, 4]
    assert _RecordingPool.made[-1]["max_workers"] == 2  # at most one per item
    monkeypatch.setattr(sweeps.os, "cpu_count", lambda: 3)
    assert sweep(_square, list(range(5)), executor="process") == [0, 1, 4, 9, 16]
    assert _RecordingPool.made[-1]["max_workers"] == 3  # the CPU count
    monkeypatch.setattr(sweeps.os, "cpu_count", lambda: None)
    assert sweep(_square, [4, 5], executor="process") == [16, 25]
    assert _RecordingPool.made[-1]["max_workers"] == 1
    n = len(_RecordingPool.made)
    assert sweep(_square, [], executor="process") == []
    assert len(_RecordingPool.made) == n  # no pool for no items
    with pytest.raises(SweepError, match="item 2"):
        sweep(_fails_at_two, [0, 1, 2, 3], executor="process", workers=1)
    assert _RecordingPool.made[-1]["shutdown"] == (True, True)


def test_a_process_executor_instance_is_checked_for_pickling() -> None:
    class _Fake(cf.ProcessPoolExecutor):
        def __init__(self) -> None:  # never started: the check refuses before any work
            pass

        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            pass

    with pytest.raises(TypeError, match="a ProcessPoolExecutor"):
        sweep(lambda x: x, [1], executor=_Fake())


def test_interactive_tasks_are_refused_for_spawned_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    main = types.ModuleType("__main__")  # an interactive session: no __file__
    monkeypatch.setitem(sys.modules, "__main__", main)

    def task(x: int) -> int:
        return x

    task.__module__ = "__main__"
    with pytest.raises(TypeError, match="interactive session"):
        sweeps._check_picklable(task, [1], "executor='process'")
    import functools

    with pytest.raises(TypeError, match="interactive session"):
        sweeps._check_picklable(functools.partial(task), [1], "executor='process'")
    main.__file__ = "script.py"  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="must pickle"):  # a script's main: the pickle check decides
        sweeps._check_picklable(task, [1], "executor='process'")
    sweeps._check_picklable(_square, [1, 2], "executor='process'")  # a module function pickles


def test_gather_after_a_failure_submits_nothing_later_and_cancels() -> None:
    submitted: list[int] = []
    futures: dict[int, cf.Future[int]] = {}

    def submit(index: int) -> cf.Future[int]:
        submitted.append(index)
        fut: cf.Future[int] = cf.Future()
        futures[index] = fut
        if index == 1:
            fut.set_exception(ValueError("one"))
        elif index == 0:
            fut.set_result(0)
        return fut

    with pytest.raises(SweepError, match="item 1") as info:
        sweeps._gather(submit, _square, [0, 1, 2, 3], None, 3, None)
    assert submitted == [0, 1, 2]  # window 3: item 3 is never submitted after item 1 failed
    assert futures[2].cancelled()
    assert isinstance(info.value.__cause__, ValueError)


def test_gather_keeps_the_lowest_failing_index_whatever_fails_first() -> None:
    futures = [cf.Future() for _ in range(4)]

    def finish() -> None:
        futures[3].set_exception(KeyError("three"))
        futures[1].set_exception(ValueError("one"))
        futures[0].set_result(0)
        if futures[2].set_running_or_notify_cancel():
            futures[2].set_result(2)

    worker = threading.Timer(0.05, finish)
    worker.start()
    with pytest.raises(SweepError, match="item 1") as info:
        sweeps._gather(futures.__getitem__, _square, [0, 1, 2, 3], None, 4, None)
    worker.join()
    assert info.value.index == 1
    assert isinstance(info.value.__cause__, ValueError)


def test_gather_reports_the_first_failure_in_input_order() -> None:
    gate = threading.Event()

    def task(x: int) -> int:
        if x == 1:
            gate.wait(5)
            raise ValueError("late")
        if x == 3:
            try:
                raise KeyError("early")
            finally:
                gate.set()
        return x

    with cf.ThreadPoolExecutor(max_workers=4) as pool, pytest.raises(SweepError, match="item 1") as info:
        sweep(task, [0, 1, 2, 3], executor=pool)
    assert info.value.index == 1


class _FakeRef:
    def __init__(self, value: Any) -> None:
        self.value = value

    def future(self) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(self.value())
        except Exception as exc:
            fut.set_exception(exc)
        return fut


def _fake_ray(initialized: bool) -> tuple[types.ModuleType, dict[str, Any]]:
    log: dict[str, Any] = {"init": [], "remote": [], "calls": [], "put": [], "cancel": []}
    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: initialized  # type: ignore[attr-defined]
    ray.init = lambda **kw: log["init"].append(kw)  # type: ignore[attr-defined]
    ray.put = lambda obj: log["put"].append(obj) or ("ref", obj)  # type: ignore[attr-defined]
    ray.cancel = lambda ref: log["cancel"].append(ref)  # type: ignore[attr-defined]

    def remote(**kw: Any) -> Any:
        log["remote"].append(kw)

        def wrap(fn: Any) -> Any:
            def call(shared: Any, item: Any, threads: Any) -> _FakeRef:
                log["calls"].append((shared, item, threads))
                return _FakeRef(lambda: fn(shared[1], item, None))

            return types.SimpleNamespace(remote=call)

        return wrap

    ray.remote = remote  # type: ignore[attr-defined]
    return ray, log


def test_ray_runner_with_a_scripted_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    ray, log = _fake_ray(False)
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert sweep(_square, [1, 2, 3], executor="ray", workers=2, threads=1) == [1, 4, 9]
    assert log["init"] == [{"num_cpus": 2, "include_dashboard": False}]
    assert log["remote"] == [{"num_cpus": 1}]
    assert log["put"] == [_square]
    assert [c[1:] for c in log["calls"]] == [(1, 1), (2, 1), (3, 1)]
    monkeypatch.setenv("RAY_ADDRESS", "ray://cluster")
    ray2, log2 = _fake_ray(False)
    monkeypatch.setitem(sys.modules, "ray", ray2)
    assert sweep(_square, [2], executor="ray") == [4]
    assert log2["init"] == [{}]
    ray3, log3 = _fake_ray(True)
    monkeypatch.setitem(sys.modules, "ray", ray3)
    assert sweep(_square, [], executor="ray") == []
    assert log3["put"] == []
    with pytest.raises(SweepError, match="item 2"):
        sweep(_fails_at_two, [0, 1, 2, 3], executor="ray")
    assert log3["init"] == []  # already running
    assert len(log3["cancel"]) == 4  # every item was in flight (window: all); each ref is cancelled after the failure


def _fake_distributed(has_client: bool) -> tuple[types.ModuleType, dict[str, Any]]:
    log: dict[str, Any] = {"cluster": [], "closed": [], "pure": []}
    mod = types.ModuleType("distributed")

    class _Client:
        def __init__(self, cluster: Any = None) -> None:
            self.cluster = cluster

        def get_executor(self, pure: bool) -> cf.Executor:
            log["pure"].append(pure)
            return cf.ThreadPoolExecutor(max_workers=2)

        def close(self) -> None:
            log["closed"].append("client")

    class _Cluster:
        def __init__(self, **kw: Any) -> None:
            log["cluster"].append(kw)

        def close(self) -> None:
            log["closed"].append("cluster")

    def get_client() -> _Client:
        if not has_client:
            raise ValueError("no client")
        return _Client()

    mod.get_client = get_client  # type: ignore[attr-defined]
    mod.LocalCluster = _Cluster  # type: ignore[attr-defined]
    mod.Client = _Client  # type: ignore[attr-defined]
    return mod, log


def test_dask_runner_with_a_scripted_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    mod, log = _fake_distributed(False)
    monkeypatch.setitem(sys.modules, "distributed", mod)
    assert sweep(_square, [1, 2, 3], executor="dask", workers=2) == [1, 4, 9]
    assert log["cluster"] == [{"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}]
    assert log["pure"] == [False]
    assert log["closed"] == ["client", "cluster"]
    mod2, log2 = _fake_distributed(True)
    monkeypatch.setitem(sys.modules, "distributed", mod2)
    assert sweep(_square, [3], executor="dask") == [9]
    assert log2["cluster"] == []
    assert log2["closed"] == []
    assert sweep(_square, [], executor="dask") == []
    assert log2["pure"] == [False]


# ----------------------------------------------------------------------------------------------------- plugins


class _Dist:
    def __init__(self, name: str, version: str, summary: str | None, requires: list[str] | None) -> None:
        self.name, self.version, self.requires = name, version, requires
        self.metadata = {"Summary": summary}


class _EP:
    def __init__(self, name: str, value: str, dist: Any) -> None:
        self.name, self.value, self.dist = name, value, dist


def _script_metadata(monkeypatch: pytest.MonkeyPatch, plugins_eps: list[_EP], experiment_eps: list[_EP]) -> None:
    groups = {plugins.ENTRY_POINT_GROUP: plugins_eps, plugins.EXPERIMENT_GROUP: experiment_eps}
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: groups[group])


def test_plugins_available_reads_metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    astro = _Dist(
        "Noisygrad_Astro",
        "1.2",
        "Stars.",
        [
            "noisygrad-core>=0.1",
            "numpy",
            "astropy>=5; extra == 'field'",
            "pytest; extra == 'test'",
            "definitely-not-installed-pkg-xyz",
            "tomli; python_version < '3.0'",
        ],
    )
    bare = _Dist("noisygrad-bare", "0.1", None, None)
    _script_metadata(
        monkeypatch,
        [_EP("astro", "noisygrad.astro", astro), _EP("bare", "noisygrad.bare", bare), _EP("ghost", "x", None)],
        [
            _EP("astro.b", "m:b", astro),
            _EP("astro.a", "m:a", astro),
            _EP("core.x", "noisygrad.tour:x", _Dist("noisygrad-core", "1", "", [])),
            _EP("orphan", "m:o", None),
        ],
    )
    assert plugins.declared_experiments() == {
        "noisygrad-astro": {"astro.b": "m:b", "astro.a": "m:a"},
        "noisygrad-core": {"core.x": "noisygrad.tour:x"},
        "": {"orphan": "m:o"},
    }
    assert plugins.core_experiments() == {"core.x": "noisygrad.tour:x"}
    found = plugins.available()
    assert [s.plugin.name for s in found] == ["astro", "bare"]
    a, b = found
    assert a.plugin == plugins.Plugin(
        "astro",
        "noisygrad.astro",
        "Stars.",
        ("numpy", "definitely-not-installed-pkg-xyz"),
        {"astro.a": "m:a", "astro.b": "m:b"},
    )
    assert list(a.plugin.experiments) == ["astro.a", "astro.b"]  # sorted
    assert (a.distribution, a.version, a.missing, a.usable) == (
        "Noisygrad_Astro",
        "1.2",
        ("definitely-not-installed-pkg-xyz",),
        False,
    )
    assert (b.plugin.summary, b.plugin.requires, b.plugin.experiments, b.missing, b.usable) == ("", (), {}, (), True)
    assert plugins.get("bare") is not None
    assert plugins.get("bare").module == "noisygrad.bare"
    with pytest.raises(plugins.MissingDependencyError, match="installed: astro, bare"):
        plugins.get("nope")
    with pytest.raises(plugins.MissingDependencyError, match="definitely-not-installed-pkg-xyz"):
        plugins.load("astro")
    with pytest.raises(plugins.MissingDependencyError, match="definitely-not-installed-pkg-xyz"):
        plugins.require("astro")


def test_plugins_refuse_two_distributions_of_one_name(monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = _Dist("pkg-one", "1", "", []), _Dist("pkg-two", "1", "", [])
    _script_metadata(monkeypatch, [_EP("same", "a", one), _EP("same", "b", two)], [])
    with pytest.raises(RuntimeError, match="pkg-one and pkg-two"):
        plugins.available()
    _script_metadata(monkeypatch, [], [])
    assert plugins.available() == []
    assert plugins.core_experiments() == {}
    with pytest.raises(plugins.MissingDependencyError, match="installed: none"):
        plugins.get("x")


def test_plugin_records_are_frozen_and_the_groups_named() -> None:
    import dataclasses

    assert (plugins.ENTRY_POINT_GROUP, plugins.EXPERIMENT_GROUP) == ("noisygrad.plugins", "noisygrad.experiments")
    rec = plugins.Plugin("a", "m")
    assert rec.experiments == {}
    assert rec.requires == ()
    assert rec.summary == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.name = "b"  # type: ignore[misc]
    status = plugins.PluginStatus(rec, "dist-a", "1.0", ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.version = "2"  # type: ignore[misc]
    assert status.usable is True


def test_plugins_load_imports_a_usable_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    _script_metadata(monkeypatch, [_EP("js", "json", _Dist("pkg-json", "1", "", ["numpy"]))], [])
    import json

    assert plugins.load("js") is json
    rec = plugins.Plugin("js", "json", requires=("numpy",))
    plugins.require(rec)  # nothing missing: no error
    assert rec.extra == "pip install 'noisygrad[js]'"
    assert rec.missing() == []
    assert plugins._installed("numpy") is True
    assert plugins._installed("definitely-not-installed-pkg-xyz") is False


# --------------------------------------------------------------------------------------------------- molecules


def test_two_atoms_energy_and_forces_closed_form() -> None:
    r = 1.5
    x = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=F64)
    s6 = (1.0 / r) ** 6
    assert float(molecules.cluster_energy(x)) == pytest.approx(4 * (s6 * s6 - s6), rel=1e-15)
    # epsilon 2, sigma 1.2
    s6b = (1.2 / r) ** 6
    assert float(molecules.cluster_energy(x, epsilon=2.0, sigma=1.2)) == pytest.approx(8 * (s6b**2 - s6b), rel=1e-14)
    e, f = molecules.lennard_jones_forces(x.numpy(), epsilon=2.0, sigma=1.2)
    assert e == pytest.approx(8 * (s6b**2 - s6b), rel=1e-14)
    fx = 24 * 2.0 * (2 * s6b**2 - s6b) / r  # on atom 0, along x_0 - x_1 = -r
    assert f == pytest.approx(np.array([[-fx, 0, 0], [fx, 0, 0]]), rel=1e-13)
    assert molecules.max_force(f) == pytest.approx(abs(fx), rel=1e-13)
    # the defaults (epsilon = sigma = 1), from float32 positions: computed in float64
    e1, f1 = molecules.lennard_jones_forces(x.numpy().astype(np.float32))
    assert f1.dtype == np.float64
    assert e1 == pytest.approx(4 * (s6 * s6 - s6), rel=1e-15)
    assert f1[0, 0] == pytest.approx(-24 * (2 * s6 * s6 - s6) / r, rel=1e-14)
    i, j, incidence_t = molecules._pairs(2)
    assert not (i.flags.writeable)
    assert not (j.flags.writeable)
    assert not (incidence_t.flags.writeable)
    assert molecules.max_force(torch.tensor(f.reshape(-1))) == pytest.approx(abs(fx), rel=1e-13)
    energy = molecules.lennard_jones(2, epsilon=2.0, sigma=1.2)
    v, g = energy.value_and_grad(x.reshape(-1))
    assert v == pytest.approx(8 * (s6b**2 - s6b), rel=1e-14)
    assert torch.allclose(g, -torch.tensor(f.reshape(-1)), rtol=1e-13, atol=0)


def test_three_body_term_on_an_equilateral_triangle() -> None:
    # side 1.2: every angle 60 degrees, 1 + 3 cos^3(60) = 1.375, product of sides^3 = 1.2^9
    side = 1.2
    x = torch.tensor([[0.0, 0.0, 0.0], [side, 0.0, 0.0], [side / 2, side * math.sqrt(3) / 2, 0.0]], dtype=F64)
    s6 = side**-6
    pair = 3 * 4 * (s6 * s6 - s6)
    nu = 1.0
    got = float(molecules.cluster_energy(x, three_body=nu))
    assert got == pytest.approx(pair + nu * 1.375 / side**9, rel=1e-13)
    assert float(molecules.cluster_energy(x)) == pytest.approx(pair, rel=1e-14)
    # weights: the pair (0, 1) alone
    w = torch.tensor([1.0, 1.0, 0.0], dtype=F64)
    assert float(molecules.cluster_energy(x, three_body=nu, weights=w)) == pytest.approx(4 * (s6 * s6 - s6), rel=1e-14)
    # unequal weights: the pairs (0,1), (0,2), (1,2) weigh 0.125, 0.5, 0.25 and the triple 0.125
    half = torch.tensor([0.5, 0.25, 1.0], dtype=F64)
    expect = 4 * (s6 * s6 - s6) * (0.125 + 0.5 + 0.25) + 0.125 * nu * 1.375 / side**9
    assert float(molecules.cluster_energy(x, three_body=nu, weights=half)) == pytest.approx(expect, rel=1e-13)
    # two atoms: no triple even with nu
    assert float(molecules.cluster_energy(x[:2], three_body=nu)) == pytest.approx(4 * (s6 * s6 - s6), rel=1e-14)
    # batched: (2, 3, 3) gives shape (2,)
    both = torch.stack([x, 2 * x])
    out = molecules.cluster_energy(both, three_body=nu)
    assert out.shape == (2,)
    assert float(out[0]) == pytest.approx(got, rel=1e-14)
    flat = molecules.lennard_jones(3, three_body=nu)
    assert flat.value(x.reshape(-1)) == pytest.approx(got, rel=1e-14)
    assert molecules.lennard_jones(3).value(x.reshape(-1)) == pytest.approx(pair, rel=1e-14)  # no triple by default


def test_molecule_input_checks() -> None:
    good = torch.zeros(2, 3, dtype=F64)
    good[1, 0] = 1.0
    with pytest.raises(TypeError, match="positions"):
        molecules.cluster_energy(good.numpy())  # type: ignore[arg-type]
    for shape in ((3,), (2, 2), (1, 3)):
        with pytest.raises(ValueError, match="positions"):
            molecules.cluster_energy(torch.ones(shape, dtype=F64))
    with pytest.raises(TypeError, match="floating"):
        molecules.cluster_energy(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="weights"):
        molecules.cluster_energy(good, weights=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        molecules.cluster_energy(good, weights=[1.0, 1.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_atoms"):
        molecules.lennard_jones(1)
    with pytest.raises(ValueError, match="3 \\* n_atoms = 6"):
        molecules.lennard_jones(2).value(torch.zeros(5, dtype=F64))
    for bad in (np.zeros(3), np.zeros((2, 2)), np.zeros((1, 3))):
        with pytest.raises(ValueError, match="positions"):
            molecules.lennard_jones_forces(bad)
    for bad in (np.zeros(0), np.zeros(4)):
        with pytest.raises(ValueError, match="3 coordinates"):
            molecules.max_force(bad)
    with pytest.raises(ValueError, match="radius"):
        molecules.icosahedron(0.0)
    with pytest.raises(ValueError, match="noise"):
        molecules.perturbed_icosahedron(np.random.default_rng(0), noise=-1.0)


def test_icosahedron_geometry_and_perturbation() -> None:
    ico = molecules.icosahedron()
    assert ico.shape == (13, 3)
    assert np.array_equal(ico[0], np.zeros(3))
    assert np.allclose(np.linalg.norm(ico[1:], axis=1), 1.1, rtol=1e-15, atol=0)
    golden = (1 + math.sqrt(5)) / 2  # the cyclic permutations of (0, +-1, +-phi), in order (not the mirror image)
    corners = [(0.0, a, b * golden) for a in (-1, 1) for b in (-1, 1)]
    expected = np.array([c[k:] + c[:k] for c in corners for k in range(3)]) * 1.1 / math.sqrt(1 + golden**2)
    np.testing.assert_allclose(ico[1:], expected, rtol=1e-15, atol=1e-15)
    d = np.linalg.norm(ico[1:, None] - ico[None, 1:], axis=-1)
    edge = 1.1 / math.sin(2 * math.pi / 5)  # the edge of an icosahedron of circumradius 1.1
    assert np.isclose(np.sort(d, axis=1)[:, 1], edge, rtol=1e-14).all()
    assert np.allclose(np.linalg.norm(molecules.icosahedron(2.0)[1:], axis=1), 2.0, rtol=1e-15, atol=0)
    a = molecules.perturbed_icosahedron(np.random.default_rng(3), noise=0.1, radius=1.0)
    expect = molecules.icosahedron(1.0) + 0.1 * np.random.default_rng(3).standard_normal((13, 3))
    assert np.array_equal(a, expect)
    b = molecules.perturbed_icosahedron(np.random.default_rng(3))
    assert np.array_equal(b, ico + 0.05 * np.random.default_rng(3).standard_normal((13, 3)))
    assert np.array_equal(molecules.perturbed_icosahedron(np.random.default_rng(3), noise=0.0), ico)
    assert not np.array_equal(b, molecules.perturbed_icosahedron(np.random.default_rng(4)))
    assert molecules.LJ13_GLOBAL_MINIMUM == -44.326801


def test_atom_minibatch_factor_exact_fractions() -> None:
    assert molecules.atom_minibatch_factor(10, 4, 2) == float(Fraction(3, 9))
    assert molecules.atom_minibatch_factor(10, 4, 3) == pytest.approx(float(Fraction(3 * 2, 9 * 8)), rel=1e-15)
    assert molecules.atom_minibatch_factor(10, 4, 1) == 1.0
    assert molecules.atom_minibatch_factor(10, 2, 3) == 0.0
    assert molecules.atom_minibatch_factor(10, 3, 3) == pytest.approx(2 / 72, rel=1e-15)  # b = k
    assert molecules.atom_minibatch_factor(10, 10, 3) == 1.0
    with pytest.raises(ValueError, match="batch_size"):
        molecules.atom_minibatch_factor(10, 11, 2)


def test_atom_minibatch_gradients_and_mean_exact() -> None:
    x = torch.tensor(molecules.perturbed_icosahedron(np.random.default_rng(1))[:5].reshape(-1), dtype=F64)
    subsets = torch.tensor([[0, 2, 4], [1, 3, 4]], dtype=torch.int32)
    grads = molecules.atom_minibatch_gradients(x, subsets, three_body=1.0, epsilon=1.5, sigma=0.9)
    assert grads.shape == (2, 15)
    for row, s in zip(grads, subsets.tolist(), strict=True):
        sub = x.reshape(5, 3)[s].reshape(-1)
        _, g_sub = molecules.lennard_jones(3, three_body=1.0, epsilon=1.5, sigma=0.9).value_and_grad(sub)
        expect = torch.zeros(5, 3, dtype=F64)
        expect[s] = (5 / 3) * g_sub.reshape(3, 3)
        assert torch.allclose(row, expect.reshape(-1), rtol=1e-12, atol=1e-12)
    # the exact mean over all C(5, 3) draws equals the closed form
    import itertools

    every = torch.tensor(list(itertools.combinations(range(5), 3)))
    mean = molecules.atom_minibatch_gradients(x, every, three_body=1.0, epsilon=1.5, sigma=0.9).mean(0)
    closed = molecules.atom_minibatch_mean(x, 3, three_body=1.0, epsilon=1.5, sigma=0.9)
    assert torch.allclose(mean, closed, rtol=1e-12, atol=1e-12)
    pair_only = molecules.atom_minibatch_mean(x, 3, epsilon=1.5, sigma=0.9)
    _, g = molecules.lennard_jones(5, epsilon=1.5, sigma=0.9).value_and_grad(x)
    assert torch.allclose(pair_only, 0.5 * g, rtol=1e-14, atol=0)  # q_2 = 2/4
    # the defaults are the plain Lennard-Jones cluster (epsilon = sigma = 1, no three-body term)
    explicit = {"epsilon": 1.0, "sigma": 1.0, "three_body": 0.0}
    default_rows = molecules.atom_minibatch_gradients(x, subsets)
    assert torch.equal(default_rows, molecules.atom_minibatch_gradients(x, subsets, **explicit))
    assert torch.equal(molecules.atom_minibatch_mean(x, 3), molecules.atom_minibatch_mean(x, 3, **explicit))
    assert not torch.allclose(default_rows, molecules.atom_minibatch_gradients(x, subsets, three_body=1.0))


def test_atom_minibatch_input_checks() -> None:
    x = torch.zeros(6, dtype=F64)
    for bad in (torch.zeros(5, dtype=F64), torch.zeros(2, 3, dtype=F64), torch.zeros(6, dtype=torch.int64), [0.0]):
        with pytest.raises(ValueError, match="x must be a flat"):
            molecules.atom_minibatch_gradients(bad, torch.tensor([[0, 1]]))  # type: ignore[arg-type]
    for bad in (torch.tensor([0, 1]), torch.tensor([[0.0, 1.0]]), [[0, 1]], torch.tensor([[0, 1]], dtype=torch.int16)):
        with pytest.raises(ValueError, match="integer tensor"):
            molecules.atom_minibatch_gradients(x, bad)  # type: ignore[arg-type]
    for bad in (torch.tensor([[0, 2]]), torch.tensor([[-1, 0]]), torch.zeros(1, 0, dtype=torch.int64)):
        with pytest.raises(ValueError, match="atom indices"):
            molecules.atom_minibatch_gradients(x, bad)
    with pytest.raises(ValueError, match="repeat"):
        molecules.atom_minibatch_gradients(x, torch.tensor([[1, 1]]))
    two = torch.tensor([0.0, 0, 0, 1.2, 0, 0], dtype=F64)
    g = molecules.atom_minibatch_gradients(two, torch.tensor([[1, 0]], dtype=torch.int64))
    _, full = molecules.lennard_jones(2).value_and_grad(two)
    assert torch.allclose(g[0], full, rtol=1e-14, atol=0)  # the whole cluster, unscaled (n / b = 1)


# ---------------------------------------------------------------------------------------------------- compiled


def _plus_one(x: float) -> float:
    return x + 1.0


def test_compiled_dispatcher_options() -> None:
    from noisygrad import compiled as mod

    assert mod.HAVE_NUMBA is True
    assert {"reassoc", "contract"} == mod.REASSOCIATE
    plain = mod.compiled(_plus_one)
    called = mod.compiled()(_plus_one)
    fast = mod.compiled(reassociate=True)(_plus_one)
    for d in (plain, called):
        assert d.py_func is _plus_one
        assert d.targetoptions["nopython"] is True
        assert d.targetoptions["fastmath"] is False
        assert type(d._cache).__name__ == "FunctionCache"  # cached on disk
    assert fast.targetoptions["fastmath"] == {"reassoc", "contract"}
    assert type(fast._cache).__name__ == "FunctionCache"


def test_compiled_without_numba_returns_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from noisygrad import compiled as mod

    monkeypatch.setattr(mod, "numba", None)
    assert mod.compiled(_plus_one) is _plus_one
    assert mod.compiled(reassociate=True)(_plus_one) is _plus_one
