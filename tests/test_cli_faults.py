"""The ``noisygrad`` command under faults: a bad ``--out``, Ctrl-C during the experiments and while the report is
written, and an unexpected error, each a one-line message with its exit status and nothing lost or mixed.

Fake experiments (a module written to a temporary folder, registered by replacing ``experiments()`` in the
command) leave a marker file when they run, so a test can tell that a refused ``--out`` ran nothing. One test
sends a real SIGINT to a ``noisygrad tour`` subprocess; the others raise ``KeyboardInterrupt`` from an experiment
or from the report's figure drawing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from noisygrad.tour import cli, figures
from noisygrad.tour import registry as tour
from noisygrad.tour.report import REPORT_ENTRIES, ReportFolderError, check_report_folder, write_report

FAKES = '''
import os
import time
from pathlib import Path

from noisygrad.tour.findings import Finding


def _mark(name):
    folder = os.environ.get("NOISYGRAD_FAKE_MARKS")
    if folder:
        Path(folder, name).write_text("ran")


def coin(seed=0, quick=True):
    """A claim that holds, with the seed in its details."""
    _mark("coin")
    return [Finding("fake.coin", "heads half the time", 0.5, 0.5, 0.01, 0.1, "fraction", {"seed": seed})]


def dice(seed=0, quick=True):
    """Another claim that holds."""
    _mark("dice")
    return [Finding("fake.dice", "a six a sixth of the time", 1 / 6, 1 / 6, 0.01, 0.1, "fraction", {"seed": seed})]


def interrupt(seed=0, quick=True):
    """Ctrl-C in the middle of an experiment."""
    _mark("interrupt")
    raise KeyboardInterrupt


def slow(seed=0, quick=True):
    """Says it started, then takes a minute (long enough to be interrupted)."""
    _mark("slow")
    time.sleep(60)
    return [Finding("fake.slow", "never reached", 1.0, 1.0, 0.0, 0.1)]
'''

runner = CliRunner()


@pytest.fixture
def marks(tmp_path, monkeypatch):
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("NOISYGRAD_FAKE_MARKS", str(folder))
    return folder


@pytest.fixture
def fakes(tmp_path, monkeypatch, marks):
    """Register the fake experiments as ``fake.<function>``; returns a setter choosing which."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "noisygrad_fault_fakes.py").write_text(textwrap.dedent(FAKES))
    monkeypatch.syspath_prepend(str(code))

    def use(*names):
        registry = {f"fake.{n}": tour.Experiment(f"fake.{n}", f"noisygrad_fault_fakes:{n}") for n in names}
        monkeypatch.setattr(cli, "experiments", lambda include_unusable=False: registry)

    return use


def _run(*args: str):
    return runner.invoke(cli.app, list(args))


def _one_line_error(result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# --out is checked before anything runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run", "fake.coin"], ["tour"]])
def test_an_out_that_is_a_regular_file_is_refused_before_running(fakes, marks, tmp_path, command):
    fakes("coin")
    target = tmp_path / "results.txt"
    target.write_text("my notes")
    result = _run(*command, "--out", str(target))
    _one_line_error(result, 2, "is a file, not a folder")
    assert not (marks / "coin").exists()  # nothing ran
    assert target.read_text() == "my notes"


def test_an_out_below_a_regular_file_is_refused(fakes, marks, tmp_path):
    fakes("coin")
    (tmp_path / "plain").write_text("x")
    result = _run("tour", "--out", str(tmp_path / "plain" / "sub" / "report"))
    _one_line_error(result, 2, "is a file, not a folder")
    assert not (marks / "coin").exists()


def test_an_out_holding_other_files_is_refused_and_left_alone(fakes, marks, tmp_path):
    fakes("coin")
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("keep me")
    result = _run("tour", "--out", str(folder))
    _one_line_error(result, 2, "holds files that are not a noisygrad report (chapter1.tex)")
    assert not (marks / "coin").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]


