"""The safe unpickler: real-layout pickles of every protocol load without chumpy; code,
huge allocations, deep nesting and damaged bytes are refused with one InputError line
(each test builds its hostile file itself)."""

import copyreg
import os
import pickle
import re
import sys

import numpy as np
import pytest
import scipy.sparse

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.loader import convert_flame, load_flame, read_model_arrays
from ggtalker_jax.flame.safe_pickle import (
    MAX_ARRAY_VALUES,
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_HASHED,
    MAX_ITEMS,
    MAX_OPCODES,
    read_pickle_safely,
)


@pytest.mark.parametrize("sparse_format", ["csc", "csr", "coo"])
def test_reads_flame_pickle_with_chumpy_and_sparse(
    tmp_path, toy_flame, chumpy_module, monkeypatch, sparse_format, flame_files
):
    path = tmp_path / "generic_model.pkl"
    flame_files.write_flame_pkl(path, toy_flame, sparse_format)
    # Loading must not need chumpy: remove the stand-in module first.
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    monkeypatch.delitem(sys.modules, "chumpy")
    model = load_flame(path, n_shape=int(toy_flame["n_shape"]), n_exp=int(toy_flame["n_exp"]))
    n_shape = int(toy_flame["n_shape"])
    np.testing.assert_allclose(model.v_template, toy_flame["v_template"], rtol=1e-6)
    np.testing.assert_allclose(model.j_regressor, toy_flame["J_regressor"], rtol=1e-6)
    np.testing.assert_allclose(model.shapedirs, toy_flame["shapedirs"][..., :n_shape], rtol=1e-6)
    np.testing.assert_allclose(model.exprdirs, toy_flame["shapedirs"][..., n_shape:], rtol=1e-6)
    assert model.parents == (-1, 0, 1, 1, 1)
    full = load_flame(path)
    assert (full.n_shape, full.n_exp) == (300, 100)


def test_convert_round_trip_and_force(tmp_path, toy_flame, chumpy_module, flame_files):
    pkl = tmp_path / "generic_model.pkl"
    flame_files.write_flame_pkl(pkl, toy_flame)
    obj = tmp_path / "head_template.obj"
    n_f = toy_flame["f"].shape[0]
    obj.write_text(
        "".join(f"vt {i / n_f:.4f} 0.5\n" for i in range(n_f))
        + "".join(
            f"f {a + 1}/{i + 1} {b + 1}/{i + 1} {c + 1}/{i + 1}\n"
            for i, (a, b, c) in enumerate(toy_flame["f"])
        )
    )
    out = tmp_path / "flame.npz"
    model = convert_flame(pkl, out, uv=obj)
    again = load_flame(out)
    np.testing.assert_array_equal(again.faces, model.faces)
    np.testing.assert_allclose(again.exprdirs, model.exprdirs)
    assert again.vt.shape == (n_f, 2) and again.ft.shape == (n_f, 3)
    with pytest.raises(InputError, match="already exists; pass --force"):
        convert_flame(pkl, out)
    convert_flame(pkl, out, force=True)
    # The plain .pkl has no landmarks; the step that needs them says where they come from.
    with pytest.raises(InputError, match="no landmarks.*--landmarks"):
        again.require("landmarks")


def test_refuses_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"v_template": np.zeros((3, 3)), "payload": Evil()}, fh, protocol=2)
    with pytest.raises(InputError, match=r"evil.pkl: refused to load (posix|os)\.system"):
        load_flame(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["builtins.eval", "subprocess.Popen", "numpy.load"])
def test_refuses_other_callables(tmp_path, payload):
    module, name = payload.rsplit(".", 1)
    # GLOBAL opcode naming the callable, then REDUCE: exactly what a malicious file holds.
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x04\x00\x00\x00testq\x00\x85R."
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    with pytest.raises(InputError, match=f"refused to load {module}.{name}"):
        load_flame(path)


