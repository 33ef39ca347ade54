"""Spawned gloo workers for ``test_distributed.py``, and the harness that runs them.

``torch.multiprocessing.spawn`` pickles the worker by module and name, so the workers live in this plain module (the
test puts its folder on ``sys.path``; pytest's own import of a test module is not importable by name in a child).
The name differs from the core tests' ``_distributed_workers`` so that both can sit in one pytest process. Each run
binds its own free port (a socket bound to port 0), sets one torch thread per worker and saves each rank's results
with ``torch.save`` to ``out/rank<r>.pt`` for the test to compare.
"""

from __future__ import annotations

import datetime
import functools
import importlib.util
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ADAM = {"optimizer": "adam", "lr": 1e-3, "iterations": 20, "batch_size": 12, "seed": 7}
LBFGS_FULL = {"optimizer": "lbfgs", "iterations": 10, "lbfgs_chunk": 5, "seed": 7}  # torch L-BFGS, line search
FULL_DOMAIN = 22  # 22 domain + 2 boundary = 24 PDE points: splits into 2 and 4 shards


@functools.cache
def tiny_poisson() -> Any:
    """``conftest.tiny_poisson``, loaded by path under a private name (a plain ``import conftest`` may find another
    folder's conftest on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location("_pinn_tests_conftest", Path(__file__).with_name("conftest.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tiny_poisson


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(model: Any, result: Any, seconds: float) -> dict[str, Any]:
    """What a run leaves behind that the twin must reproduce bit for bit."""
    return {
        "params": [p.detach().clone() for p in model.net.parameters()],
        "losses": result.losses.copy(),
        "trace_cov": result.trace_cov.copy(),
        "grad_norm_sq": result.grad_norm_sq.copy(),
        "final_loss": result.final_loss,
        "iterations": result.iterations,
        "shards": result.shards,
        "world": result.world,
        "seconds": seconds,
    }


def run_case(case: str, **extra: Any) -> dict[str, Any]:
    """Build the tiny Poisson model of ``case`` and train it (``extra``: ``distributed=True`` or ``shards=K``)."""
    import noisygrad.pinn as ngp

    if case == "adam":
        model, kwargs = tiny_poisson()(0), ADAM
    elif case == "lbfgs_full":
        model, kwargs = tiny_poisson()(0, num_domain=FULL_DOMAIN), LBFGS_FULL
    else:
        raise ValueError(f"unknown case {case!r}")
    kwargs = {**kwargs, **extra}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # L-BFGS in float32 warns; the test asserts the warning in the twin
        result = ngp.train(model, kwargs.pop("optimizer"), verbose=0, **kwargs)
    return summary(model, result, time.perf_counter() - start)


def worker(rank: int, world: int, cases: tuple[str, ...]) -> dict[str, Any]:
    """Each case with ``distributed=True``; ``"mismatch"`` gives each rank its own seed and records the error."""
    out: dict[str, Any] = {}
    for case in cases:
        if case == "mismatch":
            import noisygrad.pinn as ngp

            try:
                model = tiny_poisson()(0)
                ngp.train(model, "adam", iterations=2, batch_size=12, seed=rank, distributed=True, verbose=0)
                out[case] = None
            except RuntimeError as err:
                out[case] = str(err)
        else:
            out[case] = run_case(case, distributed=True)
    return out


def _entry(rank: int, world: int, port: int, out: str, cases: tuple[str, ...]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        torch.save(worker(rank, world, cases), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run(world: int, out: Path, cases: tuple[str, ...]) -> list[dict[str, Any]]:
    """Run ``cases`` on ``world`` gloo ranks (own free port); each rank's results, by rank."""
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_entry, args=(world, free_port(), str(out), cases), nprocs=world, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]
