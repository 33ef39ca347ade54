"""Spawned gloo workers for the ``test_distributed_*`` tests, and the harness that runs them.

``torch.multiprocessing.spawn`` pickles the worker by module and name, so the workers live in this plain module
(the tests put its folder on ``sys.path``; pytest's own import of a test module is not importable by name in a
child). Each run binds its own free port (a socket bound to port 0), sets one torch thread per worker and saves
each rank's results with ``torch.save`` to ``out/<name>_rank<r>.pt`` for the test to compare.
"""

from __future__ import annotations

import datetime
import math
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
from torch.nn.parallel import DistributedDataParallel as DDP

import noisygrad as ng
import noisygrad.distributed.group
from noisygrad.distributed import AdaptiveBatch, DataParallelMiniBatch, GradientNoiseHook

N_EXAMPLES, DIM = 1000, 5


def regression() -> tuple[torch.Tensor, torch.Tensor]:
    """The README problem: ``X = randn(1000, 5)``, ``y = X @ arange(5) + 0.1 noise`` (generator seed 0, float64)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N_EXAMPLES, DIM, dtype=torch.float64, generator=gen)
    y = X @ torch.arange(DIM, dtype=torch.float64) + 0.1 * torch.randn(N_EXAMPLES, dtype=torch.float64, generator=gen)
    return X, y


def regression_objective() -> ng.FiniteSum:
    X, y = regression()
    return ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))


def _exit_guarded() -> bool:
    """Whether this process will wait for gloo's worker threads at exit (``test_distributed_exit.py``)."""
    return noisygrad.distributed.group._exit_guarded


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, out: str, worker: Callable[..., dict[str, Any]], args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        result = worker(rank, world, *args)
        torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run(worker: Callable[..., dict[str, Any]], world: int, out: Path, *args: Any) -> list[dict[str, Any]]:
    """Run ``worker(rank, world, *args)`` on ``world`` gloo ranks (own free port); each rank's result, by rank."""
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_entry, args=(world, free_port(), str(out), worker, args), nprocs=world, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


# ------------------------------------------------------------------------------------------- GradientNoiseHook


