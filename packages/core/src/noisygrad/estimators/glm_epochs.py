"""SAGA and SVRG steps on a :class:`~noisygrad.GLM` under plain SGD, many at a time in one compiled pass.

The step-by-step path (:class:`~noisygrad.SAGA` / :class:`~noisygrad.SVRG` estimating, ``SGD`` updating, the
:func:`~noisygrad.minimize` loop checking and recording) spends 150-200 us a step in Python on a problem whose
arithmetic is ``O(b d)``: a few microseconds. These kernels run a whole stretch of steps in nopython mode, with
the same arithmetic, on the estimators' own buffers (each estimator calls its kernel: ``_compiled_steps``):

* the batch of each step is ``torch.randperm(N, generator)[:b]``, drawn by :mod:`noisygrad.estimators.torch_mt`
  from the run's generator state (so the batches, and the generator's state afterwards, are torch's);
* SAGA: ``g = (l'_B - table_B) . X_B / b + table_mean + l2 w``, then ``table_B <- l'_B`` and
  ``table_mean += (l'_B - table_B) . X_B / N`` (as ``SAGA._estimate_glm``);
* SVRG: a snapshot every ``refresh`` calls (``refresh = 0``: never; the anchor, its gradient and its ``N``
  derivatives, no draw from the generator), else ``g = (l'_B - anchor_derivatives_B) . X_B / b + anchor_grad +
  l2 (w - anchor)`` (as ``SVRG._corrected``);
* SGD: ``w <- w - lr_t (g + weight_decay w)`` (``SGD`` without momentum).

Each row of a batch is visited once (its margin, its derivative, then its share of the correction while it is in
cache). The dot products may be reassociated (:data:`~noisygrad.compiled.REASSOCIATE`: vectorised, with IEEE NaN
and Inf), and numpy's BLAS blocks its sums its own way, so iterates agree with the step-by-step path to rounding,
not bit for bit.

Each step is committed only after its gradient and its new iterate are finite (one sum each, as the loop's
checks): a kernel returns the number of steps it committed, and the memory and iterate are then exactly those
after that many steps, so the caller can hand the refused step to the step-by-step path, which raises the error
it raises today (:mod:`noisygrad.loop_fused`).

``values[t]`` and ``grad_norms[t]`` are written where ``record[t]``: the estimate's value (the batch's mean loss
plus the penalty, or the full objective at a snapshot) and the gradient's norm, what the loop's history holds;
the loss costs an ``exp`` and a ``log`` per row, so it is computed only where recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from noisygrad.compiled import compiled
from noisygrad.estimators.torch_mt import draw_subset

__all__ = ["Stretch", "saga_steps", "svrg_steps"]

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Stretch:
    """What a kernel call needs besides the objective and the estimator's memory.

    Attributes:
        w: the iterate (a copy the kernel updates in place).
        rates: the learning rate of each step; the stretch is ``len(rates)`` steps.
        weight_decay: SGD's ``weight_decay``.
        words, counters: the generator's Mersenne Twister (:func:`~noisygrad.estimators.torch_mt.read_state`),
            advanced in place.
        scratch: the identity permutation ``0..N-1`` (int64), used and restored by the draws.
        record: the steps whose estimate value and gradient norm are wanted, written into ``values`` and
            ``grad_norms``.
    """

    w: Array
    rates: Array
    weight_decay: float
    words: Array
    counters: Array
    scratch: Array
    record: Array
    values: Array
    grad_norms: Array


@compiled
def _derivative(logistic: bool, z: float, y: float) -> float:  # pragma: no cover - compiled
    """``l'(z, y)``: logistic ``-y expit(-y z) = -y / (1 + exp(y z))`` (scipy's ``expit``), squared ``z - y``."""
    if logistic:
        return -y / (1.0 + math.exp(y * z))
    return z - y


@compiled
def _loss(logistic: bool, z: float, y: float) -> float:  # pragma: no cover - compiled
    """``l(z, y)``: logistic ``log(1 + exp(-y z))`` (as ``numpy.logaddexp(0, -y z)``), squared ``(z - y)^2 / 2``."""
    if logistic:
        minus_margin = -(y * z)
        return max(minus_margin, 0.0) + math.log1p(math.exp(-abs(minus_margin)))
    residual = z - y
    return 0.5 * residual * residual


@compiled(reassociate=True)
def _accumulate(
    X: Array, y: Array, logistic: bool, w: Array, idx: Array, memory: Array, derivatives: Array, out: Array
) -> None:  # pragma: no cover - compiled
    """``derivatives[k] = l'(x_i . w, y_i)`` and ``out = sum_k (derivatives[k] - memory[i]) x_i``, ``i = idx[k]``.

    One visit per row (its margin, then its share of ``out`` while it is in cache); the dot products reassociate.
    """
    out[:] = 0.0
    for k in range(idx.shape[0]):
        i = idx[k]
        z = 0.0
        for j in range(w.shape[0]):
            z += X[i, j] * w[j]
        derivative = _derivative(logistic, z, y[i])
        derivatives[k] = derivative
        c = derivative - memory[i]
        for j in range(w.shape[0]):
            out[j] += c * X[i, j]


@compiled(reassociate=True)
def _mean_loss(X: Array, y: Array, logistic: bool, w: Array, idx: Array) -> float:  # pragma: no cover - compiled
    """The mean loss over the rows ``idx`` (only at recorded steps: it costs an ``exp`` and a ``log`` per row)."""
    total = 0.0
    for k in range(idx.shape[0]):
        i = idx[k]
        z = 0.0
        for j in range(w.shape[0]):
            z += X[i, j] * w[j]
        total += _loss(logistic, z, y[i])
    return float(total / idx.shape[0])


@compiled
def _sgd_candidate(
    w: Array, grad: Array, lr: float, weight_decay: float, candidate: Array
) -> bool:  # pragma: no cover - compiled
    """``candidate = w - lr (grad + weight_decay w)``; whether the gradient and the candidate are finite.

    Checked through their sums (one pass, no ``isfinite`` per entry): a NaN or Inf entry makes its sum non-finite,
    and so do finite entries whose partial sum overflows, a step that large being refused as well.
    """
    grad_sum = 0.0
    candidate_sum = 0.0
    for j in range(w.shape[0]):
        g = grad[j]
        grad_sum += g
        if weight_decay != 0.0:
            g = g + weight_decay * w[j]
        candidate[j] = w[j] - lr * g
        candidate_sum += candidate[j]
    return math.isfinite(grad_sum) and math.isfinite(candidate_sum)


@compiled
def _record(
    t: int, mean_loss: float, l2: float, w: Array, grad: Array, values: Array, grad_norms: Array
) -> None:  # pragma: no cover - compiled
    """The estimate's value (the mean loss plus ``(l2/2)|w|^2``) and the gradient's norm, at step ``t``."""
    square_w = 0.0
    square_g = 0.0
    for j in range(w.shape[0]):
        square_w += w[j] * w[j]
        square_g += grad[j] * grad[j]
    values[t] = mean_loss + 0.5 * l2 * square_w
    grad_norms[t] = math.sqrt(square_g)


@compiled
def saga_steps(
    X: Array,
    y: Array,
    logistic: bool,
    l2: float,
    batch: int,
    w: Array,
    table: Array,
    table_mean: Array,
    lrs: Array,
    weight_decay: float,
    words: Array,
    counters: Array,
    scratch: Array,
    record: Array,
    values: Array,
    grad_norms: Array,
) -> int:  # pragma: no cover - compiled
    """``len(lrs)`` SAGA steps from ``w`` (updated in place with the table); returns the steps committed."""
    n, d = X.shape
    idx = np.empty(batch, dtype=np.int64)
    derivatives = np.empty(batch, dtype=X.dtype)
    change = np.empty(d, dtype=X.dtype)
    grad = np.empty(d, dtype=X.dtype)
    candidate = np.empty(d, dtype=X.dtype)
    for t in range(lrs.shape[0]):
        draw_subset(words, counters, n, idx, scratch)
        _accumulate(X, y, logistic, w, idx, table, derivatives, change)
        for j in range(d):
            grad[j] = change[j] / batch + table_mean[j] + l2 * w[j]
        if not _sgd_candidate(w, grad, lrs[t], weight_decay, candidate):
            return t
        if record[t]:
            _record(t, _mean_loss(X, y, logistic, w, idx), l2, w, grad, values, grad_norms)
        for k in range(batch):
            table[idx[k]] = derivatives[k]
        for j in range(d):
            table_mean[j] += change[j] / n
            w[j] = candidate[j]
    return int(lrs.shape[0])


@compiled
def svrg_steps(
    X: Array,
    y: Array,
    logistic: bool,
    l2: float,
    batch: int,
    w: Array,
    anchor: Array,
    anchor_grad: Array,
    anchor_derivatives: Array,
    calls: int,
    refresh: int,
    lrs: Array,
    weight_decay: float,
    words: Array,
    counters: Array,
    scratch: Array,
    record: Array,
    values: Array,
    grad_norms: Array,
    snapshots: Array,
) -> int:  # pragma: no cover - compiled
    """``len(lrs)`` SVRG steps from ``w`` (its ``calls``-th call first); ``snapshots[t]``: step ``t`` took one."""
    n, d = X.shape
    idx = np.empty(batch, dtype=np.int64)
    derivatives = np.empty(batch, dtype=X.dtype)
    fresh = np.empty(n, dtype=X.dtype)  # a snapshot's derivatives, committed after the checks
    rows = np.arange(n)
    zeros = np.zeros(n, dtype=X.dtype)
    correction = np.empty(d, dtype=X.dtype)
    grad = np.empty(d, dtype=X.dtype)
    candidate = np.empty(d, dtype=X.dtype)
    for t in range(lrs.shape[0]):
        snapshot = refresh > 0 and (calls + t) % refresh == 0
        snapshots[t] = snapshot
        if snapshot:  # the full gradient at w: X^T l'(X w, y) / N + l2 w
            _accumulate(X, y, logistic, w, rows, zeros, fresh, correction)
            for j in range(d):
                grad[j] = correction[j] / n + l2 * w[j]
        else:
            draw_subset(words, counters, n, idx, scratch)
            _accumulate(X, y, logistic, w, idx, anchor_derivatives, derivatives, correction)
            for j in range(d):
                grad[j] = correction[j] / batch + anchor_grad[j] + l2 * (w[j] - anchor[j])
        if not _sgd_candidate(w, grad, lrs[t], weight_decay, candidate):
            return t
        if record[t]:
            _record(t, _mean_loss(X, y, logistic, w, rows if snapshot else idx), l2, w, grad, values, grad_norms)
        if snapshot:
            anchor_derivatives[:] = fresh
            for j in range(d):
                anchor[j] = w[j]
                anchor_grad[j] = grad[j]
        for j in range(d):
            w[j] = candidate[j]
    return int(lrs.shape[0])
