"""Exact tests that close the mutation-testing gaps of the tour's application modules (issue 18).

Covered: ``tour/findings.py`` (curves, claims and bounds at their boundaries, the dict round trip),
``tour/parameters.py`` (declarations, checks at the range ends, command-line parsing, the ``takes`` wrapper),
``tour/registry.py`` (loading, selection, entries, the serial runner, Ctrl-C, the worker helpers),
``tour/report.py`` (plain JSON, the results object, the table texts, the report folder's checks and renames),
``tour/kit.py`` (the tolerance constants and the one-thread block) and ``tour/cli.py`` (the commands through
typer's runner with fake experiments: exit codes, JSON, colours, and the tables at 80 columns line by line).
Every check is exact: strings, exit codes and numbers written by hand or from a closed form; no statistical claim
is made, so there is no Monte-Carlo tolerance. Fake experiments live in a module written to a temporary folder.
Except in the one test that draws them, the report's PNGs are placeholder files (drawing is ``tour/figures.py``'s
job, tested there), which keeps the file fast.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from noisygrad.tour import cli, kit, report
from noisygrad.tour import registry as tour
from noisygrad.tour.findings import Curve, Finding
from noisygrad.tour.parameters import (
    Parameter,
    ParameterError,
    _number,
    check_names,
    declared,
    resolve,
    takes,
)

#: The tests that draw real PNGs; the others write a placeholder file where each PNG goes (drawing is
#: ``tour/figures.py``'s job, tested with it, and costs about a second a report on the shared machine).
_DRAWN = {"test_markdown_and_html_of_a_report"}


@pytest.fixture(autouse=True)
def _placeholder_pngs(request, monkeypatch):
    if request.node.originalname not in _DRAWN:
        monkeypatch.setattr(report.plotting, "draw", lambda figure, path: Path(path).write_bytes(b"placeholder"))


# ------------------------------------------------------------------------------------------------------ findings


def test_curve_stores_tuples_of_floats_from_any_sequence():
    c = Curve("x (u)", "y (u)", np.array([1, 2]), torch.tensor([3.0, 4.0]), [5, 6])
    assert c.x == (1.0, 2.0)
    assert c.measured == (3.0, 4.0)
    assert c.predicted == (5.0, 6.0)
    assert all(type(v) is float for v in (*c.x, *c.predicted))
    assert (c.uncertainty, c.predicted_x, c.log_x, c.log_y) == ((), (), False, False)
    assert c.prediction_grid == (1.0, 2.0)
    fine = Curve("x", "y", [1.0, 2.0], [3.0, 4.0], [0.0, 1.0, 2.0], uncertainty=[0.1, 0.2], predicted_x=[1, 1.5, 2])
    assert fine.prediction_grid == (1.0, 1.5, 2.0)
    assert fine.uncertainty == (0.1, 0.2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"x": "ab"}, TypeError, "Curve.x must be a sequence of numbers: could not convert string"),
        ({"x": 3}, TypeError, "Curve.x must be a sequence of numbers, got int"),
        ({"x": ["a"]}, TypeError, "Curve.x must be a sequence of numbers:"),
        ({"x": [], "measured": [], "predicted": []}, ValueError, "Curve.x must hold at least one value"),
        ({"x": [math.inf]}, ValueError, "must be finite"),
        ({"predicted_x": [math.nan]}, ValueError, "must be finite"),
        ({"uncertainty": [0.1, 0.2]}, ValueError, "Curve.uncertainty has 2 values but Curve.x has 1"),
        ({"predicted": [1.0, 2.0]}, ValueError, "Curve.predicted has 2 values but Curve.x has 1"),
        ({"predicted_x": [1.0, 2.0]}, ValueError, "Curve.predicted has 1 values but Curve.predicted_x has 2"),
    ],
)
def test_curve_refuses_bad_series(kwargs, error, message):
    args = {"x_label": "x", "y_label": "y", "x": [1.0], "measured": [2.0], "predicted": [3.0], **kwargs}
    with pytest.raises(error, match=message.replace("(", r"\(")):
        Curve(**args)


def test_curve_takes_nan_measurements_and_one_uncertainty_per_point():
    c = Curve("x", "y", [1.0], [math.nan], [1.0], uncertainty=[0.5])
    assert math.isnan(c.measured[0])
    assert c.uncertainty == (0.5,)


def test_curve_from_dict_ignores_unknown_keys():
    data = {"x_label": "a", "y_label": "b", "x": [1], "measured": [2], "predicted": [3], "log_y": True, "zz": 1}
    assert Curve.from_dict(data) == Curve("a", "b", [1.0], [2.0], [3.0], log_y=True)


def test_at_most_and_at_least_build_bounds():
    up = Finding.at_most("e", "c", 0.5, 0.4, 0.01, "u", {"k": 1})
    assert (up.predicted, up.measured, up.uncertainty, up.tolerance, up.unit, up.bound) == (
        0.0,
        0.4,
        0.01,
        0.5,
        "u",
        "upper",
    )
    assert up.details == {"k": 1}
    assert up.limit == 0.5
    assert up.passed
    details = {"k": 1}
    assert Finding.at_most("e", "c", 1.0, 0.0, details=details).details is not details  # a copy
    shifted = Finding.at_most("e", "c", 3.0, 2.5, ideal=2.0)
    assert (shifted.predicted, shifted.tolerance, shifted.limit) == (2.0, 1.0, 3.0)
    assert Finding.at_most("e", "c", 2.0, 0.0, ideal=2.0).tolerance == 0.0  # bound == ideal is allowed
    with pytest.raises(ValueError, match="at least the ideal"):
        Finding.at_most("e", "c", 1.0, 0.0, ideal=2.0)
    low = Finding.at_least("e", "c", 0.75, 0.8, ideal=1.0)
    assert (low.predicted, low.tolerance, low.bound, low.limit, low.details) == (1.0, 0.25, "lower", 0.75, {})
    assert Finding.at_least("e", "c", 1.0, 1.0, ideal=1.0).tolerance == 0.0
    with pytest.raises(ValueError, match="at most the ideal"):
        Finding.at_least("e", "c", 1.5, 0.0, ideal=1.0)


def test_passed_holds_at_the_boundary_and_never_for_nan_or_inf():
    assert Finding("e", "c", 1.0, 1.5, 0.0, 0.5).passed
    assert Finding("e", "c", 1.0, 0.5, 0.0, 0.5).passed
    assert not Finding("e", "c", 1.0, 1.75, 0.0, 0.5).passed
    assert not Finding("e", "c", 1.0, 0.25, 0.0, 0.5).passed
    assert Finding("e", "c", 1.0, 1.0, 0.0, 0.5).limit is None
    up = Finding.at_most("e", "c", 0.5, 0.5)
    assert up.passed
    assert not Finding.at_most("e", "c", 0.5, 0.75).passed
    assert Finding.at_most("e", "c", 0.5, -10.0).passed  # an upper bound holds one side only
    low = Finding.at_least("e", "c", 0.5, 0.5, ideal=1.0)
    assert low.passed
    assert not Finding.at_least("e", "c", 0.5, 0.25, ideal=1.0).passed
    assert Finding.at_least("e", "c", 0.5, 10.0, ideal=1.0).passed
    for measured, predicted in ((math.nan, 1.0), (math.inf, 1.0), (1.0, math.nan), (1.0, -math.inf)):
        assert not Finding("e", "c", predicted, measured, 0.0, math.inf).passed
    assert not Finding.at_most("e", "c", 1.0, math.nan).passed
    with pytest.raises(ValueError, match=r"Finding.bound must be one of"):
        Finding("e", "c", 1.0, 1.0, 0.0, 0.1, bound="both")


def test_finding_as_dict_and_from_dict():
    curve = Curve("x", "y", [1.0], [2.0], [3.0])
    f = Finding("e", "c", 1.0, 1.25, 0.5, 0.1, "u", {"n": 3}, curve, "")
    data = f.as_dict()
    assert data["passed"] is False
    assert data["curve"]["x"] == (1.0,)
    assert data["bound"] == ""
    assert data["unit"] == "u"
    assert data["details"] == {"n": 3}
    assert Finding.from_dict(data) == f
    nulls = dict(data, predicted=None, measured=None, uncertainty=None, tolerance=None, curve=None, extra=1)
    back = Finding.from_dict(nulls)
    assert all(math.isnan(v) for v in (back.predicted, back.measured, back.uncertainty, back.tolerance))
    assert back.curve is None
    old = {k: v for k, v in data.items() if k not in ("bound", "curve")}
    assert Finding.from_dict(old).bound == ""
    assert Finding.from_dict(old).curve is None


# ---------------------------------------------------------------------------------------------------- parameters


def test_number_writes_bounds_as_people_do():
    assert [_number(100), _number(1e6), _number(0.5), _number(-3.0), _number(1e15), _number(2.5e-7)] == [
        "100",
        "1000000",
        "0.5",
        "-3",
        "1e+15",
        "2.5e-07",
    ]
    assert _number(999999999999999.0) == "999999999999999"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "2x"}, "identifier other than seed and quick"),
        ({"name": "seed"}, "identifier other than seed and quick"),
        ({"name": "quick"}, "identifier other than seed and quick"),
        ({"type": list, "default": []}, "type must be one of int, float, bool, str"),
        ({"type": str, "default": "a", "low": 0}, "low and high apply to int and float"),
        ({"type": bool, "default": True, "high": 1}, "low and high apply to int and float"),
        ({"low": 5, "high": 4}, "low=5 is above high=4"),
        ({"full": 11, "high": 10}, "parameter n takes an integer <= 10, got 11"),
        ({"default": 3, "choices": (1, 2)}, "one of 1, 2, got 3"),
    ],
)
def test_a_bad_declaration_is_refused(kwargs, message):
    args = {"name": "n", "type": int, "default": 1, "help": "", **kwargs}
    with pytest.raises(ValueError, match=message):
        Parameter(**args)


def test_a_declaration_with_equal_bounds_and_list_choices():
    p = Parameter("n", int, 4, "", low=4, high=4, choices=[4])
    assert p.choices == (4,)
    assert p.check(4) == 4
    assert Parameter("x", float, 1.0, "", low=1.0).check(1) == 1.0


def test_defaults_and_texts():
    p = Parameter("n", int, 4, "h", full=40, low=1, high=10**6)
    assert (p.default_for(True), p.default_for(False)) == (4, 40)
    assert Parameter("n", int, 4, "h").default_for(False) == 4
    assert p.allowed() == "an integer in [1, 1000000]"
    assert Parameter("x", float, 1.0, "", low=0.5).allowed() == "a number >= 0.5"
    assert Parameter("x", float, 1.0, "", high=2).allowed() == "a number <= 2"
    assert Parameter("x", float, 1.0, "").allowed() == "a number"
    assert Parameter("b", bool, True, "").allowed() == "true or false"
    assert Parameter("s", str, "a", "", choices=("a", "b")).allowed() == "one of 'a', 'b'"
    assert p.defaults_text() == "4 (full: 40)"
    assert Parameter("n", int, 4, "", full=4).defaults_text() == "4"
    assert Parameter("n", int, 4, "").defaults_text() == "4"
    assert Parameter("b", bool, True, "", full=False).defaults_text() == "true (full: false)"
    assert p.as_dict() == {
        "name": "n",
        "type": "int",
        "default": 4,
        "full": 40,
        "allowed": "an integer in [1, 1000000]",
        "help": "h",
    }
    assert Parameter("s", str, "a", "t").as_dict()["full"] == "a"


def test_check_types_and_ranges_at_their_ends():
    n = Parameter("n", int, 5, "", low=1, high=10)
    assert n.check(1) == 1
    assert n.check(10) == 10
    for bad in (0, 11, True, 1.0, "3"):
        with pytest.raises(ParameterError, match="parameter n takes an integer in \\[1, 10\\], got"):
            n.check(bad)
    x = Parameter("x", float, 0.5, "", low=0.0, high=1.0)
    assert x.check(1) == 1.0
    assert type(x.check(1)) is float
    assert x.check(0.0) == 0.0
    for bad in (math.nan, math.inf, -0.5, 1.5, False, "0.5"):
        with pytest.raises(ParameterError, match="parameter x takes a number in"):
            x.check(bad)
    unbounded = Parameter("y", float, 0.0, "")
    with pytest.raises(ParameterError):
        unbounded.check(-math.inf)
    b = Parameter("b", bool, False, "")
    assert b.check(True) is True
    with pytest.raises(ParameterError, match="takes true or false, got 1 \\(int\\)"):
        b.check(1)
    s = Parameter("s", str, "a", "", choices=("a", "b"))
    assert s.check("b") == "b"
    for bad in ("c", 1):
        with pytest.raises(ParameterError):
            s.check(bad)
    assert isinstance(ParameterError("x"), ValueError)
    assert isinstance(ParameterError("x"), TypeError)


def test_parse_reads_what_a_command_line_spells():
    b = Parameter("b", bool, False, "")
    for text in ("true", "YES", " on ", "1"):
        assert b.parse(text) is True
    for text in ("false", "No", "off", "0"):
        assert b.parse(text) is False
    with pytest.raises(ParameterError, match="parameter b takes true or false, got 'maybe'"):
        b.parse("maybe")
    n = Parameter("n", int, 5, "")
    assert n.parse(" 1_000 ") == 1000
    assert n.parse("10__000_") == 10000  # every underscore is dropped, as a digit separator, wherever it is
    with pytest.raises(ParameterError, match=r"got '1.5'"):
        n.parse("1.5")
    assert Parameter("x", float, 0.5, "").parse(" 2.5e-1 ") == 0.25
    assert Parameter("s", str, "a", "").parse(" a b ") == " a b "  # text is kept as typed


def test_inferred_and_declared():
    assert Parameter.inferred("n", 3) == Parameter("n", int, 3, "")
    assert Parameter.inferred("f", None) == Parameter("f", str, "None", "")
    assert Parameter.inferred("l", [1]) == Parameter("l", str, "[1]", "")

    def undeclared(seed=0, quick=True, flips=400, rate=0.5, *args, tag=None, **kw):
        return []

    found = declared(undeclared)
    assert [(p.name, p.type, p.default) for p in found] == [
        ("flips", int, 400),
        ("rate", float, 0.5),
        ("tag", str, "None"),
    ]

    def positional_only(a, /, b):
        return []

    assert [p.name for p in declared(positional_only)] == ["b"]
    assert declared(positional_only)[0].default == "None"  # no default: inferred from None


def test_check_names_and_resolve():
    ps = (Parameter("a", int, 1, "", full=10), Parameter("b", float, 0.5, ""))
    check_names(ps, ["a"], owner="o")
    with pytest.raises(ParameterError, match=r"^o has no parameter c, z; it takes: a, b$"):
        check_names(ps, ["z", "c", "a"], owner="o")
    with pytest.raises(ParameterError, match="it takes: no parameters besides seed and quick"):
        check_names((), ["a"], owner="o")
    assert resolve(ps, {"b": 1}, quick=True, owner="o") == {"a": 1, "b": 1.0}
    assert resolve(ps, {}, quick=False, owner="o") == {"a": 10, "b": 0.5}
    with pytest.raises(ParameterError):
        resolve(ps, {"a": 0.5}, quick=True, owner="o")


def test_takes_wraps_with_defaults_checks_and_signature():
    calls = []

    @takes(Parameter("n", int, 3, "", full=30, low=1), Parameter("s", str, "a", ""))
    def exp(seed: int = 0, quick: bool = True, *, n: int, s: str) -> list:
        calls.append((seed, quick, n, s))
        return []

    exp()
    exp(5, False)
    exp(seed=2, n=7, s="z")
    assert calls == [(0, True, 3, "a"), (5, False, 30, "a"), (2, True, 7, "z")]
    with pytest.raises(ParameterError, match="exp has no parameter m"):
        exp(m=1)
    with pytest.raises(ParameterError, match="parameter n takes an integer >= 1, got 0"):
        exp(n=0)
    sig = inspect.signature(exp)
    assert list(sig.parameters) == ["seed", "quick", "n", "s"]
    assert sig.parameters["n"].default == 3
    assert sig.parameters["n"].kind is inspect.Parameter.KEYWORD_ONLY
    assert [p.name for p in exp.parameters] == ["n", "s"]
    assert exp.__name__ == "exp"

    @takes(Parameter("n", int, 3, ""))
    def plain(n):
        return n

    assert list(inspect.signature(plain).parameters) == ["n"]
    assert inspect.signature(plain).parameters["n"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.signature(plain).parameters["n"].default == 3
    assert plain.__wrapped__(4) == 4
    with pytest.raises(ValueError, match="parameter names must be distinct"):
        takes(Parameter("n", int, 1, ""), Parameter("n", int, 2, ""))
    for fn in (lambda n, /: n, lambda *n: n, lambda **n: n, lambda m: m):
        with pytest.raises(ValueError, match="declares parameter n but does not take it by keyword"):
            takes(Parameter("n", int, 1, ""))(fn)


# ------------------------------------------------------------------------------------------------------ registry

FAKES = '''
from noisygrad.tour.findings import Finding
from noisygrad.tour.parameters import Parameter, takes


@takes(Parameter("n", int, 2, "draws", full=20, low=1, high=100), Parameter("loud", bool, False, "loud"))
def counted(seed=0, quick=True, *, n, loud):
    """Counts its draws.

    A second paragraph that describe() leaves out.
    """
    return [Finding("fake.counted", "n draws", float(n), float(n), 0.0, 0.5, "draws", {"seed": seed, "quick": quick})]


def failing(seed=0, quick=True):
    """A claim that fails
    on two lines."""
    return [Finding("fake.failing", "two is three", 3.0, 2.0, 0.0, 0.5)]


def undocumented(seed=0, quick=True, rate=0.5):
    return [Finding("fake.undocumented", "ok", 1.0, 1.0, 0.0, 0.5)]


def empty(seed=0, quick=True):
    return []


def not_a_list(seed=0, quick=True):
    return (Finding("fake.not_a_list", "ok", 1.0, 1.0, 0.0, 0.5),)


def not_findings(seed=0, quick=True):
    return [1.0]


def raising(seed=0, quick=True):
    raise RuntimeError("fell over")


def interrupted(seed=0, quick=True):
    raise KeyboardInterrupt


def bounded(seed=0, quick=True):
    return [
        Finding.at_most(
            "fake.bounded", "the relative error of a long-named quantity is small", 0.0016, 0.00038263148, 0.000123,
            unit="Ha",
        ),
        Finding("fake.bounded", "a large one", 1234567.891, 1234001.5, 1234.5678, 5000.0, "steps^2"),
    ]


@takes(Parameter("k", int, 1, "h" * 74))
def long_help(seed=0, quick=True, *, k):
    return []


def chatty(seed=0, quick=True):
    print("a line an experiment prints")
    return [Finding("fake.chatty", "ok", 1.0, 1.0, 0.0, 0.5)]


@takes(Parameter("n", str, "2", "a text"))
def floating(seed=0, quick=True, *, n):
    return [Finding("fake.floating", "n", 1.0, 1.0, 0.0, 0.5)]
'''


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """The fake experiments above as ``fake.<name>`` in the command's registry; returns them by name."""
    (tmp_path / "noisygrad_tour_gap_fakes.py").write_text(textwrap.dedent(FAKES))
    monkeypatch.syspath_prepend(str(tmp_path))
    names = (
        "counted",
        "failing",
        "undocumented",
        "empty",
        "not_a_list",
        "not_findings",
        "raising",
        "interrupted",
        "floating",
        "chatty",
        "bounded",
    )
    found = {f"fake.{n}": tour.Experiment(f"fake.{n}", f"noisygrad_tour_gap_fakes:{n}") for n in names}
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: found)
    return found


