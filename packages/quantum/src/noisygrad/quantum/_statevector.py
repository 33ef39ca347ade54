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


# Pauli rotations exp(-i t G / 2); in a circuit, all of one matrix size are built together (TorchStatevector).
_PAULI_GENERATORS = {
    "rx": _PAULI["x"],
    "ry": _PAULI["y"],
    "rz": _PAULI["z"],
    "rzz": torch.kron(_PAULI["z"], _PAULI["z"]),
}
_PAULI_ROTATIONS = {name: _rotation(g) for name, g in _PAULI_GENERATORS.items()}


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
    **_PAULI_ROTATIONS,
    "p": _phase,
    "crx": _controlled(_PAULI_ROTATIONS["rx"]),
    "cry": _controlled(_PAULI_ROTATIONS["ry"]),
    "crz": _controlled(_PAULI_ROTATIONS["rz"]),
}
_SKIP = {"barrier", "delay"}


@dataclass(frozen=True)
class _Op:
    """A gate: a constant ``matrix``, or the ``slot``-th rotation of its ``kind`` (see ``_rotation_matrices``)."""

    qubits: tuple[int, ...]
    matrix: torch.Tensor | None = None
    kind: str = ""
    slot: int = -1


@dataclass(frozen=True)
class _Basis:
    """Constant multi-qubit gates that permute basis states and scale them: ``out = phase * state[:, source]``.

    Consecutive ones compose into one gather (e.g. an entangling ``cx`` chain), applied in one kernel.
    """

    qubits: frozenset[int]
    source: torch.Tensor  # (2**n,) long: out[:, j] comes from state[:, source[j]]
    phase: torch.Tensor | None  # (2**n,) complex, None when every factor is 1

    def then(self, other: _Basis) -> _Basis:
        """This map followed by ``other``."""
        source = self.source[other.source]
        mine = None if self.phase is None else self.phase[other.source]
        phase = mine if other.phase is None else other.phase if mine is None else other.phase * mine
        return _Basis(self.qubits | other.qubits, source, phase)


def _as_basis_map(matrix: torch.Tensor, qubits: tuple[int, ...], n: int, device: torch.device) -> _Basis | None:
    """The gate as a :class:`_Basis` map on ``n`` qubits if each column has one nonzero entry, else None."""
    nonzero = matrix != 0
    if not bool((nonzero.sum(0) == 1).all()) or not bool((nonzero.sum(1) == 1).all()):
        return None
    index = torch.arange(2**n)
    sub = sum(((index >> q) & 1) << i for i, q in enumerate(qubits))  # each basis state's index in the gate
    rows_of = torch.argmax(nonzero.to(torch.int64), dim=1)  # output sub-index j takes input sub-index rows_of[j]
    cleared = index & ~sum(1 << q for q in qubits)
    src_sub = rows_of[sub]
    source = cleared + sum(((src_sub >> i) & 1) << q for i, q in enumerate(qubits))
    factors = matrix[torch.arange(matrix.shape[0]), rows_of][sub]
    phase = None if bool((factors == 1).all()) else factors.to(device)
    return _Basis(frozenset(qubits), source.to(device), phase)


