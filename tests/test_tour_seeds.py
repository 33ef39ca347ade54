"""Every claim of the quick tour holds for seeds 0-9, not only for the seed it was first measured at.

Each seed runs the real CLI (``noisygrad tour --seed S --json --jobs 1``) in its own process, two seeds at a time
(one per core of the CI machine: this packs the tour's long experiments better than ``--jobs 2`` per seed, whose
wall time is bound by its slowest experiment). The runs start once, in a module fixture; one test per seed then
reads its results, so a failure names the seed, the experiment and the claim with its measured value and limit.

What "holds for every seed" means here: a deterministic claim (a budget, an identity) has a margin over the seeds'
spread; a Monte-Carlo claim has a tolerance of ``TOLERANCE_Z`` = 4 standard errors (or more, with a stated model
allowance), which a correct implementation misses with probability at most 6.3e-5 per claim. The quick tour makes
about 90 such claims, so over 10 seeds a correct implementation misses one by chance with probability about 6% at
most (a union bound). The seeds are fixed, so the test itself is deterministic: such a miss would fail it on every
run, name the claim, and be reproducible with ``noisygrad run NAME --seed S``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SEEDS = tuple(range(10))
#: Seed processes at once: one per core, at most two (the CI machine has two).
WORKERS = max(1, min(2, os.cpu_count() or 1))
#: Wall-clock limit of one seed's tour (a quick tour takes 1-2 minutes on an idle core).
SEED_TIMEOUT_S = 900

pytestmark = pytest.mark.slow

#: The ``noisygrad`` command of this interpreter (the console script, as a user runs it).
_CLI = [sys.executable, "-c", "import sys; from noisygrad.tour import main; sys.argv[0] = 'noisygrad'; main()"]


def _tour(seed: int, out: Path) -> dict[str, Any]:
    """Run the quick tour for ``seed`` in a fresh process; its exit status, results and stderr's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [*_CLI, "tour", "--seed", str(seed), "--json", "--jobs", "1"]
    proc = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, env=env, timeout=SEED_TIMEOUT_S, check=False
    )
    try:
        results = json.loads(proc.stdout)
    except json.JSONDecodeError:
        results = None
    return {"returncode": proc.returncode, "results": results, "stderr": proc.stderr[-4000:]}


@pytest.fixture(scope="module")
def tours(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """The quick tour of every seed in :data:`SEEDS`, run :data:`WORKERS` at a time."""
    root = tmp_path_factory.mktemp("tour-seeds")
    with cf.ThreadPoolExecutor(WORKERS) as pool:
        futures = {seed: pool.submit(_tour, seed, root / f"seed{seed}") for seed in SEEDS}
        return {seed: future.result() for seed, future in futures.items()}


def _limit(finding: dict[str, Any]) -> str:
    """The pass condition of a finding from results.json, in words."""
    predicted, tolerance = finding["predicted"], finding["tolerance"]
    if finding["bound"] == "upper":
        return f"<= {predicted + tolerance:.4g}"
    if finding["bound"] == "lower":
        return f">= {predicted - tolerance:.4g}"
    return f"{predicted:.6g} +/- {tolerance:.3g}"


def _failures(results: dict[str, Any]) -> list[str]:
    """One line per experiment that raised or claim that failed."""
    lines = []
    for entry in results["experiments"]:
        if entry["error"]:
            lines.append(f"{entry['experiment']}: raised {entry['error']}")
        if not entry["findings"] and not entry["error"]:
            lines.append(f"{entry['experiment']}: returned no findings")
        for finding in entry["findings"]:
            if not finding["passed"]:
                measured = finding["measured"]
                shown = "NaN/Inf" if measured is None or not math.isfinite(measured) else f"{measured:.4g}"
                lines.append(f"{entry['experiment']}: {finding['claim']}: measured {shown}, needs {_limit(finding)}")
    return lines


@pytest.mark.parametrize("seed", SEEDS)
def test_every_tour_claim_holds_for_the_seed(tours: dict[int, dict[str, Any]], seed: int) -> None:
    run = tours[seed]
    assert run["results"] is not None, f"seed {seed}: no JSON results (exit {run['returncode']}):\n{run['stderr']}"
    results = run["results"]
    assert results["seed"] == seed
    assert results["size"] == "quick"
    failures = _failures(results)
    assert not failures, f"seed {seed}: {len(failures)} claim(s) failed:\n" + "\n".join(failures)
    assert results["passed"] is True
    assert run["returncode"] == 0, f"seed {seed}: exit {run['returncode']} with every claim passing:\n{run['stderr']}"
    assert all(entry["findings"] for entry in results["experiments"])
