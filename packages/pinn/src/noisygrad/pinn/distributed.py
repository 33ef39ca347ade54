"""Collocation points spread over ranks: :func:`noisygrad.pinn.train` with ``distributed=True``, and its twin.

Every rank runs the same ``train`` call with the same seed, so every rank's generator draws the same global batch
of ``B`` PDE collocation points (exactly :class:`~noisygrad.pinn.CollocationBatches`' draw; on the full set, a fresh
random order of all ``N`` points each step). The draw is cut into ``K`` equal shards in draw order, each with every
boundary-condition row; rank ``r`` back-propagates the loss of its ``K / W`` consecutive shards, the ranks all-gather
the flattened shard gradients, and each rank sums them in shard order and divides by ``K``. With equal shards the
mean of the shard losses is the loss on the whole draw (boundary terms appear in every shard with the same value),
so the reduced gradient is the global batch gradient up to rounding.

Why not DDP: PDE residuals differentiate the network's output with ``create_graph=True`` before the loss is
back-propagated, and DDP's bucketed all-reduce with higher-order autograd has a record of wrong or unsynchronised
gradients (pytorch/pytorch#63831, #47562, #63812). Here the reduction runs once, after an ordinary ``backward``, so
any optimizer (Adam, the noise-robust L-BFGS, ``torch.optim.LBFGS`` with its line search) sees the same gradient and
loss on every rank, calls its closure the same number of times, and the ranks never drift apart. A reduction in a
fixed order gives every rank the same bits, and the same bits as the one-process twin ``train(..., shards=K)``,
which computes the same shards one after another: a run is a function of (model, inputs, seed, shards) only, not
of the number of ranks or of the backend's reduction order.

The shard gradients are McCandlish et al.'s two batch sizes (``b = B/K`` and ``B``), so every step carries
unbiased estimates of ``tr(S)`` and ``|G|^2`` (:func:`noisygrad.distributed.two_batch_estimates`, with the
finite-population correction for draws without replacement from the ``N`` pool points) at no extra cost.

Uneven splits are refused rather than weighted: ``B`` (or ``N`` on the full set) must be a multiple of ``K``, and
``K`` a multiple of the world size.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from noisygrad.checks import check_finite, check_positive_int
from noisygrad.distributed.estimates import NoiseEstimate, two_batch_estimates
from noisygrad.distributed.group import gather_rows, initialized, world_and_rank

from .batches import Rows

__all__ = ["Layout", "ShardedGradient", "layout"]


@dataclass(frozen=True)
class Layout:
    """Where the shards of each draw are computed: ``world`` ranks, this one ``rank``, ``shards`` pieces in all."""

    world: int
    rank: int
    shards: int

    @property
    def local(self) -> range:
        """The shard numbers this rank computes (consecutive, ``shards / world`` of them)."""
        per_rank = self.shards // self.world
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)


def _pde_points(model: Any) -> int:
    """``N``, the PDE collocation points of a ``dde.data.PDE``/``TimePDE`` (sharding needs that data)."""
    from ._deepxde import deepxde

    data = model.data
    if not isinstance(data, deepxde().data.PDE):
        raise TypeError(
            f"distributed=True and shards need a dde.data.PDE or dde.data.TimePDE (its collocation points are what "
            f"is split), got {type(data).__name__}"
        )
    return int(data.train_x.shape[0] - sum(data.num_bcs))


def layout(model: Any, distributed: object, shards: object, batch_size: int | None) -> Layout | None:
    """The checked layout of ``train(model, ..., distributed=, shards=, batch_size=)``; ``None`` for plain training.

    Raises before any work: ``distributed`` is not a bool; ``distributed=True`` without an initialised default
    process group; ``shards`` not a positive multiple of the world size; a draw (``batch_size``, or the pool of
    ``N`` PDE points when it is None) that does not split into equal shards.
    """
    if not isinstance(distributed, bool):
        raise TypeError(f"distributed must be True or False, got {distributed!r}")
    if distributed and not initialized():
        raise RuntimeError(
            "distributed=True needs a torch.distributed process group: run under torchrun (or another launcher) "
            "and call torch.distributed.init_process_group() before train(); for the one-process twin pass "
            "shards=K instead"
        )
    if not distributed and shards is None:
        return None
    world, rank = world_and_rank() if distributed else (1, 0)
    k = world if shards is None else check_positive_int("shards", shards)
    if k % world:
        raise ValueError(f"shards must be a multiple of the world size {world}, got {shards}")
    pool = _pde_points(model)
    if batch_size is not None:
        if batch_size % k:
            raise ValueError(
                f"batch_size must be a multiple of the {k} shards ({'world size' if shards is None else 'shards'}) "
                f"so that every shard gets the same number of points, got {batch_size}"
            )
    elif pool % k:
        raise ValueError(
            f"the full set of N={pool} PDE collocation points does not split into {k} equal shards "
            f"({'the world size' if shards is None else 'shards'}); pass batch_size (a multiple of {k}) or choose "
            f"num_domain/num_boundary so that N is a multiple of {k}"
        )
    return Layout(world, rank, k)


@contextlib.contextmanager
def _installed(data: Any, rows: Rows) -> Iterator[None]:
    """Make ``rows`` the data's training set inside the block (boundary losses read ``data.train_x``)."""
    full = (data.train_x, data.train_y, data.train_aux_vars)
    data.train_x, data.train_y, data.train_aux_vars = rows
    try:
        yield
    finally:
        data.train_x, data.train_y, data.train_aux_vars = full


