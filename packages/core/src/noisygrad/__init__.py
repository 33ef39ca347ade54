"""noisygrad: optimisation and sampling on noisy, unbiased gradient estimates.

The core names objectives (what is minimised and what kind of thing it is), estimators (how a gradient
is guessed and what the guess costs), optimizers (update rules with serialisable state), schedules, the
:func:`minimize` loop, and adapters to ``torch.optim`` and to minimizer callables. Field plugins live in
``noisygrad.pinn``, ``noisygrad.quantum``, ``noisygrad.dsp`` and ``noisygrad.bio`` (separate
distributions, found through :mod:`noisygrad.plugins`).

The science: zeroth-order estimators (SPSA, Gaussian smoothing), noise statistics (gradient diversity, the
cosine law, the two-batch noise scale, temperature), closed forms (stationary covariance, noise ball, first
passage) and a thermostat, Langevin samplers (SGLD, BAOAB), variance reduction (SVRG, SAGA, STORM), a
noise-robust L-BFGS, and heavy-tail tools (clipping, tail indices).

Public names are imported on first use, so ``import noisygrad`` stays cheap until torch is needed.
"""

# Plugin distributions ship ``noisygrad/<plugin>/`` without an ``__init__.py`` of their own here.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # objectives
    "Kind": "objectives",
    "FiniteSum": "objectives",
    "NoisyBlackBox": "objectives",
    "Energy": "objectives",
    "BatchingNotAllowedError": "objectives",
    "GLM": "glm",
    "ModuleLoss": "objectives",
    "BatchNoise": "per_example",
    "PerExampleNoise": "per_example",
    "batch_noise": "per_example",
    # estimators
    "Estimator": "estimators",
    "Estimate": "estimators",
    "Cost": "estimators",
    "FullBatch": "estimators",
    "MiniBatch": "estimators",
    "CentralDifference": "estimators",
    # optimizers and schedules
    "Optimizer": "optimizers",
    "SGD": "optimizers",
    "Adam": "optimizers",
    "Constant": "schedules",
    "RobbinsMonro": "schedules",
    "Cosine": "schedules",
    "StepDecay": "schedules",
    # loop and adapters
    "minimize": "loop",
    "MinimizeResult": "loop",
    "StepInfo": "loop",
    "TorchOptimizer": "torch_adapter",
    "Minimizer": "minimizer",
    # errors and reporting
    "NonFiniteGradientError": "_validation",
    "Finding": "findings",
    "Curve": "findings",
    # zeroth-order estimators
    "SPSA": "zeroth_order",
    "GaussianSmoothing": "zeroth_order",
    "SPSACalibration": "zeroth_order",
    "spsa_calibrate": "zeroth_order",
    # noise statistics
    "NoiseStats": "noise",
    "NoiseScaleMeter": "noise",
    "TemperatureMeter": "noise",
    "gradient_noise": "noise",
    "predicted_cosine": "noise",
    "monte_carlo_cosine": "noise",
    "effective_temperature": "noise",
    # closed forms and the thermostat
    "sgd_stationary_covariance": "theory",
    "least_squares_stationary_covariance": "theory",
    "langevin_stationary_covariance": "theory",
    "least_squares_sgld_stationary_covariance": "theory",
    "least_squares_sgld_noise_correction": "theory",
    "noise_ball": "theory",
    "NoiseBall": "theory",
    "mean_first_passage_time": "theory",
    "Thermostat": "thermostat",
    # samplers
    "SGLD": "langevin",
    "BAOAB": "langevin",
    # variance reduction
    "SVRG": "variance_reduction",
    "SAGA": "variance_reduction",
    "STORM": "variance_reduction",
    # quasi-Newton under noise
    "LBFGS": "lbfgs",
    "LBFGSResult": "lbfgs",
    "minimize_lbfgs": "lbfgs",
    # heavy tails
    "Clipped": "heavy_tails",
    "hill_tail_index": "heavy_tails",
    "kesten_tail_index": "heavy_tails",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ._validation import NonFiniteGradientError
    from .estimators import CentralDifference, Cost, Estimate, Estimator, FullBatch, MiniBatch
    from .findings import Curve, Finding
    from .glm import GLM
    from .heavy_tails import Clipped, hill_tail_index, kesten_tail_index
    from .langevin import BAOAB, SGLD
    from .lbfgs import LBFGS, LBFGSResult, minimize_lbfgs
    from .loop import MinimizeResult, StepInfo, minimize
    from .minimizer import Minimizer
    from .noise import (
        NoiseScaleMeter,
        NoiseStats,
        TemperatureMeter,
        effective_temperature,
        gradient_noise,
        monte_carlo_cosine,
        predicted_cosine,
    )
    from .objectives import BatchingNotAllowedError, Energy, FiniteSum, Kind, ModuleLoss, NoisyBlackBox
    from .optimizers import SGD, Adam, Optimizer
    from .per_example import BatchNoise, PerExampleNoise, batch_noise
    from .schedules import Constant, Cosine, RobbinsMonro, StepDecay
    from .theory import (
        NoiseBall,
        langevin_stationary_covariance,
        least_squares_sgld_noise_correction,
        least_squares_sgld_stationary_covariance,
        least_squares_stationary_covariance,
        mean_first_passage_time,
        noise_ball,
        sgd_stationary_covariance,
    )
    from .thermostat import Thermostat
    from .torch_adapter import TorchOptimizer
    from .variance_reduction import SAGA, STORM, SVRG
    from .zeroth_order import SPSA, GaussianSmoothing, SPSACalibration, spsa_calibrate


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'noisygrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