def test_experiment_loads_describes_and_parses(fakes):
    counted = fakes["fake.counted"]
    assert counted.describe() == "Counts its draws."
    assert fakes["fake.failing"].describe() == "A claim that fails on two lines."
    assert fakes["fake.undocumented"].describe() == ""
    assert [p.name for p in counted.parameters()] == ["n", "loud"]
    assert [(p.name, p.default) for p in fakes["fake.undocumented"].parameters()] == [("rate", 0.5)]
    assert counted.parse({"n": "7", "loud": "yes"}) == {"n": 7, "loud": True}
    with pytest.raises(ParameterError, match=r"^experiment fake.counted has no parameter m; it takes: n, loud$"):
        counted.parse({"m": "1"})


def test_experiment_run_checks_params_and_what_it_returns(fakes):
    counted = fakes["fake.counted"]
    [f] = counted.run(seed=3, quick=False)
    assert (f.measured, f.details) == (20.0, {"seed": 3, "quick": False})
    assert counted.run(n=5)[0].measured == 5.0
    with pytest.raises(ParameterError, match=r"^experiment fake.counted has no parameter m"):
        counted.run(m=1)
    with pytest.raises(ParameterError, match=r"experiment fake.undocumented has no parameter m"):
        fakes["fake.undocumented"].run(m=1)
    assert fakes["fake.empty"].run() == []
    for name in ("fake.not_a_list", "fake.not_findings"):
        with pytest.raises(TypeError, match=f"experiment {name} \\(noisygrad_tour_gap_fakes:"):
            fakes[name].run()


def test_experiment_with_a_plugin_checks_its_field_packages(fakes):
    from noisygrad import plugins

    plugin = plugins.Plugin("nope", "noisygrad.nope", requires=("no-such-distribution-xyz",))
    exp = tour.Experiment("nope.x", "noisygrad_tour_gap_fakes:empty", plugin)
    with pytest.raises(plugins.MissingDependencyError):
        exp.load()
    ok = tour.Experiment("ok.x", "noisygrad_tour_gap_fakes:empty", plugins.Plugin("ok", "noisygrad.ok"))
    assert ok.run() == []


def test_experiments_names_core_first_then_plugins(monkeypatch):
    from noisygrad import plugins

    ready = plugins.Plugin("alpha", "a", experiments={"one": "m:one", "alpha.two": "m:two"})
    broken = plugins.Plugin("beta", "b", experiments={"three": "m:three"})
    statuses = [plugins.PluginStatus(ready, "d", "1", ()), plugins.PluginStatus(broken, "d", "1", ("x",))]
    monkeypatch.setattr(tour._plugins, "core_experiments", lambda: {"core.z": "m:z"})
    monkeypatch.setattr(tour._plugins, "available", lambda: statuses)
    found = tour.experiments()
    assert list(found) == ["core.z", "alpha.one", "alpha.two"]
    assert found["core.z"] == tour.Experiment("core.z", "m:z", None)
    assert found["alpha.two"] == tour.Experiment("alpha.two", "m:two", ready)
    assert list(tour.experiments(include_unusable=True)) == ["core.z", "alpha.one", "alpha.two", "beta.three"]


