"""The report's figure data: what each PNG draws is exactly what its JSON holds, edge cases included."""

import json
import math
import re

import pytest

from noisygrad.tour import figures as plotting
from noisygrad.tour import report
from noisygrad.tour.findings import Finding
from noisygrad.tour.registry import TourEntry


def _finding(predicted, measured, uncertainty, tolerance, **kw):
    return Finding("t.x", "claim", predicted, measured, uncertainty, tolerance, **kw)


@pytest.mark.parametrize(
    ("finding", "expected"),
    [
        (_finding(1.0, 1.5, 0.1, 1.0), (0.5, 0.1)),
        (_finding(2.0, 1.0, 0.2, 0.5), (-2.0, 0.4)),
        (_finding(0.0, 0.0, 0.0, 0.0), (0.0, 0.0)),  # an exact claim that holds
        (_finding(0.0, 1e-3, 0.0, 0.0), (math.inf, 0.0)),  # an exact claim that fails
    ],
)
def test_normalised_deviation(finding, expected):
    assert plotting.normalised_deviation(finding) == pytest.approx(expected)


def test_overview_clips_off_scale_claims_and_marks_errors():
    entries = [
        TourEntry("t.ok", [_finding(1.0, 1.1, 0.01, 0.2)], 0.1),
        TourEntry("t.off", [_finding(0.0, 5.0, 0.1, 1.0), _finding(0.0, 1.0, 0.0, 0.0)], 0.1),
        TourEntry("t.nan", [_finding(0.0, math.nan, 0.0, 1.0)], 0.1),
        TourEntry("t.err", [], 0.1, error="ValueError: bad"),
    ]
    rows = plotting.overview_figure(entries)["rows"]
    assert [r["label"] for r in rows] == ["#1 t.ok", "#2 t.off", "#3 t.off", "#4 t.nan", "#5 t.err"]
    assert rows[0]["deviation"] == pytest.approx(0.5)
    assert rows[1]["deviation"] == 5.0  # drawn clipped at the edge with an arrow, stored as measured
    assert rows[2]["deviation"] == plotting._CLIP  # infinitely off: stored at the clip
    assert rows[3]["deviation"] is None
    assert rows[4] == {
        "number": 5,
        "label": "#5 t.err",
        "deviation": None,
        "error": None,
        "passed": False,
        "bound": "",
    }
    assert [r["passed"] for r in rows] == [True, False, False, False, False]


def test_report_writes_numpy_and_torch_details_as_plain_json(tmp_path):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    details = {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(2), "t": torch.tensor(1.5), "bad": math.inf}
    entries = [TourEntry("t.x", [_finding(1.0, 1.0, 0.0, 0.1, details=details)], 0.25)]
    index = report.write_report(entries, tmp_path, seed=4, quick=False)
    assert index == tmp_path / "index.html"
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["size"] == "full"
    assert data["experiments"][0]["findings"][0]["details"] == {"n": 3, "x": 0.5, "v": [0, 1], "t": 1.5, "bad": None}
    assert "noisygrad tour --seed 4 --full" in (tmp_path / "report.md").read_text()


def test_a_second_report_replaces_the_figures_of_the_first(tmp_path):
    report.write_report([TourEntry("t.old", [_finding(1.0, 1.0, 0.0, 0.1)], 0.1)], tmp_path, seed=0, quick=True)
    report.write_report([TourEntry("t.new", [_finding(1.0, 1.0, 0.0, 0.1)], 0.1)], tmp_path, seed=0, quick=True)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["t.new.json", "t.new.png"]


def _bound_entries():
    """A predicted value, an upper bound that holds, a lower bound that fails, and an experiment that raised."""
    return [
        TourEntry("t.value", [_finding(2.0, 2.1, 0.05, 0.3, unit="m")], 0.1),
        TourEntry(
            "t.bounds",
            [
                Finding.at_most("t.bounds", "the error is at most 0.04", 0.04, 0.01, unit="relative L2"),
                Finding.at_least("t.bounds", "at least 99% are kept", 0.99, 0.95, unit="fraction", ideal=1.0),
            ],
            0.2,
        ),
        TourEntry("t.err", [], 0.1, error="ValueError: bad"),
    ]