def test_an_unwritable_place_is_refused_before_running(fakes, marks):
    place = Path("/sys/noisygrad-report")
    try:
        check_report_folder(place)
    except ReportFolderError:
        pass
    else:  # pragma: no cover - a machine where /sys takes new folders
        pytest.skip("/sys is writable here")
    fakes("coin")
    result = _run("tour", "--out", str(place))
    _one_line_error(result, 2, "cannot be written: no folder can be created in '/sys'")
    assert not (marks / "coin").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_running(fakes, marks, tmp_path):  # pragma: no cover - not as root
    fakes("coin")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = _run("tour", "--out", str(locked / "report"))
    finally:
        locked.chmod(0o700)
    _one_line_error(result, 2, "cannot be written")
    assert not (marks / "coin").exists()


def test_with_json_a_bad_out_is_a_json_error(fakes, tmp_path):
    fakes("coin")
    target = tmp_path / "file"
    target.write_text("")
    result = _run("run", "fake.coin", "--json", "--out", str(target))
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert error["exit_code"] == 2
    assert "is a file, not a folder" in error["error"]


def test_a_new_an_empty_and_an_earlier_report_folder_are_all_taken(fakes, tmp_path):
    fakes("coin")
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new" / "nested" / "report", empty, empty):  # the last one: an earlier report there
        result = _run("tour", "--out", str(out))
        assert result.exit_code == 0, result.output
        assert set(p.name for p in out.iterdir()) == REPORT_ENTRIES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