def test_select_by_name_plugin_and_wildcard_in_registry_order():
    names = ["core.a", "core.ab", "dsp.x", "dsp.y", "corex.b"]
    available = {n: tour.Experiment(n, "m:f") for n in names}
    assert [e.name for e in tour.select(["dsp.y", "core.a"], available)] == ["core.a", "dsp.y"]
    assert [e.name for e in tour.select(["core"], available)] == ["core.a", "core.ab"]
    assert [e.name for e in tour.select(["*.a*", "dsp"], available)] == ["core.a", "core.ab", "dsp.x", "dsp.y"]
    assert [e.name for e in tour.select(["core.a", "core.a"], available)] == ["core.a"]
    for missing in ("cor", "core.", "DSP"):
        with pytest.raises(KeyError, match=f"no experiment named '{missing}'"):
            tour.select([missing], available)
    assert {e.name for e in tour.select(["core.noise-ball"])} == {"core.noise-ball"}  # the installed registry


def test_tour_entry_passed_and_as_dict():
    ok = Finding("e", "c", 1.0, 1.0, 0.0, 0.5)
    bad = Finding("e", "c", 1.0, 2.0, 0.0, 0.5)
    assert tour.TourEntry("e", [ok], 1.23456).passed
    assert not tour.TourEntry("e", [ok, bad], 1.0).passed
    assert not tour.TourEntry("e", [], 1.0).passed
    assert not tour.TourEntry("e", [ok], 1.0, "RuntimeError: x").passed
    d = tour.TourEntry("e", [ok], 1.23456, None).as_dict()
    assert d == {"experiment": "e", "passed": True, "seconds": 1.235, "error": None, "findings": [ok.as_dict()]}


def test_tour_interrupted_carries_what_finished():
    entry = tour.TourEntry("e", [], 0.0)
    stop = tour.TourInterrupted([entry], ["f", "g"])
    assert isinstance(stop, KeyboardInterrupt)
    assert str(stop) == "interrupted after 1 of 3 experiments"
    assert stop.entries == [entry]
    assert stop.not_run == ["f", "g"]


def test_run_one_turns_an_exception_into_an_error_entry(fakes):
    entry = tour.run_one(fakes["fake.raising"])
    assert (entry.experiment, entry.findings, entry.error) == ("fake.raising", [], "RuntimeError: fell over")
    assert entry.seconds >= 0.0
    good = tour.run_one(fakes["fake.counted"], seed=4, quick=False, params={"n": 9})
    assert good.error is None
    assert good.findings[0].measured == 9.0
    assert good.findings[0].details["seed"] == 4
    assert tour.run_one(fakes["fake.counted"]).findings[0].measured == 2.0


def test_run_experiments_serially_in_order_with_callbacks(fakes):
    chosen = [fakes["fake.counted"], fakes["fake.raising"], fakes["fake.failing"]]
    events: list[tuple[str, str]] = []
    entries = tour.run_experiments(
        chosen,
        seed=7,
        quick=False,
        params=None,
        on_start=lambda e: events.append(("start", e.name)),
        on_done=lambda e: events.append(("done", e.experiment)),
    )
    assert [e.experiment for e in entries] == ["fake.counted", "fake.raising", "fake.failing"]
    assert events == [
        ("start", "fake.counted"),
        ("done", "fake.counted"),
        ("start", "fake.raising"),
        ("done", "fake.raising"),
        ("start", "fake.failing"),
        ("done", "fake.failing"),
    ]
    assert entries[0].findings[0].details == {"seed": 7, "quick": False}
    assert entries[0].findings[0].measured == 20.0
    assert entries[1].error == "RuntimeError: fell over"
    assert not entries[2].passed
    assert tour.run_experiments([fakes["fake.counted"]], params={"n": 3})[0].findings[0].measured == 3.0
    assert tour.run_experiments([]) == []
    one = tour.run_experiments([fakes["fake.counted"]], jobs=5)  # more jobs than experiments: one, in this process
    assert one[0].findings[0].measured == 2.0
    for jobs in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
            tour.run_experiments([], jobs=jobs)


def test_ctrl_c_keeps_the_finished_entries(fakes):
    chosen = [fakes["fake.counted"], fakes["fake.interrupted"], fakes["fake.failing"]]
    started = []
    with pytest.raises(tour.TourInterrupted) as stop:
        tour.run_experiments(chosen, on_start=lambda e: started.append(e.name))
    assert [e.experiment for e in stop.value.entries] == ["fake.counted"]
    assert stop.value.not_run == ["fake.interrupted", "fake.failing"]
    assert started == ["fake.counted", "fake.interrupted"]


def test_a_sweep_error_fills_every_unfinished_entry(fakes, monkeypatch):
    def dying(task, items, executor, on_done):
        on_done(0, task(items[0]))
        try:
            raise OSError("pool died")
        except OSError as cause:
            raise tour.SweepError("a worker died", 1, items[1]) from cause

    monkeypatch.setattr(tour, "sweep", dying)
    done = []
    chosen = [fakes["fake.counted"], fakes["fake.failing"], fakes["fake.empty"]]
    entries = tour.run_experiments(chosen, on_done=lambda e: done.append(e.experiment))
    assert [e.error for e in entries] == [None, *["worker process failed: OSError: pool died"] * 2]
    assert [e.seconds for e in entries[1:]] == [0.0, 0.0]
    assert entries[2].findings == []
    assert done == ["fake.counted", "fake.failing", "fake.empty"]
    assert len(tour.run_experiments(chosen)) == 3  # without on_done too

    def interrupted_in_a_worker(task, items, executor, on_done):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as cause:
            raise tour.SweepError("interrupted", 0, items[0]) from cause

    monkeypatch.setattr(tour, "sweep", interrupted_in_a_worker)
    with pytest.raises(tour.TourInterrupted) as stop:
        tour.run_experiments(chosen)
    assert stop.value.entries == []
    assert stop.value.not_run == ["fake.counted", "fake.failing", "fake.empty"]


