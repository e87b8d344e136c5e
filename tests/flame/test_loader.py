"""The chumpy-free FLAME loader: real-layout pickles, npz round trips, refusal of code."""

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.loader import convert_flame, load_flame, read_model_arrays


class _Ch:
    """Stand-in for chumpy.ch.Ch: pickles as that class with chumpy's state dict."""


@pytest.fixture
def chumpy_module(monkeypatch):
    """Make a class importable as ``chumpy.ch.Ch`` while pickling (no real chumpy here)."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    _Ch.__module__, _Ch.__qualname__, _Ch.__name__ = "chumpy.ch", "Ch", "Ch"
    ch.Ch = _Ch
    chumpy.ch = ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    return ch


def as_chumpy(array):
    obj = _Ch.__new__(_Ch)
    # chumpy's Ch keeps its data in ``x`` next to bookkeeping fields.
    obj.__dict__.update(
        {"x": np.asarray(array), "_dirty_vars": set(), "_itr": None, "_depends_on_deps": {}}
    )
    return obj


def write_flame_pkl(path: Path, arrays: dict, sparse_format: str = "csc") -> None:
    """A pickle laid out like FLAME's generic_model.pkl: chumpy arrays, sparse J_regressor,
    uint32 root parent, 300/100 shapedirs split (protocol 2, as FLAME's Python 2 files)."""
    n_v = arrays["v_template"].shape[0]
    shapedirs = np.zeros((n_v, 3, 400))
    n_shape = int(arrays["n_shape"])
    shapedirs[..., :n_shape] = arrays["shapedirs"][..., :n_shape]
    shapedirs[..., 300 : 300 + int(arrays["n_exp"])] = arrays["shapedirs"][..., n_shape:]
    sparse = scipy.sparse.csc_matrix if sparse_format == "csc" else scipy.sparse.csr_matrix
    pkl = {
        "v_template": as_chumpy(arrays["v_template"]),
        "f": arrays["f"].astype(np.uint32),
        "shapedirs": as_chumpy(shapedirs),
        "posedirs": arrays["posedirs"],
        "J_regressor": sparse(arrays["J_regressor"]),
        "weights": as_chumpy(arrays["weights"]),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.uint32),
        "J": np.zeros((5, 3)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    with open(path, "wb") as fh:
        pickle.dump(pkl, fh, protocol=2)


@pytest.mark.parametrize("sparse_format", ["csc", "csr"])
def test_reads_flame_pickle_with_chumpy_and_sparse(
    tmp_path, toy_flame, chumpy_module, monkeypatch, sparse_format
):
    path = tmp_path / "generic_model.pkl"
    write_flame_pkl(path, toy_flame, sparse_format)
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


def test_convert_round_trip_and_force(tmp_path, toy_flame, chumpy_module):
    pkl = tmp_path / "generic_model.pkl"
    write_flame_pkl(pkl, toy_flame)
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
