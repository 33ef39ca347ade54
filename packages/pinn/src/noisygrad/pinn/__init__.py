"""noisygrad.pinn: PINN training on DeepXDE with collocation mini-batches and optimizer swapping.

>>> import deepxde as dde
>>> import noisygrad.pinn as ngp
>>> model = dde.Model(data, net)
>>> ngp.train(model, optimizer="adam", lr=1e-3, iterations=5000, batch_size=256)  # random collocation batches
>>> ngp.train(model, optimizer="lbfgs")                                           # swap optimizers mid-training
>>> ngp.adam_then_lbfgs(model, iterations=2000, switch=ngp.Plateau(window=500))  # the two-phase recipe

DeepXDE is imported on first use (with ``DDE_BACKEND=pytorch``). Nothing here seeds global random state
except :func:`noisygrad.pinn.problems.build`, the documented entry of the benchmark problems, which calls
``dde.config.set_random_seed`` so that networks start from the same weights.
"""

from noisygrad.plugins import require as _require

_require("pinn")  # a missing field package names the extra to install

from .batches import CollocationBatches, pool_size  # noqa: E402
from .noise import CollocationNoise, collocation_noise, predicted_cosine  # noqa: E402
from .optimizers import PinnWarning, build_optimizer, check_model, lbfgs  # noqa: E402
from .training import Plateau, ScheduleResult, TrainResult, adam_then_lbfgs, train, training_loss  # noqa: E402

__all__ = [
    "CollocationBatches",
    "CollocationNoise",
    "PinnWarning",
    "Plateau",
    "ScheduleResult",
    "TrainResult",
    "adam_then_lbfgs",
    "build_optimizer",
    "check_model",
    "collocation_noise",
    "lbfgs",
    "pool_size",
    "predicted_cosine",
    "train",
    "training_loss",
]