def test_parallel_runs_use_a_spawned_pool_of_at_most_one_worker_per_experiment(fakes, monkeypatch):
    made: list[dict[str, Any]] = []

    class Pool:
        def __init__(self, workers, mp_context, initializer, initargs):
            made.append({"workers": workers, "method": mp_context.get_start_method(), "init": (initializer, initargs)})
            self.shutdowns: list[tuple[bool, bool]] = []

        def shutdown(self, wait, cancel_futures):
            made[-1]["shutdown"] = (wait, cancel_futures)

    seen = {}

    def serial_sweep(task, items, executor, on_done):
        seen["executor"] = executor
        for index, item in enumerate(items):
            on_done(index, task(item))

    monkeypatch.setattr(tour.cf, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(tour, "sweep", serial_sweep)
    entries = tour.run_experiments([fakes["fake.counted"], fakes["fake.failing"]], jobs=3)
    assert [e.experiment for e in entries] == ["fake.counted", "fake.failing"]
    assert made == [{"workers": 2, "method": "spawn", "init": (tour._tour_worker, (1,)), "shutdown": (True, True)}]
    assert isinstance(seen["executor"], Pool)
    tour.run_experiments([fakes["fake.counted"], fakes["fake.failing"]], jobs=1)
    assert seen["executor"] == "serial"
    assert len(made) == 1


def test_ctrl_c_in_a_parallel_run_stops_the_workers(fakes, monkeypatch):
    stopped = []

    class Pool:
        def __init__(self, *args, **kwargs):
            pass

        def shutdown(self, wait, cancel_futures):
            pass

    def ctrl_c(task, items, executor, on_done):
        raise KeyboardInterrupt

    monkeypatch.setattr(tour.cf, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(tour, "sweep", ctrl_c)
    monkeypatch.setattr(tour, "_stop_workers", stopped.append)
    with pytest.raises(tour.TourInterrupted):
        tour.run_experiments([fakes["fake.counted"], fakes["fake.failing"]], jobs=2)
    assert len(stopped) == 1
    assert isinstance(stopped[0], Pool)
    with pytest.raises(tour.TourInterrupted):
        tour.run_experiments([fakes["fake.counted"]], jobs=2)  # serial: no pool to stop
    assert len(stopped) == 1


def test_the_worker_helpers(monkeypatch):
    calls = []
    monkeypatch.setattr(tour.signal, "signal", lambda sig, handler: calls.append(("signal", sig, handler)))
    monkeypatch.setattr(tour, "_start_worker", lambda threads: calls.append(("start", threads)))
    tour._tour_worker(1)
    assert calls == [("signal", tour.signal.SIGINT, tour.signal.SIG_IGN), ("start", 1)]

    class Process:
        def __init__(self, alive):
            self.alive, self.terminated = alive, False

        def is_alive(self):
            return self.alive

        def terminate(self):
            self.terminated = True

    class Pool:
        def __init__(self):
            self._processes = {1: Process(True), 2: Process(False)}
            self.shutdown_args = None

        def shutdown(self, wait, cancel_futures):
            self.shutdown_args = (wait, cancel_futures)

    pool = Pool()
    procs = list(pool._processes.values())
    tour._stop_workers(pool)
    assert [p.terminated for p in procs] == [True, False]
    assert pool.shutdown_args == (True, True)


# -------------------------------------------------------------------------------------------------------- report


def test_jsonable_makes_plain_json():
    class NoItem:
        def item(self):
            raise ValueError("not a scalar")

        def tolist(self):
            return [1.5, math.nan]

    class OnlyItem:
        def item(self):
            return 3

    class Odd:
        def __str__(self):
            return "odd"

    data = {
        1: (True, None, 3, "s", 1.5, math.nan, -math.inf),
        "np": np.float32(0.5),
        "i": np.int64(7),
        "t": torch.tensor(2.5),
        "arr": np.array([[1, 2]]),
        "ta": torch.tensor([1.0, math.inf]),
        "n": NoItem(),
        "o": Odd(),
        "b": np.bool_(True),
        "only": OnlyItem(),
    }
    out = report.jsonable(data)
    assert out == {
        "1": [True, None, 3, "s", 1.5, None, None],
        "np": 0.5,
        "i": 7,
        "t": 2.5,
        "arr": [[1, 2]],
        "ta": [1.0, None],
        "n": [1.5, None],
        "o": "odd",
        "b": True,
        "only": 3,
    }
    assert type(out["i"]) is int
    assert out["b"] is True
    json.dumps(out, allow_nan=False)


def test_versions_name_python_torch_and_every_installed_distribution():
    import platform
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "noisygrad-core", "noisygrad-pinn", "noisygrad-quantum", "noisygrad-dsp", "noisygrad-bio")
    expected = {"python": platform.python_version()}
    for name in names:
        try:
            expected[name] = version(name)
        except PackageNotFoundError:
            continue
    assert report.versions() == expected
    assert list(report.versions()) == list(expected)


def _entries() -> list[tour.TourEntry]:
    ok = Finding("a", "one is one", 1.0, 1.0, 0.0, 0.5, "m", {"n": 2})
    bad = Finding("a", "two | three", 3.0, 2.0, 0.012345, 0.5)
    bound = Finding.at_most("b", "small", 0.25, 0.125, 0.01, "Ha")
    return [
        tour.TourEntry("a", [ok, bad], 1.25),
        tour.TourEntry("b", [bound], 0.5),
        tour.TourEntry("c/d e", [], 0.0004, "RuntimeError: x"),
    ]


def test_results_hold_the_summary_and_each_experiment():
    entries = _entries()
    data = report.results(entries, seed=3, quick=True)
    assert data["seed"] == 3
    assert data["size"] == "quick"
    assert data["passed"] is False
    assert "interrupted" not in data
    assert "not_run" not in data
    assert data["summary"] == {
        "experiments": 3,
        "experiments_passed": 1,
        "findings": 3,
        "findings_passed": 2,
        "seconds": 1.75,
    }
    assert data["experiments"] == report.jsonable([e.as_dict() for e in entries])
    assert data["versions"] == report.versions()
    good = report.results(entries[1:2], seed=0, quick=False)
    assert good["passed"] is True
    assert good["size"] == "full"
    cut = report.results(entries[1:2], seed=0, quick=True, not_run=("x", "y"))
    assert cut["passed"] is False
    assert cut["interrupted"] is True
    assert cut["not_run"] == ["x", "y"]
    assert list(cut)[:5] == ["seed", "size", "passed", "interrupted", "not_run"]
    assert report.results([tour.TourEntry("t", [], 0.00049)], seed=0, quick=True)["summary"]["seconds"] == 0.0


def test_the_table_texts():
    assert report.figure_name("core.noise-ball") == "core.noise-ball"
    assert report.figure_name("a/b c??d") == "a_b_c_d"
    assert report._fmt(1.23456789) == "1.235"
    assert report._fmt(math.inf) == "inf"
    assert report._fmt(math.nan) == "nan"
    assert report._fmt(1.23456789, 2) == "1.2"
    assert report._err(0.012345) == "0.012"
    assert report._verdict(True) == "pass"
    assert report._verdict(False) == "FAIL"
    assert report._reproduce(4, True) == "noisygrad tour --seed 4"
    assert report._reproduce(4, False) == "noisygrad tour --seed 4 --full"
    assert report.cell("a|b\nc") == "a\\|b c"
    value = Finding("e", "c", 1.23456, 1.5, 0.012345, 0.25, "m", {"n": 2, "k": "v"})
    assert report._details(value) == "n = 2, k = v"
    assert report.predicted_text(value) == "1.235"
    assert report.predicted_text(value, 2) == "1.2"
    assert report.tolerance_text(value) == "0.25"
    assert report.comparison_text(value) == (
        "predicted 1.235 m, measured 1.5 ± 0.012 m, |difference| 0.2654 vs tolerance 0.25"
    )
    assert report.comparison_text(Finding("e", "c", 2.0, 1.0, 0.0, 0.5)) == (
        "predicted 2, measured 1 ± 0, |difference| 1 vs tolerance 0.5"
    )
    up = Finding.at_most("e", "c", 0.25, 0.125, 0.01, "Ha")
    low = Finding.at_least("e", "c", 0.75, 0.8, ideal=1.0)
    assert report.predicted_text(up) == "≤ 0.25"
    assert report.predicted_text(low) == "≥ 0.75"
    assert report.tolerance_text(up) == "—"
    assert report.comparison_text(up) == "measured 0.125 ± 0.01 Ha, upper bound ≤ 0.25 Ha"
    assert report.comparison_text(low) == "measured 0.8 ± 0, lower bound ≥ 0.75"


def test_markdown_and_html_of_a_report(tmp_path):
    entries = _entries()
    index = report.write_report(entries, tmp_path / "r", seed=3, quick=False)
    assert index == tmp_path / "r" / "index.html"
    out = tmp_path / "r"
    assert sorted(p.name for p in out.iterdir()) == sorted(report.REPORT_ENTRIES)
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "a.json",
        "a.png",
        "b.json",
        "b.png",
        "c_d_e.json",
        "c_d_e.png",
    ]
    assert json.loads((out / "results.json").read_text())["size"] == "full"
    md = (out / "report.md").read_text().splitlines()
    assert md[0] == "# noisygrad tour"
    assert md[2] == (
        "**1/3 experiments passed** (2/3 claims) in 1.8 s; seed 3, full size. "
        "Reproduce with `noisygrad tour --seed 3 --full`."
    )
    rows = [line for line in md if line.startswith("| ")]
    assert rows[1:] == [
        "| 1 | a | one is one | 1 | 1 ± 0 | 0.5 | m | pass | 1.2 |",
        "| 2 | a | two \\| three | 3 | 2 ± 0.012 | 0.5 |  | FAIL | 1.2 |",
        "| 3 | b | small | ≤ 0.25 | 0.125 ± 0.01 | — | Ha | pass | 0.5 |",
        "| 4 | c/d e | RuntimeError: x |  |  |  |  | ERROR | 0.0 |",
    ]
    text = "\n".join(md)
    assert "## a: FAIL" in text
    assert "## b: pass" in text
    assert "## c/d e: ERROR" in text
    assert "The experiment raised `RuntimeError: x`." in text
    assert "- **#2 FAIL**: two | three  \n  predicted 3, measured 2 ± 0.012, |difference| 1 vs tolerance 0.5" in text
    assert (
        "- **#1 pass**: one is one  \n  predicted 1 m, measured 1 ± 0 m, |difference| 0 vs tolerance 0.5\n  (n = 2)"
        in text
    )
    assert "![c/d e](figures/c_d_e.png)" in text
    assert "Interrupted" not in text
    page = (out / "index.html").read_text()
    assert '<span class="fail">1/3 experiments passed</span> (2/3 claims) in 1.8 s; seed 3, full size.' in page
    assert "<code>noisygrad tour --seed 3 --full</code>" in page
    assert "<td class='num' id='claim-4'>4</td><td><a href=\"#c_d_e\">c/d e</a></td><td>RuntimeError: x</td>" in page
    assert "<span class=\"fail\">ERROR</span></td><td class='num'>0.0</td></tr>" in page
    assert "<td class='num'>≤ 0.25</td><td class='num'>0.125 ± 0.01</td><td class='num'>—</td><td>Ha</td>" in page
    assert '<h2 id="a">a: <span class="fail">FAIL</span></h2>' in page
    assert '<h2 id="b">b: <span class="pass">pass</span></h2>' in page
    assert '<h2 id="c_d_e">c/d e: <span class="fail">ERROR</span></h2>' in page
    assert "<li>The experiment raised <code>RuntimeError: x</code>.</li>" in page
    assert "<li><a href='#claim-3'>#3</a> <span class=\"pass\">pass</span>: small<br>" in page
    assert '<br><span class="details">n = 2</span></li>' in page
    assert '<img src="figures/b.png" alt="b">' in page
    assert "Interrupted" not in page
    versions = ", ".join(f"{k} {v}" for k, v in report.versions().items())
    assert f"Versions: {versions}" in text
    assert f'<p class="details">Versions: {versions}</p>' in page


def test_a_partial_report_names_what_did_not_run(tmp_path):
    entries = _entries()[1:2]
    report.write_report(entries, tmp_path / "r", seed=0, quick=True, not_run=["x", "y"])
    note = "before these experiments finished, so they are not in this report: x, y."
    md = (tmp_path / "r" / "report.md").read_text()
    assert note in md
    assert "`noisygrad tour --seed 0`" in md
    assert "quick size" in md
    page = (tmp_path / "r" / "index.html").read_text()
    assert note in page
    assert '<span class="fail">1/1 experiments passed</span>' in page
    report.write_report(entries, tmp_path / "s", seed=0, quick=True)
    assert '<span class="pass">1/1 experiments passed</span>' in (tmp_path / "s" / "index.html").read_text()


def test_check_report_folder(tmp_path):
    assert report.check_report_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created by the check
    assert report.check_report_folder(str(tmp_path)) == tmp_path  # empty
    assert [p.name for p in tmp_path.iterdir()] == []  # the probe folder is removed
    for name in report.REPORT_ENTRIES:
        (tmp_path / name).mkdir()
    assert report.check_report_folder(tmp_path) == tmp_path
    for k in range(6):
        (tmp_path / f"z{k}").write_text("")
    with pytest.raises(report.ReportFolderError, match=r"^--out '.*' holds files .* \(z0, z1, z2, z3, z4, \.\.\.\);"):
        report.check_report_folder(tmp_path, name="--out")
    (tmp_path / "z5").unlink()
    with pytest.raises(report.ReportFolderError, match=r"\(z0, z1, z2, z3, z4\); the report"):
        report.check_report_folder(tmp_path)
    afile = tmp_path / "z0"
    with pytest.raises(report.ReportFolderError, match=r"^out '.*z0' is a file, not a folder"):
        report.check_report_folder(afile)
    with pytest.raises(report.ReportFolderError, match=r"^out '.*z0/x/y' cannot be created: '.*z0' is a file"):
        report.check_report_folder(afile / "x" / "y")


def test_check_report_folder_refuses_a_place_where_no_folder_can_be_made(tmp_path, monkeypatch):
    def refuse(parent, prefix):
        assert prefix == ".noisygrad-probe"
        assert parent == tmp_path
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(report, "_fresh_folder", refuse)
    with pytest.raises(
        report.ReportFolderError, match=r"cannot be written: no folder can be created in .* \(Permission denied\)"
    ):
        report.check_report_folder(tmp_path / "r")

    def refuse_plainly(parent, prefix):
        raise FileExistsError

    monkeypatch.setattr(report, "_fresh_folder", refuse_plainly)
    with pytest.raises(report.ReportFolderError, match=r"\(FileExistsError\)"):
        report.check_report_folder(tmp_path / "r")


def test_nearest_existing_folder(tmp_path):
    assert report._nearest_existing(tmp_path / "a" / "b") == tmp_path
    assert report._nearest_existing(tmp_path) == tmp_path
    (tmp_path / "link").symlink_to(tmp_path / "missing")
    assert report._nearest_existing(tmp_path / "link" / "x") == tmp_path / "link"
    assert report._nearest_existing(Path("no-such-relative-folder-xyz")) == Path(".")


def test_fresh_folder_takes_a_free_name(tmp_path, monkeypatch):
    tokens = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(report.secrets, "token_hex", lambda n: next(tokens))
    assert report._fresh_folder(tmp_path, "p") == tmp_path / "p-aaaa"
    assert report._fresh_folder(tmp_path, "p") == tmp_path / "p-bbbb"
    assert (tmp_path / "p-bbbb").is_dir()
    monkeypatch.setattr(report.secrets, "token_hex", lambda n: "aaaa")
    with pytest.raises(FileExistsError, match="no free name for a temporary folder"):
        report._fresh_folder(tmp_path, "p")
    monkeypatch.undo()
    assert len(report._fresh_folder(tmp_path, "q").name) == len("q-") + 8  # token_hex(4): 8 hex digits


