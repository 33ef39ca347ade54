"""Lazy, quiet access to DeepXDE on its pytorch backend.

Importing DeepXDE takes seconds and prints the backend it chose, so the plugin imports it only when a
function needs it, with ``DDE_BACKEND=pytorch`` set first (unless the user chose a backend) and the
import's chatter swallowed.
"""

from __future__ import annotations

import contextlib
import io
import os
from types import ModuleType

_dde: ModuleType | None = None


def deepxde() -> ModuleType:
    """The ``deepxde`` module, imported on first use; raises if its backend is not pytorch."""
    global _dde
    if _dde is None:
        os.environ.setdefault("DDE_BACKEND", "pytorch")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import deepxde
        _dde = deepxde
    backend = _dde.backend.backend_name
    if backend != "pytorch":
        raise RuntimeError(
            f"noisygrad.pinn needs DeepXDE's pytorch backend, but DeepXDE runs on {backend!r}; "
            "set DDE_BACKEND=pytorch before importing deepxde"
        )
    return _dde


@contextlib.contextmanager
def quiet():
    """Silence DeepXDE's prints (``compile``, ``set_default_float``, ...) inside the block."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
