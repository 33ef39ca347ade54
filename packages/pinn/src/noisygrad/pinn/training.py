"""``train``: one phase of PINN training with any optimizer, optionally on collocation mini-batches;
``adam_then_lbfgs``: the usual two-phase recipe as one call, with a configurable switch.

Training runs inside DeepXDE's own loop (``model.train``), so its callbacks, display, ``losshistory`` and
``train_state`` work as usual: like ``model.train``, :func:`train` prints DeepXDE's progress table (step, train
loss, test loss, test metric) every ``display_every`` steps unless ``verbose=0``. The plugin puts its optimizer
in ``model.opt`` and its step function in ``model.train_step`` (a public attribute ``Model.train`` calls once per
iteration) and puts DeepXDE's step function back afterwards. The step evaluates the loss exactly as DeepXDE's
does, so Adam through noisygrad on the full set is bit-identical to ``compile("adam")``.

A closure-driven quasi-Newton optimizer (``torch.optim.LBFGS``) runs up to ``max_iter`` iterations per
``step`` call; DeepXDE would count each call as one iteration. Here ``iterations`` counts L-BFGS
iterations: the plugin adds the inner iterations to ``model.train_state`` and stops when the budget is
spent or when a call made at most one iteration (DeepXDE's own convergence rule).

Randomness: a phase has one run generator, ``seed`` itself when it is a ``torch.Generator`` (which then goes
on) or :func:`noisygrad.rng.torch_stream` ``(seed)`` for an int. The batches come from it and the noise
estimates from a sub-stream spawned from it (:func:`noisygrad.rng.torch_from_torch`); ``adam_then_lbfgs`` runs
both phases on one run generator. No global random state is touched (the network's initial weights are the
caller's business).

Scale-out: ``distributed=True`` splits each step's collocation draw over the ranks of an initialised
``torch.distributed`` process group and reduces the gradients in a fixed order after ``backward``;
``shards=K`` runs the same ``K`` pieces in one process, the bit-identical twin of a ``K``-rank run. Both record
the shard noise estimates per step (:mod:`noisygrad.pinn.distributed`). Without them nothing changes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from noisygrad.checks import caller_stacklevel, check_in_range, check_positive_int, warn
from noisygrad.rng import torch_from_torch, torch_stream

from ._deepxde import deepxde, quiet
from .batches import CollocationBatches
from .distributed import ShardedGradient, layout
from .noise import CollocationNoise, collocation_noise
from .optimizers import Built, PinnWarning, build_optimizer, check_precision, check_sampling, is_robust_lbfgs
from .state import capture, check_resume, restore_model, restore_run

StopRule = Callable[[Sequence[float]], bool]
_COMPILE_ARGS = ("loss", "loss_weights", "metrics", "external_trainable_variables", "decay")
_DECAY_DROPPED = (
    "the model's learning-rate decay (compile(..., decay=...)) belongs to its previous optimizer and is dropped "
    "with it; pass decay=... to train() to build one for the new optimizer"
)
DEFAULT_LBFGS_ITERATIONS = 15000  # DeepXDE's default L-BFGS budget (set_LBFGS_options(maxiter=15000))


@dataclass(frozen=True)
class Plateau:
    """Stop a phase when the loss stops falling.

    Every ``window`` steps, the geometric mean of the loss over the last ``window`` steps is compared with
    that of the window before; the phase ends when it fell by less than the fraction ``rel_tol``.
    Window means keep the rule usable on noisy mini-batch losses.
    """

    window: int = 500
    rel_tol: float = 0.05

    def __post_init__(self) -> None:
        check_positive_int("window", self.window)
        check_in_range("rel_tol", self.rel_tol, 0.0, 1.0, low_open=True)

    def __call__(self, losses: Sequence[float]) -> bool:
        n, w = len(losses), self.window
        if n < 2 * w or n % w:
            return False
        logs = np.log(np.maximum(np.asarray(losses[-2 * w :], dtype=np.float64), np.finfo(np.float64).tiny))
        return bool(math.exp(logs[w:].mean() - logs[:w].mean()) > 1.0 - self.rel_tol)


@dataclass
class TrainResult:
    """What one call of :func:`train` did.

    Attributes:
        optimizer: short name of the optimizer.
        iterations: optimizer iterations (L-BFGS: inner iterations).
        evaluations: loss-and-gradient evaluations (L-BFGS line searches included).
        losses: the training loss (sum of the weighted terms) at each DeepXDE step, on that step's batch,
            before the update (L-BFGS: at the start of each ``step`` call).
        final_loss: the training loss on the full training set after the phase.
        seconds: wall-clock time of the phase.
        stopped: ``"iterations"``, ``"converged"`` (L-BFGS), ``"plateau"`` (the ``stop`` rule) or
            ``"callback"`` (a DeepXDE callback such as ``EarlyStopping`` ended training).
        batch_size: PDE points per batch (None: the full set every step).
        batch_draws: how many batches were drawn.
        noise: ``(step, CollocationNoise)`` pairs measured every ``noise_every`` steps.
        skipped_pairs: curvature pairs L-BFGS rejected: the core's noise-robust L-BFGS reports its own count
            (``s.y <= eps |s| |y|``); for ``torch.optim.LBFGS`` (``s.y <= 1e-10``, dropped silently) it is
            counted only with one iteration per step, else None.
        pairs_tried: curvature pairs formed (the denominator of ``skipped_pairs``).
        resets: memory resets of the noise-robust L-BFGS (its direction was not a descent direction).
        shards: the pieces each draw was split into (``distributed=True`` or ``shards=K``; None: unsharded).
        world: the ranks that computed them (1 for the one-process twin).
        trace_cov, grad_norm_sq: per step (with ``shards >= 2``), the unbiased two-batch estimates of ``tr(S)``
            and ``|G|^2`` from the shard gradients at the step's starting parameters (McCandlish et al. 2018,
            appendix A; see :mod:`noisygrad.pinn.distributed`); empty otherwise.
        state: the phase's state at its end (:mod:`noisygrad.pinn.state`): ``train(..., resume=state)`` continues
            the run bit for bit, on this model or a fresh one of the same shape; ``torch.save`` stores it and
            ``torch.load(..., weights_only=True)`` restores it. It holds copies (the dense BFGS methods' n x n
            matrix included).
    """

    optimizer: str
    iterations: int = 0
    evaluations: int = 0
    losses: np.ndarray = field(default_factory=lambda: np.empty(0))
    final_loss: float = math.nan
    seconds: float = 0.0
    stopped: str = "iterations"
    batch_size: int | None = None
    batch_draws: int = 0
    noise: list[tuple[int, CollocationNoise]] = field(default_factory=list)
    skipped_pairs: int | None = None
    pairs_tried: int | None = None
    resets: int | None = None
    shards: int | None = None
    world: int = 1
    trace_cov: np.ndarray = field(default_factory=lambda: np.empty(0))
    grad_norm_sq: np.ndarray = field(default_factory=lambda: np.empty(0))
    state: dict[str, Any] | None = field(default=None, repr=False)

    def shard_noise_scale(self, last: int | None = None) -> float:
        """``B_simple = mean tr(S) / mean |G|^2`` over the last ``last`` steps (all by default), the parts averaged
        apart as McCandlish et al. do: ``inf`` when the mean ``|G|^2 <= 0`` (noise beyond what the shards resolve).
        """
        if self.trace_cov.size == 0:
            raise ValueError("no shard noise estimates: train with distributed=True or shards >= 2")
        n = self.trace_cov.size if last is None else check_positive_int("last", last)
        grad_sq = float(np.mean(self.grad_norm_sq[-n:]))
        return max(float(np.mean(self.trace_cov[-n:])), 0.0) / grad_sq if grad_sq > 0 else math.inf


@dataclass
class ScheduleResult:
    """The phases of :func:`adam_then_lbfgs` and where the switch happened."""

    phases: list[TrainResult]
    switched_at: int
    switch_reason: str

    @property
    def final_loss(self) -> float:
        return self.phases[-1].final_loss

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)


def _run_generator(seed: int | torch.Generator) -> torch.Generator:
    """The run's generator of ``seed``: the generator itself, or the stream of an int >= 0."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch_stream(int(seed))


