"""A process that ran noisygrad's collectives waits briefly at exit for gloo's worker threads.

gloo destroys a finished collective's work on its worker thread a moment after the collective completes, and that
takes the GIL; a process already shutting down then aborts (SIGABRT after its last line; measured about 1 run in 12
of a 2-rank DDP script on a loaded 2-core machine). ``hold_exit_for_workers`` registers one exit handler that
sleeps, GIL released, for ``EXIT_GRACE_SECONDS``.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
import time

import noisygrad.distributed.group as group


def test_the_exit_handler_is_registered_once(monkeypatch):
    monkeypatch.setattr(group, "_exit_guarded", False)
    registered = []
    monkeypatch.setattr(atexit, "register", lambda *args: registered.append(args))
    group.hold_exit_for_workers()
    group.hold_exit_for_workers()
    assert registered == [(time.sleep, group.EXIT_GRACE_SECONDS)]


def test_a_process_that_ran_a_collective_sleeps_at_exit():
    # atexit runs its handlers last-in first-out: the handler registered first reports after the guard's sleep
    script = (
        "import atexit, time\n"
        "import noisygrad.distributed.group as g\n"
        "end = []\n"
        "atexit.register(lambda: print(time.monotonic() - end[0]))\n"
        "g.hold_exit_for_workers()\n"
        "end.append(time.monotonic())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert float(done.stdout) >= group.EXIT_GRACE_SECONDS
