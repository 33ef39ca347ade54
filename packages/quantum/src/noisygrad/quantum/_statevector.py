"""A batched statevector simulator in torch for small parameterised circuits.

For a few qubits the cost of a VQE step is the per-call overhead of a general simulator, not the
arithmetic; this simulator runs ``K`` parameter sets of one circuit at once as a ``(K, 2, ..., 2)`` tensor.
It reads the circuit's instructions once: gates without parameters become constant matrices (from
Qiskit's own ``to_matrix``), rotation gates whose angle is a plain circuit parameter (or a constant) get
their matrices built per parameter set in closed form. Anything else is refused by :func:`unsupported`,
and the caller uses Aer instead. The state lives on any torch device: on a CUDA GPU the same code runs
circuits far larger than the CPU path is meant for.

Qubit order is Qiskit's: qubit ``q`` is bit ``q`` of the basis-state index (little-endian).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from qiskit.circuit import Parameter, ParameterExpression, QuantumCircuit

_CDTYPE = torch.complex128


_I2 = torch.eye(2, dtype=_CDTYPE)
_PAULI = {
    "x": torch.tensor([[0, 1], [1, 0]], dtype=_CDTYPE),
    "y": torch.tensor([[0, -1j], [1j, 0]], dtype=_CDTYPE),
    "z": torch.tensor([[1, 0], [0, -1]], dtype=_CDTYPE),
}


def _rotation(generator: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``exp(-i t G / 2) = cos(t/2) I - i sin(t/2) G`` for a Pauli (product) ``G``, batched over ``t``.

    The gate is built on the device of ``t``; its two constant matrices are copied there once per device.
    """
    constants: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def gate(t: torch.Tensor) -> torch.Tensor:
        if t.device not in constants:
            identity = torch.eye(generator.shape[0], dtype=_CDTYPE, device=t.device)
            constants[t.device] = (identity, (-1j * generator).to(t.device))
        identity, minus_i_g = constants[t.device]
        half = (t / 2)[:, None, None]
        return torch.cos(half) * identity + torch.sin(half) * minus_i_g

    return gate


_rx, _ry, _rz = _rotation(_PAULI["x"]), _rotation(_PAULI["y"]), _rotation(_PAULI["z"])
_rzz = _rotation(torch.kron(_PAULI["z"], _PAULI["z"]))


def _phase(t: torch.Tensor) -> torch.Tensor:
    return torch.diag_embed(torch.stack([torch.ones_like(t), torch.exp(1j * t)], -1).to(_CDTYPE))


def _controlled(u: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Qiskit's controlled gate on qargs (control, target): the control is the low bit of the 4x4 index."""

    def gate(t: torch.Tensor) -> torch.Tensor:
        m = torch.zeros((*t.shape, 4, 4), dtype=_CDTYPE, device=t.device)
        m[..., 0, 0] = 1.0
        m[..., 2, 2] = 1.0
        block = u(t)
        m[..., 1, 1], m[..., 1, 3] = block[..., 0, 0], block[..., 0, 1]
        m[..., 3, 1], m[..., 3, 3] = block[..., 1, 0], block[..., 1, 1]
        return m

    return gate


# Gates with one angle, each ``exp(-i theta G / 2)`` up to a global phase (so the +-pi/2 shift rule holds).
ROTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "rx": _rx,
    "ry": _ry,
    "rz": _rz,
    "p": _phase,
    "rzz": _rzz,
    "crx": _controlled(_rx),
    "cry": _controlled(_ry),
    "crz": _controlled(_rz),
}
_SKIP = {"barrier", "delay"}


@dataclass(frozen=True)
class _Op:
    qubits: tuple[int, ...]
    matrix: torch.Tensor | None  # a constant gate
    rotation: Callable[[torch.Tensor], torch.Tensor] | None = None
    index: int = -1  # column of the parameter array holding the angle