def unsupported(circuit: QuantumCircuit) -> str | None:
    """Why the torch simulator cannot run ``circuit`` (``None`` if it can)."""
    if any(i.clbits or i.operation.name in ("measure", "reset", "store") for i in circuit.data):
        return "the circuit measures, resets or uses classical bits"  # idle classical bits do not matter
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

    The circuit is compiled once: runs of constant multi-qubit gates that only permute and phase basis states
    (``cx``, ``cz``, ``swap``, ...) become one gather, consecutive one-qubit gates on a qubit are multiplied
    before they touch the state, and the angles of every rotation of one kind are turned into matrices in one
    batched call. A one-qubit gate is one batched matmul on a view of the state (no transposes).

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
        self.num_qubits = n = circuit.num_qubits
        self.num_parameters = circuit.num_parameters
        position = {p: i for i, p in enumerate(circuit.parameters)}
        ops: list[_Op | _Basis] = []
        rotations: dict[str, list[int]] = {}  # gate kind -> parameter columns, in circuit order
        generators: dict[str, list[torch.Tensor]] = {}  # Pauli kinds -> -i G of each rotation, in circuit order
        for inst in circuit.data:
            op = inst.operation
            if op.name in _SKIP:
                continue
            qubits = tuple(circuit.find_bit(q).index for q in inst.qubits)
            symbolic = [p for p in op.params if isinstance(p, ParameterExpression) and p.parameters]
            if symbolic:
                generator = _PAULI_GENERATORS.get(op.name)
                kind = op.name if generator is None else f"pauli{generator.shape[0]}"
                columns = rotations.setdefault(kind, [])
                ops.append(_Op(qubits, kind=kind, slot=len(columns)))
                columns.append(position[op.params[0]])
                if generator is not None:
                    generators.setdefault(kind, []).append(-1j * generator)
                continue
            matrix = torch.tensor(np.array(op.to_matrix()), dtype=_CDTYPE)
            basis = _as_basis_map(matrix, qubits, n, self.device) if len(qubits) > 1 else None
            if basis is None:
                ops.append(_Op(qubits, matrix.to(self.device)))
            elif ops and isinstance(ops[-1], _Basis):
                ops[-1] = ops[-1].then(basis)
            else:
                ops.append(basis)
        self._ops = ops
        self._rotations = {kind: torch.tensor(cols, device=self.device) for kind, cols in rotations.items()}
        self._generators = {
            kind: (
                torch.stack(gens)[:, None].to(self.device),
                torch.eye(gens[0].shape[0], dtype=_CDTYPE).to(self.device),
            )
            for kind, gens in generators.items()
        }

    def _rotation_matrices(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every rotation's matrices, ``(m, K, d, d)`` per gate kind, in circuit order (one batched call per kind:
        all Pauli rotations of one size together, other rotations per gate name)."""
        k = theta.shape[0]
        out = {}
        for kind, cols in self._rotations.items():
            angles = theta[:, cols].T  # (m, K), rotation-major
            if kind in self._generators:
                minus_i_g, identity = self._generators[kind]
                half = (angles / 2)[..., None, None]
                out[kind] = torch.cos(half) * identity + torch.sin(half) * minus_i_g
            else:
                matrices = ROTATIONS[kind](angles.reshape(-1))
                out[kind] = matrices.reshape(len(cols), k, *matrices.shape[1:])
        return out

    def states(self, values: torch.Tensor | np.ndarray) -> torch.Tensor:
        """States ``(K, 2**n)`` (complex128, on :attr:`device`) for parameter values of shape ``(K, P)``."""
        theta = torch.as_tensor(values, dtype=torch.float64, device=self.device)
        k, n = theta.shape[0], self.num_qubits
        state = torch.zeros((k, 2**n), dtype=_CDTYPE, device=self.device)
        state[:, 0] = 1.0
        matrices = self._rotation_matrices(theta)
        pending: dict[int, torch.Tensor] = {}  # consecutive one-qubit gates, multiplied before applying
        for op in self._ops:
            if isinstance(op, _Basis):
                for q in op.qubits & pending.keys():
                    state = _apply_one(state, pending.pop(q), q, n)
                state = state[:, op.source] if op.phase is None else state[:, op.source] * op.phase
                continue
            matrix = matrices[op.kind][op.slot] if op.matrix is None else op.matrix
            if len(op.qubits) == 1:
                q = op.qubits[0]
                pending[q] = matrix if q not in pending else matrix @ pending[q]
                continue
            for q in op.qubits:
                if q in pending:
                    state = _apply_one(state, pending.pop(q), q, n)
            state = apply(state.reshape((k,) + (2,) * n), matrix, op.qubits).reshape(k, 2**n)
        for q, matrix in pending.items():
            state = _apply_one(state, matrix, q, n)
        return state


def _apply_one(state: torch.Tensor, matrix: torch.Tensor, q: int, n: int) -> torch.Tensor:
    """A one-qubit matrix ``(2, 2)`` or ``(K, 2, 2)`` on qubit ``q`` of flat states ``(K, 2**n)``: one matmul."""
    k = state.shape[0]
    view = state.reshape(k, 2 ** (n - 1 - q), 2, 2**q)
    batched = matrix.unsqueeze(1) if matrix.ndim == 3 else matrix
    return torch.matmul(batched, view).reshape(k, 2**n)


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