def _take(rows: Rows, index: np.ndarray) -> Rows:
    x, y, aux = rows
    return x[index], None if y is None else y[index], None if aux is None else aux[index]


def _fingerprint(x: Any) -> float:
    """A position-weighted float64 sum of the rows: equal on every rank exactly when the ranks hold the same draw."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1).sum(1)
    return float((flat * np.arange(1, len(flat) + 1, dtype=np.float64)).sum())


class ShardedGradient:
    """The gradient of the loss on one draw, computed in ``layout.shards`` pieces and reduced in shard order.

    Args:
        model: a compiled ``dde.Model`` on a ``dde.data.PDE``/``TimePDE``.
        params: the tensors the optimizer steps (their ``.grad`` receives the reduced gradient).
        layout: the checked :class:`Layout`.
        generator: on the full set, the ``torch.Generator`` of each step's random order of the PDE points (the
            same on every rank); None when the caller passes random batches.
        verify: check at every evaluation that all ranks hold the same draw and the same parameters (two numbers
            per shard ride along the gather); ranks that differ (different seeds or initial weights) raise on
            every rank instead of silently mixing gradients of different points.

    :attr:`estimates` holds one :class:`~noisygrad.distributed.NoiseEstimate` per step (the first evaluation after
    :meth:`begin_step`, at the step's starting parameters) when ``shards >= 2``.
    """

    def __init__(
        self,
        model: Any,
        params: Sequence[torch.Tensor],
        layout: Layout,
        *,
        generator: torch.Generator | None = None,
        verify: bool = True,
    ) -> None:
        self.model, self.params, self.layout = model, list(params), layout
        self.generator, self.verify = generator, bool(verify)
        self.n_bc = int(sum(model.data.num_bcs))
        self.estimates: list[NoiseEstimate] = []
        self._pool = _pde_points(model)
        self._order: np.ndarray | None = None
        self._record = False

    def begin_step(self) -> None:
        """Start a step: note the pool size, draw the full set's order, and record the next evaluation's noise."""
        self._pool = _pde_points(self.model)  # before the step installs its batch on the data
        if self.generator is not None:
            self._order = torch.randperm(self._pool, generator=self.generator).numpy()
        self._record = True

    def closure_for(self, rows: Rows) -> Callable[[], torch.Tensor]:
        """An optimizer closure: the reduced loss of ``rows`` (this step's draw), with the reduced ``.grad`` set."""
        return lambda: self.evaluate(rows)

    def _local(self, rows: Rows, b: int) -> tuple[torch.Tensor, list[float], torch.dtype, list[bool]]:
        """This rank's flattened shard gradients ``(K/W, d)``, their losses, the loss dtype, and which tensors got
        a gradient (a tensor the loss does not reach keeps ``.grad = None``, as after DeepXDE's own closure)."""
        model, n_bc = self.model, self.n_bc
        grads: list[torch.Tensor] = []
        values: list[float] = []
        loss_dtype = torch.get_default_dtype()
        has_grad = [False] * len(self.params)
        for k in self.layout.local:
            shard = _take(rows, np.concatenate([np.arange(n_bc), n_bc + np.arange(k * b, (k + 1) * b)]))
            with _installed(model.data, shard):  # DeepXDE's own closure, line for line
                total = torch.sum(model.outputs_losses_train(*shard)[1])
                for p in self.params:
                    p.grad = None
                total.backward()
            has_grad = [p.grad is not None for p in self.params]
            flat = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            grads.append(torch.cat([g.reshape(-1) for g in flat]))
            values.append(float(total.detach()))
            loss_dtype = total.dtype
        return torch.stack(grads), values, loss_dtype, has_grad

    def evaluate(self, rows: Rows) -> torch.Tensor:
        """Set every parameter's ``.grad`` to the mean of the ``K`` shard gradients of ``rows``; return the mean loss.

        ``rows`` is the step's draw in DeepXDE's layout (all boundary rows, then the drawn PDE rows).
        """
        if self._order is not None:
            rows = _take(rows, np.concatenate([np.arange(self.n_bc), self.n_bc + self._order]))
        k_all = self.layout.shards
        points = len(rows[0]) - self.n_bc
        if points % k_all:
            raise RuntimeError(f"the draw of {points} PDE points does not split into {k_all} equal shards")
        b = points // k_all
        local, values, loss_dtype, has_grad = self._local(rows, b)
        batch_print = _fingerprint(rows[0])
        point_print = float(sum(float(p.detach().to(torch.float64).sum()) for p in self.params))
        meta = torch.tensor([[v, batch_print, point_print] for v in values], dtype=torch.float64, device=local.device)
        grads = gather_rows(local, self.layout.world)
        meta = gather_rows(meta, self.layout.world)
        if self.verify and self.layout.world > 1 and not bool((meta[:, 1:] == meta[0, 1:]).all()):
            raise RuntimeError(
                "the ranks drew different collocation points or hold different parameters: every rank must build "
                "the same model (seed DeepXDE, e.g. dde.config.set_random_seed, before building the network) and "
                "call train() with the same seed"
            )
        sq = grads.to(torch.float64).pow(2).sum(1).tolist()
        grad, small, value = grads[0].clone(), sq[0], float(meta[0, 0])
        for k in range(1, k_all):  # shard order: the same bits on every rank and in the one-process twin
            grad += grads[k]
            small += sq[k]
            value += float(meta[k, 0])
        grad /= k_all
        value /= k_all
        if math.isfinite(value):  # a non-finite loss is the caller's to report (it names the step)
            check_finite("gradient", grad)
            self._note(small / k_all, float(grad.to(torch.float64).pow(2).sum()), b, points)
        offset = 0
        for p, got in zip(self.params, has_grad, strict=True):
            n = p.numel()
            p.grad = grad[offset : offset + n].view_as(p).to(p.dtype).clone() if got else None
            offset += n
        return torch.tensor(value, dtype=loss_dtype, device=grad.device)

    def _note(self, small_sq: float, big_sq: float, b: int, points: int) -> None:
        if not self._record or self.layout.shards < 2:
            return
        self._record = False
        self.estimates.append(two_batch_estimates(small_sq, big_sq, b, points, self._pool))
