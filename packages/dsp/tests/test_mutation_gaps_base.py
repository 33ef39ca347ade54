"""The dsp base modules (``_state``, ``_kalman_checks``, ``_filter_base``): behaviours mutation testing found
unchecked (tools/mutation.py, issue 18).

The state schema (format, version, kind, settings, checksum) and its refusals; the Kalman argument checks
(shapes, dtype, C-contiguous copies, symmetric and (semi-)definite covariances at the exact ends of their
tolerances, measurements with NaN or ``None`` for missing ones, controls); the adaptive filters' shared machinery
(defaults, shapes, dtypes, copies, refusals naming the argument, state dict round trips and corrupted states).
All comparisons are exact (fixed seeds, no statistics).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from noisygrad import LegacyCheckpointWarning
from noisygrad.dsp import _kalman_checks as chk
from noisygrad.dsp import _state
from noisygrad.loop_checkpoint import CheckpointError

F64 = np.float64
ASYM = np.array([[1.0, 0.0], [1e-6, 1.0]])  # asymmetric far beyond any tolerance
F32 = np.float32


# ---------------------------------------------------------------- _state: the schema


def _packed(settings=None, **entries):
    return _state.pack("K", {"mu": 0.5} if settings is None else settings, {"w": np.arange(3.0), **entries})


def _unpack_quietly(state, kind="K", settings=None):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a state with the schema never warns
        return _state.unpack(state, kind, {"mu": 0.5} if settings is None else settings)


def test_pack_writes_the_documented_schema_with_tensor_copies():
    w = np.arange(3.0)
    state = _state.pack("K", {"mu": 0.5}, {"w": w, "nested": {"a": np.ones(2)}, "batch": (2,)})
    assert (_state.STATE_FORMAT, _state.STATE_VERSION) == ("noisygrad.dsp", 1)
    assert _state.SCHEMA_KEYS == ("format", "version", "kind", "settings", "checksum")
    assert set(state) == {"format", "version", "kind", "settings", "checksum", "w", "nested", "batch"}
    assert (state["format"], state["version"], state["kind"], state["settings"]) == (
        "noisygrad.dsp",
        1,
        "K",
        {"mu": 0.5},
    )
    assert isinstance(state["w"], torch.Tensor)
    assert isinstance(state["nested"]["a"], torch.Tensor)
    assert state["checksum"].startswith("sha256:")
    assert state["batch"] == (2,)
    w[0] = 7.0  # the state is a snapshot, not a view of the writer's array
    assert state["w"][0].item() == 0.0
    entries, schema = _unpack_quietly(state)
    assert schema is True
    assert set(entries) == {"w", "nested", "batch"}
    assert isinstance(entries["w"], np.ndarray)
    assert entries["w"].tolist() == [0.0, 1.0, 2.0]
    _state.verify(state, schema)


def test_unpacked_arrays_are_copies_and_plain_values_pass_through():
    state = _packed(batch=None, name="x")
    entries, _ = _unpack_quietly(state)
    entries["w"][0] = 9.0
    assert state["w"][0].item() == 0.0
    assert entries["batch"] is None
    assert entries["name"] == "x"
    grad = _packed()
    grad["w"] = grad["w"].clone().requires_grad_(True)  # a tensor an optimiser marked still unpacks
    assert _unpack_quietly(grad)[0]["w"].tolist() == [0.0, 1.0, 2.0]


def test_every_checksummed_entry_is_covered_nested_ones_included():
    state = _packed(nested={"a": np.ones(2)})
    state["nested"]["a"] = torch.tensor([1.0, 2.0])
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        _state.verify(state, True)
    state = _packed()
    state["w"] = torch.tensor([0.0, 1.0, 3.0])
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        _state.verify(state, True)


def test_a_state_without_the_schema_is_taken_with_a_legacy_warning():
    entries, schema = _state.unpack({"w": torch.ones(2)}, "K", {"mu": 0.5})
    assert schema is False
    assert entries["w"].tolist() == [1.0, 1.0]
    with pytest.warns(LegacyCheckpointWarning, match="assembled by hand"):
        _state.verify({"w": torch.ones(2)}, schema)


@pytest.mark.parametrize("bad", ["state", b"state", [("w", 1.0)], 3])
def test_a_non_dict_state_is_a_type_error(bad):
    with pytest.raises(TypeError, match="state must be a dict from state_dict"):
        _state.unpack(bad, "K", {})


@pytest.mark.parametrize("lost", ["format", "version", "kind", "settings", "checksum"])
def test_a_truncated_state_names_what_it_lacks(lost):
    state = _packed()
    del state[lost]
    with pytest.raises(CheckpointError, match=f"lacks '{lost}': a truncated state"):
        _state.unpack(state, "K", {"mu": 0.5})


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("format", "other.format", "format is 'other.format', not 'noisygrad.dsp'"),
        ("version", True, "version must be an integer >= 1, got True"),
        ("version", "1", "version must be an integer >= 1, got '1'"),
        ("version", 1.0, "version must be an integer >= 1, got 1.0"),
        ("version", 0, "version must be an integer >= 1, got 0"),
        ("version", 2, "format version 2 was written by a newer noisygrad"),
        ("kind", "L", "was written by a 'L' filter, this one is a 'K'"),
        ("settings", [("mu", 0.5)], "settings must be a dict, got list"),
        ("settings", {"mu": 0.25}, r"other settings \(mu: saved 0.25, here 0.5\)"),
        ("settings", {"mu": 0.5, "taps": 3}, r"other settings \(taps: saved 3, here '-'\)"),
        ("settings", {}, r"other settings \(mu: saved '-', here 0.5\)"),
        ("settings", {"mu": 1}, r"other settings \(mu: saved 1, here 0.5\)"),
    ],
)
def test_each_schema_entry_is_checked_before_the_checksum(key, value, match):
    state = _packed()
    state[key] = value
    with pytest.raises(CheckpointError, match=match):
        _state.unpack(state, "K", {"mu": 0.5})


def test_settings_compare_by_value_and_type_and_nan_equals_nan():
    for here in ({"mu": math.nan}, {"n": 2}, {"flag": True}, {"mu": 0.5, "n": 2}):
        entries, schema = _unpack_quietly(_packed(here), settings=here)
        assert schema
        assert entries["w"].tolist() == [0.0, 1.0, 2.0]
    for saved, here in (({"n": 2}, {"n": 2.0}), ({"n": 1}, {"n": True}), ({"mu": math.nan}, {"mu": 0.5})):
        with pytest.raises(CheckpointError, match="other settings"):
            _state.unpack(_packed(saved), "K", here)


def test_a_schema_state_is_verified_by_its_checksum_and_never_warns():
    state = _packed()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _state.verify(state, True)
    state["checksum"] = "sha256:" + "0" * 64
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        _state.verify(state, True)


# ---------------------------------------------------------------- _kalman_checks: matrices


def test_tolerance_is_looser_for_float32_input():
    assert chk._tolerance(np.zeros(2, F32)) == 1e-5
    assert chk._tolerance(np.zeros(2, F64)) == 1e-12
    assert chk._tolerance([[1.0]]) == 1e-12


def test_matrix_is_a_c_contiguous_copy_of_the_shape_asked_for():
    value = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    out = chk.matrix("H", value, (None, 3), F32)
    assert out.dtype == F32
    assert out.shape == (2, 3)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, value)
    out[0, 0] = 5.0
    assert value[0, 0] == 0.0
    same = np.arange(4.0).reshape(2, 2)
    chk.matrix("F", same, (2, 2), F64)[0, 0] = 9.0
    assert same[0, 0] == 0.0
    assert chk.matrix("F", same, (2, 2), F64).shape == (2, 2)
    assert chk.matrix("H", np.ones((2, 3)), (2, 3), F64).shape == (2, 3)  # rows and columns each checked


@pytest.mark.parametrize(
    ("value", "shape", "error", "match"),
    [
        (np.zeros((2, 2)), (None, 3), ValueError, r"^H must have shape \(m, 3\), got \(2, 2\)$"),
        (np.zeros((3, 3)), (2, 3), ValueError, r"^H must have shape \(2, 3\), got \(3, 3\)$"),
        (np.zeros((0, 3)), (None, 3), ValueError, r"^H must have shape \(m, 3\), got \(0, 3\)$"),
        (np.zeros(3), (None, 3), ValueError, "H must have 2 dimensions"),
        (np.zeros((1, 2, 3)), (None, 3), ValueError, "H must have 2 dimensions"),
        (np.array([[1.0, np.nan, 0.0]]), (None, 3), ValueError, "H has 1 non-finite value"),
    ],
)
def test_matrix_refuses_naming_the_argument(value, shape, error, match):
    with pytest.raises(error, match=match):
        chk.matrix("H", value, shape, F64)


def test_covariance_returns_the_exactly_symmetric_average_in_the_dtype():
    value = np.array([[2.0, 1.0], [1.0 + 2**-40, 2.0]])
    out = chk.covariance("Q", value, 2, F64)
    assert out.dtype == F64
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[2.0, 1.0 + 2**-41], [1.0 + 2**-41, 2.0]])
    assert chk.covariance("Q", value, 2, F32).dtype == F32
    np.testing.assert_array_equal(chk.covariance("R", 2.0, 1, F64), [[2.0]])
    out[0, 0] = 5.0
    assert value[0, 0] == 2.0
    assert chk.covariance("P", np.zeros((0, 0)), 0, F64).shape == (0, 0)


def test_covariance_is_semi_definite_by_default_and_definite_when_asked():
    singular = np.diag([1.0, 0.0])
    np.testing.assert_array_equal(chk.covariance("Q", singular, 2, F64), singular)
    with pytest.raises(ValueError, match=r"^R must be positive definite, its smallest eigenvalue is 0$"):
        chk.covariance("R", singular, 2, F64, definite=True)
    np.testing.assert_array_equal(chk.covariance("R", np.diag([2.0, 0.5]), 2, F64, definite=True), np.diag([2.0, 0.5]))
    np.testing.assert_array_equal(chk.covariance("R", [[2.0, 1.0], [1.0, 2.0]], 2, F64, definite=True),
                                  [[2.0, 1.0], [1.0, 2.0]])  # fmt: skip


@pytest.mark.parametrize(
    ("value", "n", "match"),
    [
        (np.zeros((2, 3)), 2, r"^Q must have shape \(2, 2\), got \(2, 3\)$"),
        (np.zeros((3, 3)), 2, r"^Q must have shape \(2, 2\), got \(3, 3\)$"),
        (np.zeros((2, 2)), 1, r"^Q must have shape \(1, 1\) or be a scalar, got \(2, 2\)$"),
        (np.zeros((1, 2, 2)), 2, "Q must have 2 dimensions"),
        (np.array([[1.0, 0.0], [1e-6, 1.0]]), 2, "^Q must be symmetric$"),
        (-np.eye(2), 2, r"^Q must be positive semi-definite, its smallest eigenvalue is -1$"),
        ([[-1.0]], 1, r"^Q must be positive semi-definite, its smallest eigenvalue is -1$"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), 2, "Q has 2 non-finite values"),
    ],
)
def test_covariance_refuses_naming_the_argument(value, n, match):
    with pytest.raises(ValueError, match=match):
        chk.covariance("Q", value, n, F64)


def test_symmetry_tolerance_is_relative_to_the_largest_entry_but_at_least_absolute():
    # asymmetry exactly at the tolerance passes, just above it is refused (float64: 1e-12 times max(1, |entry|))
    at = np.array([[1.0, 0.0], [1e-12, 1.0]])
    np.testing.assert_array_equal(chk.covariance("Q", at, 2, F64), [[1.0, 5e-13], [5e-13, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        chk.covariance("Q", np.array([[0.5, 0.1], [0.1 + 1.5e-12, 0.5]]), 2, F64)  # scale 1, not 0.5 nor 2
    big = np.array([[4.0, 0.0], [3e-12, 4.0]])  # 3e-12 < 1e-12 * 4: symmetric enough at this scale
    np.testing.assert_allclose(chk.covariance("Q", big, 2, F64), [[4.0, 1.5e-12], [1.5e-12, 4.0]], rtol=0, atol=0)
    # float32 input gets 1e-5
    loose = np.array([[1.0, 0.0], [5e-6, 1.0]], F32)
    assert chk.covariance("Q", loose, 2, F32).dtype == F32
    with pytest.raises(ValueError, match="symmetric"):
        chk.covariance("Q", loose.astype(F64), 2, F64)


def test_semi_definiteness_tolerance_is_relative_and_of_the_symmetrised_matrix():
    # smallest eigenvalue exactly -tol * scale passes, below it is refused
    np.testing.assert_array_equal(chk.covariance("Q", np.diag([1.0, -1e-12]), 2, F64), np.diag([1.0, -1e-12]))
    np.testing.assert_array_equal(chk.covariance("Q", np.diag([1.0, -5e-13]), 2, F64), np.diag([1.0, -5e-13]))
    np.testing.assert_array_equal(chk.covariance("Q", np.diag([4.0, -2e-12]), 2, F64), np.diag([4.0, -2e-12]))
    with pytest.raises(ValueError, match="semi-definite"):
        chk.covariance("Q", np.diag([4.0, -5e-12]), 2, F64)
    # the symmetrised matrix has eigenvalues -9.5e-13 (passes); its lower triangle alone has -1.4e-12
    tri = np.array([[-5e-13, 0.0], [9e-13, -5e-13]])
    chk.covariance("Q", tri, 2, F64)
    chk.stack("Qs", np.stack([np.eye(2), tri]), (2, 2), 2, F64, kind="covariance")
    chk.batch_covariance("P0", np.stack([np.eye(2), tri]), 2, 2, True)


def test_batch_covariance_broadcasts_one_matrix_to_independent_c_contiguous_copies():
    value = np.array([[2.0, 1.0], [1.0 + 2**-40, 2.0]])
    out = chk.batch_covariance("P0", value, 3, 2, False)
    assert out.shape == (3, 2, 2)
    assert out.dtype == F64
    assert out.flags.c_contiguous
    assert out.flags.writeable
    np.testing.assert_array_equal(out, np.broadcast_to([[2.0, 1.0 + 2**-41], [1.0 + 2**-41, 2.0]], (3, 2, 2)))
    out[0, 0, 0] = 7.0
    assert out[1, 0, 0] == 2.0
    assert value[0, 0] == 2.0
    per = np.stack([np.eye(2), 2 * np.eye(2), np.diag([1.0, 0.0])])
    np.testing.assert_array_equal(chk.batch_covariance("P0", per, 3, 2, True), per)
    near = np.stack([value, 2 * value, 3 * value])  # each member symmetrised exactly
    out = chk.batch_covariance("P0", near, 3, 2, True)
    np.testing.assert_array_equal(out, np.swapaxes(out, -1, -2))
    np.testing.assert_array_equal(out[1], 2 * np.array([[2.0, 1.0 + 2**-41], [1.0 + 2**-41, 2.0]]))
    ints = chk.batch_covariance("P0", [[1, 0], [0, 1]], 2, 2, True)
    assert ints.dtype == F64


@pytest.mark.parametrize(
    ("value", "batched", "match"),
    [
        (np.eye(3), True, r"^P0 must have shape \(2, 2\) or \(3, 2, 2\), got \(3, 3\)$"),
        (np.stack([np.eye(2)] * 3), False, r"^P0 must have shape \(2, 2\), got \(3, 2, 2\)$"),
        (np.stack([np.eye(2)]), True, r"^P0 must have shape \(2, 2\) or \(3, 2, 2\), got \(1, 2, 2\)$"),
        (np.zeros((3, 2, 2, 1)), True, "P0 must have 2 or 3 dimensions"),
        (np.stack([np.eye(2), ASYM, np.eye(2)]), True, r"^P0 must be symmetric \(filter 1\)$"),
        (np.stack([np.eye(2), np.eye(2), -np.eye(2)]), True, r"semi-definite \(filter 2\), its smallest eigenvalue"),
        (-np.eye(2), True, r"^P0 must be positive semi-definite, its smallest eigenvalue is -1$"),
    ],
)  # fmt: skip
def test_batch_covariance_refuses_naming_the_argument_and_the_filter(value, batched, match):
    with pytest.raises(ValueError, match=match):
        chk.batch_covariance("P0", value, 3, 2, batched)


def test_batch_symmetry_and_eigenvalue_tolerances_are_per_matrix():
    # one large matrix beside a small one: the small one's asymmetry is judged against its own scale (1)
    small = np.array([[0.5, 0.0], [5e-11, 0.5]])
    with pytest.raises(ValueError, match=r"symmetric \(filter 1\)"):
        chk.batch_covariance("P0", np.stack([100 * np.eye(2), small]), 2, 2, True)
    with pytest.raises(ValueError, match=r"semi-definite \(filter 1\), its smallest eigenvalue is -5e-11"):
        chk.batch_covariance("P0", np.stack([100 * np.eye(2), np.diag([1.0, -5e-11])]), 2, 2, True)


def test_rows_counts_rows_or_columns_of_one_matrix_or_a_stack():
    assert chk.rows("Hs", np.zeros((2, 3))) == 2
    assert chk.rows("Hs", np.zeros((5, 2, 3))) == 2
    assert chk.rows("Bs", np.zeros((2, 3)), axis=-1) == 3
    assert chk.rows("Hs", [[1, 2, 3]]) == 1
    with pytest.raises(ValueError, match=r"^Hs must be a matrix or a sequence of matrices, got shape \(3,\)$"):
        chk.rows("Hs", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^Hs must be one matrix, or a sequence of matrices of one shape"):
        chk.rows("Hs", [np.zeros((2, 3)), np.zeros((1, 3))])


def test_stack_takes_one_matrix_or_one_per_step_as_a_c_contiguous_copy():
    F = np.array([[1.0, 2.0], [0.0, 1.0]])  # not symmetric: a "matrix" is not checked as a covariance
    one = chk.stack("Fs", F, (2, 2), 4, F64)
    assert one.shape == (1, 2, 2)
    assert one.flags.c_contiguous
    np.testing.assert_array_equal(one[0], F)
    per = np.stack([F, 2 * F, 3 * F, 4 * F])
    out = chk.stack("Fs", per, (2, 2), 4, F32)
    assert out.shape == (4, 2, 2)
    assert out.dtype == F32
    np.testing.assert_array_equal(out, per)
    out[0, 0, 0] = 9.0
    assert per[0, 0, 0] == 1.0
    assert chk.stack("Fs", [F, F], (2, 2), 2, F64).shape == (2, 2, 2)
    assert chk.stack("Fs", [[1, 2], [3, 4]], (2, 2), 1, F64).dtype == F64
    assert chk.stack("Bs", np.ones((3, 2)), (3, 2), 5, F64).shape == (1, 3, 2)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((3, 3)), r"^Fs must be one matrix of shape \(2, 2\) or 4 of them \(shape \(4, 2, 2\)\), got"),
        (np.zeros((3, 2, 2)), r"got shape \(3, 2, 2\)$"),
        (np.zeros((4, 2, 3)), r"got shape \(4, 2, 3\)$"),
        (np.zeros((4, 2, 2, 1)), "Fs must have 2 or 3 dimensions"),
        (np.zeros(2), "Fs must have 2 or 3 dimensions"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "Fs has 1 non-finite value"),
    ],
)  # fmt: skip
def test_stack_refuses_naming_the_argument(value, match):
    with pytest.raises(ValueError, match=match):
        chk.stack("Fs", value, (2, 2), 4, F64)


def test_stacked_covariances_are_checked_per_step_and_returned_exactly_symmetric():
    q = np.array([[2.0, 1.0], [1.0 + 2**-40, 2.0]])
    out = chk.stack("Qs", np.stack([q, 2 * q]), (2, 2), 2, F64, kind="covariance")
    np.testing.assert_array_equal(out[0], [[2.0, 1.0 + 2**-41], [1.0 + 2**-41, 2.0]])
    np.testing.assert_array_equal(out, np.swapaxes(out, -1, -2))
    one = chk.stack("Qs", q, (2, 2), 3, F64, kind="covariance")
    assert one.shape == (1, 2, 2)
    np.testing.assert_array_equal(one[0], out[0])
    singular = np.diag([1.0, 0.0])
    np.testing.assert_array_equal(chk.stack("Qs", singular, (2, 2), 1, F64, kind="covariance")[0], singular)
    with pytest.raises(ValueError, match=r"^Rs must be positive definite \(step 1\), its smallest eigenvalue is 0$"):
        chk.stack("Rs", np.stack([np.eye(2), singular]), (2, 2), 2, F64, kind="definite")
    with pytest.raises(ValueError, match=r"^Rs must be positive definite \(step 0\), its smallest eigenvalue is 0$"):
        chk.stack("Rs", singular, (2, 2), 2, F64, kind="definite")  # one matrix for every step: step 0
    with pytest.raises(ValueError, match=r"^Qs must be symmetric \(step 2\)$"):
        chk.stack("Qs", np.stack([q, q, np.array([[1.0, 0.0], [1e-6, 1.0]])]), (2, 2), 3, F64, kind="covariance")
    with pytest.raises(ValueError, match=r"^Qs must be symmetric \(step 0\)$"):
        chk.stack("Qs", np.array([[1.0, 1.0], [0.0, 1.0]]), (2, 2), 3, F64, kind="covariance")


# ---------------------------------------------------------------- _kalman_checks: measurements and controls


def test_measurement_shapes_dtype_and_missing_entries():
    np.testing.assert_array_equal(chk.measurement([1.0, 2.0], (), 2, F64), [[1.0, 2.0]])
    np.testing.assert_array_equal(chk.measurement(3.0, (), 1, F64), [[3.0]])
    np.testing.assert_array_equal(chk.measurement([3.0], (), 1, F64), [[3.0]])
    np.testing.assert_array_equal(chk.measurement([[1.0, 2.0], [3.0, 4.0]], (2,), 2, F64), [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(chk.measurement([1.0, 2.0, 3.0], (3,), 1, F64), [[1.0], [2.0], [3.0]])
    none = chk.measurement(None, (3,), 2, F32)
    assert none.shape == (3, 2)
    assert none.dtype == F32
    assert np.isnan(none).all()
    assert chk.measurement(None, (), 1, F64).shape == (1, 1)
    part = chk.measurement([1.0, None], (), 2, F32)
    assert part.dtype == F32
    assert part[0, 0] == 1.0
    assert np.isnan(part[0, 1])
    assert chk.measurement([1, 2], (), 2, F32).dtype == F32
    assert chk.measurement([[1], [2]], (2,), 1, F32).dtype == F32
    assert chk.measurement([1, 2], (2,), 1, F32).dtype == F32


@pytest.mark.parametrize(
    ("z", "batch", "m", "error", "match"),
    [
        ([1.0, 2.0], (2,), 2, ValueError, r"^z must have shape \(2, 2\) \(NaN or None"),
        ([1.0, 2.0, 3.0], (2,), 1, ValueError, r"^z must have shape \(2, 1\) or \(2,\) \(NaN or None"),
        ([1.0, 2.0, 3.0], (), 2, ValueError, r"^z must have shape \(2,\) \(NaN"),
        ([1.0, np.inf], (), 2, ValueError, r"^z has 1 infinite value\(s\); use NaN or None"),
        (["a", "b"], (), 2, TypeError, "^z must hold real numbers"),
    ],
)
def test_measurement_refuses_naming_the_argument(z, batch, m, error, match):
    with pytest.raises(error, match=match):
        chk.measurement(z, batch, m, F64)


def test_measurements_of_every_documented_shape():
    zs = np.arange(6.0)
    np.testing.assert_array_equal(chk.measurements(zs, (), 1, F64), zs.reshape(6, 1, 1))
    np.testing.assert_array_equal(chk.measurements(zs.reshape(3, 2), (), 2, F64), zs.reshape(3, 1, 2))
    np.testing.assert_array_equal(chk.measurements(zs.reshape(3, 2), (2,), 1, F64), zs.reshape(3, 2, 1))
    np.testing.assert_array_equal(chk.measurements(zs.reshape(3, 2, 1), (2,), 1, F64), zs.reshape(3, 2, 1))
    np.testing.assert_array_equal(chk.measurements(zs.reshape(1, 3, 2), (3,), 2, F64), zs.reshape(1, 3, 2))
    assert chk.measurements([1.0], (), 1, F64).shape == (1, 1, 1)
    out = chk.measurements([1.0, None, 3.0], (), 1, F32)
    assert out.dtype == F32
    assert out.shape == (3, 1, 1)
    assert np.isnan(out[1, 0, 0])
    assert out[2, 0, 0] == 3.0
    slow = chk.measurements([[1.0, 2.0], None], (), 2, F32)  # not one array: item by item
    assert slow.dtype == F32
    assert slow.shape == (2, 1, 2)
    assert slow[0].tolist() == [[1.0, 2.0]]
    assert np.isnan(slow[1]).all()
    single = chk.measurements([[1.0, 2.0, 3.0]], (), 3, F64)
    np.testing.assert_array_equal(single, [[[1.0, 2.0, 3.0]]])
    ragged = chk.measurements([[[1.0], [2.0]], None], (2,), 1, F64)
    assert ragged.shape == (2, 2, 1)
    assert ragged[0].ravel().tolist() == [1.0, 2.0]
    assert np.isnan(ragged[1]).all()


@pytest.mark.parametrize(
    ("zs", "batch", "m", "error", "match"),
    [
        (3.0, (), 1, ValueError, "^zs must be a sequence of measurements, got a scalar$"),
        ([], (), 1, ValueError, "^zs must hold at least one measurement, got none$"),
        (np.zeros((0, 2)), (), 2, ValueError, "^zs must hold at least one measurement, got none$"),
        ([1.0, np.inf, -np.inf], (), 1, ValueError, r"^zs has 2 infinite value\(s\)"),
        (np.zeros((3, 2)), (), 1, ValueError, r"^zs must have shape \(N, 1\) or \(N,\) \(NaN or None"),
        (np.zeros((3, 3)), (2,), 1, ValueError, r"^zs must have shape \(N, 2, 1\) or \(N, 2\) \(NaN or None"),
        (np.zeros((3, 3)), (), 2, ValueError, r"^zs must have shape \(N, 2\) \(NaN or None"),
        (np.zeros((3, 2)), (2,), 2, ValueError, r"^zs must have shape \(N, 2, 2\) \(NaN or None"),
        ({1.0, 2.0}, (), 1, ValueError, "^zs must be a non-empty sequence of measurements"),
        ([[1.0, 2.0], [1.0]], (), 2, ValueError, r"^zs\[1\]: z must have shape \(2,\)"),
        ([[1.0, 2.0], "ab"], (), 2, TypeError, r"^zs\[1\]: z must hold real numbers"),
        (["ab"], (), 1, TypeError, r"^zs\[0\]: z must hold real numbers"),
    ],
)
def test_measurements_refuse_naming_the_argument(zs, batch, m, error, match):
    with pytest.raises(error, match=match):
        chk.measurements(zs, batch, m, F64)


def test_a_sequence_of_none_marks_every_measurement_missing():
    """``measurements`` documents "a sequence whose items are measurements or None": ``[None, None]`` with ``m = 2``
    is two whole missing measurements (as one array it would be NaN of shape (2,), the wrong shape)."""
    out = chk.measurements([None, None], (), 2, F64)
    assert out.shape == (2, 1, 2)
    assert np.isnan(out).all()


def test_control_matrix_shapes_dtype_and_copies():
    b = np.array([1.0, 2.0, 3.0])
    out = chk.control_matrix("B", b, 3, F32)
    assert out.shape == (3, 1)
    assert out.dtype == F32
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out[:, 0], b)
    out[0, 0] = 9.0
    assert b[0] == 1.0
    two = np.asfortranarray(np.arange(6.0).reshape(3, 2))
    out2 = chk.control_matrix("B", two, 3, F64)
    assert out2.flags.c_contiguous
    assert out2.shape == (3, 2)
    np.testing.assert_array_equal(out2, two)
    out2[0, 0] = 9.0
    assert two[0, 0] == 0.0
    for bad, error, match in [
        (np.zeros((2, 1)), ValueError, r"^B must have shape \(3, k\) with k >= 1 \(or \(3,\) when k = 1\), got \(2, 1"),
        (np.zeros((3, 0)), ValueError, r"got \(3, 0\)$"),
        (np.zeros(2), ValueError, r"got \(2, 1\)$"),
        (np.zeros((3, 1, 1)), ValueError, "B must have 1 or 2 dimensions"),
        (np.array([1.0, np.nan, 0.0]), ValueError, "B has 1 non-finite value"),
    ]:  # fmt: skip
        with pytest.raises(error, match=match):
            chk.control_matrix("B", bad, 3, F64)


def test_control_shared_batched_or_scalar():
    np.testing.assert_array_equal(chk.control([1.0, 2.0], (), 2, F64), [[1.0, 2.0]])
    np.testing.assert_array_equal(chk.control([1.0, 2.0], (3,), 2, F64), [[1.0, 2.0]])
    np.testing.assert_array_equal(chk.control(5.0, (), 1, F64), [[5.0]])
    np.testing.assert_array_equal(chk.control([5.0], (), 1, F64), [[5.0]])
    np.testing.assert_array_equal(chk.control(5.0, (3,), 1, F64), [[5.0]])
    batched = chk.control(np.arange(6.0).reshape(3, 2), (3,), 2, F32)
    assert batched.dtype == F32
    assert batched.shape == (3, 2)
    np.testing.assert_array_equal(batched, np.arange(6.0).reshape(3, 2))
    assert chk.control([1, 2], (), 2, F32).dtype == F32
    assert chk.control([[1], [2], [3]], (3,), 1, F32).shape == (3, 1)


@pytest.mark.parametrize(
    ("u", "batch", "k", "match"),
    [
        ([1.0, 2.0, 3.0], (), 2, r"^u must have shape \(2,\) to match B, got \(3,\)$"),
        ([1.0, 2.0, 3.0], (2,), 2, r"^u must have shape \(2,\) or \(2, 2\) to match B, got \(3,\)$"),
        ([1.0, 2.0], (), 1, r"^u must have shape \(1,\) or a scalar to match B, got \(2,\)$"),
        (5.0, (), 2, r"^u must have shape \(2,\) to match B, got \(\)$"),  # a scalar has 0 dimensions
        (np.zeros((3, 2)), (2,), 2, r"^u must have shape \(2,\) or \(2, 2\) to match B, got \(3, 2\)$"),
        (np.zeros((2, 2, 1)), (2,), 2, "u must have 0 or 1 or 2 dimensions"),
        ([1.0, np.nan], (), 2, "u has 1 non-finite value"),
    ],
)
def test_control_refuses_naming_the_argument(u, batch, k, match):
    with pytest.raises(ValueError, match=match):
        chk.control(u, batch, k, F64)


def test_controls_per_step_shared_and_batched_broadcast_together():
    us = np.arange(8.0).reshape(4, 2)
    out = chk.controls(us, (), 2, 4, F32)
    assert out.shape == (4, 1, 2)
    assert out.dtype == F32
    np.testing.assert_array_equal(out[:, 0], us)
    mixed = chk.controls([[1.0, 2.0], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], (3,), 2, 2, F64)
    assert mixed.shape == (2, 3, 2)
    assert mixed.flags.c_contiguous
    np.testing.assert_array_equal(mixed[0], [[1.0, 2.0]] * 3)
    np.testing.assert_array_equal(mixed[1], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert chk.controls([1.0, 2.0], (), 1, 2, F64).shape == (2, 1, 1)
    with pytest.raises(ValueError, match=r"^us must hold one control input per measurement \(4\), got 3$"):
        chk.controls(np.zeros((3, 2)), (), 2, 4, F64)
    with pytest.raises(ValueError, match=r"^us must hold one control input per measurement \(2\), got 3$"):
        chk.controls([[1.0, 2.0]] * 3, (), 2, 2, F64)
    with pytest.raises(ValueError, match=r"^us\[1\] must have shape \(2,\)"):
        chk.controls([[1.0, 2.0], [1.0]], (), 2, 2, F64)


# ---------------------------------------------------------------- _filter_base: the adaptive filters' machinery


def _lms_data(n: int = 40, rows: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n,) if rows is None else (rows, n)
    x = 0.5 * rng.standard_normal(shape)
    return x, 0.3 * x + 0.1 * rng.standard_normal(shape)


def _lms_closed_form(x: np.ndarray, d: np.ndarray, taps: int, mu: float, w0=None):
    """Sample-by-sample LMS on the delay line (zeros before the first sample): the reference the kernel meets."""
    w = np.zeros(taps) if w0 is None else np.array(w0, dtype=float)
    xp = np.concatenate([np.zeros(taps - 1), x])
    y, e, hist = np.empty(len(x)), np.empty(len(x)), np.empty((len(x), taps))
    for k in range(len(x)):
        u = xp[k : k + taps][::-1]
        hist[k] = w
        y[k] = w @ u
        e[k] = d[k] - y[k]
        w = w + mu * e[k] * u
    return y, e, w, hist


def test_lms_defaults_and_run_equal_the_closed_form():
    from noisygrad.dsp import LMS

    x, d = _lms_data()
    f = LMS(3, 0.2)
    assert f.dtype == np.float64
    assert f.record_history is False
    assert f.name == "LMS"
    np.testing.assert_array_equal(f.weights, np.zeros(3))
    assert f.weights.dtype == np.float64
    y, e = f.run(x, d=d)
    ry, re, rw, _ = _lms_closed_form(x, d, 3, 0.2)
    np.testing.assert_allclose(y, ry, rtol=0, atol=1e-14)
    np.testing.assert_allclose(e, re, rtol=0, atol=1e-14)
    np.testing.assert_allclose(f.weights, rw, rtol=0, atol=1e-14)
    assert f.history is None
    assert y.shape == (40,)
    assert f.weights.shape == (3,)
    f.weights[0] = 5.0  # a copy
    np.testing.assert_allclose(f.weights, rw, rtol=0, atol=1e-14)


def test_history_regressors_and_pieces_match_the_closed_form():
    from noisygrad.dsp import LMS, tapped_delay_line

    x, d = _lms_data(50)
    f = LMS(4, 0.1, history=True)
    f.run(x[:17], d=d[:17])
    _y2, _ = f.run(x[17:], d=d[17:])
    _, _, rw, rh = _lms_closed_form(x, d, 4, 0.1)
    np.testing.assert_allclose(f.weights, rw, rtol=0, atol=1e-14)
    np.testing.assert_allclose(f.history, rh[17:], rtol=0, atol=1e-14)
    assert f.history.shape == (33, 4)
    g = LMS(4, 0.1, history=True)
    g.run_regressors(tapped_delay_line(x, 4), d=d)
    np.testing.assert_allclose(g.weights, rw, rtol=0, atol=1e-14)
    np.testing.assert_allclose(g.history, rh, rtol=0, atol=1e-14)


def test_rls_runs_the_delay_line_through_its_regressor_kernel_in_pieces_and_batches():
    from noisygrad.dsp import RLS, tapped_delay_line

    x, d = _lms_data(60, rows=3)
    whole = RLS(4, history=True)
    y, e = whole.run(x, d=d)
    assert y.shape == e.shape == (3, 60)
    assert whole.history.shape == (3, 60, 4)
    assert whole.weights.shape == (3, 4)
    pieces = RLS(4, history=True)
    pieces.run(x[:, :25], d=d[:, :25])
    y2, e2 = pieces.run(x[:, 25:], d=d[:, 25:])
    np.testing.assert_array_equal(y2, y[:, 25:])
    np.testing.assert_array_equal(e2, e[:, 25:])
    np.testing.assert_array_equal(pieces.weights, whole.weights)
    np.testing.assert_array_equal(pieces.history, whole.history[:, 25:])
    for c in range(3):
        one = RLS(4, history=True)
        yc, _ = one.run(x[c], d=d[c])
        np.testing.assert_array_equal(yc, y[c])
        np.testing.assert_array_equal(one.history, whole.history[c])
        reg = RLS(4)
        yr, _ = reg.run_regressors(tapped_delay_line(x[c], 4), d=d[c])
        np.testing.assert_array_equal(yr, y[c])
        np.testing.assert_array_equal(reg.weights, whole.weights[c])


def test_float32_filters_compute_in_float32_whatever_the_input_dtype():
    from noisygrad.dsp import LMS, RLS

    x, d = _lms_data()
    for make in (lambda: LMS(3, 0.2, dtype=np.float32), lambda: RLS(3, dtype=np.float32)):
        a, b = make(), make()
        ya, ea = a.run(x, d=d)
        yb, _eb = b.run(x.astype(np.float32), d=d.astype(np.float32))
        assert ya.dtype == ea.dtype == a.weights.dtype == np.float32
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(a.weights, b.weights)
        assert make().weights.dtype == np.float32
    ints = LMS(2, 0.01)
    y, _ = ints.run([1, 2, 3], d=np.array([1, 0, 1], np.int32))
    assert y.dtype == np.float64
    strided = LMS(3, 0.2)
    ys, _ = strided.run(np.repeat(x, 2)[::2], d=np.repeat(d, 2)[::2])
    np.testing.assert_array_equal(ys, LMS(3, 0.2).run(x, d=d)[0])


@pytest.mark.parametrize(
    ("x", "d", "error", "match"),
    [
        (np.ones(5), np.ones(4), ValueError, r"^x and d must have the same shape, \(N,\) or \(B, N\); got x \(5,\)"),
        (np.ones((2, 5)), np.ones(5), ValueError, "^x and d must have the same shape"),
        (np.ones((1, 2, 5)), np.ones((1, 2, 5)), ValueError, "^x must have 1 or 2 dimensions"),
        (np.ones(5), np.ones((1, 1, 5)), ValueError, "^d must have 1 or 2 dimensions"),
        (np.ones(0), np.ones(0), ValueError, "^x and d must hold at least one sample, got N = 0$"),
        (np.ones((2, 0)), np.ones((2, 0)), ValueError, "^x and d must hold at least one sample"),
        (np.array([1.0, np.nan, 2.0]), np.ones(3), ValueError, "^x has 1 non-finite value"),
        (np.ones(3), np.array([1.0, np.inf, -np.inf]), ValueError, "^d has 2 non-finite values"),
        (np.array([True, False]), np.ones(2), TypeError, "^x must hold real numbers"),
        (np.ones(2), ["a", "b"], TypeError, "^d must hold real numbers"),
        (np.ones(2), [[1.0], [1.0, 2.0]], TypeError, "^d must be an array of real numbers"),
    ],
)
def test_run_refuses_bad_data_naming_the_argument(x, d, error, match):
    from noisygrad.dsp import LMS

    f = LMS(2, 0.1)
    with pytest.raises(error, match=match):
        f.run(x, d=d)
    assert f.state_dict()["batch"] is None  # nothing was started


def test_d_is_keyword_only_in_both_runs():
    from noisygrad.dsp import LMS

    f = LMS(2, 0.1)
    with pytest.raises(TypeError, match=r"takes the desired signal as a keyword: run\(x, d=d\)"):
        f.run(np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match=r"^LMS.run\(\) needs the desired signal as a keyword: run\(x, d=d\)$"):
        f.run(np.ones(3))
    with pytest.raises(TypeError, match=r"run_regressors\(u, d=d\)"):
        f.run_regressors(np.ones((3, 2)), np.ones(3))
    with pytest.raises(TypeError, match=r"needs the desired signal as a keyword: run_regressors\(u, d=d\)"):
        f.run_regressors(np.ones((3, 2)))


@pytest.mark.parametrize(
    ("u", "d", "match"),
    [
        (np.ones((3, 3)), np.ones(3), r"^u must have shape d.shape \+ \(taps,\) = \(3, 2\)"),
        (np.ones((2, 3, 2)), np.ones(3), r"= \(3, 2\) \(one regressor per sample of d\), got u \(2, 3, 2\)"),
        (np.ones(2), np.ones(1), "^u must have 2 or 3 dimensions"),
        (np.ones((1, 1, 3, 2)), np.ones((1, 1, 3)), "^u must have 2 or 3 dimensions"),
        (np.ones((1, 3, 2)), np.ones((1, 1, 3)), "^d must have 1 or 2 dimensions"),
        (np.ones((0, 2)), np.ones(0), "^x and d must hold at least one sample"),
        (np.array([[1.0, np.nan]]), np.ones(1), "^u has 1 non-finite value"),
    ],
)
def test_run_regressors_refuses_bad_data_naming_the_argument(u, d, match):
    from noisygrad.dsp import LMS

    with pytest.raises(ValueError, match=match):
        LMS(2, 0.1).run_regressors(u, d=d)


def test_batched_regressors_give_each_channel_its_own_filter():
    from noisygrad.dsp import LMS, tapped_delay_line

    x, d = _lms_data(30, rows=2)
    u = np.stack([tapped_delay_line(x[c], 3) for c in range(2)])
    f = LMS(3, 0.2)
    y, e = f.run_regressors(u, d=d)
    assert y.shape == e.shape == (2, 30)
    assert f.weights.shape == (2, 3)
    for c in range(2):
        ry, _re, rw, _ = _lms_closed_form(x[c], d[c], 3, 0.2)
        np.testing.assert_allclose(y[c], ry, rtol=0, atol=1e-14)
        np.testing.assert_allclose(f.weights[c], rw, rtol=0, atol=1e-14)


def test_the_stability_warning_uses_each_runs_largest_channel_power():
    from noisygrad.dsp import LMS
    from noisygrad.dsp.filters import StabilityWarning

    u = np.ones((200, 4))  # regressor power 4 per sample: the bound is 2 * 4 / (6 * 4) = 1/3
    with pytest.warns(StabilityWarning):
        LMS(4, 1.0 / 3.0).run_regressors(u, d=np.zeros(200))
    LMS(4, 0.333).run_regressors(u, d=np.zeros(200))
    both = np.stack([0.5 * np.ones(200), np.ones(200)])  # channel powers 1/4 and 1: the larger sets 1/3
    with pytest.warns(StabilityWarning):
        LMS(4, 1.0 / 3.0).run(both, d=np.zeros((2, 200)))
    LMS(4, 0.333).run(both, d=np.zeros((2, 200)))
    with pytest.warns(StabilityWarning):
        LMS(4, 1.0 / 3.0).run_regressors(np.stack([0.5 * u, u]), d=np.zeros((2, 200)))
    LMS(4, 0.333).run_regressors(np.stack([0.5 * u, u]), d=np.zeros((2, 200)))


def test_w0_per_channel_is_a_copy_and_its_batch_is_checked():
    from noisygrad.dsp import LMS

    w0 = np.array([[0.1, 0.2], [0.3, 0.4]])
    f = LMS(2, 0.1, w0=w0)
    w0[0, 0] = 9.0
    np.testing.assert_array_equal(f.weights, [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match=r"^w0 has 2 channels but the data has batch shape \(3,\)$"):
        f.run(np.ones((3, 4)), d=np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"^w0 has 2 channels but the data has batch shape \(\)$"):
        f.run(np.ones(4), d=np.ones(4))
    x, d = _lms_data(20, rows=2)
    f.run(x, d=d)
    for c in range(2):
        own = _lms_closed_form(x[c], d[c], 2, 0.1, w0=[[0.1, 0.2], [0.3, 0.4]][c])[2]
        np.testing.assert_allclose(f.weights[c], own, rtol=0, atol=1e-14)
    shared = LMS(2, 0.1, w0=[0.5, -0.5])
    shared.run(x, d=d)
    np.testing.assert_allclose(shared.weights[1], _lms_closed_form(x[1], d[1], 2, 0.1, w0=[0.5, -0.5])[2], atol=1e-14)
    for bad, error, match in [
        (np.ones(3), ValueError, r"^w0 must have 2 \(taps\) entries on its last axis, got \(3,\)$"),
        (np.ones((2, 3)), ValueError, r"^w0 must have 2 \(taps\) entries on its last axis, got \(2, 3\)$"),
        (np.ones((1, 1, 2)), ValueError, "^w0 must have 1 or 2 dimensions"),
        (np.array([np.nan, 0.0]), ValueError, "^w0 has 1 non-finite value"),
    ]:
        with pytest.raises(error, match=match):
            LMS(2, 0.1, w0=bad)


def test_the_batch_shape_is_fixed_by_the_first_run_until_reset():
    from noisygrad.dsp import LMS

    f = LMS(2, 0.1, w0=[0.5, 0.5])
    f.run(np.ones((2, 3)), d=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^this filter runs batch shape \(2,\) \(set by its first run\), got \(\);"):
        f.run(np.ones(3), d=np.ones(3))
    with pytest.raises(ValueError, match=r"got \(3,\); call reset\(\)"):
        f.run_regressors(np.ones((3, 3, 2)), d=np.ones((3, 3)))
    f.reset()
    np.testing.assert_array_equal(f.weights, [0.5, 0.5])
    assert f.state_dict()["batch"] is None
    assert f.history is None
    f.run(np.ones(3), d=np.ones(3))
    assert f.weights.shape == (2,)


def test_repr_and_settings_name_the_public_settings_only():
    from noisygrad.dsp import LMS, RLS

    assert repr(LMS(3, 0.1)) == "LMS(mu=0.1, taps=3, dtype='float64', record_history=False)"
    f = RLS(3, dtype=np.float32, history=True)
    assert repr(f) == "RLS(lam=0.99, delta=0.01, taps=3, dtype='float32', record_history=True)"
    f.run(np.ones(4), d=np.ones(4))
    assert repr(f) == "RLS(lam=0.99, delta=0.01, taps=3, dtype='float32', record_history=True)"
    assert f.state_dict()["settings"] == {"lam": 0.99, "delta": 0.01, "taps": 3, "dtype": "float32"}
    assert LMS(3, np.float64(0.1)).state_dict()["settings"] == {"mu": 0.1, "taps": 3, "dtype": "float64"}
    assert all(
        type(v) in (int, float, str) for v in LMS(np.int64(3), np.float32(0.5)).state_dict()["settings"].values()
    )


def _saved(make, n=30, rows=None):
    x, d = _lms_data(n, rows=rows)
    f = make()
    f.run(x[..., : n // 2], d=d[..., : n // 2])
    return f, f.state_dict(), x[..., n // 2 :], d[..., n // 2 :]


@pytest.mark.parametrize("rows", [None, 2])
def test_a_state_dict_continues_bit_for_bit_and_is_a_snapshot(rows):
    from noisygrad.dsp import RLS
    from noisygrad.dsp.online_centred import OCNLMS

    for make in (lambda: RLS(3, history=True), lambda: OCNLMS(3, mem=4)):
        f, state, x, d = _saved(make, rows=rows)
        twin = make()
        twin.load_state_dict(state)
        weights = state["weights"].clone()
        y, e = f.run(x, d=d)  # the writer goes on: the saved state stays as it was written
        assert torch.equal(state["weights"], weights)
        y2, e2 = twin.run(x, d=d)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(e, e2)
        np.testing.assert_array_equal(f.weights, twin.weights)
        for value in state.values():  # the loaded arrays are copies of the state's
            if isinstance(value, torch.Tensor):
                value.zero_()
        np.testing.assert_array_equal(twin.weights, f.weights)


def test_a_state_before_any_run_has_only_its_batch_and_loads_as_a_reset():
    from noisygrad.dsp import LMS

    state = LMS(2, 0.1, w0=[0.5, 0.5]).state_dict()
    assert set(state) - set(_state.SCHEMA_KEYS) == {"batch"}
    assert state["batch"] is None
    f = LMS(2, 0.1, w0=[0.5, 0.5])
    f.run(np.ones(5), d=np.zeros(5))
    f.load_state_dict(state)
    np.testing.assert_array_equal(f.weights, [0.5, 0.5])
    assert f.state_dict()["batch"] is None
    f.run(np.ones((2, 5)), d=np.zeros((2, 5)))  # any batch shape again


def test_a_saved_state_loads_whatever_the_history_setting():
    from noisygrad.dsp import LMS

    _, state, x, d = _saved(lambda: LMS(3, 0.1))
    f = LMS(3, 0.1, history=True)
    f.load_state_dict(state)
    f.run(x, d=d)
    assert f.history.shape == (15, 3)


def _restamped(state):
    """``state`` with its checksum recomputed: an entry edited by hand that the checksum alone would not catch."""
    out = dict(state)
    out["checksum"] = _state._checksum(out)
    return out


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda s: s.pop("batch"), ValueError, r"^state must have a 'batch' entry \(from state_dict\(\)\), got keys"),
        (lambda s: s.pop("tail"), ValueError, r"^state must have keys \['batch', 'tail', 'weights'\] for LMS"),
        (lambda s: s.update(extra=torch.ones(1)), ValueError, r"^state must have keys \['batch', 'tail', 'weights'\]"),
        (lambda s: s.update(batch=(2, 1)), ValueError, r"^state\['batch'\] must be \(\) or \(B,\) with B > 0"),
        (lambda s: s.update(batch=[2]), ValueError, r"^state\['batch'\] must be \(\) or \(B,\) with B > 0"),
        (lambda s: s.update(batch=(2.0,)), ValueError, r"^state\['batch'\] must be \(\) or \(B,\) with B > 0"),
        (lambda s: s.update(batch=(0,)), ValueError, r"^state\['batch'\] must be \(\) or \(B,\) with B > 0"),
        (lambda s: s.update(batch=(-2,)), ValueError, r"^state\['batch'\] must be \(\) or \(B,\) with B > 0"),
        (lambda s: s.update(batch=(2,)), ValueError, r"^state\['weights'\] must have shape \(2, 3\) for batch \(2,\)"),
        (lambda s: s.update(weights=s["weights"].float()), TypeError, r"^state\['weights'\] must have dtype float64"),
        (lambda s: s.update(weights=s["weights"][0]), ValueError, r"^state\['weights'\] must have 2 dimensions"),
        (lambda s: s.update(weights=torch.ones(2, 3, dtype=torch.float64)), ValueError,
         r"^state\['weights'\] must have shape \(1, 3\) for batch \(\), got \(2, 3\)$"),
        (lambda s: s.update(tail=torch.ones(1, 3, dtype=torch.float64)), ValueError,
         r"^state\['tail'\] must have shape \(1, 2\) for batch \(\), got \(1, 3\)$"),
        (lambda s: s.update(weights=torch.full((1, 3), math.nan, dtype=torch.float64)), ValueError,
         r"^state\['weights'\] has 3 non-finite values"),
    ],
)  # fmt: skip
def test_a_corrupted_state_is_refused_naming_the_entry_and_leaves_the_filter_as_it_was(edit, error, match):
    from noisygrad.dsp import LMS

    f, state, _x, _d = _saved(lambda: LMS(3, 0.1))
    before = f.state_dict()
    bad = dict(state)
    edit(bad)
    with pytest.raises(error, match=match):
        f.load_state_dict(_restamped(bad))
    after = f.state_dict()
    assert after["checksum"] == before["checksum"]


def test_an_edited_entry_with_its_old_checksum_is_refused_last():
    from noisygrad.dsp import LMS

    _f, state, _, _ = _saved(lambda: LMS(3, 0.1))
    bad = dict(state)
    bad["weights"] = state["weights"] + 1.0
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        LMS(3, 0.1).load_state_dict(bad)
    with pytest.raises(CheckpointError, match=r"other settings \(mu: saved 0.1, here 0.2\)"):
        LMS(3, 0.2).load_state_dict(state)
    with pytest.raises(CheckpointError, match=r"other settings \(dtype: saved 'float64', here 'float32'\)"):
        LMS(3, 0.1, dtype=np.float32).load_state_dict(state)


def test_integer_state_entries_are_checked_and_copied():
    from noisygrad.dsp.online_centred import OCNLMS

    f, state, x, d = _saved(lambda: OCNLMS(3, mem=4))
    for value, error, match in [
        (state["position"].to(torch.int32), TypeError, r"^state\['position'\] must have dtype int64"),
        (state["position"][None], ValueError, r"^state\['position'\] must have 1 dimensions, got shape \(1, 2\)$"),
        (torch.zeros(3, dtype=torch.int64), ValueError, r"^state\['position'\] must have shape \(2,\) for batch"),
    ]:
        with pytest.raises(error, match=match):
            OCNLMS(3, mem=4).load_state_dict(_restamped({**state, "position": value}))
    twin = OCNLMS(3, mem=4)
    twin.load_state_dict(state)
    state["position"].fill_(0)
    np.testing.assert_array_equal(twin.run(x, d=d)[0], f.run(x, d=d)[0])


def test_a_hand_assembled_state_loads_with_a_legacy_warning():
    from noisygrad.dsp import LMS

    f, state, x, d = _saved(lambda: LMS(3, 0.1))
    bare = {k: v for k, v in state.items() if k not in _state.SCHEMA_KEYS}
    twin = LMS(3, 0.1)
    with pytest.warns(LegacyCheckpointWarning):
        twin.load_state_dict(bare)
    np.testing.assert_array_equal(twin.run(x, d=d)[0], f.run(x, d=d)[0])
    with pytest.warns(LegacyCheckpointWarning):
        LMS(3, 0.1).load_state_dict({"batch": None})
    with pytest.raises(
        ValueError, match=r"^state with batch None must have only that entry, got \['batch', 'weights'\]"
    ):
        LMS(3, 0.1).load_state_dict({"batch": None, "weights": state["weights"]})


def test_a_divergence_names_the_filter_and_the_entry():
    from noisygrad.dsp import RLS

    f = RLS(2, lam=0.5)
    with pytest.raises(FloatingPointError, match=r"^RLS (weights|P) became NaN or Inf"):
        f.run(np.full(4000, 1e150), d=np.full(4000, 1e150))


def test_a_stack_of_numeric_strings_is_refused_like_a_single_matrix():
    """``matrix``/``covariance`` refuse ``[["1", "0"], ["0", "1"]]`` (``as_array``: must hold real numbers), and so
    does ``stack`` (``Fs``, ``Qs``, ``Hs``, ``Rs``, ``Bs`` of ``batch_filter``), though numpy would convert them."""
    with pytest.raises(TypeError, match="must hold real numbers"):
        chk.matrix("F", [["1", "0"], ["0", "1"]], (2, 2), F64)
    with pytest.raises(TypeError, match="must hold real numbers"):
        chk.stack("Fs", [["1", "0"], ["0", "1"]], (2, 2), 1, F64)


def test_a_control_of_numeric_strings_is_refused():
    """A control input of numeric strings is refused like a matrix of them (numpy would convert ``["1", "2"]``)."""
    with pytest.raises(TypeError, match="must hold real numbers"):
        chk.control(["1", "2"], (), 2, F64)


def test_measurements_of_numeric_strings_or_booleans_are_refused_and_none_inside_one_is_missing():
    with pytest.raises(TypeError, match=r"^zs\[0\]: z must hold real numbers"):
        chk.measurements([["1", "2"]], (), 2, F64)
    with pytest.raises(TypeError, match=r"^zs\[1\]: z must hold real numbers"):
        chk.measurements([None, ["1", "2"]], (), 2, F64)
    with pytest.raises(TypeError, match=r"^z must hold real numbers"):
        chk.measurement([True, False], (), 2, F64)
    with pytest.raises(TypeError, match=r"^Fs must hold real numbers"):
        chk.stack("Fs", [[[True, False], [False, True]]], (2, 2), 1, F64)
    partial = chk.measurements([[1.0, None], None, [np.float32(2.0), 3]], (), 2, F64)
    np.testing.assert_array_equal(partial[:, 0], [[1.0, np.nan], [np.nan, np.nan], [2.0, 3.0]])
    assert chk.measurements([[1.0, None]], (), 2, F64).shape == (1, 1, 2)  # the fast path takes None inside


def test_a_one_channel_batch_round_trips():
    from noisygrad.dsp import LMS

    f, state, x, d = _saved(lambda: LMS(3, 0.1), rows=1)
    assert state["batch"] == (1,)
    twin = LMS(3, 0.1)
    twin.load_state_dict(state)
    np.testing.assert_array_equal(twin.run(x, d=d)[0], f.run(x, d=d)[0])
    assert twin.weights.shape == (1, 3)


def test_a_hand_assembled_state_of_numpy_arrays_is_copied_on_load():
    from noisygrad.dsp.online_centred import OCNLMS

    f, state, x, d = _saved(lambda: OCNLMS(3, mem=4))
    bare = {k: (v.numpy().copy() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    bare = {k: v for k, v in bare.items() if k not in _state.SCHEMA_KEYS}
    twin = OCNLMS(3, mem=4)
    with pytest.warns(LegacyCheckpointWarning):
        twin.load_state_dict(bare)
    bare["weights"][:] = 0.0  # the caller's arrays, float and integer, are not the filter's
    bare["position"][:] = 0
    np.testing.assert_array_equal(twin.run(x, d=d)[0], f.run(x, d=d)[0])


def test_a_delay_line_of_huge_finite_samples_is_no_divergence():
    from noisygrad.dsp import NLMS

    f = NLMS(3, 0.5)  # d = 0 and w = 0: e = 0, the weights stay 0; the delay line's sum overflows, its entries do not
    y, e = f.run(np.full(3, 1e308), d=np.zeros(3))
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(e, 0.0)
    np.testing.assert_array_equal(f.weights, 0.0)


def test_the_delay_line_continues_across_regressor_blocks_and_calls():
    from noisygrad.dsp import RLS, tapped_delay_line

    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 9100))  # 64 channels x 4 taps: the delay line is cut into blocks of 4096 samples
    d = 0.5 * x + 0.1 * rng.standard_normal(x.shape)
    f = RLS(4, history=True)
    f.run(x[:, :9000], d=d[:, :9000])
    first = f.history
    y, _ = f.run(x[:, 9000:], d=d[:, 9000:])
    g = RLS(4, history=True)
    u = np.stack([tapped_delay_line(x[c], 4) for c in range(64)])
    ref, _ = g.run_regressors(u, d=d)
    np.testing.assert_array_equal(y, ref[:, 9000:])
    np.testing.assert_array_equal(f.weights, g.weights)
    np.testing.assert_array_equal(first, g.history[:, :9000])  # written through the block buffers
    assert np.isfinite(first).all()


def test_the_lms_delay_line_kernel_continues_across_its_signal_blocks():
    from noisygrad.dsp import LMS, tapped_delay_line

    rng = np.random.default_rng(4)
    n = 70_000  # past one kernel block of 65536 samples per channel
    x = 0.3 * rng.standard_normal((2, n))
    d = 0.5 * x + 0.05 * rng.standard_normal(x.shape)
    f = LMS(3, 0.05, history=True)
    y, e = f.run(x, d=d)
    g = LMS(3, 0.05, history=True)
    ry, re = g.run_regressors(np.stack([tapped_delay_line(x[c], 3) for c in range(2)]), d=d)
    np.testing.assert_allclose(y, ry, rtol=0, atol=1e-12)
    np.testing.assert_allclose(e, re, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.history, g.history, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.weights, g.weights, rtol=0, atol=1e-12)
    assert np.isfinite(f.history).all()


def test_none_inside_a_matrix_of_a_stack_is_refused_as_not_a_number():
    with pytest.raises(TypeError, match=r"^Fs must hold real numbers"):
        chk.stack("Fs", [[1.0, None], [0.0, 1.0]], (2, 2), 1, F64)


@pytest.mark.parametrize("z", [[None, "2"], np.array([1.0, "2"], dtype=object), [None, True]])
def test_strings_and_booleans_beside_none_are_refused(z):
    with pytest.raises(TypeError, match=r"^z must hold real numbers"):
        chk.measurement(z, (), 2, F64)
    with pytest.raises(TypeError, match=r"^zs\[0\]: z must hold real numbers"):
        chk.measurements([z], (), 2, F64)


def test_measurements_with_none_inside_take_the_one_array_path():
    """Only a whole ``None`` item sends a sequence item by item: a wrong shape is then reported for the array."""
    with pytest.raises(ValueError, match=r"^zs must have shape \(N, 2\)"):
        chk.measurements([[1.0, None, 2.0]], (), 2, F64)


def test_measurements_are_a_copy_in_the_filters_dtype():
    zs = np.arange(6.0).reshape(3, 2)
    for dtype in (F64, F32):
        out = chk.measurements(zs, (), 2, dtype)
        assert out.dtype == dtype
        assert not np.shares_memory(out, zs)
    fs = np.eye(2)[None]
    assert not np.shares_memory(chk.stack("Fs", fs, (2, 2), 1, F64), fs)