def test_replace_folder_by_renames(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "f").write_text("1")
    out = tmp_path / "out"
    report._replace_folder(new, out)
    assert (out / "f").read_text() == "1"
    assert not new.exists()
    again = tmp_path / "again"
    again.mkdir()
    (again / "g").write_text("2")
    report._replace_folder(again, out)
    assert [p.name for p in out.iterdir()] == ["g"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    real = tmp_path / "real"
    real.mkdir()
    (real / "old").write_text("")
    link = tmp_path / "link"
    link.symlink_to(real)
    third = tmp_path / "third"
    third.mkdir()
    report._replace_folder(third, link)
    assert link.is_symlink()
    assert os.path.realpath(link) == str(real)
    assert list(real.iterdir()) == []


def test_replace_folder_puts_the_old_one_back_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("")
    new = tmp_path / "new"
    new.mkdir()
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(report.os, "replace", flaky)
    with pytest.raises(OSError, match="disk full"):
        report._replace_folder(new, out)
    assert [p.name for p in out.iterdir()] == ["old"]
    assert new.is_dir()
    assert calls[0][1].startswith(".out.replaced-")
    assert calls[2] == (calls[0][1], "out")


def test_write_report_leaves_nothing_behind_on_failure_and_keeps_a_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    index = report.write_report(_entries()[1:2], "rel", seed=0, quick=True)
    assert index == Path("rel") / "index.html"
    assert index.is_file()
    monkeypatch.setattr(report, "_write_into", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        report.write_report(_entries(), "rel", seed=0, quick=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]
    assert report.write_report.__defaults__ is None


# ------------------------------------------------------------------------------------------------------------ kit


def test_kit_constants_and_one_thread():
    assert kit.TOLERANCE_Z == 4.0
    assert math.erfc(4.0 / math.sqrt(2.0)) == kit.FALSE_ALARM
    assert abs(kit.FALSE_ALARM - 6.334e-5) < 1e-8
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with kit.one_thread():
            assert torch.get_num_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), kit.one_thread():
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert set(kit.__all__) >= {"FALSE_ALARM", "TOLERANCE_Z", "Finding", "takes", "one_thread", "torch_stream"}


# ------------------------------------------------------------------------------------------------------------ cli

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(cli.app, list(args))


def test_cli_run_prints_findings_and_exit_status(fakes):
    ok = _run("run", "fake.counted", "-p", "n=5", "--seed", "2")
    assert ok.exit_code == 0, ok.output
    assert "fake.counted" in ok.stdout
    assert "n draws (draws)" in ok.stdout
    assert "pass" in ok.stdout
    bad = _run("run", "fake.failing")
    assert bad.exit_code == 1
    assert "FAIL" in bad.stdout
    err = _run("run", "fake.raising")
    assert err.exit_code == 1
    assert "RuntimeError: fell over" in err.stdout
    assert "ERROR" in err.stdout
    assert _run("run", "fake.empty").exit_code == 1  # no finding is no pass
    assert _run("run", "nothing").exit_code == 2
    assert _run("run", "fake.counted", "-p", "n").exit_code == 2
    assert _run("run", "fake.counted", "-p", "2n=1").exit_code == 2
    assert _run("run", "fake.counted", "-p", "n=0").exit_code == 2


def test_cli_run_json_is_plain_data(fakes):
    result = _run("run", "fake.counted", "--json", "--full", "--seed", "3", "-p", " n =4")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert entry["experiment"] == "fake.counted"
    assert entry["passed"] is True
    assert entry["findings"][0]["measured"] == 4.0
    assert entry["findings"][0]["details"] == {"seed": 3, "quick": False}
    err = _run("run", "nothing", "--json")
    assert err.exit_code == 2
    assert json.loads(err.stdout)["exit_code"] == 2


def test_cli_p_values_must_mean_the_same_to_every_experiment(fakes, monkeypatch):
    both = {
        "fake.counted": fakes["fake.counted"],
        "fake.floating": fakes["fake.floating"],
    }
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: both)
    result = _run("run", "fake.*", "-p", "n=3")
    assert result.exit_code == 2
    assert "mean different things" in result.output
    assert cli._typed_params([], {}, False) == {}
    assert cli._typed_params([both["fake.counted"]], {"n": "3"}, False) == {"n": 3}


def test_cli_tour_writes_the_report_and_summarises(fakes, tmp_path):
    out = tmp_path / "r"
    result = _run("tour", "--out", str(out), "--only", "fake.counted", "--only", "fake.failing")
    assert result.exit_code == 1
    assert (out / "index.html").is_file()
    assert "1/2 experiments passed" in result.stdout
    assert "FAIL #2 fake.failing: two is three" in result.stdout
    ok = _run("tour", "--out", str(out), "--only", "fake.counted", "--json")
    assert ok.exit_code == 0
    data = json.loads(ok.stdout)
    assert data["passed"] is True
    assert data["summary"]["experiments"] == 1
    assert _run("tour", "--out", str(out), "--only", "nothing").exit_code == 2


def test_cli_helpers(fakes):
    assert cli.INTERRUPTED == 130
    assert cli.UNEXPECTED == 3
    assert cli._usage_error(RuntimeError("x")) is None

    class Usage(Exception):
        exit_code = 2

        def format_message(self):
            return "bad option"

    assert cli._usage_error(Usage()) == ("bad option", 2)
    assert cli._param_texts(["a=1", " b =x=y", "c="], False) == {"a": "1", "b": "x=y", "c": ""}
    p = Parameter("n", int, 4, "help text", full=40, low=1)
    text = cli._parameter_lines(p)
    assert len(text.renderables) == 2
    assert len(cli._parameter_lines(Parameter("n", int, 4, "")).renderables) == 1


def test_declarations_and_findings_are_frozen():
    import dataclasses

    for value in (Parameter("n", int, 1, ""), Finding("e", "c", 1.0, 1.0, 0.0, 0.1), Curve("x", "y", [1], [1], [1])):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.name = "m"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tour.Experiment("a", "m:f").name = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tour.TourEntry("a", [], 0.0).seconds = 1.0  # type: ignore[misc]


def test_one_thread_without_threadpoolctl_pins_torch_alone(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "threadpoolctl", None)  # `import threadpoolctl` raises ImportError
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with kit.one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def wide(monkeypatch):
    """The command's consoles 200 columns wide, so that every row is on one line."""
    from rich.console import Console

    monkeypatch.setattr(cli, "console", Console(width=200))
    monkeypatch.setattr(cli, "errors", Console(width=200, stderr=True))


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def test_cli_tour_summary_and_failures_exactly(fakes, wide, tmp_path):
    result = _run(
        "tour",
        "--out",
        str(tmp_path / "r"),
        "--only",
        "fake.counted",
        "--only",
        "fake.failing",
        "--only",
        "fake.raising",
    )
    assert result.exit_code == 1
    lines = _lines(result.stdout)
    import re

    assert re.fullmatch(
        r"fake\.counted 1/1 0\.00 \d+\.\d pass", lines[lines.index("experiment claims dev/tol time s result") + 2]
    )
    body = "\n".join(lines)
    assert re.search(r"^fake\.failing 0/1 2\.00 \d+\.\d FAIL$", body, re.M)
    assert re.search(r"^fake\.raising 0/0 nan \d+\.\d ERROR$", body, re.M)
    assert "FAIL #1 fake.failing: two is three" not in body
    assert "FAIL #2 fake.failing: two is three\npredicted 3, measured 2 ± 0, |difference| 1 vs tolerance 0.5" in body
    assert "ERROR #3 fake.raising: RuntimeError: fell over" in body
    assert re.search(r"^1/3 experiments passed in \d+\.\d s$", body, re.M)
    assert "dev/tol: the largest share of a tolerance" in body
    assert re.search(r"^pass fake\.counted \(\d+\.\d s\)$", "\n".join(_lines(result.stderr)), re.M)
    assert re.search(r"^ERROR fake\.raising \(\d+\.\d s\)$", "\n".join(_lines(result.stderr)), re.M)
    assert re.search(r"^FAIL fake\.failing \(\d+\.\d s\)$", "\n".join(_lines(result.stderr)), re.M)
    assert f"report: {tmp_path / 'r' / 'index.html'} (also report.md, results.json, figures/)" in _lines(result.stderr)
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert (data["seed"], data["size"]) == (0, "quick")
    full = _run("tour", "--out", str(tmp_path / "r"), "--only", "fake.counted", "--seed", "5", "--full", "--json")
    assert full.exit_code == 0
    data = json.loads(full.stdout)
    assert (data["seed"], data["size"]) == (5, "full")
    assert data["experiments"][0]["findings"][0]["details"] == {"seed": 5, "quick": False}
    assert "1/1 experiments passed in" in full.stderr  # with --json the summary goes to stderr


def test_cli_run_findings_table_exactly(fakes, wide):
    result = _run("run", "fake.counted", "fake.raising", "fake.failing")
    assert result.exit_code == 1
    lines = _lines(result.stdout)
    assert lines[0] == "fake.counted"
    assert lines[1] == "# claim (unit) predicted measured ± 1 s.e. tol. result"
    assert "1 n draws (draws) 2 2 ± 0 0.5 pass" in lines
    assert "3 RuntimeError: fell over ERROR" in lines
    assert "2 two is three 3 2 ± 0 0.5 FAIL" in lines
    assert lines.index("fake.failing") < lines.index("fake.raising")
    assert lines.count("# claim (unit) predicted measured ± 1 s.e. tol. result") == 3
    ok = _run("run", "fake.counted", "--full", "--seed", "9")
    assert ok.exit_code == 0
    assert "1 n draws (draws) 20 20 ± 0 0.5 pass" in _lines(ok.stdout)


def test_cli_run_with_out_writes_a_report(fakes, tmp_path):
    out = tmp_path / "r"
    result = _run("run", "fake.counted", "--out", str(out), "--seed", "4", "--full")
    assert result.exit_code == 0
    data = json.loads((out / "results.json").read_text())
    assert (data["seed"], data["size"]) == (4, "full")
    assert "report:" in result.stderr
    quiet = _run("run", "fake.counted", "--out", str(out), "--json")
    assert quiet.exit_code == 0
    assert "report:" not in quiet.stderr
    assert json.loads(quiet.stdout)[0]["passed"]
    assert _run("run", "fake.empty", "--out", str(tmp_path / "none")).exit_code == 1
    assert (tmp_path / "none").is_dir()  # one entry, no finding: the report is still written


def test_cli_list_and_describe_exactly(fakes, wide, monkeypatch):
    from noisygrad import plugins

    plugin = plugins.Plugin("pq", "noisygrad.pq", requires=("no-such-distribution-xyz",))
    found = dict(fakes)
    found["pq.x"] = tour.Experiment("pq.x", "noisygrad_tour_gap_fakes:empty", plugin)
    found["fake.gone"] = tour.Experiment("fake.gone", "noisygrad_no_such_module_xyz:f")
    usable = {k: v for k, v in found.items() if k != "pq.x"}
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: found if include_unusable else usable)
    listed = _lines(_run("list").stdout)
    assert "fake.counted ready" in listed
    assert "pq.x needs no-such-distribution-xyz: pip install 'noisygrad[pq]'" in listed
    assert listed[0] == "noisygrad experiments"
    assert listed[-1] == "run one with `noisygrad run NAME`"
    described = _lines(_run("list", "--describe").stdout)
    start = described.index("fake.counted ready")
    assert described[start : start + 5] == [
        "fake.counted ready",
        "Counts its draws.",
        "-p n=INT default 2 (full: 20); an integer in [1, 100]",
        "draws",
        "-p loud=BOOL default false; true or false",
    ]
    assert described[described.index("fake.empty ready") + 1] == "no parameters besides --seed and --full"
    floating = described.index("fake.floating ready")
    assert described[floating + 1 : floating + 3] == ["-p n=TEXT default 2; a string", "a text"]
    undocumented = described.index("fake.undocumented ready")
    assert described[undocumented + 1] == "-p rate=FLOAT default 0.5; a number"
    unusable = described.index("pq.x needs no-such-distribution-xyz: pip install 'noisygrad[pq]'")
    assert described[unusable + 1] == "fake.gone ready"  # what cannot run shows its status only, not its parameters
    gone = described.index("fake.gone ready")
    assert described[gone + 1].startswith("cannot be loaded: ModuleNotFoundError: No module named")
    assert described[-1] == "run one with: noisygrad run NAME [-p NAME=VALUE ...]"
    refused = _run("run", "pq.x", "--json")
    assert refused.exit_code == 2
    assert json.loads(refused.stdout) == {
        "error": "pq.x needs no-such-distribution-xyz: pip install 'noisygrad[pq]'",
        "exit_code": 2,
    }
    left_out = _run("tour", "--only", "pq.x", "--json")  # the tour leaves out what cannot run
    assert left_out.exit_code == 2
    assert json.loads(left_out.stdout)["error"] == "no experiment named 'pq.x'; `noisygrad list` shows them"


