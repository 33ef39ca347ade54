"""What every check of the battery shares: failures that name the object, exact comparison, serialisation."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from numbers import Real
from typing import Any, NoReturn

import numpy as np
import torch

Check = Callable[[], None]
"""One contract check: returns nothing, raises ``AssertionError`` naming the object and the failed property."""

# What a refusal of NaN or Inf may raise: the core's NonFiniteGradientError (a FloatingPointError) or a
# ValueError (an argument check); its message must say what was wrong.
REFUSALS: tuple[type[BaseException], ...] = (FloatingPointError, ValueError)
_REFUSAL_WORDS = ("nan", "inf", "finite")


def fail(name: str, check: str, detail: str) -> NoReturn:
    """Raise the battery's ``AssertionError``: ``"<object>: <check>: <what happened>"``."""
    raise AssertionError(f"{name}: {check}: {detail}")


def devices() -> list[torch.device]:
    """The devices every dtype/device check runs on: the CPU, and CUDA when torch sees a GPU."""
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    return found


def serialise(name: str, check: str, value: Any) -> Any:
    """``value`` after ``torch.save`` into memory and ``torch.load(..., weights_only=True)``.

    ``weights_only=True`` is how a checkpoint from an untrusted source is loaded: a state that needs
    pickled classes cannot be restored that way, which the battery reports as a failure.
    """
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=True)
    except Exception as exc:
        fail(name, check, f"the state does not survive torch.save / torch.load(weights_only=True): {exc!r}")


def clone(value: Any) -> Any:
    """A deep copy of nested dicts, lists and tuples of tensors (tensors cloned, other leaves shared)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(clone(v) for v in value)
    return value


def difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where ``a`` and ``b`` differ (a path and what differs), or ``None`` when they are identical.

    Tensors must agree in dtype, shape and device and hold the same values bit for bit (``torch.equal``),
    NaN matching NaN at the same places; numbers must be equal (NaN equal to NaN); containers recursively.
    """
    where = path or "value"
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
            return f"{where}: {a.dtype} {tuple(a.shape)} on {a.device} vs {b.dtype} {tuple(b.shape)} on {b.device}"
        if a.is_floating_point() or a.is_complex():
            nan_a, nan_b = torch.isnan(a), torch.isnan(b)
            same = torch.equal(nan_a, nan_b) and torch.equal(a[~nan_a], b[~nan_b])
        else:
            same = torch.equal(a, b)
        if not same:
            gap = (a.double() - b.double()).abs().nan_to_num(nan=math.inf).max() if a.numel() else 0.0
            return f"{where}: tensors differ (largest difference {float(gap):.3g})"
        return None
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            return f"{where}: {type(a).__name__} vs {type(b).__name__}"
        if set(a) != set(b):
            return f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            found = difference(a[key], b[key], f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))) or len(a) != len(b):
            return f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    if a != b:
        return f"{where}: {a!r} vs {b!r}"
    return None


def expect_refusal(name: str, check: str, what: str, call: Callable[..., object], *args: object) -> None:
    """Require ``call(*args)`` to refuse ``what`` (a non-finite input) with a clear error.

    Clear: a :class:`~noisygrad.NonFiniteGradientError` (or another ``FloatingPointError``) or a ``ValueError``
    whose message says NaN, Inf or non-finite. Silence, or another exception type, fails.
    """
    try:
        call(*args)
    except REFUSALS as exc:
        if not any(word in str(exc).lower() for word in _REFUSAL_WORDS):
            fail(name, check, f"{what}: raised {type(exc).__name__} without saying NaN/Inf/non-finite: {exc}")
    except Exception as exc:
        fail(
            name,
            check,
            f"{what}: raised {type(exc).__name__} ({exc}); expected NonFiniteGradientError or a ValueError "
            "that names the non-finite input",
        )
    else:
        fail(name, check, f"{what}: accepted silently (expected NonFiniteGradientError or a ValueError)")


def poisoned(tensor: torch.Tensor, value: float) -> torch.Tensor:
    """A copy of ``tensor`` with its second entry (its first, if it has one) set to ``value``."""
    out = tensor.detach().clone()
    flat = out.view(-1)
    flat[min(1, flat.numel() - 1)] = value
    return out


def forked_torch_generators() -> AbstractContextManager[None]:
    """``torch.random.fork_rng`` over the CPU generator and every CUDA device's: ``torch.manual_seed`` seeds them
    all, so all of them are put back afterwards (``devices=[]`` would leave a GPU's generators reseeded)."""
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())))


@contextmanager
def global_seeds(seed: int) -> Iterator[None]:
    """Seed torch's and numpy's global generators, and put both back as they were afterwards."""
    numpy_state = np.random.get_state()  # noqa: NPY002 -- the global generator is what is being watched
    with forked_torch_generators():
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002 -- the global generator is what is being watched
        try:
            yield
        finally:
            np.random.set_state(numpy_state)  # noqa: NPY002


def global_rng_states() -> tuple[torch.Tensor, Any]:
    """The states of torch's (CPU) and numpy's global generators."""
    return torch.get_rng_state(), np.random.get_state()  # noqa: NPY002


def same_global_rng_states(a: tuple[torch.Tensor, Any], b: tuple[torch.Tensor, Any]) -> bool:
    numpy_a, numpy_b = a[1], b[1]
    return torch.equal(a[0], b[0]) and all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(numpy_a, numpy_b, strict=True)
    )


def is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def describe_tensor(t: torch.Tensor) -> str:
    return f"{t.dtype} {tuple(t.shape)} on {t.device}"


def as_points(params: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One point or several as a non-empty list of tensors."""
    points = [params] if isinstance(params, torch.Tensor) else list(params)
    if not points or not all(isinstance(p, torch.Tensor) and p.is_floating_point() for p in points):
        raise TypeError("params must be a floating tensor or a non-empty sequence of floating tensors")
    return points
