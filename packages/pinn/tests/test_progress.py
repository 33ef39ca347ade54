"""``ngp.train`` shows DeepXDE's progress table by default, as ``model.train`` does, and is quiet with ``verbose=0``;
its warnings name the caller's line, through ``adam_then_lbfgs`` too."""

from __future__ import annotations

import re
import warnings

import pytest

import noisygrad.pinn as ngp

from .conftest import tiny_poisson

_ROW = re.compile(r"^(\d+)\s+\[")  # a progress row: the step, then the train losses as a list


def _steps(printed: str) -> list[int]:
    return [int(m.group(1)) for m in map(_ROW.match, printed.splitlines()) if m]


def test_train_prints_deepxde_progress_every_display_every_steps(model, capsys):
    ngp.train(model, "adam", lr=1e-3, iterations=20, display_every=5)
    printed = capsys.readouterr().out
    assert "Training model..." in printed
    assert re.search(r"^Step\s+Train loss\s+Test loss\s+Test metric", printed, re.MULTILINE)
    assert _steps(printed) == [0, 5, 10, 15, 20]  # the start, then every display_every steps, as model.train does
    assert "Best model at step 20:" in printed


@pytest.mark.filterwarnings("ignore:L-BFGS in float32:noisygrad.pinn.PinnWarning")
def test_a_second_phase_goes_on_counting_steps(model, capsys):
    ngp.adam_then_lbfgs(model, iterations=10, lbfgs_iterations=6, display_every=5, lbfgs_chunk=3)
    printed = capsys.readouterr().out
    assert printed.count("Training model...") == 2  # one table per phase
    steps = _steps(printed)
    assert steps[:3] == [0, 5, 10]
    assert steps[3:] == sorted(steps[3:])  # L-BFGS prints after each chunk, from step 10 on
    assert steps[-1] > 10


@pytest.mark.filterwarnings("ignore:L-BFGS in float32:noisygrad.pinn.PinnWarning")
@pytest.mark.parametrize("kind", ["adam", "lbfgs"])
def test_verbose_0_prints_nothing(model, capsys, kind):
    ngp.train(model, kind, lr=1e-3 if kind == "adam" else None, iterations=10, display_every=2, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [-1, 0.5, True, "yes"])
def test_verbose_must_be_a_level(model, verbose):
    with pytest.raises(ValueError, match="verbose must be 0"):
        ngp.train(model, "adam", lr=1e-3, iterations=5, verbose=verbose)


def test_the_float32_lbfgs_warning_names_the_callers_line():
    model = tiny_poisson(0)
    for call in (
        lambda: ngp.train(model, "lbfgs", iterations=3, verbose=0),
        lambda: ngp.adam_then_lbfgs(model, iterations=2, lbfgs_iterations=3, verbose=0),
    ):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            call()
        float32 = [w for w in record if "float32" in str(w.message)]
        assert float32, [str(w.message) for w in record]
        assert {w.filename for w in float32} == {__file__}
