"""Trained priors as files: the parameters of a network and the config that built it.

A prior folder holds ``params.npz`` (one array per parameter path, ``/``-joined; bfloat16
arrays are stored as their uint16 bit patterns with the dtype in ``dtypes.json``, since numpy
has no bfloat16) and ``prior.json`` (what it is, the config section that builds the network,
and how it was made). The package ships its priors in ``shipped/<name>/``
(:func:`shipped_prior`); commands load those unless told otherwise.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from ggtalker_jax.errors import InputError
from ggtalker_jax.outputs import (
    atomic_file,
    is_partial,
    output_dir,
    refuse_foreign,
    write_text_atomic,
)

PARAMS_FILE = "params.npz"
INFO_FILE = "prior.json"
FORMAT = "ggtalker-prior-1"


def shipped_prior(name: str) -> Path:
    """Folder of the prior ``name`` shipped in the package (e.g. ``"e2v"``, ``"e2v_tiny"``).

    Raises:
      InputError: no such shipped prior (names the ones there are).
    """
    shipped = Path(__file__).parent / "shipped"
    folder = shipped / name
    if not (folder / INFO_FILE).is_file():
        known = sorted(p.name for p in shipped.iterdir() if (p / INFO_FILE).is_file())
        raise InputError(
            f"no shipped prior {name!r}; the package ships: {', '.join(known) or 'none'}"
        )
    return folder


def _flat(state: nnx.State) -> dict[str, np.ndarray]:
    flat = {}
    for path, value in nnx.to_flat_state(state):
        flat["/".join(str(p) for p in path)] = np.asarray(value.get_value())
    return flat


def save_prior(
    folder: str | os.PathLike,
    state: nnx.State,
    info: dict,
    dtype: str = "float32",
    force: bool = False,
    keep_float32: tuple[str, ...] = (),
) -> Path:
    """Write a prior folder (complete or not at all: each file by temporary name + rename,
    ``prior.json`` last, so a folder without it is not a prior).

    Args:
      folder: output folder (created; an existing prior there needs ``force``).
      state: the network's parameters (``nnx.state(module, nnx.Param)``).
      info: JSON-able description: ``kind`` (e.g. ``"e2v"``), ``config`` (the section that
        builds the network) and provenance (command, steps, data, metrics).
      dtype: ``float32`` or ``bfloat16`` storage for floating-point parameters.
      force: replace an existing prior.
      keep_float32: parameter-path prefixes stored in float32 whatever ``dtype`` says
        (dataset statistics: a few floats whose rounding would shift every output).

    Returns:
      The folder.
    """
    if dtype not in ("float32", "bfloat16"):
        raise InputError(f"prior dtype {dtype!r}: choose float32 or bfloat16")
    out = output_dir(folder, what="prior folder")
    if out.is_dir():
        # Only a prior's own files may be replaced; anything else is the user's.
        owned = lambda p: p.name in (PARAMS_FILE, INFO_FILE) or is_partial(p)
        refuse_foreign(out, owned, "a prior's own files")
        if (out / INFO_FILE).exists() and not force:
            raise InputError(f"{out}: already holds a prior; pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    arrays, dtypes = {}, {}
    for key, value in _flat(state).items():
        exact = key.startswith(keep_float32) if keep_float32 else False
        if np.issubdtype(value.dtype, np.floating) and dtype == "bfloat16" and not exact:
            value = np.asarray(jnp.asarray(value, jnp.bfloat16)).view(np.uint16)
            dtypes[key] = "bfloat16"
        arrays[key] = value
    (out / INFO_FILE).unlink(missing_ok=True)
    with atomic_file(out / PARAMS_FILE) as tmp:
        np.savez_compressed(tmp, **arrays)
    payload = {"format": FORMAT, "dtypes": dtypes, **info}
    write_text_atomic(out / INFO_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return out


def read_prior_info(folder: str | os.PathLike) -> dict:
    """``prior.json`` of a prior folder.

    Raises:
      InputError: no prior there, or an unreadable or foreign ``prior.json``.
    """
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise InputError(
            f"{folder}: not a prior folder (no {INFO_FILE}); pass a folder "
            "written by `ggtalker e2v export`"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e}); export the prior again") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise InputError(f"{path}: not a ggtalker prior (format {info.get('format')!r})")
    return info


def read_prior_of_kind(folder: str | os.PathLike | None, kind: str, default: str):
    """``(folder, prior.json)`` of a prior of ``kind`` (``"e2v"``, ``"a2e"``); ``folder=None``
    is the shipped prior ``default``.

    Raises:
      InputError: no prior there, or a prior of another kind.
    """
    folder = shipped_prior(default) if folder is None else folder
    info = read_prior_info(folder)
    if info.get("kind") != kind:
        raise InputError(
            f"{folder}: holds a {info.get('kind')!r} prior, not an {kind.upper()} prior"
        )
    return folder, info


def load_prior_params(folder: str | os.PathLike, template: nnx.State) -> nnx.State:
    """The parameters of a prior folder, in the structure and dtypes of ``template``.

    Raises:
      InputError: a corrupt file, or parameters that do not match the network the template
        describes (missing, extra or differently shaped), naming the first mismatch.
    """
    info = read_prior_info(folder)
    path = Path(folder) / PARAMS_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path}: unreadable ({e}); export the prior again") from None
    want = _flat(template)
    if set(stored) != set(want):
        missing = sorted(set(want) - set(stored))
        extra = sorted(set(stored) - set(want))
        raise InputError(
            f"{path}: parameters do not match the network (missing {missing[:3]}, extra "
            f"{extra[:3]}); the prior was made with another config"
        )
    leaves = []
    for path_tuple, variable in nnx.to_flat_state(template):
        key = "/".join(str(p) for p in path_tuple)
        value = stored[key]
        if info["dtypes"].get(key) == "bfloat16":
            value = np.asarray(jnp.asarray(value.view(jnp.bfloat16), jnp.float32))
        if value.shape != want[key].shape:
            raise InputError(
                f"{path}: parameter {key} has shape {value.shape}, the network wants "
                f"{want[key].shape}; the prior was made with another config"
            )
        leaves.append((path_tuple, variable.replace(jnp.asarray(value, want[key].dtype))))
    return nnx.from_flat_state(leaves)