def test_cli_plugins_table(monkeypatch, wide):
    from noisygrad import plugins

    ok = plugins.PluginStatus(plugins.Plugin("aa", "m", "first one"), "noisygrad-aa", "1.2", ())
    bad = plugins.PluginStatus(plugins.Plugin("bb", "m", "second"), "noisygrad-bb", "0.1", ("x", "y"))
    monkeypatch.setattr(cli._plugins, "available", lambda: [ok, bad])
    result = _run("plugins")
    assert result.exit_code == 0
    lines = _lines(result.stdout)
    assert "aa noisygrad-aa 1.2 ready first one" in lines
    assert "bb noisygrad-bb 0.1 needs x, y second" in lines
    assert lines[-1] == "bb: pip install 'noisygrad[bb]'"
    assert "aa: pip install 'noisygrad[aa]'" not in lines

    def clash():
        raise RuntimeError("two distributions claim aa")

    monkeypatch.setattr(cli._plugins, "available", clash)
    failed = _run("plugins")
    assert failed.exit_code == 2
    assert "error: two distributions claim aa" in failed.stderr
    assert failed.stdout == ""  # no JSON error object: `plugins` has no --json
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: clash())
    assert _run("list").exit_code == 2
    broken = _run("run", "x", "--json")
    assert broken.exit_code == 2
    assert json.loads(broken.stdout)["error"] == "two distributions claim aa"


def test_cli_main_with_and_without_json(fakes, capsys, monkeypatch):
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "fake.counted", "--json"])
    assert done.value.code == 0
    assert json.loads(capsys.readouterr().out)[0]["experiment"] == "fake.counted"
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "fake.failing", "--json"])
    assert done.value.code == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "--no-such-option", "--json"])
    out = capsys.readouterr()
    assert done.value.code == 2
    assert json.loads(out.out) == {"error": "No such option: --no-such-option", "exit_code": 2}
    assert "Try 'noisygrad --help' for help." in out.err
    monkeypatch.setattr(cli, "run_experiments", lambda *a, **k: (_ for _ in ()).throw(ValueError("odd")))
    monkeypatch.delenv("NOISYGRAD_TRACEBACK", raising=False)
    for args in (["run", "fake.counted"], ["run", "fake.counted", "--json"]):
        with pytest.raises(SystemExit) as done:
            cli.main(args)
        out = capsys.readouterr()
        assert done.value.code == 3
        assert "error: ValueError: odd" in out.err
        assert "NOISYGRAD_TRACEBACK=1" in out.err
    assert json.loads(out.out) == {"error": "ValueError: odd", "exit_code": 3}
    monkeypatch.setenv("NOISYGRAD_TRACEBACK", "1")
    with pytest.raises(ValueError, match="odd"):
        cli.main(["run", "fake.counted"])


def test_registry_defaults_seed_0_quick_and_one_job(fakes, monkeypatch):
    counted = fakes["fake.counted"]
    assert counted.run()[0].details == {"seed": 0, "quick": True}
    assert tour.run_one(counted).findings[0].details == {"seed": 0, "quick": True}
    [entry] = tour.run_experiments([counted])
    assert entry.findings[0].details == {"seed": 0, "quick": True}
    asked = []

    def installed(include_unusable=False):
        asked.append(include_unusable)
        return {"core.a": tour.Experiment("core.a", "m:f")}

    monkeypatch.setattr(tour, "experiments", installed)
    assert [e.name for e in tour.select(["core"])] == ["core.a"]
    assert asked == [True]  # select() looks among every installed experiment, usable or not
    seen = []
    monkeypatch.setattr(tour, "sweep", lambda task, items, executor, on_done: seen.append(executor))
    monkeypatch.setattr(tour.cf, "ProcessPoolExecutor", None)  # a pool would fail: the default is one job
    with pytest.raises(KeyError):
        tour.run_experiments([counted, fakes["fake.failing"]])  # no entry came back from the stand-in sweep
    assert seen == ["serial"]


def test_run_one_times_the_experiment(fakes, monkeypatch):
    ticks = iter([10.0, 12.5] + [12.5] * 100)  # two reads by run_one; spares for anything else
    monkeypatch.setattr(tour.time, "perf_counter", lambda: next(ticks))
    assert tour.run_one(fakes["fake.empty"]).seconds == 2.5


def test_report_files_are_indented_json_and_complete_pages(tmp_path):
    from noisygrad.tour import figures as plotting

    entries = _entries()
    out = tmp_path / "a" / "b" / "r"  # parents are created
    report.write_report(entries, out, seed=1, quick=True)
    for path in (out / "results.json", out / "overview.json", *sorted((out / "figures").glob("*.json"))):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", path
    assert json.loads((out / "results.json").read_text()) == report.results(entries, seed=1, quick=True)
    assert json.loads((out / "overview.json").read_text()) == report.jsonable(plotting.overview_figure(entries))
    for stem, entry, first in (("a", entries[0], 1), ("b", entries[1], 3), ("c_d_e", entries[2], None)):
        drawn = json.loads((out / "figures" / f"{stem}.json").read_text())
        assert drawn == report.jsonable(plotting.experiment_figure(entry, first)), stem
    md = (out / "report.md").read_text()
    assert (
        "| # | experiment | claim | predicted | measured ± 1 s.e. | tolerance | unit | result | time (s) |\n"
        "|---|---|---|---|---|---|---|---|---|\n| 1 | a |"
    ) in md
    assert "\n![every claim: deviation from the prediction in tolerances](overview.png)\n" in md
    assert md.endswith("\n")
    assert not md.endswith("\n\n")
    page = (out / "index.html").read_text()
    assert ".pass { color: #1b7f72; font-weight: bold; }" in page
    assert page.count("</table>") == 1
    assert page.index("</table>") < page.index('<h2 id="a">')
    assert page.endswith("</p>\n</body></html>\n")
    assert page.startswith(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>noisygrad tour</title>\n'
    )


def test_a_leftover_that_cannot_be_removed_does_not_fail_the_report(tmp_path, monkeypatch):
    real_rmtree = report.shutil.rmtree
    failed = []

    def stubborn(path, ignore_errors=False):
        if not ignore_errors:
            raise OSError(f"cannot remove {path}")
        failed.append(Path(path).name)

    monkeypatch.setattr(report.shutil, "rmtree", stubborn)
    out = tmp_path / "r"
    report.write_report(_entries()[1:2], out, seed=0, quick=True)
    report.write_report(_entries()[1:2], out, seed=0, quick=True)  # the earlier report could not be deleted
    assert len(failed) == 1
    assert failed[0].startswith(".r.replaced-")
    monkeypatch.setattr(report, "_write_into", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):  # the write's own error, not the cleanup's
        report.write_report(_entries(), out, seed=0, quick=True)
    assert failed[1].startswith(".r.writing-")
    monkeypatch.setattr(report.shutil, "rmtree", real_rmtree)


def test_fresh_folder_tries_a_hundred_names(tmp_path, monkeypatch):
    (tmp_path / "p-aaaa").mkdir()
    tries = []
    monkeypatch.setattr(report.secrets, "token_hex", lambda n: tries.append(n) or "aaaa")
    with pytest.raises(FileExistsError):
        report._fresh_folder(tmp_path, "p")
    assert tries == [4] * 100


def test_finding_defaults():
    plain = Finding("e", "c", 1.0, 1.0, 0.0, 0.1)
    assert (plain.unit, plain.details, plain.curve, plain.bound) == ("", {}, None, "")
    for made in (Finding.at_most("e", "c", 1.0, 0.0), Finding.at_least("e", "c", 1.0, 1.0, ideal=1.0)):
        assert (made.uncertainty, made.unit, made.details, made.curve) == (0.0, "", {}, None)
    curve = Curve("x", "y", [1.0], [1.0], [1.0])
    assert Finding.at_most("e", "c", 1.0, 0.0, 0.5, "u", None, curve).curve is curve
    assert Finding.at_least("e", "c", 1.0, 1.0, 0.5, "u", {"a": 1}, curve, ideal=2.0).curve is curve


@pytest.fixture
def coloured(monkeypatch):
    """The command's consoles as a colour terminal 200 columns wide, writing into strings: (stdout, stderr)."""
    import io

    from rich.console import Console

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=200, force_terminal=True, color_system="standard"))
    monkeypatch.setattr(cli, "errors", Console(file=err, width=200, force_terminal=True, color_system="standard"))
    return out, err


RED, GREEN, YELLOW, BOLD, DIM = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[2m"


def test_cli_colours_verdicts_errors_and_names(fakes, coloured, monkeypatch, tmp_path):
    out, err = coloured
    assert _run("run", "fake.counted", "fake.failing", "fake.raising").exit_code == 1
    text = out.getvalue()
    assert f"{BOLD}fake.counted" in text
    assert f"{DIM} (draws)" in text
    assert f"{GREEN}pass" in text
    assert f"{RED}FAIL" in text
    assert f"{RED}ERROR" in text
    assert _run("run", "nothing").exit_code == 2
    assert f"{RED}error: no experiment named 'nothing'" in err.getvalue()
    out.truncate(0)
    assert _run("tour", "--out", str(tmp_path / "r"), "--only", "fake.failing", "--only", "fake.raising").exit_code == 1
    text = out.getvalue()
    assert f"{RED}FAIL{RESET} #1 fake.failing" in text.replace("\x1b[0m", RESET)
    assert f"{RED}ERROR{RESET} #2 fake.raising" in text.replace("\x1b[0m", RESET)
    from noisygrad import plugins

    plugin = plugins.Plugin("pq", "noisygrad.pq", requires=("no-such-distribution-xyz",))
    found = {
        "fake.empty": fakes["fake.empty"],
        "fake.counted": fakes["fake.counted"],
        "pq.x": tour.Experiment("pq.x", "noisygrad_tour_gap_fakes:empty", plugin),
        "fake.gone": tour.Experiment("fake.gone", "noisygrad_no_such_module_xyz:f"),
    }
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: found)
    out.truncate(0)
    _run("list")
    assert f"{GREEN}ready" in out.getvalue()
    assert f"{RED}needs no-such-distribution-xyz" in out.getvalue()
    out.truncate(0)
    _run("list", "--describe")
    text = out.getvalue()
    assert f"{BOLD}fake.empty" in text
    assert f"{DIM}no parameters besides --seed and --full" in text
    assert f"{BOLD}-p n=INT" in text
    assert f"{RED}cannot be loaded: ModuleNotFoundError" in text
    ok = plugins.PluginStatus(plugins.Plugin("aa", "m", "first"), "noisygrad-aa", "1.2", ())
    bad = plugins.PluginStatus(plugins.Plugin("bb", "m", "second"), "noisygrad-bb", "0.1", ("x",))
    monkeypatch.setattr(cli._plugins, "available", lambda: [ok, bad])
    out.truncate(0)
    _run("plugins")
    assert f"{GREEN}ready" in out.getvalue()
    assert f"{RED}needs x" in out.getvalue()


