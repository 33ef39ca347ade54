"""What every headline experiment (the core's and each plugin's) shares: findings, the tolerance rule, streams.

An experiment is ``fn(seed: int = 0, quick: bool = True, **params) -> list[Finding]``; it is declared as a
``noisygrad.experiments`` entry point. Its Monte-Carlo tolerances are :data:`TOLERANCE_Z` standard errors, and
its random draws come from the run's seed through :func:`~noisygrad.rng.substream` and friends: one stream per
use, keyed (``torch_stream(seed, k)``, ``substream_seed(seed, k)`` for a function that takes an int seed), never
``seed + k``, so runs ``seed=0`` and ``seed=1`` share no stream.
"""

from __future__ import annotations

from noisygrad.rng import numpy_from_torch, numpy_stream, substream, substream_seed, torch_from_torch, torch_stream
from noisygrad.tour.findings import Curve, Finding

__all__ = [
    "TOLERANCE_Z",
    "Curve",
    "Finding",
    "numpy_from_torch",
    "numpy_stream",
    "substream",
    "substream_seed",
    "torch_from_torch",
    "torch_stream",
]

#: Tolerances are this many standard errors of the measurement: a correct implementation fails a two-sided
#: check with probability 6.3e-5 (about 1 run in 15,000).
TOLERANCE_Z = 4.0
