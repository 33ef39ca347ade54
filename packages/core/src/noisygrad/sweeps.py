"""Reproducible sweeps: one task over many items (seeds, configurations) on an engine the user already runs.

The contract is ``sweep(task, items)[k] == task(items[k])``, bit for bit, whatever runs it: this process
(``"serial"``), a pool of spawned processes (``"process"``), Ray (``"ray"``), Dask (``"dask"``) or any
``concurrent.futures.Executor``. That holds because

* a task takes all of its randomness from its item (a seed from :func:`spawn_seeds`, or a configuration that
  holds one), never from a global generator, the worker's identity or the order in which workers finish;
* results come back in the order of ``items``, not in the order they finish;
* every task runs with the same number of threads (``threads=1`` by default), in this process as in a
  worker: torch's intra-op threads and, where ``threadpoolctl`` is installed (scikit-learn brings it), the
  BLAS pools of numpy and scipy. A reduction split over a different number of threads may round differently.

Ray and Dask are optional (``pip install 'noisygrad-core[ray]'`` or ``'noisygrad-core[dask]'``) and imported
only when asked for. noisygrad does not replace their schedulers: ``"ray"`` submits one Ray task per item to
the running Ray instance (``ray.init(address=...)`` for a cluster) and ``"dask"`` uses the current
``distributed`` client, so both scale to whatever the user has connected to.

The module is ``noisygrad.sweeps`` so that ``noisygrad.sweep`` stays the function: importing a submodule
of that name would replace the package's attribute with the module.

Each spawned worker imports torch and noisygrad again (about 3-4 s on a loaded 2-core machine), so a pool
only pays off when the tasks last well beyond that; ``benchmarks/sweep_speedup.py`` measures the speed-up.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = ["EXECUTORS", "SweepError", "spawn_seeds", "sweep"]

T = TypeVar("T")
R = TypeVar("R")

#: The executors named by a string; an instance of ``concurrent.futures.Executor`` is also accepted.
EXECUTORS = ("serial", "process", "ray", "dask")

#: What to install for the optional executors (the extras of ``noisygrad-core``).
_EXTRAS = {"ray": "pip install 'noisygrad-core[ray]'", "dask": "pip install 'noisygrad-core[dask]'"}

#: Thread counts that OpenMP, MKL and OpenBLAS read when they load (set in a spawned worker before torch is).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class SweepError(RuntimeError):
    """A task raised (or its worker died) on one item; the original exception is the ``__cause__``.

    Attributes:
        index: the position of the item in ``items``: the first failing one, as the serial loop would report.
        item: the item itself.
    """

    def __init__(self, message: str, index: int, item: Any) -> None:
        super().__init__(message)
        self.index = index
        self.item = item

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (a sweep inside a worker's task fails back to its parent)
        return (type(self), (self.args[0], self.index, self.item))

    @classmethod
    def _of(cls, index: int, item: Any, cause: BaseException) -> SweepError:
        """The error for ``cause`` raised on ``items[index]``, its message naming both."""
        text = repr(item)
        text = text if len(text) <= 80 else text[:77] + "..."
        # Ray wraps a task's exception (RayTaskError, its text a remote traceback); `.cause` is the task's own
        own = getattr(cause, "cause", None)
        shown = own if isinstance(own, BaseException) else cause
        return cls(f"task failed on item {index} ({text}): {type(shown).__name__}: {shown}", index, item)


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent seeds spawned from ``seed``: ``numpy.random.SeedSequence(seed).spawn(n)`` as ints.

    Seed ``k`` is 63 bits of child ``k``'s state, the same int as :func:`noisygrad.rng.substream_seed`
    ``(seed, k)`` (a child of ``SeedSequence(seed)`` is the sub-stream with spawn key ``(k,)``). Plain ints are
    what every consumer takes: ``numpy.random.default_rng(s)``, ``torch.Generator().manual_seed(s)``,
    ``noisygrad.minimize(..., seed=s)`` and an experiment's ``seed=``; they pickle, print and go into a JSON
    report as they are. Children are statistically independent of one another, unlike ``seed + k``, whose
    streams overlap those of the neighbouring seeds. torch's CPU generator keeps only the low 32 bits of a
    seed, so for torch two of ``n`` seeds coincide with probability about ``n**2 / 2**33``.

    Args:
        seed: the sweep's seed, an integer >= 0.
        n: how many seeds, an integer >= 0.

    Returns:
        ``n`` ints in ``[0, 2**63)``; the first ``m`` are the same for every ``n >= m``.
    """
    from noisygrad.checks import check_positive_int
    from noisygrad.rng import substream_seed

    seed = check_positive_int("seed", seed, allow_zero=True)
    n = check_positive_int("n", n, allow_zero=True)
    return [substream_seed(seed, k) for k in range(n)]