def _generators(seed: int | torch.Generator) -> tuple[torch.Generator, torch.Generator]:
    """The batch generator (the run's) and the noise-estimate generator (a sub-stream spawned from it)."""
    run = _run_generator(seed)
    return run, torch_from_torch(run)


def _full_rows(model: Any) -> tuple[Any, Any, Any]:
    """``(inputs, targets, auxiliary)`` of the full training set; data without auxiliary rows gives ``None``."""
    rows = tuple(model.data.train_next_batch(model.batch_size))
    return (*rows, None) if len(rows) == 2 else rows  # type: ignore[return-value]


def training_loss(model: Any) -> float:
    """The compiled model's training loss (sum of weighted terms) on its full training set."""
    losses = model.outputs_losses_train(*_full_rows(model))[1]
    return float(torch.sum(losses).detach())


def _compile(model: Any, built: Built, compile_args: dict[str, Any]) -> None:
    """Compile with the instance (DeepXDE builds the loss closures) or swap it into a compiled model."""
    if model.outputs_losses_train is None or compile_args:
        if model.lr_scheduler is not None and "decay" not in compile_args:
            warn(_DECAY_DROPPED, PinnWarning)
        args = {"loss": "MSE", **compile_args}
        with quiet():
            model.compile(built.optimizer, verbose=0, **args)
    else:
        if model.lr_scheduler is not None:
            # DeepXDE keeps no record of the decay it was compiled with, and its scheduler drives the old optimizer.
            warn(_DECAY_DROPPED, PinnWarning)
        model.opt, model.opt_name, model.lr_scheduler = built.optimizer, built.optimizer, None


