"""Data-parallel noisygrad on ``torch.distributed`` (gloo on CPUs, NCCL on GPUs, launched by ``torchrun``).

* :class:`GradientNoiseHook`: the gradient noise scale of a DDP model, read from its communication hook for free.
* :class:`DataParallelMiniBatch`: :func:`noisygrad.minimize`'s mini-batch estimator across ranks, bit-identical to
  its one-process twin :func:`reference`, with the noise statistics of its shards on every estimate.
* :class:`AdaptiveBatch`: a grow-only batch size (or a learning-rate gain) that follows the measured noise scale.

Importing this package starts nothing: the process group is the caller's (``torch.distributed.init_process_group``).
Every result is a function of the inputs, the seed and the layout (shards), with a one-process twin.
"""

from noisygrad.distributed.adaptive import LR_RULES, AdaptiveBatch, adascale_gain
from noisygrad.distributed.estimates import NoiseEstimate, SmoothedNoiseScale, two_batch_estimates
from noisygrad.distributed.hook import GradientNoiseHook
from noisygrad.distributed.minibatch import DataParallelMiniBatch, reference

__all__ = [
    "LR_RULES",
    "AdaptiveBatch",
    "DataParallelMiniBatch",
    "GradientNoiseHook",
    "NoiseEstimate",
    "SmoothedNoiseScale",
    "adascale_gain",
    "reference",
    "two_batch_estimates",
]
