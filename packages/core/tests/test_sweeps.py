"""Sweeps: spawned seeds, and ``sweep`` giving the serial loop's results, bit for bit and in input order, on
every executor (this process, spawned processes, a user's Executor, Ray and Dask when installed); errors carry
the item's index; bad arguments are refused before any task runs; ``noisygrad run``/``tour --jobs 2`` give
the findings of ``--jobs 1``.

The tasks live in a small module written to a temporary folder (the suite imports test files under names a
spawned worker cannot import): the README regression run by ``noisygrad.minimize`` with a seed from
``spawn_seeds(2024, 16)``. Equality is exact (``torch.equal``, ``==`` on floats): the contract is bitwise.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import json
import multiprocessing
import os
import pickle
import sys
import textwrap

import numpy as np
import pytest
import torch

from noisygrad.rng import substream_seed
from noisygrad.sweeps import SweepError, spawn_seeds, sweep

TASKS = '''
"""Tasks for test_sweep.py, imported by spawned, Ray and Dask workers from a temporary folder."""

import time

import torch

import noisygrad as ng


def _loss(w, X, y):
    return 0.5 * ((X @ w - y) ** 2).mean()


def regression(seed, steps=100):
    """The README regression: MiniBatch(32), SGD with a Robbins-Monro step, ``steps`` steps from 0."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(1000, 5, dtype=torch.float64, generator=gen)
    y = X @ torch.arange(5.0, dtype=torch.float64) + 0.1 * torch.randn(1000, dtype=torch.float64, generator=gen)
    estimator = ng.MiniBatch(ng.FiniteSum(_loss, (X, y)), batch_size=32)
    rule = ng.SGD(ng.RobbinsMonro(a=1.0, b=10.0, alpha=1.0))
    result = ng.minimize(estimator, rule, torch.zeros(5, dtype=torch.float64), steps=steps, seed=seed)
    return {"x": result.x, "fun": result.fun, "threads": torch.get_num_threads()}


def fails_on(item):
    """``(index, delay, fail)``: sleep ``delay`` seconds, then raise if ``fail``, else return ``index``."""
    index, delay, fail = item
    time.sleep(delay)
    if fail:
        raise ValueError(f"item {index} failed")
    return index