# the report is written whole or not at all --------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctrl_c_while_the_report_is_written_leaves_the_earlier_report_whole(fakes, tmp_path, monkeypatch):
    fakes("coin", "dice")
    out = tmp_path / "report"
    assert _run("tour", "--out", str(out), "--seed", "1").exit_code == 0
    before = _snapshot(out)
    drawn = []
    real_draw = figures.draw

    def draw_then_interrupt(figure, path):
        drawn.append(path)
        if len(drawn) == 2:  # after results.json and one figure of the new run were written
            raise KeyboardInterrupt
        real_draw(figure, path)

    monkeypatch.setattr(figures, "draw", draw_then_interrupt)
    result = _run("tour", "--out", str(out), "--seed", "2")
    _one_line_error(result, 130, f"interrupted while the report was written: {out} is left as it was")
    assert _snapshot(out) == before  # seed 1's report, every file of it, and nothing of seed 2's
    assert json.loads((out / "results.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "marks" and p.name != "code") == ["report"]


def test_an_error_while_the_report_is_written_is_one_line_and_leaves_nothing(fakes, tmp_path, monkeypatch):
    fakes("coin")

    def full_disk(figure, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figures, "draw", full_disk)
    out = tmp_path / "report"
    result = _run("tour", "--out", str(out))
    _one_line_error(result, 2, "cannot write the report to")
    assert "No space left on device" in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_write_report_refuses_a_file_naming_out(tmp_path):
    target = tmp_path / "f"
    target.write_text("")
    with pytest.raises(ReportFolderError, match=r"^out '.*f' is a file, not a folder"):
        write_report([], target, seed=0, quick=True)


# Ctrl-C during the experiments keeps what finished -------------------------------------------------------------------


def test_ctrl_c_during_the_tour_keeps_the_finished_experiments(fakes, tmp_path):
    fakes("coin", "interrupt", "dice")
    out = tmp_path / "report"
    result = _run("tour", "--out", str(out), "--seed", "5")
    _one_line_error(
        result,
        130,
        f"interrupted: 1 of 3 experiments finished; their results are in {out} (not run: fake.interrupt, fake.dice)",
    )
    data = json.loads((out / "results.json").read_text())
    assert [e["experiment"] for e in data["experiments"]] == ["fake.coin"]
    assert data["experiments"][0]["findings"][0]["details"] == {"seed": 5}
    assert data["interrupted"] is True
    assert data["not_run"] == ["fake.interrupt", "fake.dice"]
    assert data["passed"] is False
    assert "**Interrupted**" in (out / "report.md").read_text()
    assert "Interrupted" in (out / "index.html").read_text()


def test_ctrl_c_during_run_prints_the_finished_findings(fakes, tmp_path):
    fakes("coin", "interrupt")
    out = tmp_path / "report"
    result = _run("run", "fake.coin", "fake.interrupt", "--out", str(out))
    _one_line_error(result, 130, "interrupted: 1 of 2 experiments finished")
    assert "heads half the time" in result.stdout
    assert json.loads((out / "results.json").read_text())["not_run"] == ["fake.interrupt"]


def test_ctrl_c_during_run_with_json_still_prints_json(fakes):
    fakes("coin", "interrupt")
    result = _run("run", "fake.coin", "fake.interrupt", "--json")
    assert result.exit_code == 130
    (entry,) = json.loads(result.stdout)
    assert entry["experiment"] == "fake.coin"


def test_ctrl_c_before_anything_finished_writes_nothing(fakes, tmp_path):
    fakes("interrupt", "coin")
    out = tmp_path / "report"
    result = _run("tour", "--out", str(out))
    _one_line_error(result, 130, "interrupted: 0 of 2 experiments finished (not run: fake.interrupt, fake.coin)")
    assert not out.exists()


_SCRIPT = """
import signal
import sys
# a terminal's foreground job takes Ctrl-C; a job that a non-interactive shell started with '&' (a CI script run
# in the background) inherits SIGINT ignored, and Python keeps it so: restore the terminal's case
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {code!r})
from noisygrad.tour import cli
from noisygrad.tour import registry as tour

names = ("coin", "slow", "dice")
registry = {{f"fake.{{n}}": tour.Experiment(f"fake.{{n}}", f"noisygrad_fault_fakes:{{n}}") for n in names}}
cli.experiments = lambda include_unusable=False: registry
if __name__ == "__main__":
    cli.main(["tour", "--out", {out!r}, "--seed", "7", "--jobs", {jobs!r}])
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_real_sigint_during_the_tour_keeps_the_finished_results(fakes, marks, tmp_path, jobs):
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group (the workers too, with --jobs 2)."""
    out = tmp_path / "report"
    (tmp_path / "tour_script.py").write_text(_SCRIPT.format(code=str(tmp_path / "code"), out=str(out), jobs=jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NOISYGRAD_FAKE_MARKS": str(marks)}
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "tour_script.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 60
        while not (marks / "slow").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the slow experiment never started"
            time.sleep(0.05)
        while jobs == "2" and not (marks / "dice").exists():  # dice runs on the other worker while slow sleeps
            assert time.monotonic() < deadline, "dice never started"
            time.sleep(0.05)
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        assert time.monotonic() - sent < 30  # the running experiment was stopped, not waited for (60 s)
    finally:
        if process.poll() is None:  # pragma: no cover - only if the command ignored the signal
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    data = json.loads((out / "results.json").read_text())
    finished = [e["experiment"] for e in data["experiments"]]
    if jobs == "1":
        assert finished == ["fake.coin"]
        assert not (marks / "dice").exists()  # nothing started after the interruption
    else:  # coin, and dice unless the machine was too slow to hand its result back within the wait
        assert finished in (["fake.coin", "fake.dice"], ["fake.coin"])
    assert data["not_run"] == [name for name in ("fake.coin", "fake.slow", "fake.dice") if name not in finished]
    message = f"interrupted: {len(finished)} of 3 experiments finished; their results are in"
    assert message in " ".join(stderr.split())


# an unexpected error is one line -------------------------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_without_a_traceback(fakes, monkeypatch, capsys):
    fakes("coin")

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "run_experiments", broken)
    monkeypatch.delenv("NOISYGRAD_TRACEBACK", raising=False)
    for json_flag in ([], ["--json"]):
        with pytest.raises(SystemExit) as stop:
            cli.main(["run", "fake.coin", *json_flag])
        assert stop.value.code == 3
        printed = capsys.readouterr()
        assert "error: RuntimeError: something nobody expected" in printed.err
        assert "Traceback" not in printed.err
        if json_flag:
            assert json.loads(printed.out) == {"error": "RuntimeError: something nobody expected", "exit_code": 3}
    monkeypatch.setenv("NOISYGRAD_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="something nobody expected"):
        cli.main(["run", "fake.coin"])