def sweep(
    task: Callable[[T], R],
    items: Iterable[T],
    executor: str | cf.Executor = "serial",
    workers: int | None = None,
    *,
    threads: int | None = 1,
    on_done: Callable[[int, R], None] | None = None,
) -> list[R]:
    """``[task(item) for item in items]``, run by ``executor``, in the order of ``items`` and bit-identical.

    Args:
        task: a function of one item. With ``"process"`` (or a process pool) it must pickle: a function
            defined at the top of a module, or a ``functools.partial`` of one. It must take its randomness from
            the item alone (see the module's note).
        items: the items, e.g. ``spawn_seeds(seed, n)``; read once, never modified.
        executor: ``"serial"`` (this process, one item after another), ``"process"`` (a pool of ``workers``
            spawned processes, created and closed by this call), ``"ray"`` (one Ray task per item on the
            running Ray instance; with none running, ``ray.init(num_cpus=workers)`` starts one, which stays up
            for the next sweep), ``"dask"`` (the current ``distributed`` client; with none, a ``LocalCluster``
            of ``workers`` one-thread processes for this call) or a ``concurrent.futures.Executor`` you own
            (e.g. ``client.get_executor(pure=False)`` of a Dask client); an Executor is neither shut down nor
            resized.
        workers: how many items run at once: the pool's size for ``"process"`` (default: the CPU count, at
            most one per item), the number of Ray or Dask tasks in flight at a time (default: as many as the
            engine schedules). ``None`` or 1 for ``"serial"``; ``None`` for an Executor (it has its own size).
        threads: the threads each task runs with, in this process as in every worker: torch's intra-op
            threads, the BLAS and OpenMP pools through ``threadpoolctl`` where it is installed, and
            ``OMP_NUM_THREADS`` and the like in a spawned worker before its libraries load. This process's own
            settings are restored afterwards. ``None`` leaves thread settings alone; the results then match
            the serial loop only where the task's arithmetic does not depend on the thread count.
        on_done: called as ``on_done(index, result)`` in this process as each task finishes (completion
            order; in input order for ``"serial"``), e.g. to show progress.

    Returns:
        The results, ``results[k] == task(items[k])``.

    Raises:
        TypeError, ValueError: for a bad argument, before any task runs (a task that does not pickle for a
            process pool; an executor that is neither a known name nor an Executor; ``workers`` that the
            executor cannot honour).
        ImportError: ``"ray"`` or ``"dask"`` is not installed; the message names the extra to install.
        SweepError: a task raised or its worker died; for the first such item in input order (the one the
            serial loop would stop at), with the original exception as its cause. Items after it that have
            not started are cancelled.
    """
    from noisygrad.checks import check_positive_int

    if not callable(task):
        raise TypeError(f"task must be callable, got {type(task).__name__}")
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise TypeError(f"items must be an iterable of task inputs (a list, a range, ...), got {type(items).__name__}")
    todo = list(items)
    if workers is not None:
        workers = check_positive_int("workers", workers)
    if threads is not None:
        threads = check_positive_int("threads", threads)
    if on_done is not None and not callable(on_done):
        raise TypeError(f"on_done must be callable or None, got {type(on_done).__name__}")
    if isinstance(executor, cf.Executor):
        if workers is not None:
            raise ValueError("workers must be None when executor is an Executor: its own size decides")
        if isinstance(executor, cf.ProcessPoolExecutor):
            _check_picklable(task, todo, "a ProcessPoolExecutor")
    elif not isinstance(executor, str):
        raise TypeError(
            f"executor must be one of {', '.join(EXECUTORS)} or a concurrent.futures.Executor, "
            f"got {type(executor).__name__}"
        )
    elif executor not in EXECUTORS:
        raise ValueError(
            f"executor must be one of {', '.join(EXECUTORS)} or a concurrent.futures.Executor, got {executor!r}"
        )
    elif executor == "serial" and workers not in (None, 1):
        raise ValueError(f"workers must be None or 1 for executor='serial' (one item at a time), got {workers}")
    elif executor == "process":
        _check_picklable(task, todo, "executor='process'")
    engine = _optional(executor) if executor in ("ray", "dask") else None  # a missing extra fails before any work

    restore = _this_process_threads(threads)
    try:
        if executor == "serial":
            return _serial(task, todo, threads, on_done)
        if isinstance(executor, cf.Executor):
            return _gather(executor, task, todo, threads, len(todo), on_done)
        if executor == "process":
            return _process(task, todo, threads, workers, on_done)
        if executor == "ray":
            return _ray(engine, task, todo, threads, workers, on_done)
        return _dask(engine, task, todo, threads, workers, on_done)
    finally:
        restore()


