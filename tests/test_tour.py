"""The tour and its report: the folder it writes, its exit status, and seed reproducibility.

Fake experiments live in a small module written to a temporary folder and are registered by replacing
``experiments()`` in the CLI, so each test controls exactly which claims pass, fail or raise; one test runs
the real ``core.noise-ball`` end to end.
"""

import json
import textwrap

import pytest
from rich.console import Console
from typer.testing import CliRunner

from noisygrad.tour import cli
from noisygrad.tour import registry as tour
from noisygrad.tour.findings import Curve, Finding

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

FAKE_EXPERIMENTS = '''
import numpy as np
from noisygrad.tour.findings import Curve, Finding


def coin(seed=0, quick=True, flips=400):
    """The fraction of heads of a fair coin is 1/2."""
    rng = np.random.default_rng(seed)
    heads = rng.integers(0, 2, size=flips).mean()
    se = 0.5 / np.sqrt(flips)
    return [Finding("fake.coin", "a fair coin lands heads half the time", 0.5, float(heads), float(se),
                    6 * float(se), "fraction", {"flips": flips})]


def sweep(seed=0, quick=True):
    """The mean of n uniform draws has variance 1/(12 n)."""
    rng = np.random.default_rng(seed)
    ns = [1, 2, 4, 8, 16]
    reps = 2000
    measured = [float(rng.random((reps, n)).mean(1).var()) for n in ns]
    errors = [m * np.sqrt(2 / reps) for m in measured]
    curve = Curve("draws averaged n (count)", "variance of the mean (unit^2)", ns, measured,
                  [1 / (12 * n) for n in ns], uncertainty=errors, log_x=True, log_y=True)
    return [Finding("fake.sweep", "Var(mean of n uniforms) = 1/(12 n) at n = 16", 1 / 192, measured[-1],
                    errors[-1], 6 * errors[-1], "unit^2", curve=curve)]


def wrong(seed=0, quick=True):
    """A claim that the measurement contradicts."""
    return [Finding("fake.wrong", "two equals three", 3.0, 2.0, 0.01, 0.05, "apples"),
            Finding("fake.wrong", "a diverged run", 1.0, float("nan"), 0.0, 0.1)]


def broken(seed=0, quick=True):
    """An experiment that raises."""
    raise RuntimeError("the simulator fell over")


def crash(seed=0, quick=True):
    """An experiment whose process dies (as a segfault in compiled code would)."""
    import os

    os._exit(3)
'''


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Register fake experiments under the names ``fake.<function>``; returns a setter choosing which."""
    (tmp_path / "noisygrad_fake_experiments.py").write_text(textwrap.dedent(FAKE_EXPERIMENTS))
    monkeypatch.syspath_prepend(str(tmp_path))

    def use(*names):
        registry = {f"fake.{n}": tour.Experiment(f"fake.{n}", f"noisygrad_fake_experiments:{n}") for n in names}
        monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: registry)

    return use


runner = CliRunner()


def _tour(out, *args):
    return runner.invoke(cli.app, ["tour", "--out", str(out), *args])


def test_tour_writes_a_self_contained_report(fakes, tmp_path):
    fakes("coin", "sweep")
    out = tmp_path / "report"
    result = _tour(out, "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "2/2 experiments passed" in result.output

    for name in ("index.html", "report.md", "results.json", "overview.png", "overview.json"):
        assert (out / name).is_file(), name
    for exp in ("fake.coin", "fake.sweep"):
        assert (out / "figures" / f"{exp}.png").read_bytes().startswith(PNG_MAGIC)
        figure = json.loads((out / "figures" / f"{exp}.json").read_text())
        assert figure["experiment"] == exp
        assert figure["passed"] is True

    data = json.loads((out / "results.json").read_text())
    assert data["seed"] == 3
    assert data["size"] == "quick"
    assert data["passed"] is True
    assert data["summary"]["findings"] == data["summary"]["findings_passed"] == 2
    coin = data["experiments"][0]["findings"][0]
    assert coin["claim"] == "a fair coin lands heads half the time"
    assert coin["details"] == {"flips": 400}
    assert set(coin) >= {"predicted", "measured", "uncertainty", "tolerance", "unit", "passed"}

    # the figure's JSON holds exactly what is drawn: the value panel and, for the sweep, its curve
    (value_panel,) = json.loads((out / "figures" / "fake.coin.json").read_text())["rows"][0]
    assert value_panel["predicted"] == 0.5
    assert value_panel["measured"] == coin["measured"]
    assert value_panel["x_label"] == "value (fraction)"
    _, curve_panel = json.loads((out / "figures" / "fake.sweep.json").read_text())["rows"][0]
    assert curve_panel["x"] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert curve_panel["predicted"] == pytest.approx([1 / 12, 1 / 24, 1 / 48, 1 / 96, 1 / 192])
    assert curve_panel["y_label"] == "variance of the mean (unit^2)"

    markdown = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    for text in ("a fair coin lands heads half the time", "figures/fake.sweep.png", "noisygrad tour --seed 3"):
        assert text in markdown
        assert text in html


def test_a_failed_claim_or_a_raising_experiment_exits_non_zero(fakes, tmp_path):
    fakes("coin", "wrong", "broken")
    out = tmp_path / "report"
    result = _tour(out)
    assert result.exit_code == 1
    assert "1/3 experiments passed" in result.output
    assert "two equals three" in result.output  # the failed claim is spelled out with its numbers
    assert "the simulator fell over" in result.output

    data = json.loads((out / "results.json").read_text())
    assert data["passed"] is False
    by_name = {e["experiment"]: e for e in data["experiments"]}
    wrong, diverged = by_name["fake.wrong"]["findings"]
    assert wrong["passed"] is False
    assert diverged["measured"] is None  # JSON has no NaN: a non-finite number is written as null
    assert not Finding.from_dict(diverged).passed
    assert by_name["fake.broken"]["error"] == "RuntimeError: the simulator fell over"
    assert (out / "figures" / "fake.broken.png").read_bytes().startswith(PNG_MAGIC)
    assert "FAIL" in (out / "report.md").read_text()


def _without_timings(data):
    data = json.loads(json.dumps(data))
    data["summary"].pop("seconds")
    for entry in data["experiments"]:
        entry.pop("seconds")
    return data


def test_the_same_seed_reproduces_the_results_exactly(tmp_path):
    # the real core.noise-ball experiment (0.5 s): every number of results.json but the wall times repeats
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        result = _tour(tmp_path / name, "--seed", str(seed), "--only", "core.noise-ball")
        assert result.exit_code == 0, result.output
        runs[name] = _without_timings(json.loads((tmp_path / name / "results.json").read_text()))
    assert runs["a"] == runs["b"]
    measured = [[f["measured"] for f in runs[k]["experiments"][0]["findings"]] for k in "ac"]
    assert measured[0] != measured[1]


def test_parallel_jobs_give_the_same_results_in_the_same_order(fakes, tmp_path):
    fakes("coin", "sweep", "wrong", "broken")
    runs = {}
    for jobs in ("1", "3"):
        result = _tour(tmp_path / jobs, "--seed", "11", "--jobs", jobs)
        assert result.exit_code == 1, result.output  # fake.wrong fails, fake.broken raises
        runs[jobs] = _without_timings(json.loads((tmp_path / jobs / "results.json").read_text()))
    assert runs["1"] == runs["3"]
    assert [e["experiment"] for e in runs["3"]["experiments"]] == [
        "fake.coin",
        "fake.sweep",
        "fake.wrong",
        "fake.broken",
    ]


def test_a_dying_worker_becomes_a_failed_entry(fakes, tmp_path):
    fakes("crash", "coin")
    result = _tour(tmp_path / "r", "--jobs", "2")
    assert result.exit_code == 1
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["experiments"][0]["error"].startswith("worker process failed")


def test_json_output_matches_results_file(fakes, tmp_path):
    fakes("coin")
    out = tmp_path / "report"
    result = _tour(out, "--json", "--seed", "7")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert _without_timings(printed) == _without_timings(json.loads((out / "results.json").read_text()))


def test_run_takes_experiment_parameters(fakes):
    fakes("coin", "sweep")
    result = runner.invoke(cli.app, ["run", "fake.coin", "-p", "flips=100", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["findings"][0]["details"] == {"flips": 100}

    result = runner.invoke(cli.app, ["run", "fake.coin", "-p", "flops=100"])
    assert result.exit_code == 2
    assert "experiment fake.coin has no parameter flops; it takes: flips" in result.stderr
    assert result.stdout == ""

    result = runner.invoke(cli.app, ["run", "fake", "--json"])  # a plugin name runs all of its experiments
    assert [e["experiment"] for e in json.loads(result.stdout)] == ["fake.coin", "fake.sweep"]


def test_run_exits_1_on_a_failed_claim(fakes):
    fakes("wrong")
    result = runner.invoke(cli.app, ["run", "fake.wrong"])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_list_describes_experiments_and_parameters(fakes, monkeypatch):
    fakes("coin")
    monkeypatch.setattr(cli, "console", Console(width=200))  # one line per experiment, whatever the terminal
    result = runner.invoke(cli.app, ["list", "--describe"])
    assert result.exit_code == 0, result.output
    assert "fake.coin" in result.output
    assert "The fraction of heads of a fair coin is 1/2." in result.output
    assert "-p flips=INT  default 400; an integer" in result.output  # undeclared: inferred from the default


def test_select_by_name_plugin_and_wildcard():
    available = {n: tour.Experiment(n, "m:f") for n in ("core.a", "core.b", "dsp.a", "dsp.b2")}
    assert [e.name for e in tour.select(["dsp"], available)] == ["dsp.a", "dsp.b2"]
    assert [e.name for e in tour.select(["*.a", "core.b"], available)] == ["core.a", "core.b", "dsp.a"]
    with pytest.raises(KeyError, match="no experiment named 'bio'"):
        tour.select(["bio"], available)


def test_finding_round_trips_through_its_dict_and_stays_backwards_compatible():
    plain = Finding("x.y", "claim", 1.0, 1.1, 0.05, 0.2)
    assert plain.curve is None
    assert plain.passed
    curve = Curve("b (examples)", "variance (1)", [1, 2], [0.9, 0.6], [1.0, 0.7, 0.5], predicted_x=[1, 1.5, 2])
    assert curve.x == (1.0, 2.0)
    assert curve.prediction_grid == (1.0, 1.5, 2.0)
    with_curve = Finding("x.y", "claim", 1.0, 1.5, 0.05, 0.2, "s", {"n": 3}, curve=curve)
    assert not with_curve.passed
    for finding in (plain, with_curve):
        data = json.loads(json.dumps(finding.as_dict()))
        assert Finding.from_dict(data) == finding


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measured": [1.0]}, "Curve.measured has 1 values but Curve.x has 2"),
        ({"uncertainty": [0.1]}, "Curve.uncertainty has 1 values"),
        ({"predicted": [1.0, 2.0, 3.0]}, "Curve.predicted has 3 values but Curve.x has 2"),
        ({"x": [1.0, float("nan")]}, "must be finite"),
        ({"x": "ab"}, "Curve.x must be a sequence of numbers"),
    ],
)
def test_curve_rejects_mismatched_series(kwargs, message):
    args = {"x_label": "x (s)", "y_label": "y (m)", "x": [1.0, 2.0], "measured": [1.0, 2.0], "predicted": [1.0, 2.0]}
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        Curve(**{**args, **kwargs})