'''

SEEDS = spawn_seeds(2024, 16)


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep_tasks")
    (folder / "noisygrad_sweep_tasks.py").write_text(textwrap.dedent(TASKS))
    return folder


@pytest.fixture(scope="module")
def tasks(tasks_dir):
    """The tasks module, importable by name here and in spawned workers (which inherit ``sys.path``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tasks_dir))
        yield importlib.import_module("noisygrad_sweep_tasks")
    sys.modules.pop("noisygrad_sweep_tasks", None)


@pytest.fixture(scope="module")
def reference(tasks):
    """The serial loop, in this process (one torch thread, as the suite's conftest sets)."""
    return [tasks.regression(seed) for seed in SEEDS]


def _assert_identical(results, reference):
    assert len(results) == len(reference)
    for k, (got, want) in enumerate(zip(results, reference, strict=True)):
        assert torch.equal(got["x"], want["x"]), f"seed {k}: {got['x']} != {want['x']}"
        assert got["fun"] == want["fun"], k
        assert got["threads"] == 1, k  # every task ran with one torch thread, wherever it ran


# ---------------------------------------------------------------------------------------------- spawn_seeds


def test_spawn_seeds_are_the_seed_sequence_children_as_63_bit_ints():
    children = np.random.SeedSequence(2024).spawn(16)
    assert [int(c.generate_state(1, np.uint64)[0]) >> 1 for c in children] == SEEDS
    assert [substream_seed(2024, k) for k in range(16)] == SEEDS  # one convention with noisygrad.rng
    assert SEEDS[0] == 1986488363705185011
    assert len(set(SEEDS)) == 16
    assert all(isinstance(s, int) and 0 <= s < 2**63 for s in SEEDS)
    assert spawn_seeds(2024, 4) == SEEDS[:4]  # a longer sweep extends a shorter one
    assert spawn_seeds(2025, 4) != SEEDS[:4]
    assert spawn_seeds(2024, 0) == []
    # what a task does with one: both generators take it as it is, and it reproduces their draws
    assert np.random.default_rng(SEEDS[3]).random() == np.random.default_rng(SEEDS[3]).random()
    draws = [torch.rand(3, generator=torch.Generator().manual_seed(SEEDS[3])) for _ in range(2)]
    assert torch.equal(*draws)


@pytest.mark.parametrize(
    ("seed", "n", "error", "message"),
    [
        (-1, 4, ValueError, "seed must be an integer >= 0"),
        (1.5, 4, TypeError, "seed must be an integer"),
        (True, 4, TypeError, "seed must be an integer"),
        (0, -2, ValueError, "n must be an integer >= 0"),
        (0, "4", TypeError, "n must be an integer"),
    ],
)
def test_spawn_seeds_refuses_bad_arguments(seed, n, error, message):
    with pytest.raises(error, match=message):
        spawn_seeds(seed, n)


# ---------------------------------------------------------------------------------------------- executors


def test_serial_sweep_is_the_loop_in_order(tasks, reference):
    seen = []
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the sweep runs its tasks with one thread and gives this process its setting back
    try:
        results = sweep(tasks.regression, SEEDS, on_done=lambda k, r: seen.append(k))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    _assert_identical(results, reference)
    assert seen == list(range(16))


def test_process_sweep_is_bit_identical_to_the_serial_loop(tasks, reference):
    seen = []
    results = sweep(tasks.regression, iter(SEEDS), executor="process", workers=2, on_done=lambda k, r: seen.append(k))
    _assert_identical(results, reference)
    assert sorted(seen) == list(range(16))


@pytest.fixture(scope="module")
def spawn_pool():
    """A user's own pool of two spawned processes, shared by the tests below (each start costs seconds)."""
    with cf.ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def test_a_users_executor_gives_the_same_results_and_stays_open(tasks, reference, spawn_pool):
    _assert_identical(sweep(tasks.regression, SEEDS[:4], executor=spawn_pool), reference[:4])
    assert spawn_pool.submit(int, "7").result() == 7  # not shut down by the sweep
    with cf.ThreadPoolExecutor(max_workers=2) as threads:
        _assert_identical(sweep(tasks.regression, SEEDS[:4], executor=threads), reference[:4])


@pytest.mark.parametrize("executor", ["serial", "pool"])
def test_the_first_failure_in_input_order_is_raised_with_its_index(tasks, spawn_pool, executor):
    # item 5 fails at once, item 2 after half a second: the serial loop stops at item 2, and so does the pool
    items = [(k, 0.5 if k == 2 else 0.0, k in (2, 5)) for k in range(8)]
    message = r"task failed on item 2 \(\(2, 0.5, True\)\): ValueError: item 2 failed"
    with pytest.raises(SweepError, match=message) as info:
        sweep(tasks.fails_on, items, executor=spawn_pool if executor == "pool" else executor)
    assert info.value.index == 2
    assert info.value.item == (2, 0.5, True)
    assert isinstance(info.value.__cause__, ValueError)
    copy = pickle.loads(pickle.dumps(info.value))  # a sweep inside a worker's task fails back to its parent
    assert (str(copy), copy.index, copy.item) == (str(info.value), 2, (2, 0.5, True))


def test_the_serial_sweep_stops_at_the_failing_item():
    calls = []

    def task(k):
        calls.append(k)
        if k == 3:
            raise KeyError(k)
        return k

    with pytest.raises(SweepError, match="item 3") as info:
        sweep(task, range(10))
    assert calls == [0, 1, 2, 3]
    assert isinstance(info.value.__cause__, KeyError)


def test_results_come_back_in_input_order_whatever_finishes_first(tasks):
    # later items finish first (shorter sleeps) in two threads: the results keep the items' order
    items = [(k, 0.05 * (6 - k), False) for k in range(6)]
    finished = []
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        results = sweep(tasks.fails_on, items, executor=pool, on_done=lambda k, r: finished.append(k))
    assert results == list(range(6))
    assert sorted(finished) == list(range(6))
    assert finished != list(range(6))  # they did finish out of order


def test_an_empty_sweep_is_an_empty_list(tasks):
    assert sweep(tasks.regression, [], executor="process", workers=2) == []
    assert sweep(tasks.regression, []) == []


def _never(item):  # pragma: no cover - a task the argument checks must stop before it runs
    raise AssertionError("ran")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"task": 3}, TypeError, "task must be callable"),
        ({"items": 5}, TypeError, "items must be an iterable"),
        ({"items": "abc"}, TypeError, "items must be an iterable"),
        ({"executor": "threads"}, ValueError, "executor must be one of serial, process, ray, dask"),
        ({"executor": 2}, TypeError, "executor must be one of serial, process, ray, dask"),
        ({"workers": 0}, ValueError, "workers must be an integer > 0"),
        ({"workers": True}, TypeError, "workers must be an integer"),
        ({"workers": 2}, ValueError, "workers must be None or 1 for executor='serial'"),
        ({"threads": 0}, ValueError, "threads must be an integer > 0"),
        ({"on_done": "print"}, TypeError, "on_done must be callable"),
        ({"task": lambda s: s, "executor": "process"}, TypeError, "task must pickle for executor='process'"),
        ({"items": [1, (lambda: 0)], "executor": "process"}, TypeError, r"items\[1\] must pickle"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(kwargs, error, message):
    arguments = {"task": _never, "items": [1, 2], **kwargs}
    with pytest.raises(error, match=message):
        sweep(**arguments)


def test_an_executor_brings_its_own_size():
    with cf.ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(ValueError, match="workers must be None"):
        sweep(_never, [1], executor=pool, workers=2)


@pytest.mark.parametrize(("executor", "module", "extra"), [("ray", "ray", "ray"), ("dask", "distributed", "dask")])
def test_a_missing_engine_names_the_extra_to_install(monkeypatch, executor, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what `import` sees when the package is not installed
    with pytest.raises(ImportError, match=rf"needs {module}, which is not installed: .*noisygrad-core\[{extra}\]"):
        sweep(_never, [1], executor=executor)


# ---------------------------------------------------------------------------------------------- Ray and Dask


@pytest.fixture(scope="module")
def ray_runtime(tasks_dir):
    """One local Ray instance for the module (its start costs seconds); workers find the tasks module."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    path = os.pathsep.join([str(tasks_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@pytest.mark.slow  # Ray's start and its workers' imports: 9 s here, 20 s on a loaded 2-core machine
def test_ray_sweep_is_bit_identical_to_the_serial_loop(tasks, reference, ray_runtime):
    seen = []
    results = sweep(tasks.regression, SEEDS, executor="ray", workers=2, on_done=lambda k, r: seen.append(k))
    _assert_identical(results, reference)
    assert sorted(seen) == list(range(16))
    with pytest.raises(SweepError, match=r"task failed on item 1 .*: ValueError: item 1 failed") as info:
        sweep(tasks.fails_on, [(0, 0.0, False), (1, 0.0, True), (2, 0.0, True)], executor="ray")
    assert info.value.index == 1
    assert isinstance(info.value.__cause__, ValueError)  # Ray's error is also an instance of the task's own


@pytest.mark.slow  # a LocalCluster of two worker processes: about 10 s
def test_dask_sweep_is_bit_identical_to_the_serial_loop(tasks, reference):
    pytest.importorskip("distributed")
    results = sweep(tasks.regression, SEEDS, executor="dask", workers=2)  # a LocalCluster for this call
    _assert_identical(results, reference)


# ---------------------------------------------------------------------------------------------- the command


def _without_seconds(entries):
    entries = json.loads(json.dumps(entries))
    for entry in entries:
        entry.pop("seconds")
    return entries


@pytest.mark.slow  # two spawned workers import torch and the tour again: about 10 s
def test_run_with_jobs_gives_the_findings_of_one_job():
    # `noisygrad tour --jobs` runs through the same run_experiments (tests/test_tour.py checks it with fakes)
    from typer.testing import CliRunner

    from noisygrad.tour import cli

    names = ["core.noise-ball", "core.lyapunov"]  # two cheap experiments (about 0.3 s and 1.2 s)
    runs = {}
    for jobs in ("1", "2"):
        result = CliRunner().invoke(cli.app, ["run", *names, "--seed", "5", "--json", "--jobs", jobs])
        assert result.exit_code == 0, result.output
        runs[jobs] = _without_seconds(json.loads(result.stdout))
    assert sorted(e["experiment"] for e in runs["2"]) == sorted(names)
    assert runs["2"] == runs["1"]  # every finding, every number, bit for bit, in the same order