class _Stepper:
    """The function put in ``model.train_step``: one optimizer step, on a batch if batching."""

    def __init__(
        self,
        model: Any,
        built: Built,
        result: TrainResult,
        batches: CollocationBatches | None,
        iterations: int,
        stop: StopRule | None,
        noise_every: int | None,
        noise_args: dict[str, Any],
        sharded: ShardedGradient | None = None,
    ) -> None:
        self.model, self.result = model, result
        self.sharded = sharded
        self.opt: Any = built.optimizer  # torch.optim.LBFGS, noisygrad.LBFGS or a first-order optimizer
        self.second_order = built.second_order
        self.batches, self.iterations, self.stop = batches, iterations, stop
        self.noise_every, self.noise_args = noise_every, noise_args
        self.losses: list[float] = []
        self.steps = 0
        self.owns_max_iter = built.name == "lbfgs"
        self.chunk = built.optimizer.param_groups[0].get("max_iter", 1)

    def closure_for(self, rows: tuple[Any, Any, Any]) -> Callable[[], torch.Tensor]:
        if self.sharded is not None:
            return self.sharded.closure_for(rows)
        model, opt = self.model, self.opt

        def closure() -> torch.Tensor:  # DeepXDE's own closure, line for line
            losses = model.outputs_losses_train(*rows)[1]
            total_loss = torch.sum(losses)
            opt.zero_grad()
            total_loss.backward()
            return total_loss

        return closure

    def __call__(self, inputs: Any, targets: Any, auxiliary_vars: Any) -> None:
        if self.sharded is not None:
            self.sharded.begin_step()
        if self.batches is None:
            loss = self._step((inputs, targets, auxiliary_vars))
        else:
            rows = self.batches.next()
            with self.batches.installed(rows):
                loss = self._step(rows)
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the training loss became {value} at step {self.steps}; lower the learning rate or train in float64"
            )
        self.losses.append(value)
        self.steps += 1
        if self.noise_every and self.steps % self.noise_every == 0:
            self.result.noise.append((self.result.iterations, collocation_noise(self.model, **self.noise_args)))
        if self.result.iterations >= self.iterations:
            self.model.stop_training = True
        elif self.stop is not None and self.stop(self.losses):
            self.result.stopped = "plateau"
            self.model.stop_training = True

    def _step(self, rows: tuple[Any, Any, Any]) -> torch.Tensor:
        if not self.second_order:
            self.result.iterations += 1
            self.result.evaluations += 1
            loss = self.opt.step(self.closure_for(rows))
            if self.model.lr_scheduler is not None:  # as DeepXDE's own train step does
                self.model.lr_scheduler.step()
            return loss
        return self._lbfgs_step(rows)

    def _robust_step(self, rows: tuple[Any, Any, Any]) -> torch.Tensor:
        """The core's noise-robust L-BFGS: one iteration, the closure evaluated twice on the same batch."""
        loss = self.opt.step(self.closure_for(rows))
        report = self.opt.report()
        self.result.iterations += 1
        self.result.evaluations += 2
        self.result.skipped_pairs = report["skipped"]
        self.result.pairs_tried = report["skipped"] + report["accepted"]
        self.result.resets = report["resets"]
        return loss

    def _lbfgs_step(self, rows: tuple[Any, Any, Any]) -> torch.Tensor:
        opt = self.opt
        if is_robust_lbfgs(opt):
            return self._robust_step(rows)
        group = opt.param_groups[0]
        if self.owns_max_iter:  # our own L-BFGS: never run past the budget
            group["max_iter"] = min(self.chunk, self.iterations - self.result.iterations)
            group["max_eval"] = max(group["max_iter"] * 5 // 4, 25)
        state = opt.state[group["params"][0]]
        n_iter, n_eval = state.get("n_iter", 0), state.get("func_evals", 0)
        pairs_before = _pair_marker(state)
        loss = opt.step(self.closure_for(rows))
        done = state["n_iter"] - n_iter
        self.result.iterations += done
        self.result.evaluations += state["func_evals"] - n_eval
        if group["max_iter"] == 1 and n_iter > 0 and done == 1:
            self.result.pairs_tried = (self.result.pairs_tried or 0) + 1
            skipped = int(_pair_marker(state) == pairs_before)
            self.result.skipped_pairs = (self.result.skipped_pairs or 0) + skipped
        train_state = self.model.train_state  # DeepXDE adds 1 per call; count the inner iterations
        train_state.step += done - 1
        train_state.iteration += done - 1
        if self.batches is None and done <= 1 and group["max_iter"] > 1:
            self.result.stopped = "converged"
            self.model.stop_training = True
        return loss


def _pair_marker(state: dict[str, Any]) -> tuple[int, int]:
    dirs = state.get("old_dirs") or []
    return len(dirs), id(dirs[-1]) if dirs else 0


def train(
    model: Any,
    optimizer: object = "adam",
    *,
    lr: float | None = None,
    iterations: int | None = None,
    batch_size: int | None = None,
    batch_every: int = 1,
    seed: int | torch.Generator = 0,
    stop: StopRule | None = None,
    noise_every: int | None = None,
    noise_groups: int = 8,
    lbfgs_chunk: int | None = None,
    callbacks: Sequence[object] | None = None,
    display_every: int = 1000,
    verbose: int = 1,
    distributed: bool = False,
    shards: int | None = None,
    resume: Mapping[str, Any] | None = None,
    **compile_args: Any,
) -> TrainResult:
    """Train a DeepXDE model with any optimizer, on the full collocation set or on random mini-batches.

    Call it again with another optimizer to swap optimizers mid-training: the model keeps its weights,
    loss and ``losshistory``; only the optimizer (and its state) is new.

    Args:
        model: a ``dde.Model`` (pytorch backend), compiled or not.
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``, ``"lbfgs"``, a noisygrad optimizer
            (``noisygrad.Adam(1e-3)``, ``noisygrad.SGD(...)``, ...) or a ``torch.optim.Optimizer`` over the
            model's tensors (a ``torch.optim.LBFGS`` is stepped as the quasi-Newton method it is).
        lr: learning rate of a named optimizer (Adam 1e-3, SGD 1e-2; L-BFGS 1 by default).
        iterations: optimizer iterations (L-BFGS: its inner iterations); required for first-order
            optimizers, default 15000 for L-BFGS (DeepXDE's default).
        batch_size: PDE collocation points per step, drawn uniformly without replacement from the training
            set (boundary points are always all used); None trains on the full set every step. With
            ``"lbfgs"``, each step is one iteration of the core's noise-robust :class:`noisygrad.LBFGS`
            (curvature pairs from the same batch; skipped pairs reported) on its own batch; a
            ``torch.optim.LBFGS`` instance instead runs its line search on each step's batch.
        batch_every: draw a fresh batch every this many steps.
        seed: the run's generator (a ``torch.Generator``, which goes on) or its seed (an int >= 0); the batches
            come from it, the noise estimates from a sub-stream spawned from it.
        stop: optional rule ``stop(losses) -> bool`` ending the phase early, e.g. :class:`Plateau`.
        noise_every: measure :func:`~noisygrad.pinn.collocation_noise` every this many steps (stored in
            ``TrainResult.noise``); None measures nothing.
        noise_groups: groups used by the noise estimate.
        lbfgs_chunk: L-BFGS iterations per DeepXDE step for full-set L-BFGS (default ``display_every``);
            DeepXDE's test metrics and callbacks run between chunks.
        callbacks: DeepXDE callbacks, passed to ``model.train``.
        display_every: print the progress (and record the test loss in ``model.losshistory``) every this many
            steps, as ``model.train`` does; full-set L-BFGS prints after each chunk of ``lbfgs_chunk`` iterations.
        verbose: ``1`` (the default, as DeepXDE's ``model.train``) prints DeepXDE's progress table, one line
            every ``display_every`` steps, and its summary of the best step at the end; ``0`` prints nothing.
            With ``distributed=True`` only rank 0 prints.
        distributed: spread each step's collocation draw over the ranks of the initialised default
            ``torch.distributed`` process group (torchrun): every rank calls ``train`` with the same model and
            seed, draws the same points, back-propagates its slice, and the gradients are all-gathered and summed
            in rank order (not DDP, which is fragile with the PDE residuals' double backward). Every rank ends
            with the same parameters, bit-identical to the one-process twin ``shards=K``, and the result carries
            the per-step noise estimates ``trace_cov``/``grad_norm_sq``. See :mod:`noisygrad.pinn.distributed`.
        shards: ``K``, the equal pieces each draw is split into (a multiple of the world size; default the world
            size with ``distributed=True``). Without ``distributed`` it runs the ``K`` pieces one after another in
            this process: the twin of a ``K``-rank run, and the noise statistics of one. ``batch_size`` (or on
            the full set the pool size ``N``, drawn in a fresh random order each step) must be a multiple of ``K``.
        resume: a previous phase's ``TrainResult.state``: the weights, the optimizer's state, the generators, the
            batches and the losses so far are restored from it (the run generator's state into ``seed`` when it is
            a ``torch.Generator``), so ``train(..., iterations=a)`` then ``train(..., iterations=b, resume=state)``
            gives the parameters of ``train(..., iterations=a + b)`` bit for bit. The optimizer, ``batch_size``,
            ``batch_every`` and ``decay`` must be those it was saved with; a state that cannot continue this phase
            is refused with a :class:`noisygrad.CheckpointError` before any work (:mod:`noisygrad.pinn.state`).
        **compile_args: ``loss``, ``loss_weights``, ``metrics``, ``external_trainable_variables``, ``decay``
            (DeepXDE's learning-rate decay, e.g. ``("step", 1000, 0.5)``, stepped once per iteration) for
            ``model.compile``; given (or for an uncompiled model) the model is (re)compiled with them. A decay
            the model was compiled with belongs to its old optimizer: it is dropped with a warning.

    Returns:
        a :class:`TrainResult`.
    """
    dde = deepxde()
    if not isinstance(model, dde.Model):
        raise TypeError(f"model must be a dde.Model, got {type(model).__name__}")
    unknown = set(compile_args) - set(_COMPILE_ARGS)
    if unknown:
        raise TypeError(f"train() got unexpected keyword arguments {sorted(unknown)}")
    display_every = check_positive_int("display_every", display_every)
    if isinstance(verbose, bool) or not isinstance(verbose, int | np.integer) or verbose < 0:
        raise ValueError(f"verbose must be 0 (quiet) or 1 (DeepXDE's progress table), got {verbose!r}")
    batch_every = check_positive_int("batch_every", batch_every)
    if noise_every is not None:
        noise_every = check_positive_int("noise_every", noise_every)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
    chunk = display_every if lbfgs_chunk is None else check_positive_int("lbfgs_chunk", lbfgs_chunk)
    sharding = layout(model, distributed, shards, batch_size)
    if resume is None:
        batch_gen, noise_gen = _generators(seed)
    else:  # both states come from the checkpoint: spawning a sub-stream now would move the run generator
        batch_gen, noise_gen = _run_generator(seed), torch.Generator()

    external = compile_args.get("external_trainable_variables")
    if external is not None:  # the optimizer must hold them before compile sees them
        model.external_trainable_variables = list(external) if isinstance(external, list | tuple) else [external]
    per_step = 1 if batch_size is not None else chunk
    built = build_optimizer(model, optimizer, lr=lr, lbfgs_max_iter=per_step, minibatch=batch_size is not None)
    if iterations is None:
        if not built.second_order:
            raise ValueError(f"iterations must be given for {built.name} (an integer > 0)")
        iterations = DEFAULT_LBFGS_ITERATIONS
    iterations = check_positive_int("iterations", iterations)
    if built.second_order and compile_args.get("decay") is not None:
        raise ValueError(f"decay applies to first-order optimizers; {built.name} takes no learning-rate decay")
    user = caller_stacklevel() + 1  # the user's line, seen from a check called here (adam_then_lbfgs included)
    check_sampling(model, callbacks, stacklevel=user)
    if built.second_order and not is_robust_lbfgs(built.optimizer):  # a line search is what float32 stalls
        check_precision(model, stacklevel=user)

    batches = None
    if batch_size is not None:
        batches = CollocationBatches(model.data, batch_size, every=batch_every, generator=batch_gen)
    noise_args: dict[str, Any] = {}
    if noise_every is not None:  # collocation noise needs PDE data: checked before the model is touched
        noise_args = {"batch_size": batch_size or _pool(model), "generator": noise_gen, "groups": noise_groups}
        if not built.second_order:
            noise_args["lr"] = built.optimizer.param_groups[0]["lr"]
    batch = {"batch_size": batch_size, "batch_every": batch_every}
    prior_losses: list[float] = []
    prior_steps = 0
    if resume is not None:
        decay = compile_args.get("decay") is not None
        check_resume(resume, model, built.optimizer, built.name, batch=batch, decay=decay)
        prior_losses, prior_steps = restore_run(
            resume, built.optimizer, generator=batch_gen, noise_generator=noise_gen, batches=batches
        )
    _compile(model, built, compile_args)
    if resume is not None:
        restore_model(resume, model)

    result = TrainResult(built.name, batch_size=batch_size)
    sharded = None
    if sharding is not None:
        params = [p for group in built.optimizer.param_groups for p in group["params"]]
        sharded = ShardedGradient(model, params, sharding, generator=batch_gen if batches is None else None)
        result.shards, result.world = sharding.shards, sharding.world
        verbose = verbose if sharding.rank == 0 else 0
    stepper = _Stepper(model, built, result, batches, iterations, stop, noise_every, noise_args, sharded)
    stepper.losses, stepper.steps = list(prior_losses), prior_steps  # a stop rule looks back over the whole run
    draws_before = batches.draws if batches is not None else 0
    deepxde_step = model.train_step
    model.train_step = stepper
    start = time.perf_counter()
    try:
        # one DeepXDE step of full-set L-BFGS is a chunk of iterations: test after each, as DeepXDE does
        display = 1 if built.second_order and batches is None else display_every
        with _maybe_quiet(verbose):
            model.train(iterations=iterations, display_every=display, callbacks=callbacks, verbose=verbose)
    finally:
        model.train_step = deepxde_step
        result.seconds = time.perf_counter() - start
    if result.stopped == "iterations" and result.iterations < iterations and not built.second_order:
        result.stopped = "callback"
    result.losses = np.asarray(stepper.losses[len(prior_losses) :])
    result.batch_draws = batches.draws - draws_before if batches is not None else 0
    result.final_loss = training_loss(model)
    try:
        result.state = capture(
            model, built.optimizer, built.name, batch=batch, generator=batch_gen, noise_generator=noise_gen,
            batches=batches, losses=stepper.losses, steps=stepper.steps,
        )  # fmt: skip
    except (TypeError, RuntimeError, copy.Error) as error:  # a custom optimizer's state that cannot be copied
        warn(f"TrainResult.state is None: the optimizer's state could not be copied ({error})", PinnWarning)
    if sharded is not None and sharded.estimates:
        result.trace_cov = np.array([e.trace_cov for e in sharded.estimates])
        result.grad_norm_sq = np.array([e.grad_sq for e in sharded.estimates])
    return result


def _pool(model: Any) -> int:
    from .batches import pool_size

    return pool_size(model.data)


def _maybe_quiet(verbose: int) -> Any:
    import contextlib

    return quiet() if verbose <= 0 else contextlib.nullcontext()


def adam_then_lbfgs(
    model: Any,
    *,
    lr: float = 1e-3,
    iterations: int = 2000,
    switch: StopRule | None = None,
    lbfgs_iterations: int = DEFAULT_LBFGS_ITERATIONS,
    first: object = "adam",
    then: object = "lbfgs",
    batch_size: int | None = None,
    lbfgs_batch_size: int | None = None,
    seed: int | torch.Generator = 0,
    **kwargs: Any,
) -> ScheduleResult:
    """Adam (or ``first``), then L-BFGS (or ``then``), as one call.

    Args:
        lr: learning rate of the first phase (when ``first`` is a name).
        iterations: the first phase's budget; with ``switch`` it is the most it may run.
        switch: the rule that ends the first phase early (:class:`Plateau`); None switches after
            ``iterations``.
        lbfgs_iterations: the second phase's budget.
        batch_size, lbfgs_batch_size: collocation mini-batches of each phase (None: full set).
        seed: the run's generator or its seed, as for :func:`train`; both phases draw from that one generator
            (the second goes on where the first stopped), so the first phase is ``train(..., seed=seed)``.
        **kwargs: passed to both :func:`train` calls (``callbacks``, ``display_every``, compile arguments
            for the first phase, ...).
    """
    if "resume" in kwargs:
        raise TypeError(
            "adam_then_lbfgs() takes no resume: continue a saved phase with train(model, ..., resume=result.state)"
        )
    compile_args = {k: kwargs.pop(k) for k in _COMPILE_ARGS if k in kwargs}
    first_lr = lr if isinstance(first, str) else None
    run = _run_generator(seed)
    one = train(
        model, first, lr=first_lr, iterations=iterations, batch_size=batch_size, seed=run, stop=switch,
        **kwargs, **compile_args,
    )  # fmt: skip
    model.lr_scheduler = None  # a decay of the first phase ends with it
    two = train(model, then, iterations=lbfgs_iterations, batch_size=lbfgs_batch_size, seed=run, **kwargs)
    return ScheduleResult([one, two], one.iterations, one.stopped)
