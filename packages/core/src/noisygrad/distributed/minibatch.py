"""The core's mini-batch estimator spread over ranks, bit-identical to its one-process sharded twin.

Every rank runs :func:`noisygrad.minimize` with the same seed, so every rank's generator draws the same global batch
of ``B`` indices (exactly :class:`~noisygrad.MiniBatch`'s draw). The batch is cut into ``K`` equal shards in draw
order; rank ``r`` computes the mean gradients of its ``K / W`` consecutive shards, the ranks all-gather them, and
each rank sums the ``K`` shard gradients in shard order and divides by ``K``. A reduction in a fixed order gives
every rank the same bits, so their parameters never drift apart, and it gives the bits that :func:`reference`
computes in one process with the same shards: a run is a function of (inputs, seed, shards) only, not of the
number of ranks or of the backend's reduction order. Against one autograd pass over the whole batch (``MiniBatch``)
it differs by rounding only (a few 1e-16 relative).

The shard gradients are also the two batch sizes of McCandlish et al.'s noise-scale estimate (``b = B/K`` and
``B``), so each estimate carries unbiased ``tr(S)`` and ``|G|^2`` at no extra cost
(:func:`~noisygrad.distributed.estimates.two_batch_estimates`).
"""

from __future__ import annotations

from typing import Any

import torch

from noisygrad.checks import check_finite, check_positive_int
from noisygrad.distributed.estimates import SmoothedNoiseScale, two_batch_estimates
from noisygrad.distributed.group import gather_rows, initialized, world_and_rank
from noisygrad.estimators.base import Cost, Estimate
from noisygrad.estimators.batch import MiniBatch
from noisygrad.objectives import FiniteSum, Kind, require_kind

__all__ = ["DataParallelMiniBatch", "reference"]


