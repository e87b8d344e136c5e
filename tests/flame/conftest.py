"""Fixtures of the FLAME tests: a small random model in the converted FLAME layout (fresh per
test), files in FLAME's own layouts built from it, and the helpers that damage them."""

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from ggtalker_jax.errors import InputError


def make_toy_flame(
    rng: np.random.Generator, n_v: int = 60, n_shape: int = 6, n_exp: int = 4
) -> dict[str, np.ndarray]:
    """Random FLAME-layout arrays: 5 joints (root, neck, jaw, eyes), a third of the vertices
    with zero jaw weight, landmarks on random faces."""
    faces = np.stack([rng.permutation(n_v)[:3] for _ in range(2 * n_v)]).astype(np.int32)
    weights = rng.dirichlet(np.ones(5), n_v)
    weights[: n_v // 3, 2] = 0.0
    weights /= weights.sum(1, keepdims=True)
    posedirs = rng.normal(size=(n_v, 3, 36)) * 1e-3
    posedirs[: n_v // 3, :, 9:18] = 0.0  # jaw correctives only where the jaw has weight
    return {
        "v_template": rng.normal(size=(n_v, 3)) * 0.1,
        "f": faces,
        "shapedirs": rng.normal(size=(n_v, 3, n_shape + n_exp)) * 1e-2,
        "posedirs": posedirs,
        "J_regressor": rng.dirichlet(np.ones(n_v) * 0.3, 5),
        "weights": weights,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "n_shape": np.int32(n_shape),
        "n_exp": np.int32(n_exp),
        "lmk_faces_idx": rng.integers(0, 2 * n_v, 10).astype(np.int32),
        "lmk_bary_coords": rng.dirichlet(np.ones(3), 10),
    }


@pytest.fixture
def toy_flame(rng):
    return make_toy_flame(rng)


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


def write_flame_pkl(
    path: Path, arrays: dict, sparse_format: str = "csc", protocol: int = 2
) -> None:
    """A pickle laid out like FLAME's generic_model.pkl: chumpy arrays, sparse J_regressor,
    uint32 root parent, 300/100 shapedirs split (protocol 2 unless told, as FLAME's Python 2
    files)."""
    n_v = arrays["v_template"].shape[0]
    shapedirs = np.zeros((n_v, 3, 400))
    n_shape = int(arrays["n_shape"])
    shapedirs[..., :n_shape] = arrays["shapedirs"][..., :n_shape]
    shapedirs[..., 300 : 300 + int(arrays["n_exp"])] = arrays["shapedirs"][..., n_shape:]
    sparse = getattr(scipy.sparse, f"{sparse_format}_matrix")
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
        pickle.dump(pkl, fh, protocol=protocol)


def refused(call, *args, match: str) -> str:
    """Run ``call(*args)``; expect one InputError line that matches ``match``."""
    with pytest.raises(InputError, match=match) as info:
        call(*args)
    assert "\n" not in str(info.value), str(info.value)
    return str(info.value)


@pytest.fixture
def flame_pkl(tmp_path, toy_flame, chumpy_module) -> Path:
    """A valid pickle in FLAME's layout, for tests that damage it or add parts to it."""
    path = tmp_path / "generic_model.pkl"
    write_flame_pkl(path, toy_flame)
    return path


@pytest.fixture
def flame_files():
    """The file builders and checkers above, for tests in other files of this folder."""
    return types.SimpleNamespace(
        write_flame_pkl=write_flame_pkl,
        refused=refused,
        as_chumpy=as_chumpy,
    )
