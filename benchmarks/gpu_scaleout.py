"""What one lent GPU machine can measure of the scale-out work, as one JSON summary; on a CPU the CUDA parts are
skipped with a message and the rest runs.

    python benchmarks/gpu_scaleout.py [--out gpu_scaleout.json] [--quick] [--sections env,hook,minibatch,...]
    torchrun --standalone --nproc-per-node N benchmarks/gpu_scaleout.py --sections env,hook,minibatch  # N GPUs

Sections (each one isolated: an error is recorded in the summary and the next section runs):

* ``env``: torch, CUDA, NCCL, the GPU and its memory, the CPU count, qiskit-aer and whether it has a GPU device.
* ``hook``: the step-time cost of :class:`noisygrad.distributed.GradientNoiseHook` against plain DDP, rows timed in
  blocks whose order is shuffled every round (drifting load hits every row alike).

  - ``world1``: one process, NCCL on CUDA (gloo on a CPU). The hook needs two ranks, so a *probe* hook does its
    device work around torch's ``allreduce_hook``: the squared norm of each bucket before the reduction and of the
    reduced bucket after it (noisygrad's own ``_sq_norm``), and per step a stack, a sum and a host read. On one GPU
    this is the hook's compute cost; its communication (one all-gather of one number per step) needs two GPUs.
  - ``gloo2``: two gloo ranks on the same device (CUDA tensors staged through host memory on a GPU): the real hook.
  - under ``torchrun`` with ``N >= 2`` ranks: NCCL, one GPU per rank, rows plain, python all-reduce, noise hook,
    noise hook measuring one step in ten, PowerSGD, and the noise hook around PowerSGD (the real-bandwidth test).

* ``minibatch``: :class:`~noisygrad.distributed.DataParallelMiniBatch` steps per second against ``MiniBatch`` with
  :func:`noisygrad.minimize` on the device (one process: 1, 4 and 8 shards). Under ``torchrun``: ``N`` ranks, and
  whether the run equals its one-process twin bit for bit on every rank (NCCL's own reduction order is not used).
* ``quantum``: the plugin's torch statevector on CUDA (seconds per batch from 16 to 26 qubits and peak memory;
  whether a point's probabilities are the same bits in any batch, which point sharding relies on); Aer's GPU
  statevector when ``qiskit-aer-gpu`` is installed, beside Aer on the CPU cores.
* ``cluster`` (only when named, with ``--executor ray`` or ``dask``): :func:`noisygrad.sweep` of 64 seeds of the
  README regression and a point-sharded VQE on the running Ray cluster (``RAY_ADDRESS``) or Dask scheduler
  (``--scheduler``), each against the serial run here, bit for bit, with the speed-up; a local instance without
  either. Bit-identity across machines needs the same builds on the same instruction set.
* ``sharding``: point sharding (``point_streams=True``) over spawned CPU processes: seconds per batch for the serial
  run and pools of 2, 4 and 8 workers, and whether every sharded batch equals the serial one bit for bit.

The whole default run is sized for under 8 minutes on one H100 (a 16-core host); ``--quick`` is a smoke test of a
minute or two on a CPU. Timings on a shared machine are only indicative; the bit-identity checks are exact.
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# No ``from __future__ import annotations``: DDP compares a hook's annotations with the real GradBucket and Future.
from torch._C._distributed_c10d import GradBucket  # = torch.distributed.GradBucket
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel as DDP

import noisygrad as ng
from noisygrad.distributed import DataParallelMiniBatch, GradientNoiseHook, reference

try:  # the hook's own norm, so that the probe does the very same arithmetic
    from noisygrad.distributed.hook import _sq_norm
except ImportError:  # pragma: no cover - a renamed private helper: the same formula

    def _sq_norm(tensor: torch.Tensor) -> torch.Tensor:
        acc = torch.float64 if tensor.dtype == torch.float64 else torch.float32
        return torch.linalg.vector_norm(tensor.reshape(-1), dtype=acc).to(torch.float64).square()


SECTIONS = ("env", "hook", "minibatch", "quantum", "sharding")
EXTRA_SECTIONS = ("cluster",)  # only when named: it needs --executor (and a cluster to be worth it)
NO_CUDA = "skipped: torch sees no CUDA GPU"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(values: list[float]) -> float:
    return round(1e3 * statistics.median(values), 4)


# ---------------------------------------------------------------------------------------------- env


def section_env(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "noisygrad": getattr(ng, "__version__", "?"),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda_version=torch.version.cuda,
            nccl=".".join(map(str, torch.cuda.nccl.version())) if dist.is_nccl_available() else None,
        )
    try:
        import qiskit_aer
        from qiskit_aer import AerSimulator

        out["qiskit_aer"] = qiskit_aer.__version__
        out["aer_devices"] = list(AerSimulator().available_devices())
    except ImportError:
        out["qiskit_aer"] = None
    return out


# ---------------------------------------------------------------------------------------------- hook


def _mlp(width: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights in every row and on every rank
    return torch.nn.Sequential(
        torch.nn.Linear(width, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, 10),
    ).to(device)


class _ProbeState:
    """The probe hook's state: the process group it reduces over and the norms of the current step."""

    def __init__(self, group: Any) -> None:
        self.group = group
        self.local: list[torch.Tensor] = []
        self.reduced: list[torch.Tensor] = []

    def step(self) -> float:
        """What GradientNoiseHook.step adds per step on one rank: a stack, a sum and a host read of the norms."""
        local = torch.stack(self.local).sum()
        big = torch.stack(self.reduced).sum()
        self.local, self.reduced = [], []
        return float(local) + float(big)