def unsupported(circuit: QuantumCircuit) -> str | None:
    """Why the torch simulator cannot run ``circuit`` (``None`` if it can)."""
    if circuit.num_clbits or any(i.operation.name == "measure" for i in circuit.data):
        return "the circuit has measurements or classical bits"
    for inst in circuit.data:
        op = inst.operation
        if op.name in _SKIP:
            continue
        symbolic = [p for p in op.params if isinstance(p, ParameterExpression) and p.parameters]
        if not symbolic:
            try:
                op.to_matrix()
            except Exception:  # any gate Qiskit cannot turn into a matrix (resets, custom instructions)
                return f"instruction {op.name!r} has no matrix"
            continue
        if op.name not in ROTATIONS:
            return f"gate {op.name!r} with a symbolic parameter is not a supported rotation ({sorted(ROTATIONS)})"
        if not isinstance(op.params[0], Parameter):
            return f"gate {op.name!r} has the angle expression {op.params[0]}; only plain parameters are supported"
    return None


class TorchStatevector:
    """Final states of ``circuit`` for a batch of parameter values.

    Args:
        circuit: a circuit of gates (see :func:`unsupported`); its parameters, in ``circuit.parameters``
            order, are the columns of the values passed to :meth:`states`.
        device: the torch device that holds the states (``"cpu"``, ``"cuda"``, ...).
    """

    def __init__(self, circuit: QuantumCircuit, device: str | torch.device = "cpu") -> None:
        reason = unsupported(circuit)
        if reason is not None:
            raise ValueError(f"the torch simulator cannot run this circuit: {reason}")
        self.device = torch.device(device)
        self.num_qubits = circuit.num_qubits
        self.num_parameters = circuit.num_parameters
        position = {p: i for i, p in enumerate(circuit.parameters)}
        ops: list[_Op] = []
        for inst in circuit.data:
            op = inst.operation
            if op.name in _SKIP:
                continue
            qubits = tuple(circuit.find_bit(q).index for q in inst.qubits)
            symbolic = [p for p in op.params if isinstance(p, ParameterExpression) and p.parameters]
            if symbolic:
                ops.append(_Op(qubits, None, ROTATIONS[op.name], position[op.params[0]]))
            else:
                matrix = torch.tensor(np.array(op.to_matrix()), dtype=_CDTYPE, device=self.device)
                ops.append(_Op(qubits, matrix))
        self._ops = ops

    def states(self, values: torch.Tensor | np.ndarray) -> torch.Tensor:
        """States ``(K, 2**n)`` (complex128, on :attr:`device`) for parameter values of shape ``(K, P)``."""
        theta = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        k, n = theta.shape[0], self.num_qubits
        state = torch.zeros((k,) + (2,) * n, dtype=_CDTYPE, device=self.device)
        state[(slice(None),) + (0,) * n] = 1.0
        pending: dict[int, torch.Tensor] = {}  # consecutive one-qubit gates, multiplied before applying
        for op in self._ops:
            matrix = op.rotation(theta[:, op.index]) if op.rotation is not None else op.matrix
            assert matrix is not None  # every op is a constant gate or a rotation
            if len(op.qubits) == 1:
                q = op.qubits[0]
                pending[q] = matrix if q not in pending else matrix @ pending[q]
                continue
            for q in op.qubits:
                if q in pending:
                    state = apply(state, pending.pop(q), (q,))
            state = apply(state, matrix, op.qubits)
        for q, matrix in pending.items():
            state = apply(state, matrix, (q,))
        return state.reshape(k, 2**n)


def apply(state: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...]) -> torch.Tensor:
    """Apply a ``2^m x 2^m`` matrix (or a batch ``(K, 2^m, 2^m)``) on ``qubits`` of a ``(K, 2, ..., 2)`` state.

    Axis ``1 + (n - 1 - q)`` of the state holds qubit ``q``; the matrix index is little-endian in ``qubits``.
    """
    n = state.ndim - 1
    m = len(qubits)
    axes = [1 + (n - 1 - q) for q in reversed(qubits)]  # most significant matrix bit first
    moved = torch.movedim(state, axes, list(range(n + 1 - m, n + 1)))
    shape = moved.shape
    flat = moved.reshape(shape[0], -1, 2**m)
    # bmm: under a contended CPU, torch's multi-threaded matmul/einsum kernels were measured 10-1000x slower
    # on these tiny operands; bmm stays single-kernel and fast.
    transposed = matrix.transpose(-1, -2).expand(shape[0], 2**m, 2**m)
    out = torch.bmm(flat, transposed)
    return torch.movedim(out.reshape(shape), list(range(n + 1 - m, n + 1)), axes)
