"""Random mini-batches of PDE collocation points for a DeepXDE ``PDE``/``TimePDE`` data set.

DeepXDE evaluates the residual on every training point at every step (``batch_size`` is ignored for
``dde.data.PDE``), and its ``PDEPointResampler`` redraws the *same* points under the default Hammersley
sampler. :class:`CollocationBatches` instead draws, with an explicit ``torch.Generator``, a uniform
without-replacement sample of ``batch_size`` rows from the PDE rows of ``data.train_x``: an unbiased
estimate of the full residual loss and of its gradient.

DeepXDE's row layout is kept: the boundary-condition rows (``sum(data.num_bcs)`` of them) come first and
are always included whole, then the sampled PDE rows. Boundary losses read ``data.train_x``, so the batch
is installed on the data object only while a step runs (:meth:`CollocationBatches.installed`) and the full
set is put back afterwards; a ``PDEPointResampler`` that refreshes the pool between steps is honoured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from noisygrad.checks import check_positive_int

Rows = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def _pde_data(data: Any) -> None:
    from ._deepxde import deepxde

    if not isinstance(data, deepxde().data.PDE):
        raise TypeError(
            f"collocation mini-batches need a dde.data.PDE or dde.data.TimePDE, got {type(data).__name__}; "
            "leave batch_size=None for other data"
        )


def pool_size(data: Any) -> int:
    """Number of PDE collocation rows a batch is drawn from (domain, boundary and anchor points)."""
    _pde_data(data)
    x, _, _ = data.train_next_batch()
    return int(x.shape[0] - sum(data.num_bcs))


class CollocationBatches:
    """Uniform mini-batches of collocation points, redrawn every ``every`` steps.

    Args:
        data: the model's ``dde.data.PDE`` (or ``TimePDE``).
        batch_size: PDE rows per batch, ``1 <= batch_size <= N`` with ``N`` = :func:`pool_size`
            (``num_domain + num_boundary`` plus anchors).
        every: keep a batch for this many steps before drawing the next (1 = a fresh batch each step).
        generator: the ``torch.Generator`` every draw comes from.
    """

    def __init__(self, data: Any, batch_size: int, *, every: int = 1, generator: torch.Generator) -> None:
        n = pool_size(data)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if self.batch_size > n:
            raise ValueError(
                f"batch_size must be <= the number of PDE collocation points N={n} "
                f"(num_domain + num_boundary + anchors), got {batch_size}"
            )
        self.every = check_positive_int("batch_every", every)
        self.data = data
        self.generator = generator
        self.draws = 0
        self._steps_left = 0
        self._index: np.ndarray | None = None
        self._current: Rows | None = None

    @property
    def pool(self) -> int:
        return int(self.data.train_x.shape[0] - sum(self.data.num_bcs))

    def indices(self, batch_size: int | None = None) -> np.ndarray:
        """Row indices into ``data.train_x``: every boundary row, then ``batch_size`` random PDE rows."""
        b = self.batch_size if batch_size is None else batch_size
        n_bc = int(sum(self.data.num_bcs))
        picked = torch.randperm(self.pool, generator=self.generator)[:b].numpy() + n_bc
        return np.concatenate([np.arange(n_bc), picked])

    def rows(self, index: np.ndarray) -> Rows:
        """``(x, y, aux)`` of the full training set at ``index`` (``y``/``aux`` None where DeepXDE has none)."""
        data = self.data
        y = data.train_y[index] if data.train_y is not None else None
        aux = data.train_aux_vars[index] if data.train_aux_vars is not None else None
        return data.train_x[index], y, aux

    def next(self) -> Rows:
        """The batch for this step: a fresh draw every ``every`` steps, else the current one."""
        if self._steps_left == 0 or self._current is None:
            self._index = self.indices()
            self._current = self.rows(self._index)
            self._steps_left = self.every
            self.draws += 1
        self._steps_left -= 1
        return self._current

    def state_dict(self) -> dict[str, Any]:
        """Where the draws stand: the current batch's row indices (None before the first draw), the steps it has
        left and the draws so far. The generator's state is its owner's to save (a run shares one generator)."""
        index = None if self._index is None else torch.as_tensor(self._index, dtype=torch.int64).clone()
        return {"index": index, "steps_left": self._steps_left, "draws": self.draws}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the same current batch, the same steps left, the same draw count.

        Raises:
            ValueError: a state whose indices do not fit this data set or whose counts are out of range (named).
        """
        if not isinstance(state, Mapping) or set(state) != {"index", "steps_left", "draws"}:
            raise ValueError("batches state must be a dict with keys 'index', 'steps_left' and 'draws'")
        steps_left = check_positive_int("batches state 'steps_left'", state["steps_left"], allow_zero=True)
        draws = check_positive_int("batches state 'draws'", state["draws"], allow_zero=True)
        if steps_left > self.every:
            raise ValueError(f"batches state 'steps_left' must be <= batch_every={self.every}, got {steps_left}")
        raw = state["index"]
        index = None
        if raw is not None:
            if not isinstance(raw, torch.Tensor) or raw.dtype != torch.int64 or raw.ndim != 1:
                raise ValueError("batches state 'index' must be None or a 1-D int64 tensor")
            index = raw.numpy().copy()
            n_bc, rows = int(sum(self.data.num_bcs)), int(self.data.train_x.shape[0])
            if index.size != n_bc + self.batch_size or index.min(initial=0) < 0 or index.max(initial=0) >= rows:
                raise ValueError(
                    f"batches state 'index' must hold {n_bc} boundary rows and batch_size={self.batch_size} PDE rows "
                    f"of the {rows} training rows; it holds {index.size} (saved with another batch size or data set?)"
                )
        if (index is None) != (draws == 0):
            raise ValueError("batches state: 'index' must be None exactly when 'draws' is 0")
        self._index, self._steps_left, self.draws = index, steps_left, draws
        self._current = None if index is None else self.rows(index)

    @contextlib.contextmanager
    def installed(self, rows: Rows) -> Iterator[Rows]:
        """Make ``rows`` the data's training set inside the block (boundary losses read ``data.train_x``)."""
        data = self.data
        full = (data.train_x, data.train_y, data.train_aux_vars)
        data.train_x, data.train_y, data.train_aux_vars = rows
        try:
            yield rows
        finally:
            data.train_x, data.train_y, data.train_aux_vars = full
