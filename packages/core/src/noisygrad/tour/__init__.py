"""The ``noisygrad`` command's application: findings, the registry of experiments (the core's and every
plugin's, through the ``noisygrad.experiments`` entry points), the report and its figures, the command line.

The library (everything outside this folder) never imports it; it needs the application's dependencies
(typer, rich, matplotlib: ``pip install 'noisygrad-core[tour]'``, which ``pip install noisygrad`` includes).
"""

from __future__ import annotations

import importlib.util
import sys

#: The application's own dependencies (the ``tour`` extra of ``noisygrad-core``).
APPLICATION_DEPENDENCIES = ("typer", "rich", "matplotlib")


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def main() -> None:
    """Entry point of the ``noisygrad`` console script: the command, or a clear message when the ``tour`` extra
    (typer, rich, matplotlib) is not installed (``noisygrad-core`` alone is the library). ``noisygrad --version``
    answers either way."""
    if sys.argv[1:] == ["--version"]:
        from noisygrad import __version__

        print(f"noisygrad {__version__}")
        return
    missing = [name for name in APPLICATION_DEPENDENCIES if not _installed(name)]
    if missing:
        raise SystemExit(
            f"the noisygrad command needs {', '.join(missing)}, which is not installed: "
            "pip install 'noisygrad-core[tour]' (pip install noisygrad includes it; from a clone of the repository: "
            "pip install './packages/core[tour]')"
        )
    from noisygrad.tour.cli import main as run

    run()