def probe_hook(state: _ProbeState, bucket: GradBucket) -> torch.futures.Future[torch.Tensor]:
    """GradientNoiseHook's per-bucket device work around torch's all-reduce hook (usable on one rank)."""
    state.local.append(_sq_norm(bucket.buffer()))
    future = allreduce_hook(state.group, bucket)

    def after(done: torch.futures.Future[Any]) -> Any:
        value = done.value()
        state.reduced.append(_sq_norm(value[0] if isinstance(value, list | tuple) else value))
        return value

    return future.then(after)


def _rows(kind: str, world: int, powersgd: bool) -> list[str]:
    if kind == "world1":
        return ["plain", "python all-reduce", "probe (hook's norms)"]
    rows = ["plain", "python all-reduce", "noise hook", "noise hook, every 10"]
    if powersgd:
        rows += ["powersgd", "noise hook around powersgd"]
    return rows


def _time_rows(
    kind: str,
    device: torch.device,
    width: int,
    batch: int,
    rounds: int,
    block: int,
    powersgd: bool,
) -> dict[str, Any]:
    """Every row's median step time (the slowest rank's, per block) on the current process group."""
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd

    world, rank = dist.get_world_size(), dist.get_rank()
    ids = [device.index] if device.type == "cuda" else None
    rows = _rows(kind, world, powersgd)
    models = {name: DDP(_mlp(width, device), device_ids=ids) for name in rows}
    meters: dict[str, Any] = {}
    for name, model in models.items():
        if name == "python all-reduce":
            model.register_comm_hook(None, allreduce_hook)
        elif name.startswith("probe"):
            meters[name] = _ProbeState(model.process_group)
            model.register_comm_hook(meters[name], probe_hook)
        elif name in ("noise hook", "noise hook, every 10"):
            meters[name] = GradientNoiseHook(model, micro_batch_size=batch, every=10 if "10" in name else 1)
        elif name == "powersgd":
            state = psgd.PowerSGDState(process_group=None, matrix_approximation_rank=4, start_powerSGD_iter=3)
            model.register_comm_hook(state, psgd.powerSGD_hook)
        elif name == "noise hook around powersgd":
            state = psgd.PowerSGDState(process_group=None, matrix_approximation_rank=4, start_powerSGD_iter=3)
            meters[name] = GradientNoiseHook(model, micro_batch_size=batch, wrap=psgd.powerSGD_hook, wrap_state=state)
    opts = {name: torch.optim.SGD(m.parameters(), lr=1e-4) for name, m in models.items()}
    gen = torch.Generator().manual_seed(1 + rank)
    X = torch.randn(batch, width, generator=gen).to(device)
    y = torch.randint(10, (batch,), generator=gen).to(device)
    times: dict[str, list[float]] = {name: [] for name in rows}

    def run(name: str, steps: int) -> float:
        model, opt = models[name], opts[name]
        dist.barrier()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            torch.nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
            if name in meters:
                meters[name].step()
            opt.zero_grad()
        _sync(device)
        elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64, device=device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
        return float(elapsed) / steps

    for name in rows:  # warm-up: bucket rebuild after the first step, PowerSGD past its start, cuBLAS plans
        run(name, 5)
    order = random.Random(0)  # the same shuffles on every rank
    for _ in range(rounds):
        names = list(rows)
        order.shuffle(names)
        for name in names:
            times[name].append(run(name, block))
    params = sum(p.numel() for p in models["plain"].parameters())
    out: dict[str, Any] = {
        "world": world,
        "device": str(device),
        "parameters": params,
        "batch_per_rank": batch,
        "steps_timed_per_row": rounds * block,
        "median_step_ms": {name: _median_ms(times[name]) for name in rows},
    }
    base = statistics.median(times["plain"])
    out["ratio_to_plain"] = {name: round(statistics.median(times[name]) / base, 4) for name in rows}
    paired = {}
    for name in rows[1:]:
        ratios = [a / b for a, b in zip(times[name], times["plain"], strict=True)]
        paired[name] = round(statistics.median(ratios), 4)
    out["median_round_ratio_to_plain"] = paired
    # the smoothed B_simple of each noise hook: around PowerSGD it is read from the compressed mean (biased)
    out["noise_scale"] = {name: m.noise_scale for name, m in meters.items() if isinstance(m, GradientNoiseHook)}
    return out


