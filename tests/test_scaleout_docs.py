"""docs/scaleout.rst's examples run as written and print what the page says; benchmarks/gpu_scaleout.py runs on a
CPU (its CUDA parts skipped) and writes its JSON summary.

Each ``.. code-block:: python`` with a ``:caption:`` is a file: it is written under its caption into a temporary
folder and run there, with ``python`` or (``*_ddp.py`` and ``gns_ddp.py``) with ``torchrun`` on gloo ranks. The
ones that start processes are slow (each process imports torch again: 10-20 s on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs/scaleout.rst"
BENCHMARK = ROOT / "benchmarks/gpu_scaleout.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")

#: caption -> (how it runs, ranks, lines its output must contain)
EXAMPLES = {
    "gns_ddp.py": ("torchrun", 2, ["tr(S) 7.473, |G|^2 1.162, B_simple 6.429"]),
    "dp_minibatch.py": (
        "python",
        1,
        [
            "w after 200 steps: [-0.001982875932945886, 0.997894929062534, 2.0026982396218376, 2.997641463691705, "
            "4.006746423004016]",
            "tr(S) 175.28 +- 1.37, |G|^2 27.54 +- 0.22",
        ],
    ),
    "dp_minibatch_ddp.py": (
        "torchrun",
        4,
        [
            "w after 200 steps: [-0.001982875932945886, 0.997894929062534, 2.0026982396218376, 2.997641463691705, "
            "4.006746423004016]"
        ],
    ),
    "adaptive_batch.py": ("python", 1, ["batch at steps 1, 50, 100, 300: 8 8 12 112"]),
    "sweep_seeds.py": ("python", 1, ["bit-identical to the serial loop: True"]),
    "quantum_sharding.py": ("python", 1, ["same run: True True", "energy -1.8481 Ha, exact ground -1.8573 Ha"]),
}
SLOW = {"gns_ddp.py", "dp_minibatch_ddp.py", "sweep_seeds.py", "quantum_sharding.py"}  # they start processes


def _blocks() -> dict[str, str]:
    """caption -> code of every captioned python block of the page, dedented."""
    found = {}
    pattern = r"^\.\. code-block:: python\n   :caption: (\S+)\n\n((?:   .*\n|\n)+)"
    for caption, body in re.findall(pattern, PAGE.read_text(), flags=re.M):
        found[caption] = "\n".join(line[3:] for line in body.rstrip().splitlines()) + "\n"
    return found


def test_the_page_holds_exactly_the_examples_checked_here():
    assert set(_blocks()) == set(EXAMPLES)


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.mark.parametrize(
    "caption", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in sorted(EXAMPLES)]
)
def test_an_example_runs_as_written(caption, tmp_path):
    how, ranks, expected = EXAMPLES[caption]
    script = tmp_path / caption
    script.write_text(_blocks()[caption])
    if how == "torchrun":
        command = [str(TORCHRUN), "--standalone", f"--nproc-per-node={ranks}", str(script)]
    else:
        command = [sys.executable, str(script)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    for line in expected:
        _assert_printed(line, done.stdout)


_NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def _assert_printed(line: str, stdout: str) -> None:
    """``line`` is printed, its numbers to 1e-12 relative: the page's full-precision iterates were printed on one
    CPU, and BLAS kernels for another (an AMD EPYC's MKL path against a Xeon's) round a float64 matrix product
    differently in the last bit or two, which 200 SGD steps carry to about 1e-15 relative."""
    words = re.sub(_NUMBER, "#", line)
    printed = [out for out in stdout.splitlines() if re.sub(_NUMBER, "#", out) == words]
    assert printed, f"no line like {line!r} in:\n{stdout}"
    expected = [float(x) for x in re.findall(_NUMBER, line)]
    assert [float(x) for x in re.findall(_NUMBER, printed[0])] == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.slow  # the quick run: two gloo ranks, a spawned pool, Aer: about a minute on a loaded 2-core machine
def test_the_gpu_script_runs_on_a_cpu_and_skips_the_cuda_parts(tmp_path):
    out = tmp_path / "summary.json"
    command = [sys.executable, str(BENCHMARK), "--quick", "--out", str(out)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(out.read_text())  # strict JSON: no Infinity or NaN
    assert json.loads(done.stdout) == summary
    for section in ("env", "hook", "minibatch", "quantum", "sharding"):
        assert "error" not in summary[section], summary[section]
    if not summary["env"]["cuda"]:
        assert summary["quantum"]["torch_cuda"] == "skipped: torch sees no CUDA GPU"
        assert "no CUDA GPU" in done.stderr
    assert summary["hook"]["gloo2"]["accuracy"]["draws"] == 300
    assert summary["sharding"]["process_pools"]["2"]["bit_identical"] is True


def test_the_gpu_script_refuses_an_unknown_section():
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--sections", "env,warp"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "unknown ['warp']" in done.stderr