RESET = "<reset>"


def test_cli_interrupted_run_is_yellow_and_exits_130(fakes, coloured, tmp_path):
    out, err = coloured
    result = _run("run", "fake.counted", "fake.interrupted", "fake.failing", "--out", str(tmp_path / "r"))
    assert result.exit_code == 130
    assert (
        f"{YELLOW}interrupted: 2 of 3 experiments finished; their results are in {tmp_path / 'r'} "
        "(not run: fake.interrupted)"
    ) in err.getvalue()
    assert "fake.counted" in out.getvalue()
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["not_run"] == ["fake.interrupted"]


def test_cli_without_a_command_shows_the_help(fakes):
    result = _run()
    assert result.exit_code == 2
    assert "Missing command" not in result.output
    for command in ("plugins", "list", "run", "tour"):
        assert f" {command} " in result.output


def test_cli_jobs_option_and_progress(fakes, wide):
    assert _run("run", "fake.counted", "--jobs", "0").exit_code == 2  # refused by the option itself
    ok = _run("run", "fake.counted", "-j", "1")
    assert ok.exit_code == 0
    assert re.search(r"^pass fake\.counted \(\d+\.\d s\)$", "\n".join(_lines(ok.stderr)), re.M)
    assert "━" not in ok.stderr  # the bar is transient: gone once the run ends
    quiet = _run("run", "fake.counted", "--json")
    assert quiet.exit_code == 0
    assert "fake.counted (" not in quiet.stderr  # no progress with --json


def test_cli_json_keeps_what_experiments_print_off_stdout(fakes):
    result = _run("run", "fake.chatty", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["experiment"] == "fake.chatty"
    assert "a line an experiment prints" in result.stderr
    plain = _run("run", "fake.chatty")
    assert "a line an experiment prints" in plain.stdout


def test_cli_interrupted_tour_and_run_without_out(fakes, wide, tmp_path):
    result = _run(
        "tour", "--only", "fake.counted", "--only", "fake.interrupted", "--out", str(tmp_path / "r"), "--json"
    )
    assert result.exit_code == 130
    data = json.loads(result.stdout)
    assert data["interrupted"] is True
    assert data["not_run"] == ["fake.interrupted"]
    assert data["passed"] is False
    assert json.loads((tmp_path / "r" / "results.json").read_text())["not_run"] == ["fake.interrupted"]
    assert "interrupted: 1 of 2 experiments finished; their results are in" in " ".join(_lines(result.stderr))
    assert "report:" in result.stderr
    assert result.stdout == json.dumps(data, indent=2) + "\n"
    nothing = _run("tour", "--only", "fake.interrupted", "--out", str(tmp_path / "s"))
    assert nothing.exit_code == 130
    assert not (tmp_path / "s").exists()
    assert "interrupted: 0 of 1 experiments finished (not run: fake.interrupted)" in " ".join(_lines(nothing.stderr))
    run = _run("run", "fake.counted", "fake.interrupted")
    assert run.exit_code == 130
    assert "interrupted: 1 of 2 experiments finished (not run: fake.interrupted)" in " ".join(_lines(run.stderr))
    assert "n draws" in run.stdout


def test_cli_json_is_indented_and_the_tour_writes_report_by_default(fakes, tmp_path, monkeypatch):
    result = _run("run", "fake.counted", "--json")
    assert result.stdout == json.dumps(json.loads(result.stdout), indent=2) + "\n"
    monkeypatch.chdir(tmp_path)
    tour_run = _run("tour", "--only", "fake.counted", "--json")
    assert tour_run.exit_code == 0
    assert tour_run.stdout == json.dumps(json.loads(tour_run.stdout), indent=2) + "\n"
    assert json.loads((tmp_path / "report" / "results.json").read_text())["passed"] is True


def test_cli_a_report_that_cannot_be_written_is_a_json_error(fakes, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report, "write_report", full_disk)
    out = tmp_path / "r"
    for args in (["run", "fake.counted", "--out", str(out)], ["tour", "--only", "fake.counted", "--out", str(out)]):
        result = _run(*args, "--json")
        assert result.exit_code == 2
        assert json.loads(result.stdout) == {"error": f"cannot write the report to {out}: disk full", "exit_code": 2}
    cut = _run("tour", "--only", "fake.counted", "--only", "fake.interrupted", "--out", str(out), "--json")
    assert cut.exit_code == 2
    assert json.loads(cut.stdout)["exit_code"] == 2

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", ctrl_c)
    result = _run("run", "fake.counted", "--out", str(out), "--json")
    assert result.exit_code == 130
    assert json.loads(result.stdout) == {
        "error": f"interrupted while the report was written: {out} is left as it was",
        "exit_code": 130,
    }


def test_cli_option_help_texts(fakes):
    text = " ".join(_run("run", "--help").output.replace("│", " ").split())
    for phrase in (
        "seed of every random choice; the same seed reproduces the same results",
        "publication-size runs instead of the quick ones",
        "print machine-readable results (or errors) on stdout",
        "experiments run at once, each in its own spawned process (1: all in this one); the findings are the same "
        "for every value",
        "NAME=VALUE for the experiment's own parameters",
        "also write a report folder here",
    ):
        assert phrase in text, phrase


# The command's tables at 80 columns, as a default terminal shows them (each line's trailing spaces dropped): numbers
# right-aligned and never cut, names whole, long claims wrapped in their own column, the describe block indented.
_RUN_80 = """\
fake.counted

 #   claim (unit)       predicted   measured ± 1 s.e.   tol.   result
 ────────────────────────────────────────────────────────────────────
 1   n draws (draws)            2               2 ± 0    0.5   pass

fake.failing

 #   claim (unit)       predicted   measured ± 1 s.e.   tol.   result
 ────────────────────────────────────────────────────────────────────
 2   two is three               3               2 ± 0    0.5   FAIL

fake.raising

 #   claim (unit)              predicted   measured ± 1 s.e.   tol.   result
 ───────────────────────────────────────────────────────────────────────────
 3   RuntimeError: fell over                                          ERROR

fake.bounded

 #   claim (unit)              predicted     measured ± 1 s.e.    tol.   result
 ──────────────────────────────────────────────────────────────────────────────
 4   the relative error of a    ≤ 0.0016   0.0003826 ± 0.00012       —   pass
     long-named quantity is
     small (Ha)
 5   a large one (steps^2)     1.235e+06   1.234e+06 ± 1.2e+03   5e+03   pass

"""

_DESCRIBE_80 = """\
fake.counted  ready
  Counts its draws.
  -p n=INT  default 2 (full: 20); an integer in [1, 100]
      draws
  -p loud=BOOL  default false; true or false
      loud

fake.failing  ready
  A claim that fails on two lines.
  no parameters besides --seed and --full

fake.undocumented  ready
  -p rate=FLOAT  default 0.5; a number

fake.empty  ready
  no parameters besides --seed and --full

fake.not_a_list  ready
  no parameters besides --seed and --full

fake.not_findings  ready
  no parameters besides --seed and --full

fake.raising  ready
  no parameters besides --seed and --full

fake.interrupted  ready
  no parameters besides --seed and --full

fake.floating  ready
  -p n=TEXT  default 2; a string
      a text

fake.chatty  ready
  no parameters besides --seed and --full

fake.bounded  ready
  no parameters besides --seed and --full

run one with: noisygrad run NAME [-p NAME=VALUE ...]
"""

_LIST_80 = """\
   noisygrad experiments

 experiment          status
 ──────────────────────────
 fake.counted        ready
 fake.failing        ready
 fake.undocumented   ready
 fake.empty          ready
 fake.not_a_list     ready
 fake.not_findings   ready
 fake.raising        ready
 fake.interrupted    ready
 fake.floating       ready
 fake.chatty         ready
 fake.bounded        ready

run one with `noisygrad run
           NAME`
"""

_TOUR_80 = """\
                  noisygrad tour

 experiment     claims   dev/tol   time s   result
 ─────────────────────────────────────────────────
 fake.counted      1/1      0.00      0.0   pass
 fake.failing      0/1      2.00      0.0   FAIL
 fake.raising      0/0       nan      0.0   ERROR

 dev/tol: the largest share of a tolerance (or of
      the way to a bound) used; above 1 fails
FAIL #2 fake.failing: two is three
     predicted 3, measured 2 ± 0, |difference| 1 vs tolerance 0.5
ERROR #3 fake.raising: RuntimeError: fell over
1/3 experiments passed in 0.0 s
"""

_PLUGINS_80 = """\
                 noisygrad 0.1.0 plugins

 plugin   distribution   version   status       summary
 ────────────────────────────────────────────────────────
 aa       noisygrad-aa   1.2       ready        first one
 bb       noisygrad-bb   0.1       needs x, y   second

bb: pip install 'noisygrad[bb]'
"""


@pytest.fixture
def narrow_console(monkeypatch):
    """The command's consoles at 80 columns, every experiment timed at 0.0 s and the version fixed at 0.1.0."""
    from rich.console import Console

    class Clock:
        @staticmethod
        def perf_counter():
            return 0.0

    monkeypatch.setattr(cli, "console", Console(width=80))
    monkeypatch.setattr(cli, "errors", Console(width=80, stderr=True))
    monkeypatch.setattr(tour, "time", Clock)
    monkeypatch.setattr(cli, "__version__", "0.1.0")


def _rstripped(text: str) -> str:
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def test_cli_tables_at_80_columns(fakes, narrow_console, tmp_path, monkeypatch):
    from noisygrad import plugins

    run = _run("run", "fake.counted", "fake.failing", "fake.raising", "fake.bounded")
    assert _rstripped(run.stdout) == _RUN_80
    assert _rstripped(_run("list", "--describe").stdout) == _DESCRIBE_80
    assert _rstripped(_run("list").stdout) == _LIST_80
    only = ("--only", "fake.counted", "--only", "fake.failing", "--only", "fake.raising")
    assert _rstripped(_run("tour", "--out", str(tmp_path / "r"), *only).stdout) == _TOUR_80
    ok = plugins.PluginStatus(plugins.Plugin("aa", "m", "first one"), "noisygrad-aa", "1.2", ())
    bad = plugins.PluginStatus(plugins.Plugin("bb", "m", "second"), "noisygrad-bb", "0.1", ("x", "y"))
    monkeypatch.setattr(cli._plugins, "available", lambda: [ok, bad])
    assert _rstripped(_run("plugins").stdout) == _PLUGINS_80


def test_cli_progress_names_what_runs(fakes, coloured):
    _out, err = coloured
    assert _run("run", "fake.counted", "fake.failing").exit_code == 1
    shown = err.getvalue()
    assert "\x1b[0m \x1b[1mstarting\x1b[0m" in shown  # spinner, then the bold description
    assert "\x1b[1mwriting the report\x1b[0m" in shown  # nothing running any more
    assert "0/2" in shown
    assert "2/2" in shown
    assert f"{GREEN}pass\x1b[0m fake.counted (" in shown
    assert f"{RED}FAIL\x1b[0m fake.failing (" in shown


def test_cli_main_reads_sys_argv_and_names_itself_noisygrad(fakes, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["noisygrad", "run", "fake.counted", "--json"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0
    assert json.loads(capsys.readouterr().out)[0]["experiment"] == "fake.counted"
    monkeypatch.setattr("sys.argv", ["elsewhere/runner.py"])  # the name comes from prog_name, not argv[0]
    with pytest.raises(SystemExit) as done:
        cli.main(["run"])
    assert done.value.code == 2
    assert "Usage: noisygrad run [OPTIONS]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        cli.main(["run", "--help", "--json"])
    assert done.value.code == 0
    assert "Usage: noisygrad run [OPTIONS]" in capsys.readouterr().out


def test_cli_unexpected_and_usage_errors_are_red(fakes, coloured, capsys, monkeypatch):
    _out, err = coloured
    with pytest.raises(SystemExit):
        cli.main(["run", "--no-such-option", "--json"])
    assert f"{RED}error: No such option: --no-such-option" in err.getvalue()
    monkeypatch.setattr(cli, "run_experiments", lambda *a, **k: (_ for _ in ()).throw(ValueError("odd")))
    monkeypatch.delenv("NOISYGRAD_TRACEBACK", raising=False)
    with pytest.raises(SystemExit):
        cli.main(["run", "fake.counted"])
    assert f"{RED}error: ValueError: odd" in err.getvalue()


def test_cli_numbers_stay_whole_at_80_columns_with_a_hundred_claims():
    from rich.console import Console

    filler = [Finding("e", "ok", 1.0, 1.0, 0.0, 0.5)] * 99
    extreme = Finding("e", "a long claim that goes on", -1.2345e-6, -1.2344e-6, 1.234e-3, 1.234e-3)
    bound = Finding.at_least("e", "a long claim that goes on", -1.2346e-6, -1.2347e-6, 1.234e-3, ideal=0.0)
    console = Console(width=80, record=True)
    console.print(cli._findings([tour.TourEntry("e", [*filler[:-1], extreme, bound], 1.0)]))
    rows = [line.rstrip() for line in console.export_text().splitlines() if line.lstrip().startswith(("99 ", "100 "))]
    assert rows == [
        "  99   a long claim that     -1.234e-06   -1.234e-06 ± 0.0012   0.0012   pass",
        " 100   a long claim that   ≥ -1.235e-06   -1.235e-06 ± 0.0012        —   FAIL",
    ]


def test_cli_a_plugin_with_everything_installed_is_ready(fakes, wide, monkeypatch):
    from noisygrad import plugins

    found = {"ok.x": tour.Experiment("ok.x", "noisygrad_tour_gap_fakes:empty", plugins.Plugin("ok", "noisygrad.ok"))}
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: found)
    assert "ok.x ready" in _lines(_run("list").stdout)
    assert cli._status(found["ok.x"])[1] is True


def test_cli_progress_shows_the_experiment_running_when_interrupted(fakes, coloured):
    _out, err = coloured
    assert _run("run", "fake.counted", "fake.interrupted").exit_code == 130
    assert f"{BOLD}fake.interrupted\x1b[0m" in err.getvalue()  # the last frame: what was running


def test_cli_describe_blocks_at_80_columns(fakes, narrow_console, monkeypatch):
    found = {
        "fake.gone": tour.Experiment("fake.gone", "noisygrad_no_such_module_xyz:f"),
        "fake.long_help": tour.Experiment("fake.long_help", "noisygrad_tour_gap_fakes:long_help"),
    }
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: found)
    assert _rstripped(_run("list", "--describe").stdout) == (
        "fake.gone  ready\n"
        "  cannot be loaded: ModuleNotFoundError: No module named\n"
        "  'noisygrad_no_such_module_xyz'\n"
        "\n"
        "fake.long_help  ready\n"
        "  -p k=INT  default 1; an integer\n"
        f"      {'h' * 74}\n"  # a help line of 74 characters fits beside the 6 of indentation
        "\n"
        "run one with: noisygrad run NAME [-p NAME=VALUE ...]\n"
    )


def test_cli_jobs_reach_the_runner_and_p_conflicts_are_json_errors(fakes, monkeypatch, tmp_path):
    seen = []
    real = cli.run_experiments

    def recording(selected, **options):
        seen.append(options["jobs"])
        return real(selected, **{**options, "jobs": 1})

    monkeypatch.setattr(cli, "run_experiments", recording)
    assert _run("run", "fake.counted", "-j", "3").exit_code == 0
    assert _run("tour", "--only", "fake.counted", "--jobs", "2", "--out", str(tmp_path / "r")).exit_code == 0
    assert seen == [3, 2]
    both = {"fake.counted": fakes["fake.counted"], "fake.floating": fakes["fake.floating"]}
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: both)
    result = _run("run", "fake.*", "-p", "n=3", "--json")
    assert result.exit_code == 2
    assert "mean different things" in json.loads(result.stdout)["error"]


