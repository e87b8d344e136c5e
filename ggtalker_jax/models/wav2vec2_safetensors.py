"""A numpy reader for ``.safetensors`` files (what Hugging Face's ``save_pretrained`` writes).

Format: 8 bytes little-endian ``u64`` header length ``N``; ``N`` bytes of UTF-8 JSON,
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__":
{...}}``; then the data buffer, offsets relative to its start, every tensor little-endian and
C-ordered. F32, F16 and BF16 tensors are read (all become float32); neither torch nor the
safetensors package is needed, and no file content is ever executed.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from ggtalker_jax.errors import InputError

__all__ = ["SafetensorsFile"]

_MAX_HEADER = 100 * 2**20  # a real header is a few kB per hundred tensors
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2}
_ITEMSIZE |= {"F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_FIX = "re-download it, or re-save the model with transformers' save_pretrained"


class SafetensorsFile:
    """The tensors of one ``.safetensors`` file, read on demand with numpy.

    The header is parsed and every entry checked against the file's size when it is opened,
    so a truncated download fails here, naming the file, not later as a shape error.

    Raises:
      InputError: a missing, truncated or corrupt file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file; {_FIX}")
        size = self.path.stat().st_size
        corrupt = f"{self.path}: not a valid safetensors file"
        with self.path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"{corrupt} ({size} bytes, shorter than its header); {_FIX}")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, _MAX_HEADER):
                raise InputError(
                    f"{corrupt} (header of {n} bytes in a {size}-byte file: truncated?); {_FIX}"
                )
            try:
                header = json.loads(f.read(n).decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise InputError(
                    f"{corrupt} (its JSON header does not parse: {e}); {_FIX}"
                ) from None
        if not isinstance(header, dict):
            raise InputError(f"{corrupt} (its header is not a JSON object); {_FIX}")
        header.pop("__metadata__", None)
        self._start, self._data_size = 8 + n, size - 8 - n
        self._entries = {name: self._checked(name, entry) for name, entry in header.items()}

    def _checked(self, name: str, entry) -> tuple[str, tuple[int, ...], int, int]:
        """``(dtype, shape, begin, end)`` of one header entry, checked against the file."""
        try:
            dtype, shape = str(entry["dtype"]), tuple(int(s) for s in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{self.path}: tensor {name!r} has a malformed header entry; {_FIX}"
            ) from None
        if not 0 <= begin <= end <= self._data_size:
            raise InputError(
                f"{self.path}: tensor {name!r} ends at data byte {end} but the file holds "
                f"{self._data_size} (truncated download?); {_FIX}"
            )
        if dtype in _ITEMSIZE and end - begin != _ITEMSIZE[dtype] * int(np.prod(shape)):
            raise InputError(
                f"{self.path}: tensor {name!r} ({dtype}{list(shape)}) spans {end - begin} "
                f"bytes, not {_ITEMSIZE[dtype] * int(np.prod(shape))}; {_FIX}"
            )
        return dtype, shape, begin, end

    def keys(self) -> list[str]:
        """The tensor names, in header order."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        """Tensor ``name``'s shape, from the header (nothing is read)."""
        return self._entries[name][1]

    def read(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a float32 numpy array (F32, F16 or BF16 in the file)."""
        dtype, shape, begin, end = self._entries[name]
        with self.path.open("rb") as f:
            f.seek(self._start + begin)
            raw = f.read(end - begin)
        if dtype == "F32":
            return np.frombuffer(raw, "<f4").astype(np.float32).reshape(shape)
        if dtype == "F16":
            return np.frombuffer(raw, "<f2").astype(np.float32).reshape(shape)
        if dtype == "BF16":  # the top 16 bits of a float32
            bits = np.frombuffer(raw, "<u2").astype(np.uint32) << np.uint32(16)
            return bits.view(np.float32).reshape(shape)
        raise InputError(
            f"{self.path}: tensor {name!r} is {dtype}; only F32, F16 and BF16 weights load"
        )
