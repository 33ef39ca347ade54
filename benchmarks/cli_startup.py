"""Start-up time of the ``noisygrad`` command: ``list``, ``plugins`` and ``--version`` must answer in under a second.

They read installed metadata only (entry points, distribution versions), so they import neither torch nor scipy;
``list --describe`` imports each experiment and is timed for comparison. Per command, ``--repeats`` fresh processes
run the console script (``noisygrad`` beside this interpreter, else ``python -c "...main()"``) and the median and
worst wall times and the median CPU time are printed, then ``python -X importtime`` of ``noisygrad list`` gives
the slowest imports and whether any heavy module (torch, scipy, numpy, matplotlib, DeepXDE, Qiskit) was imported.
On a shared machine the wall times vary with the load (the load average is printed first), the CPU time of each
run much less; the median of several runs is the figure to quote.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 7] [--describe]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "scipy", "numpy", "matplotlib", "deepxde", "qiskit")
BUDGET_S = 1.0


def _command() -> list[str]:
    script = Path(sys.executable).with_name("noisygrad")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from noisygrad.tour import main; main()"]


def _time(args: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system of the child process) of ``repeats`` fresh runs.

    The CPU time hardly depends on what else the machine runs; the wall time does (on a loaded 2-core machine it
    is several times the CPU time), so both are printed.
    """
    walls, cpus = [], []
    env = {**os.environ, "COLUMNS": "80"}
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([*_command(), *args], capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return walls, cpus


def _import_profile() -> tuple[list[tuple[int, str]], list[str]]:
    """The ten slowest cumulative imports of ``noisygrad list`` (microseconds) and the heavy modules among all."""
    code = "from noisygrad.tour.cli import main\ntry:\n    main(['list'])\nexcept SystemExit:\n    pass"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(1)), match.group(3)))
    heavy = sorted({name.split(".")[0] for _, name in rows if name.split(".")[0] in HEAVY})
    return sorted(rows, reverse=True)[:10], heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh processes per command")
    parser.add_argument("--describe", action="store_true", help="also time `list --describe` (imports everything)")
    options = parser.parse_args()

    commands = [["list"], ["plugins"], ["--version"]] + ([["list", "--describe"]] if options.describe else [])
    print(f"{' '.join(_command())}: median and worst of {options.repeats} runs (budget {BUDGET_S:.1f} s)")
    load = os.getloadavg()[0]
    print(f"load average (1 min) before: {load:.2f} on {os.cpu_count()} CPUs")
    for args in commands:
        times, cpus = _time(args, options.repeats if args != ["list", "--describe"] else 1)
        median = statistics.median(times)
        verdict = "ok" if median < BUDGET_S else "OVER BUDGET"
        if "--describe" in args:
            verdict = "(imports every experiment: no budget)"
        print(
            f"  noisygrad {' '.join(args):<18} median {median:6.3f} s   worst {max(times):6.3f} s   "
            f"CPU median {statistics.median(cpus):6.3f} s   {verdict}"
        )
    slowest, heavy = _import_profile()
    print("slowest imports of `noisygrad list` (cumulative):")
    for micros, name in slowest:
        print(f"  {micros / 1e3:8.1f} ms  {name}")
    print(f"heavy modules imported by `noisygrad list`: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