@pytest.mark.parametrize("width", [60, 80, 120])
def test_cli_summary_folds_a_long_name_and_keeps_the_numbers_whole(width):
    """The summary table at 60 to 120 columns: a name longer than the name column folds onto more lines (whole when
    joined), and no name or number is cut to an ellipsis."""
    from rich.console import Console

    name = "plugin.a_rather_long_experiment_name_that_goes_on_and_on_past_any_terminal_width"
    entries = [
        tour.TourEntry(name, [Finding("e", "ok", 1.0, 1.0, 0.0, 0.5)] * 12, 12345.6),
        tour.TourEntry("b", [], 1.0),
    ]
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(cli._summary_table(entries))
    lines = console.export_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("plugin."))
    assert lines[start].split()[1:] == ["12/12", "0.00", "12345.6", "pass"]
    folded = [lines[start].split()[0]]
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("b "):
            assert line.split() == ["b", "0/0", "nan", "1.0", "FAIL"]
            break
        folded.append(line.strip())
    assert "".join(folded) == name
    assert "…" not in console.export_text()


def _column_texts(lines: list[str]) -> dict[str, str]:
    """A rich table's columns read down (each header's and each column's lines joined, spaces dropped): the
    header lines are those just above the rule, whose words (one-word headers, folded or not) mark where each
    column starts; the rows run from the rule to the first blank line."""
    rule = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    top = rule
    while top > 0 and lines[top - 1].strip():
        top -= 1
    heads = lines[top:rule]
    starts = sorted({p for line in heads for p, c in enumerate(line) if c != " " and (p == 0 or line[p - 1] == " ")})
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(line)
    cuts = [*starts[1:], None]

    def down(block: list[str], a: int, b: int | None) -> str:
        return "".join(line[a:b].strip() for line in block).replace(" ", "")

    return {down(heads, a, b): down(rows, a, b) for a, b in zip(starts, cuts, strict=True)}


def test_cli_plugins_at_80_columns_fold_every_text_and_keep_the_install_line_whole(monkeypatch, narrow_console):
    """A plugin with long names everywhere and many missing packages: at 80 columns every text column folds (each
    cell is whole when read down its column, none cut to an ellipsis), the version (29 characters) stays on one
    line, and the install command (107 characters) is printed on a line of its own, unbroken, so that it can be
    copied."""
    from noisygrad import plugins

    name = "a_plugin_with_a_name_of_forty_characters"
    distribution = "noisygrad-a-distribution-with-a-long-name"
    summary = (
        "a summary long enough to fold, with a link: https://example.org/a/path/longer/than/any/column " + "w " * 9
    )
    missing = ("some-rather-long-package-name", "another-long-package-name", "third")
    bad = plugins.PluginStatus(
        plugins.Plugin(name, "m", summary), distribution, "2.0.0rc1.dev123+g0123456789ab", missing
    )
    monkeypatch.setattr(cli._plugins, "available", lambda: [bad])
    result = _run("plugins")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert f"{name}: pip install 'noisygrad[{name}]'" in lines
    assert "…" not in result.stdout
    assert any("2.0.0rc1.dev123+g0123456789ab" in line for line in lines)  # the version is never broken
    columns = _column_texts(lines)
    assert columns == {
        "plugin": name,
        "distribution": distribution,
        "version": "2.0.0rc1.dev123+g0123456789ab",
        "status": ("needs " + ", ".join(missing)).replace(" ", ""),
        "summary": summary.replace(" ", ""),
    }


def test_cli_list_at_80_columns_folds_long_names_and_statuses(fakes, narrow_console, monkeypatch):
    """``noisygrad list`` with an experiment name and a missing-package status longer than the terminal: both fold
    (whole when read down their columns), none is cut to an ellipsis."""
    from noisygrad import plugins

    name = "fake.an_experiment_whose_name_alone_is_longer_than_any_column_of_it"
    plugin = plugins.Plugin("longplugin", "noisygrad_no_such_module_xyz", "a plugin", ("a-missing-distribution-name",))
    found = {name: tour.Experiment(name, "noisygrad_tour_gap_fakes:empty", plugin)}
    monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: found)
    missing = ["a-missing-distribution-whose-name-is-longer-than-its-column", "another-one"]
    monkeypatch.setattr(plugins.Plugin, "missing", lambda self: missing)
    result = _run("list")
    assert result.exit_code == 0
    assert "…" not in result.stdout
    status = f"needs {', '.join(missing)}: {plugin.extra}"
    assert _column_texts(result.stdout.splitlines()) == {"experiment": name, "status": status.replace(" ", "")}


def test_cli_interrupted_note_is_one_unbroken_line_at_80_columns(monkeypatch):
    """The note printed on Ctrl-C names every experiment not run on one line (soft wrap), however long it is, so
    that the names stay whole for copying."""
    from rich.console import Console

    err = io.StringIO()
    monkeypatch.setattr(cli, "errors", Console(file=err, width=80))
    not_run = [f"plugin.experiment_number_{k}" for k in range(6)]
    cli._say_interrupted([], not_run, None)
    assert err.getvalue() == f"interrupted: 0 of 6 experiments finished (not run: {', '.join(not_run)})\n"


def test_a_bound_passes_by_its_distance_from_a_nonzero_ideal():
    """A bound whose ideal is not 0 (``at_most(1.5, ideal=1)``: predicted 1, tolerance 0.5) holds up to the bound
    itself: the measurement is compared with the prediction moved by the tolerance, not with the tolerance alone."""
    assert Finding.at_most("e", "c", 1.5, 1.4, ideal=1.0).passed
    assert not Finding.at_most("e", "c", 1.5, 1.6, ideal=1.0).passed
    assert Finding.at_least("e", "c", 0.5, 0.6, ideal=1.0).passed
    assert not Finding.at_least("e", "c", 0.5, 0.4, ideal=1.0).passed


def test_cli_a_claim_with_a_word_longer_than_its_column_folds_whole():
    """A claim holding one 60-character word (a path, a formula) at 80 columns: the claim column folds it onto
    more lines, every character kept (none cropped)."""
    from rich.console import Console

    word = "q" * 60
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(cli._findings([tour.TourEntry("e", [Finding("e", f"see {word}", 1.0, 1.0, 0.0, 0.5)], 1.0)]))
    text = console.export_text()
    assert text.count("q") == 60
    assert "…" not in text
