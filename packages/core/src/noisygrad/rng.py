"""One way to turn a run's seed into random streams: independent sub-streams spawned, numpy ``SeedSequence`` style.

A run has one seed (an int >= 0). Every random choice it makes comes from that seed or from a sub-stream keyed
by a path of small integers (``substream(seed, 3)``: the fourth chain, ``substream(seed, 1, k)``: ...). Keys go
into ``SeedSequence(seed, spawn_key=keys)``, so sub-streams of one seed are statistically independent of each
other and of every sub-stream of another seed; deriving them as ``seed + k`` would make run ``seed=0``'s second
stream run ``seed=1``'s first.

Inside a run driven by a ``torch.Generator`` (:func:`noisygrad.minimize`'s), a part that needs a stream of its
own spawns it *from* that generator: :func:`draw_seed` draws a seed from it (the generator advances, so two
spawns differ), :func:`numpy_from_torch` and :func:`torch_from_torch` turn that seed into a numpy or torch
generator. The run's generator stays the only source, so the run's seed determines every draw. A stochastic
update rule (the Langevin samplers) takes the run's generator in ``init(params, generator=...)``;
:func:`init_state` hands it over to the rules that take one.

torch's CPU generator (Mersenne Twister) keeps only the low 32 bits of a seed (``manual_seed(1)`` and
``manual_seed(1 + 2**32)`` draw alike), so :func:`torch_stream` hashes the whole sub-stream key into the seed it
gives: two different keys collide with probability ``2**-32``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from noisygrad.checks import check_positive_int

__all__ = [
    "draw_seed",
    "init_state",
    "numpy_from_torch",
    "numpy_stream",
    "substream",
    "substream_seed",
    "torch_from_torch",
    "torch_stream",
]


def substream(seed: int, *keys: int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of run ``seed``'s sub-stream ``keys`` (no keys: the run's own stream)."""
    seed = check_positive_int("seed", seed, allow_zero=True)
    for i, key in enumerate(keys):
        check_positive_int(f"keys[{i}]", key, allow_zero=True)
    return np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in keys))


def numpy_stream(seed: int, *keys: int) -> np.random.Generator:
    """A numpy ``Generator`` (PCG64) on :func:`substream` ``(seed, *keys)``."""
    return np.random.default_rng(substream(seed, *keys))


def substream_seed(seed: int, *keys: int) -> int:
    """An int seed in ``[0, 2**63)``: 63 bits of :func:`substream` ``(seed, *keys)``, for a function that takes an
    int seed of its own (run ``k`` of an experiment: ``substream_seed(seed, k)``, never ``seed + k``)."""
    return int(substream(seed, *keys).generate_state(1, np.uint64)[0]) >> 1


def torch_stream(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`substream_seed` ``(seed, *keys)`` (a CPU generator
    uses its low 32 bits, see the module's note)."""
    return torch.Generator(device=device).manual_seed(substream_seed(seed, *keys))


def draw_seed(generator: torch.Generator) -> int:
    """A seed in ``[0, 2**62)`` drawn from ``generator`` (which advances by one draw): the spawn of a sub-stream."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


def numpy_from_torch(generator: torch.Generator) -> np.random.Generator:
    """A numpy ``Generator`` seeded by :func:`draw_seed` ``(generator)``: numpy code inside a run driven by a
    torch generator stays reproducible from the run's seed."""
    return np.random.default_rng(draw_seed(generator))


def torch_from_torch(generator: torch.Generator, device: str | torch.device = "cpu") -> torch.Generator:
    """A new ``torch.Generator`` on ``device``, a sub-stream spawned from ``generator`` (one :func:`draw_seed`,
    hashed through :func:`torch_stream`): a part of a run that keeps its own generator state."""
    return torch_stream(draw_seed(generator), device=device)


def init_state(optimizer: Any, params: torch.Tensor, generator: torch.Generator) -> Any:
    """``optimizer.init(params)``, with ``generator=generator`` for a rule whose ``init`` takes that keyword.

    A loop that owns the run's generator (:func:`noisygrad.minimize`) starts its optimizer through this, so a
    stochastic rule (:class:`~noisygrad.SGLD`, :class:`~noisygrad.BAOAB`) spawns its noise from the run's
    generator; a deterministic rule (``init(params)`` only) is called as before and the generator is untouched.
    """
    try:
        takes = "generator" in inspect.signature(optimizer.init).parameters
    except (TypeError, ValueError):  # a builtin or C-implemented init: no keyword to give
        takes = False
    return optimizer.init(params, generator=generator) if takes else optimizer.init(params)