# ---------------------------------------------------------------------------------------------- the runners


def _call(task: Callable[[T], R], item: T, threads: int | None) -> R:
    """Run one task under ``threads`` threads: what every executor runs, in this process or in a worker."""
    if threads is not None:
        _pin_threads(threads)
    return task(item)


def _pin_threads(threads: int) -> Any:
    """Set torch's intra-op threads and, where threadpoolctl is installed, the thread pools of the BLAS and
    OpenMP libraries loaded so far (numpy's and scipy's OpenBLAS); returns threadpoolctl's limiter (or None)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it, numpy's BLAS keeps its own thread count in this process
        return None
    return threadpool_limits(limits=threads)


def _start_worker(threads: int | None) -> None:
    """Initializer of a spawned worker: the thread variables are set before the libraries that read them load
    (this module imports neither numpy nor torch), then the libraries already loaded are pinned."""
    if threads is not None:
        for variable in _THREAD_VARIABLES:
            os.environ[variable] = str(threads)
        _pin_threads(threads)


def _this_process_threads(threads: int | None) -> Callable[[], None]:
    """Pin this process's threads for the sweep (tasks may run here), returning the function that restores them."""
    if threads is None:
        return lambda: None
    import torch

    before = torch.get_num_threads()
    limiter = _pin_threads(threads)

    def restore() -> None:
        if limiter is not None:
            limiter.restore_original_limits()
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)

    return restore


def _serial(
    task: Callable[[T], R], todo: Sequence[T], threads: int | None, on_done: Callable[[int, R], None] | None
) -> list[R]:
    results = []
    for index, item in enumerate(todo):
        try:
            result = _call(task, item, threads)
        except Exception as exc:
            raise SweepError._of(index, item, exc) from exc
        results.append(result)
        if on_done is not None:
            on_done(index, result)
    return results


def _gather(
    submit_to: cf.Executor | Callable[[int], cf.Future[R]],
    task: Callable[[T], R],
    todo: Sequence[T],
    threads: int | None,
    window: int,
    on_done: Callable[[int, R], None] | None,
) -> list[R]:
    """Submit the items in input order with at most ``window`` in flight; collect the results by index.

    After a failure on item ``i``, later items that have not started are cancelled and nothing after ``i`` is
    submitted, while the earlier ones still run: the error raised is the first one in input order.
    """
    submit: Callable[[int], cf.Future[R]]
    if isinstance(submit_to, cf.Executor):
        pool = submit_to
        submit = lambda index: pool.submit(_call, task, todo[index], threads)  # noqa: E731
    else:
        submit = submit_to
    results: dict[int, R] = {}
    pending: dict[cf.Future[R], int] = {}
    failed: tuple[int, BaseException] | None = None
    following = 0
    try:
        while True:
            while following < len(todo) and len(pending) < window and (failed is None or following < failed[0]):
                pending[submit(following)] = following
                following += 1
            if not pending:
                break
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in sorted(finished, key=pending.__getitem__):
                index = pending.pop(future)
                try:
                    result = future.result()
                except BaseException as exc:  # a worker's exception (or its death), re-raised as SweepError
                    if failed is None or index < failed[0]:
                        failed = (index, exc)
                    continue
                results[index] = result
                if on_done is not None:
                    on_done(index, result)
            if failed is not None:
                for future, index in list(pending.items()):
                    if index > failed[0]:
                        future.cancel()
                        del pending[future]
    finally:
        for future in pending:
            future.cancel()
    if failed is not None:
        raise SweepError._of(failed[0], todo[failed[0]], failed[1]) from failed[1]
    return [results[index] for index in range(len(todo))]