class DataParallelMiniBatch:
    """Mean gradient over ``batch_size`` uniformly drawn examples, computed in ``shards`` pieces across ranks.

    Args:
        objective: a :class:`~noisygrad.FiniteSum`.
        batch_size: the *global* batch ``B`` (all ranks together), a multiple of ``shards``.
        shards: ``K``, the pieces the batch is cut into, a multiple of the world size (default: the world size).
            In one process (``shards > 1``) it gives the noise statistics of a data-parallel run at the cost of
            ``K`` smaller autograd passes.
        replace: draw with replacement (as :class:`~noisygrad.MiniBatch`).
        distributed: use ``torch.distributed``'s default group (``None``: when one is initialised; ``False``: never,
            the one-process twin).
        ema: decay of the smoothed noise scale kept in :attr:`noise` (``None``: plain running means).
        verify: check at every step that all ranks drew the same batch at the same parameters (a 3-number gather
            per shard); a run where they did not (different seeds, a rank that skipped a step) raises instead of
            silently mixing gradients of different points.

    Each :class:`~noisygrad.Estimate` (with ``K >= 2``) carries in ``stats``: ``trace_cov`` and ``grad_norm_sq``, this
    step's unbiased ``tr(S)`` and ``|G|^2`` (finite-population corrected without replacement), and
    ``grad_variance``, the estimate's own variance ``tr(S)(1/B - 1/N)``. :attr:`noise` smooths them. Every rank
    returns the same estimate, and its cost counts the whole global batch.
    """

    def __init__(
        self,
        objective: FiniteSum,
        batch_size: int,
        *,
        shards: int | None = None,
        replace: bool = False,
        distributed: bool | None = None,
        ema: float | None = 0.9,
        verify: bool = True,
    ) -> None:
        require_kind("DataParallelMiniBatch", objective, (Kind.FINITE_SUM,))
        if distributed is not None and not isinstance(distributed, bool):
            raise TypeError(f"distributed must be None, True or False, got {distributed!r}")
        if distributed and not initialized():
            raise RuntimeError("distributed=True needs torch.distributed.init_process_group() first")
        use = initialized() if distributed is None else distributed
        self.world, self.rank = world_and_rank() if use else (1, 0)
        self.objective = objective
        self.replace = bool(replace)
        k = self.world if shards is None else check_positive_int("shards", shards)
        if k % self.world:
            raise ValueError(f"shards must be a multiple of the world size {self.world}, got {shards}")
        self.shards = k
        self.verify = bool(verify)
        self.noise = SmoothedNoiseScale(ema)
        self.batch_size = batch_size

    @property
    def batch_size(self) -> int:
        """The global batch ``B``; settable (an adaptive batch), to a multiple of :attr:`shards`."""
        return self._draw.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        b = check_positive_int("batch_size", value)
        if b % self.shards:
            raise ValueError(f"batch_size must be a multiple of shards ({self.shards}), got {value}")
        self._draw = MiniBatch(self.objective, b, replace=self.replace)  # checks b <= N without replacement

    def _local_shards(self, params: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's shard gradients, shape ``(K/W, d)``, and ``[value, batch fingerprint, point fingerprint]``
        per shard in float64."""
        per_rank, b = self.shards // self.world, self.batch_size // self.shards
        grads, meta = [], []
        weights = torch.arange(1, idx.numel() + 1, dtype=torch.float64)
        batch_print = float((idx.to(torch.float64) * weights).sum())  # exact below 2**53
        point_print = float(params.detach().to(torch.float64).sum())
        for k in range(self.rank * per_rank, (self.rank + 1) * per_rank):
            value, grad = self.objective.value_and_grad(params, idx[k * b : (k + 1) * b])
            grads.append(grad.reshape(-1))
            meta.append([value, batch_print, point_print])
        # on the gradients' device: an NCCL group gathers CUDA tensors only
        return torch.stack(grads), torch.tensor(meta, dtype=torch.float64, device=grads[0].device)

    def estimate(self, params: torch.Tensor, generator: torch.Generator) -> Estimate:
        idx = self._draw.sample_indices(generator)
        local_grads, local_meta = self._local_shards(params, idx)
        grads = gather_rows(local_grads, self.world)
        meta = gather_rows(local_meta, self.world)
        if self.verify and self.world > 1 and not bool((meta[:, 1:] == meta[0, 1:]).all()):
            raise RuntimeError(
                "the ranks drew different batches or hold different parameters: every rank must run the same "
                "minimize() with the same seed (and the same resume checkpoint)"
            )
        sq = grads.to(torch.float64).pow(2).sum(1).tolist()
        grad, small, value = grads[0].clone(), sq[0], float(meta[0, 0])
        for k in range(1, self.shards):  # shard order: the same bits on every rank and in the twin
            grad += grads[k]
            small += sq[k]
            value += float(meta[k, 0])
        grad /= self.shards
        value /= self.shards
        check_finite("gradient", grad)
        stats: dict[str, float] = {}
        if self.shards > 1:
            n = self.objective.n_examples
            big, b = self.batch_size, self.batch_size // self.shards
            noise = two_batch_estimates(
                small / self.shards, float(grad.to(torch.float64).pow(2).sum()), b, big, None if self.replace else n
            )
            self.noise.update(*noise)
            variance = noise.trace_cov / big if self.replace else noise.trace_cov * (1.0 / big - 1.0 / n)
            stats = {"trace_cov": noise.trace_cov, "grad_norm_sq": noise.grad_sq, "grad_variance": variance}
        return Estimate(grad.reshape(params.shape), value, Cost(examples=self.batch_size), stats)

    def state_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "noise": self.noise.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"batch_size", "noise"}:
            raise ValueError(f"state must have keys batch_size, noise; got {sorted(state)}")
        noise = SmoothedNoiseScale(self.noise.ema)
        noise.load_state_dict(state["noise"])
        self.batch_size = state["batch_size"]
        self.noise = noise


def reference(estimator: DataParallelMiniBatch, world: int | None = None) -> DataParallelMiniBatch:
    """The one-process twin of ``estimator`` run on ``world`` ranks: the same shards, computed here in shard order.

    ``world`` defaults to the estimator's own world size; the twin has ``world * (shards per rank)`` shards, so
    ``reference(DataParallelMiniBatch(obj, 32), world=4)`` built in one process is the twin of the estimator each of
    4 ranks builds. A run with the twin is bit-identical to the distributed run with the same seed.
    """
    if not isinstance(estimator, DataParallelMiniBatch):
        raise TypeError(f"estimator must be a DataParallelMiniBatch, got {type(estimator).__name__}")
    w = estimator.world if world is None else check_positive_int("world", world)
    twin = DataParallelMiniBatch(
        estimator.objective,
        estimator.batch_size,
        shards=w * (estimator.shards // estimator.world),
        replace=estimator.replace,
        distributed=False,
        ema=estimator.noise.ema,
        verify=estimator.verify,
    )
    twin.load_state_dict(estimator.state_dict())
    return twin
