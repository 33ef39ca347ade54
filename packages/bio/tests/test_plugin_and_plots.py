"""The plugin's declared experiments resolve and pass; the figures are written as PNG files."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

from noisygrad.bio import PruningModel, error_curve_around_optimum
from noisygrad.bio.plots import plot_error_curve, plot_passage_times
from noisygrad.plugins import get

PLUGIN = get("bio")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _resolve(target: str) -> object:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def test_declared_experiments_resolve_with_the_tour_signature() -> None:
    assert set(PLUGIN.experiments) == {"bio.pruning-passage", "bio.bicoid-optimum", "bio.evolution"}
    for target in PLUGIN.experiments.values():
        fn = _resolve(target)
        params = inspect.signature(fn).parameters  # type: ignore[arg-type]
        assert params["seed"].default == 0
        assert params["quick"].default is True


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bio.pruning-passage", "bio.bicoid-optimum", "bio.evolution"])
def test_quick_experiments_pass(name: str) -> None:
    findings = _resolve(PLUGIN.experiments[name])(seed=0, quick=True)  # type: ignore[operator]
    assert findings
    failed = [(f.claim, f.predicted, f.measured, f.tolerance) for f in findings if not f.passed]
    assert not failed


def test_figures_are_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0)
    first = plot_passage_times(model, model.simulate_sde(2000, rng), tmp_path / "figs")
    best, curve = error_curve_around_optimum(
        0.48, count_at_reference=700.0, reference_decay_length=0.2, n_nuclei=5000, rng=rng, points=9
    )
    second = plot_error_curve(curve, best, tmp_path / "figs")
    for path in (first, second):
        assert path.parent == tmp_path / "figs"
        assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="times"):
        plot_passage_times(model, np.array([np.inf]), tmp_path)
