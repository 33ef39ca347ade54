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
    "BatchNoise": "noise.per_example",
    "PerExampleNoise": "noise.per_example",
    "batch_noise": "noise.per_example",
    # estimators
    "Estimator": "estimators.base",
    "Estimate": "estimators.base",
    "Cost": "estimators.base",
    "FullBatch": "estimators.batch",
    "MiniBatch": "estimators.batch",
    "CentralDifference": "estimators.differences",
    # optimizers and schedules
    "Optimizer": "optim.base",
    "SGD": "optim.sgd",
    "Adam": "optim.adam",
    "Constant": "schedules",
    "RobbinsMonro": "schedules",
    "Cosine": "schedules",
    "StepDecay": "schedules",
    # loop and adapters
    "minimize": "loop",
    "MinimizeResult": "loop",
    "StepInfo": "loop",
    "Projection": "loop_parts",
    "Blocking": "loop_parts",
    "IterateAveraging": "loop_parts",
    "FinalEstimate": "loop_parts",
    "Measurement": "loop_parts",
    "TorchOptimizer": "adapters.torch_optim",
    # data-parallel (noisygrad.distributed)
    "GradientNoiseHook": "distributed.hook",
    "DataParallelMiniBatch": "distributed.minibatch",
    "AdaptiveBatch": "distributed.adaptive",
    "adascale_gain": "distributed.adaptive",
    "minimize_fused": "loop_fused",
    "CheckpointError": "loop_checkpoint",
    "LegacyCheckpointWarning": "loop_checkpoint",
    # sweeps
    "sweep": "sweeps",
    "spawn_seeds": "sweeps",
    "SweepError": "sweeps",
    "TorchSGD": "adapters.torch_optim",
    "TorchAdam": "adapters.torch_optim",
    "TorchAdamW": "adapters.torch_optim",
    "Minimizer": "adapters.scipy_minimize",
    # errors and reporting
    "NonFiniteGradientError": "checks",
    "Finding": "tour.findings",
    "Curve": "tour.findings",
    # zeroth-order estimators
    "SPSA": "estimators.zeroth_order",
    "GaussianSmoothing": "estimators.zeroth_order",
    "SPSACalibration": "estimators.zeroth_order",
    "spsa_calibrate": "estimators.zeroth_order",
    # noise statistics
    "NoiseStats": "noise.statistics",
    "NoiseScaleMeter": "noise.statistics",
    "TemperatureMeter": "noise.statistics",
    "gradient_noise": "noise.statistics",
    "predicted_cosine": "noise.statistics",
    "monte_carlo_cosine": "noise.statistics",
    "effective_temperature": "noise.statistics",
    # closed forms and the thermostat
    "sgd_stationary_covariance": "noise.theory",
    "least_squares_stationary_covariance": "noise.theory",
    "langevin_stationary_covariance": "noise.theory",
    "least_squares_sgld_stationary_covariance": "noise.theory",
    "least_squares_sgld_noise_correction": "noise.theory",
    "noise_ball": "noise.theory",
    "NoiseBall": "noise.theory",
    "mean_first_passage_time": "noise.theory",
    "armijo_step": "optim.line_search",
    "StochasticArmijo": "optim.line_search",
    "minimize_armijo": "optim.line_search",
    "ArmijoResult": "optim.line_search",
    "ArmijoStep": "optim.line_search",
    "least_squares_armijo_steps": "optim.line_search",
    "lennard_jones": "molecules",
    "cluster_energy": "molecules",
    "lennard_jones_forces": "molecules",
    "atom_minibatch_gradients": "molecules",
    "atom_minibatch_mean": "molecules",
    "atom_minibatch_factor": "molecules",
    "icosahedron": "molecules",
    "perturbed_icosahedron": "molecules",
    "max_force": "molecules",
    "LJ13_GLOBAL_MINIMUM": "molecules",
    "EscapeTimes": "noise.escape",
    "EscapeEstimate": "noise.escape",
    "first_passage_times": "noise.escape",
    "diffusion_mean_first_passage_time": "noise.escape",
    "chain_mean_first_passage_time": "noise.escape",
    "kramers_escape_time": "noise.escape",
    "langer_escape_time": "noise.escape",
    "langevin_mean_first_passage_time_2d": "noise.escape",
    "top_hessian_eigenvalue": "noise.sharpness",
    "hessian_vector_product": "noise.sharpness",
    "HessianEigenpair": "noise.sharpness",
    "stationary_density": "noise.sharpness",
    "stationary_well_weights": "noise.sharpness",
    "laplace_well_weights": "noise.sharpness",
    "heavy_ball_stationary_covariance": "noise.momentum",
    "adam_expected_step": "noise.momentum",
    "Thermostat": "optim.thermostat",
    # samplers
    "SGLD": "optim.langevin",
    "BAOAB": "optim.langevin",
    # variance reduction
    "SVRG": "estimators.variance_reduction",
    "SAGA": "estimators.variance_reduction",
    "STORM": "estimators.variance_reduction",
    # quasi-Newton under noise
    "LBFGS": "optim.lbfgs",
    "LBFGSResult": "optim.lbfgs",
    "minimize_lbfgs": "optim.lbfgs",
    # heavy tails
    "Clipped": "estimators.clipping",
    "hill_tail_index": "noise.tails",
    "kesten_tail_index": "noise.tails",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # explicit re-exports (``X as X``), so type checkers see the public names
    from noisygrad.adapters.scipy_minimize import Minimizer as Minimizer
    from noisygrad.adapters.torch_optim import TorchAdam as TorchAdam
    from noisygrad.adapters.torch_optim import TorchAdamW as TorchAdamW
    from noisygrad.adapters.torch_optim import TorchOptimizer as TorchOptimizer
    from noisygrad.adapters.torch_optim import TorchSGD as TorchSGD
    from noisygrad.checks import NonFiniteGradientError as NonFiniteGradientError
    from noisygrad.distributed.adaptive import AdaptiveBatch as AdaptiveBatch
    from noisygrad.distributed.adaptive import adascale_gain as adascale_gain
    from noisygrad.distributed.hook import GradientNoiseHook as GradientNoiseHook
    from noisygrad.distributed.minibatch import DataParallelMiniBatch as DataParallelMiniBatch
    from noisygrad.estimators.base import Cost as Cost
    from noisygrad.estimators.base import Estimate as Estimate
    from noisygrad.estimators.base import Estimator as Estimator
    from noisygrad.estimators.batch import FullBatch as FullBatch
    from noisygrad.estimators.batch import MiniBatch as MiniBatch
    from noisygrad.estimators.clipping import Clipped as Clipped
    from noisygrad.estimators.differences import CentralDifference as CentralDifference
    from noisygrad.estimators.variance_reduction import SAGA as SAGA
    from noisygrad.estimators.variance_reduction import STORM as STORM
    from noisygrad.estimators.variance_reduction import SVRG as SVRG
    from noisygrad.estimators.zeroth_order import (
        SPSA as SPSA,
    )
    from noisygrad.estimators.zeroth_order import (
        GaussianSmoothing as GaussianSmoothing,
    )
    from noisygrad.estimators.zeroth_order import (
        SPSACalibration as SPSACalibration,
    )
    from noisygrad.estimators.zeroth_order import (
        spsa_calibrate as spsa_calibrate,
    )
    from noisygrad.glm import GLM as GLM
    from noisygrad.loop import MinimizeResult as MinimizeResult
    from noisygrad.loop import StepInfo as StepInfo
    from noisygrad.loop import minimize as minimize
    from noisygrad.loop_checkpoint import CheckpointError as CheckpointError
    from noisygrad.loop_checkpoint import LegacyCheckpointWarning as LegacyCheckpointWarning
    from noisygrad.loop_fused import minimize_fused as minimize_fused
    from noisygrad.loop_parts import Blocking as Blocking
    from noisygrad.loop_parts import FinalEstimate as FinalEstimate
    from noisygrad.loop_parts import IterateAveraging as IterateAveraging
    from noisygrad.loop_parts import Measurement as Measurement
    from noisygrad.loop_parts import Projection as Projection
    from noisygrad.molecules import LJ13_GLOBAL_MINIMUM as LJ13_GLOBAL_MINIMUM
    from noisygrad.molecules import atom_minibatch_factor as atom_minibatch_factor
    from noisygrad.molecules import atom_minibatch_gradients as atom_minibatch_gradients
    from noisygrad.molecules import atom_minibatch_mean as atom_minibatch_mean
    from noisygrad.molecules import cluster_energy as cluster_energy
    from noisygrad.molecules import icosahedron as icosahedron
    from noisygrad.molecules import lennard_jones as lennard_jones
    from noisygrad.molecules import lennard_jones_forces as lennard_jones_forces
    from noisygrad.molecules import max_force as max_force
    from noisygrad.molecules import perturbed_icosahedron as perturbed_icosahedron
    from noisygrad.noise.escape import EscapeEstimate as EscapeEstimate
    from noisygrad.noise.escape import EscapeTimes as EscapeTimes
    from noisygrad.noise.escape import chain_mean_first_passage_time as chain_mean_first_passage_time
    from noisygrad.noise.escape import diffusion_mean_first_passage_time as diffusion_mean_first_passage_time
    from noisygrad.noise.escape import first_passage_times as first_passage_times
    from noisygrad.noise.escape import kramers_escape_time as kramers_escape_time
    from noisygrad.noise.escape import langer_escape_time as langer_escape_time
    from noisygrad.noise.escape import langevin_mean_first_passage_time_2d as langevin_mean_first_passage_time_2d
    from noisygrad.noise.momentum import adam_expected_step as adam_expected_step
    from noisygrad.noise.momentum import heavy_ball_stationary_covariance as heavy_ball_stationary_covariance
    from noisygrad.noise.per_example import (
        BatchNoise as BatchNoise,
    )
    from noisygrad.noise.per_example import (
        PerExampleNoise as PerExampleNoise,
    )
    from noisygrad.noise.per_example import (
        batch_noise as batch_noise,
    )
    from noisygrad.noise.sharpness import HessianEigenpair as HessianEigenpair
    from noisygrad.noise.sharpness import hessian_vector_product as hessian_vector_product
    from noisygrad.noise.sharpness import laplace_well_weights as laplace_well_weights
    from noisygrad.noise.sharpness import stationary_density as stationary_density
    from noisygrad.noise.sharpness import stationary_well_weights as stationary_well_weights
    from noisygrad.noise.sharpness import top_hessian_eigenvalue as top_hessian_eigenvalue
    from noisygrad.noise.statistics import (
        NoiseScaleMeter as NoiseScaleMeter,
    )
    from noisygrad.noise.statistics import (
        NoiseStats as NoiseStats,
    )
    from noisygrad.noise.statistics import (
        TemperatureMeter as TemperatureMeter,
    )
    from noisygrad.noise.statistics import (
        effective_temperature as effective_temperature,
    )
    from noisygrad.noise.statistics import (
        gradient_noise as gradient_noise,
    )
    from noisygrad.noise.statistics import (
        monte_carlo_cosine as monte_carlo_cosine,
    )
    from noisygrad.noise.statistics import (
        predicted_cosine as predicted_cosine,
    )
    from noisygrad.noise.tails import hill_tail_index as hill_tail_index
    from noisygrad.noise.tails import kesten_tail_index as kesten_tail_index
    from noisygrad.noise.theory import (
        NoiseBall as NoiseBall,
    )
    from noisygrad.noise.theory import (
        langevin_stationary_covariance as langevin_stationary_covariance,
    )
    from noisygrad.noise.theory import (
        least_squares_sgld_noise_correction as least_squares_sgld_noise_correction,
    )
    from noisygrad.noise.theory import (
        least_squares_sgld_stationary_covariance as least_squares_sgld_stationary_covariance,
    )
    from noisygrad.noise.theory import (
        least_squares_stationary_covariance as least_squares_stationary_covariance,
    )
    from noisygrad.noise.theory import (
        mean_first_passage_time as mean_first_passage_time,
    )
    from noisygrad.noise.theory import (
        noise_ball as noise_ball,
    )
    from noisygrad.noise.theory import (
        sgd_stationary_covariance as sgd_stationary_covariance,
    )
    from noisygrad.objectives import (
        BatchingNotAllowedError as BatchingNotAllowedError,
    )
    from noisygrad.objectives import (
        Energy as Energy,
    )
    from noisygrad.objectives import (
        FiniteSum as FiniteSum,
    )
    from noisygrad.objectives import (
        Kind as Kind,
    )
    from noisygrad.objectives import (
        ModuleLoss as ModuleLoss,
    )
    from noisygrad.objectives import (
        NoisyBlackBox as NoisyBlackBox,
    )
    from noisygrad.optim.adam import Adam as Adam
    from noisygrad.optim.base import Optimizer as Optimizer
    from noisygrad.optim.langevin import BAOAB as BAOAB
    from noisygrad.optim.langevin import SGLD as SGLD
    from noisygrad.optim.lbfgs import LBFGS as LBFGS
    from noisygrad.optim.lbfgs import LBFGSResult as LBFGSResult
    from noisygrad.optim.lbfgs import minimize_lbfgs as minimize_lbfgs
    from noisygrad.optim.line_search import ArmijoResult as ArmijoResult
    from noisygrad.optim.line_search import ArmijoStep as ArmijoStep
    from noisygrad.optim.line_search import StochasticArmijo as StochasticArmijo
    from noisygrad.optim.line_search import armijo_step as armijo_step
    from noisygrad.optim.line_search import least_squares_armijo_steps as least_squares_armijo_steps
    from noisygrad.optim.line_search import minimize_armijo as minimize_armijo
    from noisygrad.optim.sgd import SGD as SGD
    from noisygrad.optim.thermostat import Thermostat as Thermostat
    from noisygrad.schedules import (
        Constant as Constant,
    )
    from noisygrad.schedules import (
        Cosine as Cosine,
    )
    from noisygrad.schedules import (
        RobbinsMonro as RobbinsMonro,
    )
    from noisygrad.schedules import (
        StepDecay as StepDecay,
    )
    from noisygrad.sweeps import SweepError as SweepError
    from noisygrad.sweeps import spawn_seeds as spawn_seeds
    from noisygrad.sweeps import sweep as sweep
    from noisygrad.tour.findings import Curve as Curve
    from noisygrad.tour.findings import Finding as Finding


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'noisygrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