def _linear() -> DDP:
    model = torch.nn.Linear(DIM, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    return DDP(model)


def _mlp() -> torch.nn.Module:
    torch.manual_seed(1)  # the same start on every rank (DDP also broadcasts rank 0's parameters)
    return torch.nn.Sequential(torch.nn.Linear(DIM, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()


def _loss(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (model(X).squeeze(-1) - y).pow(2).mean()


def noise_at_fixed_point(rank: int, world: int, draws: int, batch: int, seed: int, twins: int) -> dict[str, Any]:
    """At ``w = 0``: per-step hook estimates over ``draws`` batches. For the first ``twins`` of them the same batch is
    also fed as A = 2 micro-batches (the first under ``no_sync``), with the losses summed (``accumulation="sum"``)
    and halved (``"mean"``), and with the loss scaled by 1024. Also: the hook's local norm against the one computed
    by hand, the synced gradient, a refused double synchronisation, an overflowed step, a state round trip."""
    X, y = regression()
    b, h = batch // world, batch // world // 2
    models = {name: _linear() for name in ("one", "sum", "mean", "scaled")}
    meters = {
        "one": GradientNoiseHook(models["one"], micro_batch_size=b, n_examples=N_EXAMPLES, ema=None),
        "sum": GradientNoiseHook(models["sum"], 2, micro_batch_size=h, n_examples=N_EXAMPLES, ema=None),
        "mean": GradientNoiseHook(
            models["mean"], 2, micro_batch_size=h, n_examples=N_EXAMPLES, ema=None, accumulation="mean"
        ),
        "scaled": GradientNoiseHook(models["scaled"], micro_batch_size=b, n_examples=N_EXAMPLES, ema=None),
    }
    gen = torch.Generator().manual_seed(seed)
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    check: dict[str, Any] = {}

    def measured(name: str, **kwargs: Any) -> None:
        e = meters[name].step(**kwargs)
        assert e is not None
        rows[name].append((e.trace_cov, e.grad_sq))
        models[name].zero_grad()

    for t in range(draws):
        idx = torch.randperm(N_EXAMPLES, generator=gen)[:batch]
        mine = idx[rank * b : (rank + 1) * b]
        _loss(models["one"], X[mine], y[mine]).backward()
        if t == 0:  # the hook read the local gradient before the all-reduce, the global mean after it
            w = torch.zeros(DIM, dtype=torch.float64, requires_grad=True)
            (local,) = torch.autograd.grad(0.5 * ((X[mine] @ w - y[mine]) ** 2).mean(), w)
            work, _, gathered = meters["one"]._pending[0]
            work.wait()
            check["local_hook"] = float(gathered[rank])
            check["local_manual"] = float(local.pow(2).sum())
            check["synced"] = models["one"].module.weight.grad.reshape(-1).clone()
            check["global"] = X[idx].T @ (X[idx] @ torch.zeros(DIM, dtype=torch.float64) - y[idx]) / batch
        measured("one")
        if t >= twins:
            continue
        for name, divide in (("sum", 1.0), ("mean", 2.0)):  # the same examples in two micro-batches
            with models[name].no_sync():
                (_loss(models[name], X[mine[:h]], y[mine[:h]]) / divide).backward()
            (_loss(models[name], X[mine[h:]], y[mine[h:]]) / divide).backward()
            measured(name)
        (1024.0 * _loss(models["scaled"], X[mine], y[mine])).backward()  # a power of two: the scaling is exact
        measured("scaled", loss_scale=1024.0)
    one, scaled = models["one"], models["scaled"]
    try:  # a second synchronisation before step() is refused
        for _ in range(2):
            _loss(one, X[:b], y[:b]).backward()
        meters["one"].step()
        check["double_sync"] = "accepted"
    except RuntimeError as exc:
        check["double_sync"] = str(exc)
    (math.inf * _loss(scaled, X[:b], y[:b])).backward()  # an overflow: skipped with a loss scale, refused without
    check["overflow_skipped"] = meters["scaled"].step(loss_scale=1024.0) is None and meters["scaled"].skipped == 1
    scaled.zero_grad()
    (math.inf * _loss(scaled, X[:b], y[:b])).backward()
    try:
        meters["scaled"].step()
        check["overflow_raised"] = "accepted"
    except ng.NonFiniteGradientError as exc:
        check["overflow_raised"] = str(exc)
    meters["scaled"].load_state_dict(meters["one"].state_dict())
    check["state_round_trip"] = meters["scaled"].noise_scale == meters["one"].noise_scale
    check["noise_scale"] = meters["one"].noise_scale
    return {**{k: torch.tensor(v, dtype=torch.float64) for k, v in rows.items()}, **check}


def training_equality(rank: int, world: int, steps: int, batch: int) -> dict[str, Any]:
    """SGD on the MLP: plain DDP against DDP with the noise hook (every step, and every third), each parameter in a
    bucket of its own
    (``bucket_cap_mb`` tiny, so the hook's per-bucket sums are exercised), and PowerSGD alone against PowerSGD
    wrapped, in one bucket (PowerSGD issues collectives from its futures' callbacks; with several buckets those
    met in different orders on the two ranks and deadlocked gloo, with and without the noise hook: measured)."""
    X, y = regression()
    b = batch // world
    out: dict[str, Any] = {}
    for name in ("plain", "hooked", "hooked_every", "powersgd", "powersgd_wrapped"):
        model = DDP(_mlp(), bucket_cap_mb=None if name.startswith("powersgd") else 1e-6)
        meter = None
        if name == "hooked":
            meter = GradientNoiseHook(model, micro_batch_size=b, n_examples=N_EXAMPLES)
        elif name == "hooked_every":
            meter = GradientNoiseHook(model, micro_batch_size=b, n_examples=N_EXAMPLES, every=3)
        elif name.startswith("powersgd"):
            state = powersgd.PowerSGDState(
                process_group=None, matrix_approximation_rank=1, start_powerSGD_iter=3, min_compression_rate=0.5
            )
            if name == "powersgd":
                model.register_comm_hook(state, powersgd.powerSGD_hook)
            else:
                meter = GradientNoiseHook(model, wrap=powersgd.powerSGD_hook, wrap_state=state, micro_batch_size=b)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        gen = torch.Generator().manual_seed(7)
        estimates = []
        for _ in range(steps):
            idx = torch.randperm(N_EXAMPLES, generator=gen)[:batch][rank * b : (rank + 1) * b]
            _loss(model, X[idx], y[idx]).backward()
            opt.step()
            if meter is not None:
                estimates.append(meter.step())
            opt.zero_grad()
        out[name] = [p.detach().clone() for p in model.module.parameters()]
        if meter is not None:
            out[f"{name}_estimates"] = estimates
            out[f"{name}_state"] = meter.state_dict()
    return out


# ----------------------------------------------------------------------------------------- DataParallelMiniBatch


def minibatch_run(rank: int, world: int, steps: int, batch: int) -> dict[str, Any]:
    """``ng.minimize`` with ``DataParallelMiniBatch`` on every rank (same seed): the final point and the history,
    plus a run with the ranks' seeds made to differ, which must raise."""
    est = DataParallelMiniBatch(regression_objective(), batch)
    grads: list[torch.Tensor] = []
    res = ng.minimize(
        est,
        ng.SGD(0.05),
        torch.zeros(DIM, dtype=torch.float64),
        steps=steps,
        seed=0,
        callbacks=[lambda info: grads.append(info.estimate.grad.clone())],
    )
    out: dict[str, Any] = {"x": res.x, "grads": grads, "shards": est.shards}
    out["noise"] = est.noise.state_dict()
    out["exit_guarded"] = _exit_guarded()  # the gathers made the process wait for gloo's workers at exit
    try:
        ng.minimize(est, ng.SGD(0.05), torch.zeros(DIM, dtype=torch.float64), steps=2, seed=rank)
        out["diverged"] = "accepted"
    except RuntimeError as exc:
        out["diverged"] = str(exc)
    return out


# ------------------------------------------------------------------------------------------------ AdaptiveBatch


def adaptive_ddp(rank: int, world: int, steps: int) -> dict[str, Any]:
    """DDP training of the regression with the hook feeding an ``AdaptiveBatch`` (AdaScale gain, aiming at 4x the
    noise scale so that the batch grows within a short run): the batch and gain sequence seen by each rank."""
    X, y = regression()
    model = _linear()
    meter = GradientNoiseHook(model, n_examples=N_EXAMPLES)
    ctrl = AdaptiveBatch(8 * world, 256, lr_rule="adascale", warmup=5, target=4.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.02)
    gen = torch.Generator().manual_seed(3)
    sizes, gains = [], []
    for _ in range(steps):
        batch = ctrl.batch_size
        b = batch // world
        idx = torch.randperm(N_EXAMPLES, generator=gen)[:batch][rank * b : (rank + 1) * b]
        _loss(model, X[idx], y[idx]).backward()
        for group in opt.param_groups:
            group["lr"] = 0.02 * ctrl.lr_gain
        opt.step()
        e = meter.step(micro_batch_size=b)
        ctrl.update(e.trace_cov, e.grad_sq)
        opt.zero_grad()
        sizes.append(ctrl.batch_size)
        gains.append(ctrl.lr_gain)
    return {"sizes": sizes, "gains": gains, "multiple_of": ctrl.multiple_of, "state": ctrl.state_dict()}


def hook_checks(rank: int, world: int, draws: int, batch: int, twins: int, train_steps: int) -> dict[str, Any]:
    """:func:`noise_at_fixed_point` and :func:`training_equality` in one spawned run (spawning costs seconds)."""
    return {
        **noise_at_fixed_point(rank, world, draws, batch, 0, twins),
        **training_equality(rank, world, train_steps, batch),
        "exit_guarded": _exit_guarded(),  # the hook made the process wait for gloo's workers at exit
    }
