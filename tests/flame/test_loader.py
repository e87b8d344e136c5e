"""The FLAME loader beyond the pickle: arrays that are not FLAME-shaped, the parts a .pkl
lacks (UV .obj, landmarks, masks) checked on their own and against the model, damaged .npz
models, and the CLI's one line (each test builds its file itself)."""

import io
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from ggtalker_jax.flame.loader import convert_flame, load_flame
from ggtalker_jax.flame.parts import read_landmark_embedding, read_masks, read_obj_uv
from ggtalker_jax.flame.safe_pickle import MAX_ARRAY_VALUES


def write_obj(path: Path, arrays: dict, n_faces: int | None = None) -> None:
    """A UV template for ``arrays``: one vt per face corner, the first ``n_faces`` faces."""
    faces = arrays["f"][:n_faces]
    vt = "".join(f"vt {i / (3 * len(faces)):.5f} 0.5\n" for i in range(3 * len(faces)))
    ft = "".join(
        f"f {a + 1}/{3 * i + 1} {b + 1}/{3 * i + 2} {c + 1}/{3 * i + 3}\n"
        for i, (a, b, c) in enumerate(faces)
    )
    path.write_text(vt + ft)


def damage_member(path: Path, member: str, rng: np.random.Generator) -> None:
    """Overwrite bytes in the last quarter of a zip member's compressed data (past the .npy
    header, so inflating fails or the CRC no longer matches)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    # The member's local header: 30 bytes, its name and extra field lengths at bytes 26, 28.
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    at = start + int(rng.integers(3 * info.compress_size // 4, info.compress_size - 8))
    data[at : at + 8] = bytes(255 - b for b in data[at : at + 8])
    path.write_bytes(bytes(data))


def npy_bytes(shape: tuple, descr: str, data: bytes) -> bytes:
    """A .npy file whose header declares ``shape`` but which holds only ``data``."""
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        fh, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return fh.getvalue() + data


def _with(key, value):
    return lambda arrays, rng: {**arrays, key: value(arrays, rng)}


def _out_of_range_face(arrays, rng):
    f = arrays["f"].copy()
    f[rng.integers(len(f)), rng.integers(3)] = len(arrays["v_template"])
    return f


def _one_inf(arrays, rng):
    shapedirs = arrays["shapedirs"].copy()
    shapedirs.flat[rng.integers(shapedirs.size)] = np.inf
    return shapedirs


def _kintree(joint, parent):
    def change(arrays, rng):
        kintree = arrays["kintree_table"].copy()
        kintree[0, joint] = parent
        return kintree

    return change


@pytest.mark.parametrize(
    "suffix,change,message",
    [
        (".pkl", _with("v_template", lambda a, r: None), "'v_template' is of type NoneType"),
        (
            ".pkl",
            _with("v_template", lambda a, r: [[0.0] * 3, [0.0]]),
            "'v_template' is of type list",
        ),
        (
            ".npz",
            _with("v_template", lambda a, r: np.array([["a"] * 3] * 60)),
            r"'v_template' holds <U1 values",
        ),
        (".pkl", _with("f", lambda a, r: np.array([None, 1])), "'f' is an array of Python objects"),
        (
            ".npz",
            _with("v_template", lambda a, r: a["v_template"].reshape(-1)),
            r"'v_template' has shape \(180,\), expected \[V, 3\]",
        ),
        (".npz", _with("f", _out_of_range_face), r"'f' holds index 60, outside \[0, 60\)"),
        (
            ".npz",
            _with("f", lambda a, r: a["f"] + 0.5),
            r"'f' holds \d+\.5, expected integer indices",
        ),
        (
            ".npz",
            _with("kintree_table", _kintree(2, 3)),
            "kintree_table gives joint 2 the parent 3",
        ),
        (
            ".npz",
            _with("kintree_table", _kintree(3, -1)),
            "kintree_table gives joint 3 the parent -1",
        ),
        (
            ".npz",
            _with("kintree_table", lambda a, r: np.zeros((2, 0), int)),
            r"'kintree_table' has shape \(2, 0\)",
        ),
        (
            ".npz",
            _with("shapedirs", _one_inf),
            "'shapedirs' holds NaN/Inf",
        ),
        (".npz", _with("n_shape", lambda a, r: np.array([3, 3])), r"'n_shape' is \[3, 3\]"),
        (
            ".npz",
            _with("lmk_faces_idx", lambda a, r: a["lmk_faces_idx"] + 120),
            r"'lmk_faces_idx' holds index \d+, outside \[0, 120\)",
        ),
        (
            ".npz",
            _with("lmk_bary_coords", lambda a, r: a["lmk_bary_coords"][:, :2]),
            r"'lmk_bary_coords' has shape \(10, 2\), expected \[10, 3\]",
        ),
    ],
    ids=[
        "none",
        "ragged",
        "strings",
        "objects",
        "ndim",
        "face",
        "float-face",
        "parent-order",
        "two-roots",
        "no-joints",
        "inf",
        "n_shape",
        "landmark-face",
        "barycentrics",
    ],
)
def test_arrays_that_are_not_flame_shaped(
    tmp_path, toy_flame, rng, suffix, change, message, flame_files
):
    arrays = change(toy_flame, rng)
    path = tmp_path / f"model{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        path.write_bytes(pickle.dumps(arrays, protocol=2))
    flame_files.refused(load_flame, path, match=f"model{suffix}: {message}")


# --- 6. UV templates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line,message",
    [
        (b"vt abc 0.5", "expected 'vt U V' with two finite numbers"),
        (b"vt 0.5", "expected 'vt U V' with two finite numbers"),
        (b"vt inf 0.5", "expected 'vt U V' with two finite numbers"),
        (b"f 1/x 2/2 3/3", "a texture index is not an integer"),
        (b"f 1/1 2/2", "a face needs 3 or more corners"),
        (b"f 1 2 3", "face without texture indices"),
        (b"f 1/0 2/2 3/3", "texture index 0 is not among the {n} 'vt' lines before it"),
        (b"f 1/{n1} 2/2 3/3", "texture index {n1} is not among the {n} 'vt' lines before it"),
        (b"f 1/-{n1} 2/2 3/3", "texture index -{n1} is not among the {n} 'vt' lines before it"),
        (b"vt 0.5 0.5 \xff", "not UTF-8 text"),
    ],
)
def test_malformed_obj_line_names_file_line_and_text(tmp_path, rng, line, message, flame_files):
    n = int(rng.integers(3, 30))
    lines = [f"vt {u:.4f} {v:.4f}".encode() for u, v in rng.random((n, 2))] + [b"f 1/1 2/2 3/3"]
    bad = line.replace(b"{n1}", str(n + 1).encode())
    path = tmp_path / "uv.obj"
    path.write_bytes(b"\n".join([*lines, bad, b"f 1/1 2/2 3/3"]) + b"\n")
    expected = re.escape(message.format(n=n, n1=n + 1))
    text = flame_files.refused(read_obj_uv, path, match=f"uv.obj:{n + 2}: {expected}")
    assert (repr(bad + b"\n") if b"\xff" in bad else repr(bad.decode())) in text


def test_obj_negative_indices_count_back_from_the_latest_vt(tmp_path, rng):
    n = int(rng.integers(3, 30))
    vt = "".join(f"vt {u:.4f} {v:.4f}\n" for u, v in rng.random((n + 2, 2)))
    lines = vt.splitlines(keepends=True)
    path = tmp_path / "uv.obj"
    path.write_text(
        "".join(lines[:n]) + "f 1/-3 2/-2 3/-1\n" + "".join(lines[n:]) + "f 1/-1 2/2 3/-3\n"
    )
    _, ft = read_obj_uv(path)
    assert ft.tolist() == [[n - 3, n - 2, n - 1], [n + 1, 1, n - 1]]


def test_convert_refuses_uvs_for_another_mesh(tmp_path, toy_flame, flame_pkl, rng, flame_files):
    n_f = len(toy_flame["f"])
    fewer = n_f - int(rng.integers(1, 10))
    write_obj(tmp_path / "uv.obj", toy_flame, n_faces=fewer)
    flame_files.refused(
        lambda: convert_flame(flame_pkl, tmp_path / "out.npz", uv=tmp_path / "uv.obj"),
        match=f"uv.obj: {fewer} UV triangles but the model has {n_f} faces; use the "
        "head_template.obj of this FLAME version",
    )


# --- 7. landmark embeddings and masks ------------------------------------------------------


def _landmarks(rng: np.random.Generator, n_faces: int, n: int = 68) -> dict[str, np.ndarray]:
    return {
        "lmk_faces_idx": rng.integers(0, n_faces, n),
        "lmk_bary_coords": rng.dirichlet(np.ones(3), n),
    }


def test_reads_a_deca_style_landmark_npy(tmp_path, toy_flame, rng):
    # np.save of a dict: a pickled 0-d object array, read through the safe unpickler.
    lmk = _landmarks(rng, len(toy_flame["f"]))
    path = tmp_path / "landmark_embedding.npy"
    deca = {
        "full_lmk_faces_idx": lmk["lmk_faces_idx"][None],
        "full_lmk_bary_coords": lmk["lmk_bary_coords"][None],
    }
    np.save(path, {**deca, "static_lmk_faces_idx": np.zeros(51, int)}, allow_pickle=True)
    faces, bary = read_landmark_embedding(path)
    np.testing.assert_array_equal(faces, lmk["lmk_faces_idx"])
    np.testing.assert_allclose(bary, lmk["lmk_bary_coords"], rtol=1e-6)


@pytest.mark.parametrize("damage", ["cut", "random", "inflate"])
def test_damaged_landmark_npz(tmp_path, toy_flame, rng, damage, flame_files):
    path = tmp_path / "lmk.npz"
    np.savez_compressed(path, **_landmarks(rng, len(toy_flame["f"])))
    if damage == "inflate":
        damage_member(path, "lmk_bary_coords.npy", rng)
    else:
        data = path.read_bytes()
        path.write_bytes(
            data[: int(rng.integers(1, len(data)))] if damage == "cut" else rng.bytes(len(data))
        )
    flame_files.refused(read_landmark_embedding, path, match="lmk.npz: not a readable .npz")


def test_landmark_file_without_the_keys(tmp_path, toy_flame, rng, flame_files):
    lmk = _landmarks(rng, len(toy_flame["f"]))
    np.savez(tmp_path / "lmk.npz", faces=lmk["lmk_faces_idx"], bary=lmk["lmk_bary_coords"])
    flame_files.refused(
        read_landmark_embedding,
        tmp_path / "lmk.npz",
        match=r"lmk.npz: no landmark faces/barycentrics: expected one of the key pairs .*, "
        r"found \['bary', 'faces'\]",
    )
    np.save(tmp_path / "lmk.npy", {"faces": lmk["lmk_faces_idx"]}, allow_pickle=True)
    flame_files.refused(
        read_landmark_embedding,
        tmp_path / "lmk.npy",
        match=r"lmk.npy: no landmark faces/barycentrics: .*found \['faces'\]",
    )
    np.save(tmp_path / "plain.npy", lmk["lmk_bary_coords"])
    flame_files.refused(
        read_landmark_embedding,
        tmp_path / "plain.npy",
        match="plain.npy: no landmark .*found a ndarray",
    )


def test_refuses_a_landmark_npy_that_runs_code(tmp_path, flame_files):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    np.save(tmp_path / "lmk.npy", {"lmk_faces_idx": Evil()}, allow_pickle=True)
    flame_files.refused(
        read_landmark_embedding,
        tmp_path / "lmk.npy",
        match=r"lmk.npy: refused to load (posix|os)\.system",
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda lmk, n_f: {**lmk, "lmk_bary_coords": lmk["lmk_bary_coords"][:, :2]},
            r"'lmk_bary_coords' has shape \(68, 2\), expected \[68, 3\] barycentrics",
        ),
        (
            lambda lmk, n_f: {**lmk, "lmk_faces_idx": lmk["lmk_faces_idx"] + 0.5},
            r"'lmk_faces_idx' holds \d+\.5, expected integer indices",
        ),
        (
            lambda lmk, n_f: {**lmk, "lmk_faces_idx": lmk["lmk_faces_idx"] + n_f},
            r"'landmark faces' holds index \d+, outside \[0, {n_f}\); use the landmark "
            "embedding made for this FLAME version",
        ),
    ],
    ids=["barycentrics", "float-faces", "out-of-range"],
)
def test_landmarks_that_do_not_fit_the_model(
    tmp_path, toy_flame, flame_pkl, rng, change, message, flame_files
):
    n_f = len(toy_flame["f"])
    path = tmp_path / "lmk.pkl"
    path.write_bytes(pickle.dumps(change(_landmarks(rng, n_f), n_f), protocol=2))
    flame_files.refused(
        lambda: convert_flame(flame_pkl, tmp_path / "out.npz", landmarks=path),
        match=f"lmk.pkl: {message.format(n_f=n_f)}",
    )


def test_converts_masks_including_an_empty_region(tmp_path, toy_flame, flame_pkl, rng):
    # Python 3 writes an empty array's bytes in a protocol-2 pickle as a call of ``bytes``.
    n_v = len(toy_flame["v_template"])
    masks = {"lips": rng.choice(n_v, 12, replace=False), "none": np.zeros(0, np.int64)}
    (tmp_path / "masks.pkl").write_bytes(pickle.dumps(masks, protocol=2))
    model = convert_flame(flame_pkl, tmp_path / "out.npz", masks=tmp_path / "masks.pkl")
    np.testing.assert_array_equal(load_flame(tmp_path / "out.npz").masks["lips"], masks["lips"])
    assert model.masks["none"].shape == (0,)


@pytest.mark.parametrize(
    "values,message",
    [
        (
            lambda n_v, rng: rng.integers(0, n_v, 20) + n_v,
            r"'mask_lips' holds index \d+, outside \[0, {n_v}\); use the FLAME_masks.pkl made "
            "for this FLAME version",
        ),
        (
            lambda n_v, rng: np.arange(5) - 1,
            r"'mask_lips' holds index -1, outside \[0, 2147483647\)",
        ),
        (
            lambda n_v, rng: rng.integers(0, n_v, 20) + 0.5,
            r"'mask_lips' holds \d+\.5, expected integer indices; is this FLAME_masks.pkl\?",
        ),
        (
            lambda n_v, rng: np.array(["lip"] * 3),
            "refused to load an array of <U3: FLAME files hold numbers",
        ),
        (lambda n_v, rng: {"nested": 1}, r"'mask_lips' is of type dict"),
    ],
    ids=["out-of-range", "negative", "floats", "strings", "dict"],
)
def test_masks_that_do_not_fit_the_model(
    tmp_path, toy_flame, flame_pkl, rng, values, message, flame_files
):
    n_v = len(toy_flame["v_template"])
    path = tmp_path / "masks.pkl"
    path.write_bytes(pickle.dumps({"face": np.arange(n_v), "lips": values(n_v, rng)}, protocol=2))
    flame_files.refused(
        lambda: convert_flame(flame_pkl, tmp_path / "out.npz", masks=path),
        match=f"masks.pkl: {message.format(n_v=n_v)}",
    )


def test_masks_file_that_is_not_a_dict(tmp_path, flame_files):
    (tmp_path / "masks.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    flame_files.refused(
        read_masks, tmp_path / "masks.pkl", match="masks.pkl: expected a dict of region"
    )


# --- 8. damaged .npz models ----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["cut", "inflate"])
def test_damaged_npz_model(tmp_path, toy_flame, rng, damage, flame_files):
    path = tmp_path / "model.npz"
    np.savez_compressed(path, **toy_flame)
    if damage == "inflate":
        damage_member(path, "shapedirs.npy", rng)
    else:
        data = path.read_bytes()
        path.write_bytes(data[: int(rng.integers(1, len(data)))])
    flame_files.refused(load_flame, path, match="model.npz: not a readable .npz")


@pytest.mark.parametrize(
    "npy,message",
    [
        (
            npy_bytes((10**6, 10**6), "<f8", b"\0" * 64),
            r"declares shape \(1000000, 1000000\), 1000000000000 values, over the limit of "
            f"{MAX_ARRAY_VALUES}",
        ),
        (
            npy_bytes((1000, 3), "<f8", b"\0" * 16),
            r"declares \(1000, 3\) float64 \(24000 bytes\) but holds 16 bytes; the file is "
            "truncated",
        ),
        (
            npy_bytes((3,), "|O", pickle.dumps([1, 2, 3])),
            "holds Python objects; FLAME arrays hold numbers",
        ),
    ],
    ids=["huge", "truncated", "objects"],
)
def test_npz_member_checked_before_it_is_read(tmp_path, toy_flame, npy, message, flame_files):
    path = tmp_path / "model.npz"
    np.savez(path, **{k: v for k, v in toy_flame.items() if k != "v_template"})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("v_template.npy", npy)
    flame_files.refused(load_flame, path, match=rf"model.npz \(v_template.npy\): {message}")


def test_npz_model_missing_keys(tmp_path, toy_flame, rng, flame_files):
    required = ["posedirs", "weights", "kintree_table"]  # in the order the error lists them
    gone = [
        k for k, drop in zip(required, rng.permutation([True, True, False]), strict=True) if drop
    ]
    np.savez(tmp_path / "model.npz", **{k: v for k, v in toy_flame.items() if k not in gone})
    flame_files.refused(
        load_flame,
        tmp_path / "model.npz",
        match=re.escape(f"model.npz: not a FLAME model (missing keys {gone})"),
    )


def test_cli_prints_a_hostile_model_as_one_line(tmp_path, capsys):
    from ggtalker_jax.cli import main  # here, so the loader tests need only the loader

    path = tmp_path / "model.pkl"
    path.write_bytes(
        pickle.dumps({"J_regressor": scipy.sparse.csc_matrix((10**6, 10**6))}, protocol=2)
    )
    assert main(["flame", "convert", str(path), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(f"ggtalker: error: {path}: sparse 'J_regressor' declares")
        and "\n" not in err
    )
    assert not (tmp_path / "out.npz").exists()
