"""One way to turn a run's seed into random streams: independent sub-streams spawned, numpy ``SeedSequence`` style.

A run has one seed (an int >= 0). Every random choice it makes comes from that seed or from a sub-stream keyed
by a path of small integers (``substream(seed, 3)``: the fourth chain, ``substream(seed, 1, k)``: ...). Keys go
into ``SeedSequence(seed, spawn_key=keys)``, so sub-streams of one seed are statistically independent of each
other and of every sub-stream of another seed; deriving them as ``seed + k`` would make run ``seed=0``'s second
stream run ``seed=1``'s first. A ``torch.Generator`` that must feed numpy code is converted by
:func:`numpy_from_torch`, which draws the numpy seed from it (so the torch stream stays the run's only source).
"""

from __future__ import annotations

import numpy as np
import torch

from noisygrad.checks import check_positive_int

__all__ = ["numpy_from_torch", "numpy_stream", "substream", "torch_stream"]


def substream(seed: int, *keys: int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of run ``seed``'s sub-stream ``keys`` (no keys: the run's own stream)."""
    seed = check_positive_int("seed", seed, allow_zero=True)
    for i, key in enumerate(keys):
        check_positive_int(f"keys[{i}]", key, allow_zero=True)
    return np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in keys))


def numpy_stream(seed: int, *keys: int) -> np.random.Generator:
    """A numpy ``Generator`` (PCG64) on :func:`substream` ``(seed, *keys)``."""
    return np.random.default_rng(substream(seed, *keys))


def torch_stream(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with 63 bits of :func:`substream` ``(seed, *keys)``."""
    state = substream(seed, *keys).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) >> 1)


def numpy_from_torch(generator: torch.Generator) -> np.random.Generator:
    """A numpy ``Generator`` seeded by 62 bits drawn from ``generator`` (which advances): numpy code inside a run
    driven by a torch generator stays reproducible from the run's seed."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return np.random.default_rng(seed)
