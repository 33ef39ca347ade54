"""The report's figure data: what each PNG draws is exactly what its JSON holds, edge cases included."""

import json
import math

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
    assert [r["label"] for r in rows] == ["t.ok", "t.off #1", "t.off #2", "t.nan", "t.err"]
    assert rows[0]["deviation"] == pytest.approx(0.5)
    assert rows[1]["deviation"] == 5.0  # drawn clipped at the edge with an arrow, stored as measured
    assert rows[2]["deviation"] == plotting._CLIP  # infinitely off: stored at the clip
    assert rows[3]["deviation"] is None
    assert rows[4] == {"label": "t.err", "deviation": None, "error": None, "passed": False}
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