def test_bad_files_give_one_line_errors(tmp_path, toy_flame):
    with pytest.raises(InputError, match="missing.pkl: no such file"):
        load_flame(tmp_path / "missing.pkl")
    not_flame = tmp_path / "not_flame.pkl"
    not_flame.write_bytes(pickle.dumps({"weights": np.zeros((3, 5))}, protocol=2))
    with pytest.raises(InputError, match=r"not a FLAME model \(missing keys \['v_template'"):
        load_flame(not_flame)
    a_list = tmp_path / "list.pkl"
    a_list.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(InputError, match="holds a list, not a FLAME dict"):
        load_flame(a_list)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x02this is not a pickle")
    with pytest.raises(InputError, match="garbage.pkl: not a readable pickle"):
        load_flame(garbage)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="corrupt.npz: not a readable .npz"):
        load_flame(corrupt)
    wrong = dict(toy_flame, weights=np.ones((7, 5)))
    np.savez(tmp_path / "wrong.npz", **wrong)
    with pytest.raises(InputError, match=r"'weights' has shape \(7, 5\), expected \[60, 5\]"):
        load_flame(tmp_path / "wrong.npz")
    nan = dict(toy_flame)
    nan["v_template"] = toy_flame["v_template"].copy()
    nan["v_template"][3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    with pytest.raises(InputError, match="'v_template' holds NaN"):
        load_flame(tmp_path / "nan.npz")
    with pytest.raises(InputError, match="unknown FLAME file type '.txt'"):
        (tmp_path / "model.txt").write_text("x")
        read_model_arrays(tmp_path / "model.txt")


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_reads_every_pickle_protocol(tmp_path, toy_flame, chumpy_module, protocol, flame_files):
    # Protocols 0 and 1 rebuild chumpy and scipy objects through copyreg._reconstructor, the
    # one use of it the allow-list keeps; protocol 5 rebuilds arrays through _frombuffer.
    path = tmp_path / "generic_model.pkl"
    flame_files.write_flame_pkl(path, toy_flame, protocol=protocol)
    assert (b"_reconstructor" in path.read_bytes()) == (protocol < 2)
    model = load_flame(path)
    np.testing.assert_allclose(model.v_template, toy_flame["v_template"], rtol=1e-6)
    np.testing.assert_allclose(model.j_regressor, toy_flame["J_regressor"], rtol=1e-6)


def test_reads_numpy_1_module_names(tmp_path, toy_flame, flame_pkl):
    # FLAME's own files name numpy.core.multiarray, which numpy 2 renamed numpy._core.
    data = flame_pkl.read_bytes()
    assert b"numpy._core.multiarray\n_reconstruct" in data
    flame_pkl.write_bytes(data.replace(b"numpy._core.", b"numpy.core."))
    model = load_flame(flame_pkl)
    np.testing.assert_allclose(model.weights, toy_flame["weights"], rtol=1e-6)


# --- 1. damaged pickles --------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["cut", "random", "empty"])
def test_damaged_pickle_is_one_line(tmp_path, flame_pkl, rng, damage, flame_files):
    data = flame_pkl.read_bytes()
    bad = {
        "cut": data[: int(rng.integers(1, len(data)))],
        # Without a STOP byte no prefix of these bytes is a whole pickle.
        "random": b"\x80\x02" + rng.bytes(int(rng.integers(1, 4096))).replace(b".", b"N"),
        "empty": b"",
    }[damage]
    path = tmp_path / "bad.pkl"
    path.write_bytes(bad)
    flame_files.refused(load_flame, path, match=r"bad.pkl: (not a readable pickle|refused to load)")


@pytest.mark.parametrize(
    "data,error",
    [
        (b"\x80\x02h\x05.", "UnpicklingError: Memo value not found at index 5"),
        (b"\x80\x02K\x01K\x02a.", "AttributeError: 'int' object has no attribute 'append'"),
        (b"\x80\x02}]K\x01s.", "TypeError: unhashable type: 'list'"),
        (b"\x80\x09N.", "ValueError: unsupported pickle protocol: 9"),
        (b"\x80\x02X\x01\x00\x00\x00\xff.", "UnicodeDecodeError"),
        (b"L" + b"9" * 5000 + b"L\n.", "ValueError: Exceeds the limit (4300 digits)"),
        (b"\x80\x02J\x01\x00.", "ValueError: not enough data in stream to read int4"),
        (b"\x80\x02.", "ValueError: STOP at byte 2 pops more than the stack holds"),
        (b"\x80\x02(K\x01e.", "ValueError: APPENDS at byte 5 pops more than the stack holds"),
    ],
    ids=["memo", "append", "key", "protocol", "utf8", "digits", "int4", "stop", "appends"],
)
def test_unpickler_errors_of_any_type_are_one_line(tmp_path, data, error, flame_files):
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    flame_files.refused(
        load_flame, path, match=rf"bad.pkl: not a readable pickle \({re.escape(error)}"
    )


@pytest.mark.parametrize(
    "module,name",
    [
        ("numpy.nonexistent", "_reconstruct"),
        ("numpy.testing", "_reconstruct"),
        ("numpy.lib.format", "scalar"),
        ("numpy._core.multiarray", "_frombuffer"),
    ],
)
def test_numpy_rebuilders_only_from_the_modules_numpy_pickles_name(
    tmp_path, module, name, flame_files
):
    path = tmp_path / "bad.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00.")
    flame_files.refused(
        load_flame, path, match=rf"bad.pkl: refused to load {re.escape(module)}\.{name}"
    )


