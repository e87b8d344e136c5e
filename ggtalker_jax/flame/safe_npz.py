"""``.npy`` and ``.npz`` files of the FLAME family, each array's header checked against the
file's size and :data:`~ggtalker_jax.flame.safe_pickle.MAX_ARRAY_VALUES` before its data is
read; a pickled ``.npy`` (``np.save`` of a dict) goes through the safe unpickler."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError
from ggtalker_jax.flame.safe_pickle import (
    MAX_ARRAY_VALUES,
    MAX_FILE_VALUES,
    parse_guard,
    unpickle_bytes,
)

# ---------------------------------------------------------------------------------------------
# .npy and .npz, each array's header checked before its data is read
# ---------------------------------------------------------------------------------------------

_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_npy_safely(fh, size: int, source: str, objects: bool = False):
    """One ``.npy`` stream of ``size`` bytes, read after its header is checked.

    Returns the array or, for an object array when ``objects`` is set (``np.save`` of a
    dict), the object read through the safe unpickler.
    """
    version = np.lib.format.read_magic(fh)
    if version not in _NPY_HEADERS:
        raise InputError(f"{source}: .npy version {version} is not supported; save it again")
    shape, _, dtype = _NPY_HEADERS[version](fh)
    if dtype.hasobject:
        if not objects:
            raise InputError(f"{source}: holds Python objects; FLAME arrays hold numbers")
        return unpickle_bytes(fh.read(size - fh.tell()), source)
    values, available = math.prod(shape), size - fh.tell()
    if any(d < 0 for d in shape):
        raise InputError(f"{source}: declares shape {shape}; the file is damaged")
    if values > MAX_ARRAY_VALUES:
        raise InputError(
            f"{source}: declares shape {shape}, {values} values, over the limit of "
            f"{MAX_ARRAY_VALUES} for one FLAME array; the file is damaged or hostile"
        )
    if values * dtype.itemsize > available:
        raise InputError(
            f"{source}: declares {shape} {dtype} ({values * dtype.itemsize} bytes) but holds "
            f"{available} bytes; the file is truncated, so write or download it again"
        )
    fh.seek(0)
    return np.lib.format.read_array(fh, allow_pickle=False)


def read_npz_safely(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, each checked (:func:`read_npy_safely`) before it is read."""
    arrays, values = {}, 0
    with parse_guard(str(path), ".npz"), zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as fh:
                array = read_npy_safely(fh, info.file_size, f"{path} ({info.filename})")
            values += array.size
            if values > MAX_FILE_VALUES:
                raise InputError(
                    f"{path}: its arrays hold more than {MAX_FILE_VALUES} values together; "
                    "the file is damaged or not a FLAME file"
                )
            arrays[info.filename.removesuffix(".npy")] = array
    return arrays


def read_pickle_safely_npy(path: str | os.PathLike) -> object:
    """A ``.npy`` file: its array, or the object a pickled ``.npy`` holds (``np.save`` of a
    dict, as DECA's landmark embedding), read through :class:`SafeFlameUnpickler`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with parse_guard(str(path), ".npy"), open(path, "rb") as fh:
        return read_npy_safely(fh, os.fstat(fh.fileno()).st_size, str(path), objects=True)