def _accuracy(device: torch.device, draws: int) -> dict[str, Any]:
    """The hook's estimates at a fixed point against the exact values, on the current process group (>= 2 ranks).

    The README regression (``X = randn(1000, 5)``, ``y = X @ arange(5) + 0.1 noise``, generator seed 0, float64) at
    ``w = 0``: every step all ranks draw the same 16 examples per rank without replacement (one shared generator)
    and each rank takes its slice; nothing is updated. The means of the per-step ``tr(S)`` and ``|G|^2`` must lie
    within 5% of the values from all 1000 per-example gradients (174.764 and 27.359), and within 4 standard
    errors measured from the steps themselves.
    """
    from noisygrad.noise.statistics import gradient_noise

    world, rank = dist.get_world_size(), dist.get_rank()
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(1000, 5, dtype=torch.float64, generator=gen)
    y = X @ torch.arange(5, dtype=torch.float64) + 0.1 * torch.randn(1000, dtype=torch.float64, generator=gen)
    w0 = torch.zeros(5, dtype=torch.float64)
    exact = gradient_noise(ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y)), w0)
    model = torch.nn.Linear(5, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    ids = [device.index] if device.type == "cuda" else None
    ddp = DDP(model.to(device), device_ids=ids)
    b = 16
    meter = GradientNoiseHook(ddp, micro_batch_size=b, n_examples=1000, ema=None)
    Xd, yd = X.to(device), y.to(device)
    draw = torch.Generator().manual_seed(1)  # the same on every rank: one global batch per step
    rows = []
    for _ in range(draws):
        idx = torch.randperm(1000, generator=draw)[: b * world][rank * b : (rank + 1) * b].to(device)
        (0.5 * (ddp(Xd[idx]).squeeze(-1) - yd[idx]).pow(2).mean()).backward()
        estimate = meter.step()
        rows.append((estimate.trace_cov, estimate.grad_sq))
        ddp.zero_grad()
    out: dict[str, Any] = {"world": world, "batch_per_rank": b, "draws": draws}
    passed = True
    for i, (name, true) in enumerate((("trace_cov", exact.trace_cov), ("grad_sq", exact.grad_norm_sq))):
        values = [r[i] for r in rows]
        mean = statistics.fmean(values)
        se = statistics.stdev(values) / math.sqrt(len(values))
        rel, z = mean / true - 1, (mean - true) / se
        out[name] = {"mean": mean, "exact": true, "relative_error": rel, "z": z}
        passed = passed and abs(rel) < 0.05 and abs(z) < 4
    ratio = statistics.fmean(r[0] for r in rows) / statistics.fmean(r[1] for r in rows)
    out["b_simple"] = {"estimate": ratio, "exact": exact.trace_cov / exact.grad_norm_sq}
    out["within_5_percent_and_4_se"] = passed
    return out


def _hook_sizes(device: torch.device, quick: bool) -> list[tuple[int, int]]:
    """(width, batch per rank) of the timed models: a >= 10 ms step on a GPU and a short one."""
    if quick:
        return [(256, 32)]
    if device.type == "cuda":
        return [(4096, 4096), (1024, 256)]
    return [(512, 64)]


def _gloo2_worker(
    rank: int, port: int, out: str, use_cuda: bool, sizes: list, rounds: int, block: int, draws: int
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=300),
    )
    try:
        device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
        results = {
            "accuracy": _accuracy(device, draws),
            "models": [_time_rows("gloo2", device, w, b, rounds, block, powersgd=False) for w, b in sizes],
        }
        if rank == 0:
            Path(out, "gloo2.json").write_text(json.dumps(_strict(results)))
    finally:
        dist.destroy_process_group()