# --- 3. huge allocations -------------------------------------------------------------------


class _Reduces:
    """Pickles as the given ``(callable, args[, state])``: what a crafted file holds."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's own rebuilders, as its pickles name them
_SCALAR = np.float64(0).__reduce__()[0]


@pytest.mark.parametrize(
    "payload,message",
    [
        (
            _Reduces(_RECONSTRUCT, (np.ndarray, (10**6, 10**6), b"b")),
            r"numpy._reconstruct with shape \(1000000, 1000000\): numpy's pickles start",
        ),
        (
            _Reduces(copyreg._reconstructor, (np.ndarray, np.ndarray, (10**5, 10**5))),
            "copyreg._reconstructor of something other than a chumpy or scipy object",
        ),
        (_Reduces(np.ndarray, ((10**5, 10**5),)), r"numpy.ndarray\(...\): it would allocate"),
        (_Reduces(_SCALAR, (np.dtype("V2000000000"),)), r"numpy.scalar of dtype\('V2000000000'\)"),
        (
            _Reduces(
                _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10**12,), np.dtype("f8"), 0, b"")
            ),
            rf"an array of shape \(1000000000000,\): over {MAX_ARRAY_VALUES} values",
        ),
        (
            _Reduces(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10**12,), np.dtype([]), 0, b"")),
            r"an array of \[\]: FLAME files hold numbers",
        ),
        (
            scipy.sparse.csc_matrix((10**6, 10**6)),
            r"sparse 'J_regressor' declares shape \(1000000, 1000000\), 1000000000000 values "
            rf"when dense, over the limit of {MAX_ARRAY_VALUES}",
        ),
        (
            scipy.sparse.csr_matrix((100000, 100000)),
            r"sparse 'J_regressor' declares shape \(100000, 100000\), 10000000000 values",
        ),
    ],
    ids=["reconstruct", "reconstructor", "ndarray", "scalar", "setstate", "void", "csc", "csr"],
)
def test_refuses_huge_allocations_before_allocating(tmp_path, payload, message, flame_files):
    path = tmp_path / "huge.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": payload}, protocol=2))
    flame_files.refused(load_flame, path, match=f"huge.pkl: (refused to load )?{message}")


@pytest.mark.parametrize(
    "data,message",
    [
        (
            b"\x80\x02]r" + (10**8).to_bytes(4, "little") + b".",
            "refused to load a memo index of 100000000 at byte 3",
        ),
        (
            b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"xx.",
            "not a readable pickle .*expected 1099511627776 bytes in a bytes8",
        ),
        (
            b"\x80\x04\x95" + (2**40).to_bytes(8, "little") + b"N.",
            "refused to load a frame of 1099511627776 bytes at byte 2",
        ),
        (
            b"\x80\x02" + b"N0" * (MAX_OPCODES // 2 + 1) + b"N.",
            f"refused to load a pickle of more than {MAX_OPCODES} opcodes",
        ),
    ],
    ids=["memo", "bytes8", "frame", "opcodes"],
)
def test_refuses_declared_sizes_beyond_the_file(tmp_path, data, message, flame_files):
    # The C unpickler would allocate a memo table of 2 * 10**8 slots or a 1 TiB buffer first.
    path = tmp_path / "huge.pkl"
    path.write_bytes(data)
    flame_files.refused(load_flame, path, match=f"huge.pkl: {message}")


def _colliding(keys: list[int], container: str) -> bytes:
    """A pickle of a dict or set of ``keys``, written opcode by opcode: building the object
    to pickle it would take as long as loading it."""
    if container == "dict":  # EMPTY_DICT MARK key None key None ... SETITEMS
        return b"\x80\x02}(" + b"".join(pickle.dumps(k, 2)[2:-1] + b"N" for k in keys) + b"u."
    return b"\x80\x02c__builtin__\nset\n" + pickle.dumps(keys, 2)[2:-1] + b"\x85R."  # set(list)


@pytest.mark.parametrize("container", ["dict", "set"])
def test_refuses_keys_that_share_one_hash(tmp_path, rng, container, flame_files):
    # Multiples of 2**61 - 1 all hash to 0, so each insert scans every earlier key: 20 000
    # of them took 5 s to unpickle, a million would take hours.
    keys = [int(k) * (2**61 - 1) for k in rng.choice(10**9, 2 * MAX_HASHED, replace=False)]
    path = tmp_path / "collide.pkl"
    path.write_bytes(_colliding(keys[: MAX_HASHED // 10], container))
    if container == "dict":  # unpickled whole; then refused for its keys
        flame_files.refused(read_pickle_safely, path, match="collide.pkl: has a key of type int")
    else:
        assert read_pickle_safely(path) == set(keys[: MAX_HASHED // 10])
    path.write_bytes(_colliding(keys, container))
    message = "a pickle of more than" if container == "dict" else "sets and dicts of more than"
    flame_files.refused(
        load_flame, path, match=f"collide.pkl: refused to load {message} {MAX_HASHED}"
    )


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("indices", 10**6, r"an index is not an integer in \[0, \d+\)"),
        ("indptr", 2**31 - 1, r"indptr is not non-decreasing offsets from 0 to \d+"),
    ],
)
def test_refuses_sparse_entries_outside_the_matrix(
    tmp_path, toy_flame, rng, field, value, message, flame_files
):
    sparse = scipy.sparse.csc_matrix(toy_flame["J_regressor"])
    getattr(sparse, field)[int(rng.integers(1, len(getattr(sparse, field))))] = value
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({**toy_flame, "J_regressor": sparse}, protocol=2))
    flame_files.refused(
        load_flame, path, match=f"model.pkl: sparse 'J_regressor' is corrupt \\({message}"
    )


# --- 4. deep nesting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "depth,message",
    [
        (100_000, f"refused to load a pickle of more than {MAX_CONTAINERS} tuples"),
        (1_000, f"'<root>' is nested more than {MAX_DEPTH} levels deep"),
    ],
)
def test_refuses_deep_nesting(tmp_path, depth, message, flame_files):
    # EMPTY_LIST ``depth`` times, then APPEND each list into the one below it.
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    flame_files.refused(load_flame, path, match=f"deep.pkl: {message}")


def test_refuses_nested_tuples_before_hashing_them(tmp_path, flame_files):
    # A dict key of 10**6 nested 1-tuples: hashing it recursed past the end of the C stack and
    # killed the process (a segfault, not an exception), so it must be refused unbuilt.
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02}" + b")" + b"\x85" * 10**6 + b"Ns.")
    flame_files.refused(
        load_flame, path, match=f"deep.pkl: refused to load .*{MAX_CONTAINERS} tuples"
    )


def test_refuses_shared_references_that_expand_exponentially(tmp_path, rng, flame_files):
    nested = []
    for _ in range(int(rng.integers(20, MAX_DEPTH - 2))):
        nested = [nested, nested]  # pickled once, memo references after: a small file
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps({"v_template": nested}, protocol=2))
    assert path.stat().st_size < 1000
    flame_files.refused(load_flame, path, match=f"shared.pkl: holds more than {MAX_ITEMS} items")


# --- 5. arrays that are not FLAME-shaped ---------------------------------------------------
