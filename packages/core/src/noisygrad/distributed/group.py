"""The process-group facts the data-parallel pieces need: world size, rank, and an ordered gather.

Nothing here starts a process group: with ``torch.distributed`` unavailable or not initialised, the world is one
process of rank 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def initialized() -> bool:
    """Whether a default process group exists in this process."""
    return dist.is_available() and dist.is_initialized()


def world_and_rank(group: Any = None) -> tuple[int, int]:
    """``(world size, rank)`` in ``group`` (the default group for ``None``); ``(1, 0)`` without a process group."""
    if not initialized():
        if group is not None:
            raise RuntimeError("a process group was given but torch.distributed is not initialised")
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


def gather_rows(local: torch.Tensor, world: int, group: Any = None) -> torch.Tensor:
    """Every rank's ``local`` (shape ``(m, ...)``, the same on every rank) stacked in rank order: ``(world*m, ...)``.

    Each rank receives the same bits, so anything computed from the result in a fixed order (a sum in rank order)
    is identical on every rank and equal to the same computation in one process.
    """
    if world == 1:
        return local
    out = local.new_empty((world * local.shape[0], *local.shape[1:]))
    dist.all_gather_single(out, local.contiguous(), group=group)
    return out