def section_hook(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    rounds, block = (3, 3) if args.quick else (10, 10)
    draws = 300 if args.quick else 4000  # the accuracy check: 4000 draws give about 1% standard errors
    sizes = _hook_sizes(device, args.quick)
    if _launched_world() > 1:  # torchrun: the real thing, NCCL across GPUs (gloo across CPU processes)
        return {
            "torchrun": {
                "accuracy": _accuracy(device, draws),
                "models": [_time_rows("torchrun", device, w, b, rounds, block, powersgd=True) for w, b in sizes],
            }
        }
    out: dict[str, Any] = {}
    backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
    log(f"hook: world 1 ({backend}) on {device}")
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        out["world1"] = {
            "backend": backend,
            "models": [_time_rows("world1", device, w, b, rounds, block, False) for w, b in sizes],
        }
    finally:
        dist.destroy_process_group()
    log(f"hook: two gloo ranks on {device}")
    gloo_sizes = _hook_sizes(torch.device("cpu"), args.quick)  # gloo stages CUDA tensors through the host
    try:
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(
                _gloo2_worker,
                args=(_free_port(), tmp, device.type == "cuda", gloo_sizes, rounds, block, draws),
                nprocs=2,
                join=True,
            )
            out["gloo2"] = json.loads(Path(tmp, "gloo2.json").read_text())
    except Exception as exc:  # e.g. a collective gloo cannot run on CUDA tensors
        out["gloo2"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return out


# ---------------------------------------------------------------------------------------------- minibatch


def _finite_sum(device: torch.device, n: int, features: int) -> tuple[ng.FiniteSum, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(features, 256),
        torch.nn.Tanh(),
        torch.nn.Linear(256, 256),
        torch.nn.Tanh(),
        torch.nn.Linear(256, 1),
    ).to(device)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(n, features, generator=gen).to(device)
    y = torch.sin(X.sum(1))
    objective = ng.FiniteSum.from_module(net, lambda out, y: 0.5 * (out.squeeze(-1) - y) ** 2, (X, y))
    return objective, torch.nn.utils.parameters_to_vector(net.parameters()).detach()


def _steps_per_second(make: Callable[[], Any], x0: torch.Tensor, steps: int, device: torch.device) -> float:
    ng.minimize(make(), ng.SGD(1e-3), x0, steps=3, seed=0)  # warm-up
    _sync(device)
    start = time.perf_counter()
    ng.minimize(make(), ng.SGD(1e-3), x0, steps=steps, seed=0)
    _sync(device)
    return steps / (time.perf_counter() - start)


def section_minibatch(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    n, batch, steps = (4096, 256, 10) if args.quick else (65536, 4096, 50 if device.type == "cuda" else 10)
    objective, x0 = _finite_sum(device, n, 64)
    world = _launched_world()
    out: dict[str, Any] = {
        "device": str(device),
        "examples": n,
        "batch": batch,
        "parameters": x0.numel(),
        "steps": steps,
    }
    rates: dict[str, float] = {}
    if world == 1:
        rates["MiniBatch"] = _steps_per_second(lambda: ng.MiniBatch(objective, batch), x0, steps, device)
        for shards in (1, 4, 8):
            rates[f"DataParallelMiniBatch shards={shards}"] = _steps_per_second(
                lambda s=shards: DataParallelMiniBatch(objective, batch, shards=s), x0, steps, device
            )
    else:
        rates[f"DataParallelMiniBatch ranks={world}"] = _steps_per_second(
            lambda: DataParallelMiniBatch(objective, batch), x0, steps, device
        )
        distributed = DataParallelMiniBatch(objective, batch)
        run = ng.minimize(distributed, ng.SGD(1e-3), x0, steps=20, seed=0)
        twin = ng.minimize(
            reference(DataParallelMiniBatch(objective, batch), world=world), ng.SGD(1e-3), x0, steps=20, seed=0
        )
        same = torch.tensor([float(torch.equal(run.x, twin.x))], device=device)
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        out["bit_identical_to_one_process_twin_on_every_rank"] = bool(same.item() == 1.0)
    out["steps_per_second"] = {k: round(v, 3) for k, v in rates.items()}
    out["examples_per_second"] = {k: round(v * batch) for k, v in rates.items()}
    return out


# ---------------------------------------------------------------------------------------------- quantum


def _rows_independent(backend: Any, plan: Any, values: Any) -> dict[str, Any]:
    """Whether each point's probabilities are the same bits in the whole batch, in halves and alone."""
    import numpy as np

    k = len(values)
    whole = backend.probabilities(values, plan)
    halves = np.concatenate(
        [backend.probabilities(values[: k // 2], plan), backend.probabilities(values[k // 2 :], plan)]
    )
    alone = np.concatenate([backend.probabilities(values[i : i + 1], plan) for i in range(k)])
    return {
        "points": k,
        "halves_equal": bool(np.array_equal(whole, halves)),
        "alone_equal": bool(np.array_equal(whole, alone)),
        "max_abs_difference": float(max(np.abs(whole - halves).max(), np.abs(whole - alone).max())),
    }


def section_quantum(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import numpy as np

    from noisygrad.quantum import EnergyObjective, gpu_available, tfim, tfim_ansatz
    from noisygrad.quantum._statevector import TorchStatevector
    from noisygrad.quantum.backends import AerBackend, TorchBackend
    from noisygrad.quantum.measurement import MeasurementPlan

    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    if device.type != "cuda":
        out["torch_cuda"] = NO_CUDA
        log(f"quantum: torch CUDA statevector {NO_CUDA}")
    else:
        qubits = (12, 16) if args.quick else (16, 20, 24, 26)
        timings = []
        for n in qubits:
            ansatz = tfim_ansatz(n, 2)
            k = min(64, 2 ** max(0, 26 - n))  # about 1 GiB of complex128 amplitudes per batch at most
            values = rng.uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
            simulator = TorchStatevector(ansatz, "cuda")
            simulator.states(values[:1])
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                simulator.states(values)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            timings.append(
                {
                    "qubits": n,
                    "points": k,
                    "seconds_per_batch": round(best, 5),
                    "seconds_per_point": round(best / k, 6),
                    "state_gib": round(16 * 2**n * k / 2**30, 3),
                    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                }
            )
            log(f"quantum: torch CUDA {n} qubits x {k} points: {best:.4f} s")
        out["torch_cuda_states"] = timings
        checks = {}
        for n in (6, 12) if args.quick else (6, 12, 18):
            ansatz = tfim_ansatz(n, 2)
            backend = TorchBackend(ansatz, "GPU")
            values = rng.uniform(-np.pi, np.pi, (24, ansatz.num_parameters))
            checks[str(n)] = _rows_independent(backend, MeasurementPlan(tfim(n), n), values)
        out["torch_cuda_rows_independent"] = checks
        n, k = (12, 8) if args.quick else (20, 16)
        ansatz = tfim_ansatz(n, 2)
        objective = EnergyObjective(tfim(n), ansatz, shots=1000, backend="torch", device="GPU")
        values = rng.uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
        objective.sample(values[:1], rng)
        start = time.perf_counter()
        objective.sample(values, rng)
        out["torch_cuda_energy_estimates"] = {
            "qubits": n,
            "points": k,
            "shots": 1000,
            "seconds": round(time.perf_counter() - start, 4),
        }
    aer_sizes = [(10, 8)] if args.quick else [(20, 16), (24, 2)] if torch.cuda.is_available() else [(16, 8)]
    has_gpu = gpu_available()
    aer: dict[str, Any] = {"gpu_build": has_gpu}
    for aer_device in ("GPU", "CPU") if has_gpu else ("CPU",):
        rows = []
        for n, k in aer_sizes:
            ansatz = tfim_ansatz(n, 2)
            backend = AerBackend(ansatz, aer_device)
            plan = MeasurementPlan(tfim(n), n)
            values = rng.uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
            backend.probabilities(values[:1], plan)  # transpilation, the device's start
            start = time.perf_counter()
            backend.probabilities(values, plan)
            seconds = time.perf_counter() - start
            rows.append({"qubits": n, "points": k, "groups": plan.num_groups, "seconds": round(seconds, 4)})
            log(f"quantum: Aer {aer_device} {n} qubits x {k} points: {seconds:.3f} s")
        aer[aer_device] = rows
    if not has_gpu:
        aer["GPU"] = "skipped: this qiskit-aer has no GPU device (pip install qiskit-aer-gpu, which replaces it)"
    out["aer_probabilities"] = aer
    return out


# ---------------------------------------------------------------------------------------------- sharding


def section_sharding(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import numpy as np

    from noisygrad.quantum import EnergyObjective, tfim, tfim_ansatz

    n, k = (10, 16) if args.quick else (14, 128)
    cpus = os.cpu_count() or 1
    pools = [w for w in ((2,) if args.quick else (2, 4, 8)) if w <= max(cpus, 2)]
    ansatz = tfim_ansatz(n, 2)
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, (k, ansatz.num_parameters))

    def timed(objective: Any) -> tuple[float, Any]:
        objective.sample(values[:2], np.random.default_rng(1))  # starts a pool's workers, builds the simulator
        best, result = math.inf, None
        for _ in range(1 if args.quick else 3):
            start = time.perf_counter()
            result = objective.sample(values, np.random.default_rng(7))
            best = min(best, time.perf_counter() - start)
        return best, result

    options = {"shots": 1000, "backend": "torch", "point_streams": True}
    serial_seconds, serial = timed(EnergyObjective(tfim(n), ansatz, **options))
    out: dict[str, Any] = {"qubits": n, "points": k, "cpus": cpus, "serial_seconds": round(serial_seconds, 4)}
    rows = {}
    for workers in pools:
        start = time.perf_counter()
        with EnergyObjective(tfim(n), ansatz, executor="process", workers=workers, **options) as objective:
            seconds, result = timed(objective)
        rows[str(workers)] = {
            "seconds": round(seconds, 4),
            "speedup": round(serial_seconds / seconds, 3),
            "bit_identical": bool(np.array_equal(result, serial)),
            "pool_start_and_runs_seconds": round(time.perf_counter() - start, 2),
        }
        log(f"sharding: {workers} workers {seconds:.3f} s against {serial_seconds:.3f} s serial")
    out["process_pools"] = rows
    return out


# ---------------------------------------------------------------------------------------------- cluster


def regression_task(seed: int) -> list[float]:
    """One seeded run of the README regression (about 0.1-0.5 s): what the cluster check sweeps. Defined in the
    script, so Ray and Dask ship it to their workers by value."""
    import noisygrad as ng_

    gen = torch.Generator().manual_seed(0)
    X = torch.randn(1000, 5, dtype=torch.float64, generator=gen)
    y = X @ torch.arange(5, dtype=torch.float64) + 0.1 * torch.randn(1000, dtype=torch.float64, generator=gen)
    objective = ng_.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
    run = ng_.minimize(
        ng_.MiniBatch(objective, 32), ng_.SGD(0.05), torch.zeros(5, dtype=torch.float64), steps=1000, seed=seed
    )
    return run.x.tolist()


def section_cluster(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import numpy as np
    from qiskit.circuit.library import efficient_su2

    from noisygrad.quantum import h2, vqe

    if args.executor not in ("ray", "dask"):
        return {"skipped": "give --executor ray or --executor dask"}
    client = None
    if args.executor == "dask" and args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)  # sweep finds it with distributed.get_client()
    try:
        seeds = ng.spawn_seeds(2024, 8 if args.quick else 64)
        start = time.perf_counter()
        serial = ng.sweep(regression_task, seeds)
        serial_seconds = time.perf_counter() - start
        ng.sweep(regression_task, seeds[:2], executor=args.executor, workers=args.workers)  # workers start
        start = time.perf_counter()
        remote = ng.sweep(regression_task, seeds, executor=args.executor, workers=args.workers)
        remote_seconds = time.perf_counter() - start
        options = {"gradient": "parameter-shift", "shots": 1000, "maxiter": 3 if args.quick else 10, "seed": 1}
        ansatz = efficient_su2(2, reps=1)
        local = vqe(h2(), ansatz, point_streams=True, **options)
        sharded = vqe(h2(), ansatz, point_streams=True, executor=args.executor, workers=args.workers or 4, **options)
        return {
            "executor": args.executor,
            "tasks": len(seeds),
            "serial_seconds": round(serial_seconds, 3),
            "cluster_seconds": round(remote_seconds, 3),
            "speedup": round(serial_seconds / remote_seconds, 3),
            "bit_identical": remote == serial,
            "quantum_bit_identical": bool(np.array_equal(local.parameters, sharded.parameters))
            and local.energy_estimate == sharded.energy_estimate,
        }
    finally:
        if client is not None:
            client.close()


# ---------------------------------------------------------------------------------------------- main


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float written as a string (strict JSON has no Infinity or NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _launched_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, from {', '.join(SECTIONS + EXTRA_SECTIONS)}",
    )
    parser.add_argument("--executor", choices=("ray", "dask"), default=None, help="the cluster section's engine")
    parser.add_argument("--scheduler", default=None, help="a Dask scheduler address (tcp://host:8786)")
    parser.add_argument("--workers", type=int, default=None, help="tasks in flight in the cluster section")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS + EXTRA_SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS + EXTRA_SECTIONS)}")
    world = _launched_world()
    if world > 1:  # torchrun: one GPU per rank, NCCL (gloo where there is no GPU)
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        # CUDA tensors over NCCL; the few CPU tensors some collectives carry (DataParallelMiniBatch's batch check)
        # over gloo, which a pure NCCL group would refuse
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
        chosen = [s for s in chosen if s in ("env", "hook", "minibatch")]
        device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # as each gloo rank and each shard worker: rows compare alike on a shared CPU
        log(f"no CUDA GPU: the CUDA parts are skipped ({NO_CUDA}); the CPU parts run")
    summary: dict[str, Any] = {"script": "benchmarks/gpu_scaleout.py", "quick": args.quick, "world": world}
    functions = {
        "env": section_env,
        "hook": section_hook,
        "minibatch": section_minibatch,
        "quantum": section_quantum,
        "sharding": section_sharding,
        "cluster": section_cluster,
    }
    total = time.perf_counter()
    for name in chosen:
        log(f"== {name}")
        start = time.perf_counter()
        try:
            summary[name] = functions[name](args, device)
        except Exception as exc:
            summary[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            log(f"{name} failed: {type(exc).__name__}: {exc}")
        summary.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 2)
    summary["total_seconds"] = round(time.perf_counter() - total, 2)
    if world > 1:
        dist.destroy_process_group()
        if int(os.environ.get("RANK", "0")) != 0:
            return 0
    text = json.dumps(_strict(summary), indent=1, default=str)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