def _process(
    task: Callable[[T], R],
    todo: Sequence[T],
    threads: int | None,
    workers: int | None,
    on_done: Callable[[int, R], None] | None,
) -> list[R]:
    if not todo:
        return []
    size = min(workers or os.cpu_count() or 1, len(todo))
    # "spawn": a fresh interpreter per worker; forking a process that already holds torch's threads can hang
    pool = cf.ProcessPoolExecutor(
        max_workers=size,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads,),
    )
    try:
        return _gather(pool, task, todo, threads, len(todo), on_done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(
    ray: Any,
    task: Callable[[T], R],
    todo: Sequence[T],
    threads: int | None,
    workers: int | None,
    on_done: Callable[[int, R], None] | None,
) -> list[R]:
    if not todo:
        return []
    if not ray.is_initialized():
        # RAY_ADDRESS names a running cluster (which has its own size); otherwise a local instance of `workers` CPUs
        ray.init(**({} if os.environ.get("RAY_ADDRESS") else {"num_cpus": workers, "include_dashboard": False}))
    remote = ray.remote(num_cpus=1)(_call)
    shared = ray.put(task)  # serialised once, not once per item
    refs = []

    def submit(index: int) -> cf.Future[R]:
        refs.append(remote.remote(shared, todo[index], threads))
        future: cf.Future[R] = refs[-1].future()
        return future

    try:
        return _gather(submit, task, todo, threads, workers or len(todo), on_done)
    except BaseException:
        for ref in refs:  # after a failure: stop what still runs (a no-op for finished tasks)
            ray.cancel(ref)
        raise


def _dask(
    distributed: Any,
    task: Callable[[T], R],
    todo: Sequence[T],
    threads: int | None,
    workers: int | None,
    on_done: Callable[[int, R], None] | None,
) -> list[R]:
    if not todo:
        return []
    try:
        client, cluster = distributed.get_client(), None
    except ValueError:  # no client yet: a local cluster of one-thread worker processes, for this call only
        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed.Client(cluster)
    try:
        # pure=False: two equal calls are two tasks (a cached result would hide a task that is not pure)
        return _gather(client.get_executor(pure=False), task, todo, threads, workers or len(todo), on_done)
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


# ---------------------------------------------------------------------------------------------- the checks


def _optional(name: str) -> Any:
    """``ray``, or ``distributed`` for ``"dask"``, imported now; a clear ImportError naming the extra if absent."""
    module = "distributed" if name == "dask" else name
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"executor={name!r} needs {module}, which is not installed: {_EXTRAS[name]}") from exc


def _check_picklable(task: Callable[..., Any], todo: Sequence[Any], where: str) -> None:
    """A spawned worker receives the task and each item by pickle: refuse what cannot travel, before any work."""
    target = getattr(task, "func", task)  # a functools.partial travels as its function
    main = sys.modules.get("__main__")
    if getattr(target, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise TypeError(
            f"task {getattr(target, '__qualname__', target)!r} is defined in an interactive session, which "
            f"spawned workers cannot import ({where}): define it in a module, or use executor='ray' or 'dask'"
        )
    try:
        pickle.dumps(task)
    except Exception as exc:
        raise TypeError(
            f"task must pickle for {where} (a function defined at the top of a module, or a functools.partial "
            f"of one), got {task!r}: {exc}"
        ) from exc
    for index, item in enumerate(todo):
        try:
            pickle.dumps(item)
        except Exception as exc:
            raise TypeError(f"items[{index}] must pickle for {where}, got {type(item).__name__}: {exc}") from exc