def test_bounds_hold_one_side_only_and_read_back_from_json():
    upper = Finding.at_most("t.x", "error <= 0.04", 0.04, 0.01)
    assert (upper.bound, upper.predicted, upper.tolerance, upper.limit) == ("upper", 0.0, 0.04, 0.04)
    assert upper.passed
    assert Finding.at_most("t.x", "error <= 0.04", 0.04, -5.0).passed  # any distance below the bound holds
    assert not Finding.at_most("t.x", "error <= 0.04", 0.04, 0.0400001).passed
    assert not Finding.at_most("t.x", "error <= 0.04", 0.04, math.nan).passed
    lower = Finding.at_least("t.x", "kept >= 0.99", 0.99, 1.0, ideal=1.0)
    assert lower.passed
    assert lower.limit == pytest.approx(0.99)
    assert Finding.at_least("t.x", "kept >= 0.99", 0.99, 7.0, ideal=1.0).passed
    assert not Finding.at_least("t.x", "kept >= 0.99", 0.99, 0.98, ideal=1.0).passed
    for finding in (upper, lower):
        assert Finding.from_dict(json.loads(json.dumps(finding.as_dict()))) == finding
    old = _finding(0.0, 0.01, 0.0, 0.04).as_dict()
    del old["bound"]  # results.json written before bounds existed
    assert Finding.from_dict(old).bound == ""
    with pytest.raises(ValueError, match="at least the ideal value"):
        Finding.at_most("t.x", "claim", -1.0, 0.0)
    with pytest.raises(ValueError, match=r"Finding\.bound must be one of"):
        Finding("t.x", "claim", 0.0, 0.0, 0.0, 1.0, bound="below")


def test_bounds_are_drawn_as_bounds(tmp_path):
    entries = _bound_entries()
    upper, lower = entries[1].findings
    (value_panel,) = plotting.finding_panels(upper, 2)
    assert value_panel["bound"] == "upper"
    assert value_panel["limit"] == 0.04
    assert value_panel["title"] == "#2 the error is at most 0.04"
    assert plotting.finding_panels(entries[0].findings[0])[0]["bound"] == ""
    assert plotting.tolerance_used(upper) == pytest.approx(0.25)  # a quarter of the way to the bound
    assert plotting.tolerance_used(lower) == pytest.approx(5.0)  # 5x past the bound: fails
    rows = plotting.overview_figure(entries)["rows"]
    assert [r["bound"] for r in rows] == ["", "upper", "lower", ""]

    report.write_report(entries, tmp_path, seed=0, quick=True)
    figure = json.loads((tmp_path / "figures" / "t.bounds.json").read_text())
    assert [row[0]["bound"] for row in figure["rows"]] == ["upper", "lower"]
    assert [row[0]["number"] for row in figure["rows"]] == [2, 3]
    markdown = (tmp_path / "report.md").read_text()
    assert "| 2 | t.bounds | the error is at most 0.04 | ≤ 0.04 | 0.01 ± 0 | — | relative L2 | pass |" in markdown
    assert "| 3 | t.bounds | at least 99% are kept | ≥ 0.99 | 0.95 ± 0 | — | fraction | FAIL |" in markdown
    assert "measured 0.01 ± 0 relative L2, upper bound ≤ 0.04 relative L2" in markdown
    assert "| 1 | t.value | claim | 2 | 2.1 ± 0.05 | 0.3 | m | pass |" in markdown  # a value keeps its tolerance


def _table_numbers(markdown):
    """``{claim number: experiment}`` from the Markdown table's rows."""
    rows = [line.split(" | ") for line in markdown.splitlines() if re.match(r"^\| \d+ \| ", line)]
    return {int(cells[0].lstrip("| ")): cells[1] for cells in rows}


def test_the_overview_labels_match_the_table_numbers(tmp_path):
    entries = _bound_entries()
    report.write_report(entries, tmp_path, seed=0, quick=True)
    table = _table_numbers((tmp_path / "report.md").read_text())
    assert table == {1: "t.value", 2: "t.bounds", 3: "t.bounds", 4: "t.err"}
    overview = json.loads((tmp_path / "overview.json").read_text())["rows"]
    assert {r["number"]: r["label"] for r in overview} == {k: f"#{k} {name}" for k, name in table.items()}
    html = (tmp_path / "index.html").read_text()
    for number in table:
        assert f"id='claim-{number}'" in html
    assert "<a href='#claim-3'>#3</a>" in html  # each experiment's list links back to its row of the table
