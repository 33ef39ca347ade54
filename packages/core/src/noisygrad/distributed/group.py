"""The process-group facts the data-parallel pieces need: world size, rank, and an ordered gather.

Nothing here starts a process group: with ``torch.distributed`` unavailable or not initialised, the world is one
process of rank 0.
"""

from __future__ import annotations

import atexit
import time
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
    hold_exit_for_workers()
    out = local.new_empty((world * local.shape[0], *local.shape[1:]))
    dist.all_gather_single(out, local.contiguous(), group=group)
    return out


EXIT_GRACE_SECONDS = 0.5
"""How long a process that ran noisygrad's collectives waits at exit, GIL released, for gloo's worker threads."""

_exit_guarded = False


def hold_exit_for_workers() -> None:
    """Make this process wait :data:`EXIT_GRACE_SECONDS` at exit (once registered, any later call is free).

    A gloo worker thread destroys a finished collective's work a moment *after* the collective has completed, and
    that destruction takes the GIL (the work holds the tensors and the thread-local state it was issued with, both
    with Python objects in them). A process that reaches interpreter shutdown within that moment has the thread
    stopped inside a C++ destructor and aborts: "terminate called without an active exception", SIGABRT, after
    the script's last line, even after ``destroy_process_group()`` (DDP keeps the group alive). Measured with
    torch 2.13 on a loaded 2-core machine: about 1 run in 12 of a 2-rank DDP script. The work is not observable from
    Python, so the wait is a time: sleeping releases the GIL, and a worker needs it for microseconds once scheduled.
    """
    global _exit_guarded
    if not _exit_guarded:
        atexit.register(time.sleep, EXIT_GRACE_SECONDS)
        _exit_guarded = True
