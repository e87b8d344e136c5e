"""Reading FLAME-family pickles and ``.npz`` files without running code or unbounded work.

FLAME's ``generic_model.pkl`` is a Python 2 pickle holding chumpy arrays and a scipy sparse
``J_regressor``. Unpickling runs whatever callables the file names, so a model file from
the internet could run code; and even a pickle that names no callable can make the unpickler
allocate or loop without bound. A FLAME-family pickle is therefore read behind three guards:

1. :func:`_check_opcodes` walks every opcode with :mod:`pickletools` before the C unpickler
   runs. genops checks each declared length against the bytes left; the walk refuses memo
   indices no writer produces, and more opcodes, containers or dict/set entries than the
   limits below.
   The C unpickler allocates a declared length and grows its memo table to any index before
   reading on, nesting deep enough overflows the C stack when a tuple is hashed, and keys
   crafted to share one hash make every dict insert scan all the others.
2. :class:`SafeFlameUnpickler` resolves only an explicit allow-list, and each entry checks its
   arguments: numpy's rebuilders may make only the empty array numpy's pickles start from,
   which is then filled from the file's bytes with its dtype and size checked; copyreg's
   reconstructor may make only the inert stand-ins that chumpy and scipy-sparse classes map
   to, which record their state and run nothing. Anything else is refused before it runs.
3. :class:`_Plain` turns the stand-ins into numpy arrays within limits on nesting, item count
   and array sizes; a sparse matrix's dense size is checked before it is allocated.

Since only the allow-list runs, any exception raised while a file is parsed was caused by
the file, and it becomes one :class:`InputError` line naming the file. ``.npz`` files hold no
pickles; each member's ``.npy`` header is checked against the member's size and the limits
below before its data is read.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct as _np_reconstruct
from numpy._core.multiarray import scalar as _np_scalar
from numpy._core.numeric import _frombuffer as _np_frombuffer

from ggtalker_jax.errors import InputError

# What one file may make the reader do. FLAME's largest array, shapedirs, holds
# 5023 * 3 * 400 = 6.0M values, and a pickle in its layout has ~500 opcodes, 76 containers
# and a few dozen dict entries; each limit leaves 10x or more room, yet stops a hostile file
# within a fraction of a second.
MAX_ARRAY_VALUES = 2**26  # one array, dense: 512 MiB as float64
MAX_FILE_VALUES = 2**27  # all arrays of one file together
MAX_OPCODES = 100_000  # opcodes of one pickle (the walk below takes ~1 us each)
MAX_CONTAINERS = 10_000  # tuples, lists, dicts and sets one pickle builds (bounds nesting)
MAX_HASHED = 10_000  # dict entries and set items one pickle inserts
MAX_DEPTH = 32  # nesting of dicts, lists and chumpy objects (FLAME files nest 3 deep)
MAX_ITEMS = 100_000  # items converted, a shared one counted each time it appears
_NUMBER_KINDS = "biuf"  # numpy dtype kinds of booleans, integers and floats


class RefusedPickle(pickle.UnpicklingError):
    """The pickle asks for something no FLAME file needs; nothing of it was run."""


def _refuse(what: str):
    """Raise :class:`RefusedPickle`; ``what`` must already be short (:func:`brief`)."""
    raise RefusedPickle(f"refused to load {what}")


def brief(value, limit: int = 160) -> str:
    """``value`` as text on one line of at most ``limit`` characters (a file's text can be
    anything, and an error must stay one line)."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# The allow-list: stand-ins, and numpy/copyreg rebuilders that check their arguments
# ---------------------------------------------------------------------------------------------


class _ChumpyStandIn:
    """Records the state of a chumpy object; its array is under ``x``."""

    state = None

    def __setstate__(self, state):
        self.state = state


class _SparseStandIn:
    """Records the state of a scipy sparse matrix (csc/csr/coo)."""

    format = "csc"
    state = None

    def __setstate__(self, state):
        self.state = state


class _CsrStandIn(_SparseStandIn):
    format = "csr"


class _CooStandIn(_SparseStandIn):
    format = "coo"


_SPARSE_STAND_INS = {"csc": _SparseStandIn, "csr": _CsrStandIn, "coo": _CooStandIn}


class _PickledArray(np.ndarray):
    """The array numpy's pickles rebuild; its state is checked before numpy allocates it."""

    def __setstate__(self, state):
        shape, dtype = state[-4], state[-3]  # [version,] shape, dtype, is_fortran, data
        if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMBER_KINDS + "O":
            _refuse(f"an array of {brief(dtype, 60)}: FLAME files hold numbers")
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            _refuse(f"an array of shape {brief(repr(shape), 60)}: not a tuple of sizes")
        if math.prod(shape) > MAX_ARRAY_VALUES:
            _refuse(f"an array of shape {brief(shape, 60)}: over {MAX_ARRAY_VALUES} values")
        super().__setstate__(state)


def _ndarray(*args):
    """What ``numpy.ndarray`` resolves to: only a marker for :func:`_reconstruct`, since
    calling ndarray itself allocates whatever shape the file names."""
    _refuse("numpy.ndarray(...): it would allocate any shape the file asks for")


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct``, which numpy's pickles call as ``(ndarray, (0,), b'b')``
    and then fill from the state (:class:`_PickledArray`)."""
    if subtype is not _ndarray or shape != (0,):
        shown = brief(repr(shape), 60)
        _refuse(f"numpy._reconstruct with shape {shown}: numpy's pickles start from (0,)")
    return _np_reconstruct(_PickledArray, shape, dtype)


def _scalar(dtype, data=None):
    """numpy's ``scalar``: one number from its bytes (latin-1 text in Python 2 files)."""
    if not (
        isinstance(dtype, np.dtype)
        and dtype.kind in _NUMBER_KINDS
        and isinstance(data, bytes | str)
        and len(data) == dtype.itemsize
    ):
        _refuse(f"numpy.scalar of {brief(repr(dtype), 60)}: not one number")
    return _np_scalar(dtype, data)


def _frombuffer(buffer, dtype, shape, order):
    """numpy's ``_frombuffer`` (protocol-5 pickles): a view of bytes the file holds."""
    if not (
        isinstance(buffer, bytes | bytearray)
        and isinstance(dtype, np.dtype)
        and dtype.kind in _NUMBER_KINDS
    ):
        _refuse(f"numpy._frombuffer as {brief(repr(dtype), 60)}: not numbers")
    return _np_frombuffer(buffer, dtype, shape, order)


def _reconstructor(cls, base, state):
    """copyreg's ``_reconstructor``, which Python 2 pickles call as ``(chumpy or sparse
    class, object, None)``; with any other base it would call ``base.__new__``."""
    stand_ins = (_ChumpyStandIn, _SparseStandIn)
    if not (isinstance(cls, type) and issubclass(cls, stand_ins) and base is object):
        _refuse("copyreg._reconstructor of something other than a chumpy or scipy object")
    return object.__new__(cls)


def _encode_latin1(text, encoding):
    """``_codecs.encode``, which Python 3 protocol-2 pickles call as ``(text, "latin1")``
    to write bytes."""
    if not (isinstance(text, str) and encoding == "latin1"):
        _refuse(f"_codecs.encode as {brief(repr(encoding), 40)}: pickled bytes are latin1")
    return text.encode("latin1")


def _empty_bytes():
    """``bytes``, which Python 3 protocol-2 pickles call with no argument for ``b''``."""
    return b""


_ALLOWED = {
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("_codecs", "encode"): _encode_latin1,
    ("numpy", "ndarray"): _ndarray,
    ("numpy", "dtype"): np.dtype,
    # numpy 1 pickles name numpy.core, numpy 2 numpy._core; these are the only modules either
    # names (for arrays, scalars and protocol-5 arrays).
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}
# Pickles before protocol 4 write a set, and Python 2 an OrderedDict, as a call on a list;
# its items count towards MAX_HASHED like the entries that _check_opcodes counts.
_COUNTED = {
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("collections", "OrderedDict"): dict,
}


class SafeFlameUnpickler(pickle.Unpickler):
    """An unpickler that builds only arrays, containers and inert stand-ins (module
    docstring, guard 2). Run :func:`_check_opcodes` on the bytes first (guard 1)."""

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self.hashed = 0  # set and dict items built by calls

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in _COUNTED:
            return functools.partial(self._counted, _COUNTED[(module, name)])
        if module.split(".")[0] == "chumpy":
            return _ChumpyStandIn
        if module.startswith("scipy.sparse") and name.split("_")[0] in _SPARSE_STAND_INS:
            return _SPARSE_STAND_INS[name.split("_")[0]]
        return _refuse(
            f"{brief(module, 60)}.{brief(name, 60)}: a FLAME file holds only arrays, and "
            "this pickle asks to run other code"
        )

    def _counted(self, kind: type, items=()):
        self.hashed += len(items)
        if self.hashed > MAX_HASHED:
            _refuse(
                f"sets and dicts of more than {MAX_HASHED} items: a FLAME file holds a few dozen"
            )
        return kind(items)


_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_CONTAINERS = {"EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST"}
_CONTAINERS |= {"EMPTY_DICT", "DICT", "EMPTY_SET", "FROZENSET"}


def _check_opcodes(data: bytes) -> None:
    """Walk the opcodes once and refuse what would make the C unpickler allocate, recurse
    or loop without bound (module docstring, guard 1).

    The walk tracks how many stack items lie above the innermost MARK, from the stack effect
    pickletools records for each opcode, to count the entries SETITEMS and its kin insert.
    """
    marks, above_mark, containers, hashed = [], 0, 0, 0
    for count, (op, arg, pos) in enumerate(pickletools.genops(data)):
        if count > MAX_OPCODES:
            _refuse(
                f"a pickle of more than {MAX_OPCODES} opcodes: a FLAME pickle has a few hundred"
            )
        if op.name in _MEMO_PUTS and arg > count:
            _refuse(
                f"a memo index of {arg} at byte {pos}: writers number the memo 0, 1, 2, ..., so "
                "this index only makes the unpickler allocate a table that large"
            )
        if op.name == "FRAME" and arg > len(data) - pos:
            _refuse(f"a frame of {arg} bytes at byte {pos}: the file ends first")
        if op.name == "MARK":
            marks.append(above_mark)
            above_mark = 0
            continue
        items = 0
        if pickletools.markobject in op.stack_before:
            if not marks:
                raise ValueError(f"{op.name} at byte {pos} has no MARK")
            below_mark = op.stack_before.index(pickletools.markobject)  # SETITEMS: the dict
            items, above_mark = above_mark, marks.pop() - below_mark
        else:
            above_mark -= len(op.stack_before)
        if above_mark < 0:
            raise ValueError(f"{op.name} at byte {pos} pops more than the stack holds")
        above_mark += len(op.stack_after)
        containers += op.name in _CONTAINERS
        if op.name in ("SETITEMS", "DICT"):  # key, value, key, value, ...
            hashed += items // 2
        elif op.name in ("ADDITEMS", "FROZENSET"):
            hashed += items
        elif op.name == "SETITEM":
            hashed += 1
        flame = "a FLAME file is a dict of a few dozen arrays"
        if containers > MAX_CONTAINERS:
            _refuse(
                f"a pickle of more than {MAX_CONTAINERS} tuples, lists, dicts and sets: {flame}"
            )
        if hashed > MAX_HASHED:
            _refuse(f"a pickle of more than {MAX_HASHED} dict entries and set items: {flame}")


@contextlib.contextmanager
def parse_guard(source: str, kind: str):
    """Turn whatever parsing ``source`` raises into one InputError line naming the file.

    Inside these blocks only library parsers and the allow-list touch the file's bytes, so
    an exception of any type there was caused by the file: the unpickler alone raises
    EOFError, UnpicklingError, KeyError (memo), struct.error, OverflowError,
    UnicodeDecodeError, MemoryError and RecursionError, and zipfile/zlib add their own.
    """
    try:
        yield
    except InputError:
        raise
    except RefusedPickle as e:
        raise InputError(f"{source}: {e}") from None
    except Exception as e:
        raise InputError(
            f"{source}: not a readable {kind} ({type(e).__name__}: {brief(e)}); the file "
            "is damaged or truncated, so download or write it again"
        ) from None


def unpickle_bytes(data: bytes, source: str) -> object:
    with parse_guard(source, "pickle"):
        _check_opcodes(data)
        obj = SafeFlameUnpickler(io.BytesIO(data), encoding="latin1").load()
    return _Plain(source).convert(obj, "<root>")


# ---------------------------------------------------------------------------------------------
# Stand-ins to numpy arrays, within limits
# ---------------------------------------------------------------------------------------------


class _Plain:
    """Turns an unpickled tree into dicts, lists and numpy arrays (module docstring, guard 3).

    Nesting, the number of items visited (so shared references cannot blow a small file up
    exponentially) and the values of all arrays together are bounded.
    """

    def __init__(self, source: str):
        self.source, self.items, self.values = source, 0, 0

    def convert(self, obj, key: str, depth: int = 0):
        self._visit(key, depth)
        if isinstance(obj, _ChumpyStandIn):
            return self.convert(_chumpy_data(obj, key, self.source), key, depth + 1)
        if isinstance(obj, _SparseStandIn):
            return self._array(_sparse_to_dense(obj, key, self.source), key, depth)
        if isinstance(obj, np.ndarray):
            return self._array(obj.view(np.ndarray), key, depth)
        if isinstance(obj, dict):
            return {self._name(k): self.convert(v, k, depth + 1) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.convert(v, key, depth + 1) for v in obj)
        return obj

    def _visit(self, key: str, depth: int) -> None:
        self.items += 1
        if depth > MAX_DEPTH:
            raise InputError(
                f"{self.source}: '{key}' is nested more than {MAX_DEPTH} levels deep; a FLAME "
                "file is a flat dict of arrays, so this one is damaged or hostile"
            )
        if self.items > MAX_ITEMS:
            raise InputError(
                f"{self.source}: holds more than {MAX_ITEMS} items (a shared one counted "
                "each time); a FLAME file is a dict of a few dozen arrays"
            )

    def _name(self, key) -> str:
        if isinstance(key, str) and key.isprintable() and len(key) <= 100:
            return key
        shown = repr(key[:40]) if isinstance(key, str) else f"of type {type(key).__name__}"
        raise InputError(f"{self.source}: has a key {shown}; FLAME files name their arrays")

    def _array(self, array: np.ndarray, key: str, depth: int):
        if array.dtype.hasobject:
            if array.ndim == 0:  # np.save wraps a dict (a landmark .npy) in a 0-d array
                return self.convert(array.item(), key, depth + 1)
            raise InputError(
                f"{self.source}: '{key}' is an array of Python objects; FLAME arrays hold "
                "numbers"
            )
        self.values += array.size
        if self.values > MAX_FILE_VALUES:
            raise InputError(
                f"{self.source}: its arrays hold more than {MAX_FILE_VALUES} values together "
                "(a shared one counted each time); the file is damaged or hostile"
            )
        return array


def _chumpy_data(obj: _ChumpyStandIn, key: str, source: str):
    state = obj.state if isinstance(obj.state, dict) else {}
    if "x" not in state:
        raise InputError(
            f"{source}: '{key}' is a chumpy expression without data; "
            "only plain chumpy arrays can be read"
        )
    return state["x"]


def _sparse_to_dense(obj: _SparseStandIn, key: str, source: str) -> np.ndarray:
    """The dense float64 ``[rows, cols]`` matrix of a recorded scipy sparse state."""
    state = obj.state if isinstance(obj.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    ok = isinstance(shape, tuple | list) and len(shape) == 2
    if not (ok and all(isinstance(d, int | np.integer) and d >= 0 for d in shape)):
        # Only the type is shown: printing a file-made object could recurse without end.
        found = type(shape).__name__
        raise InputError(f"{source}: sparse '{key}' has no shape of 2 sizes (found a {found})")
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols > MAX_ARRAY_VALUES:
        raise InputError(
            f"{source}: sparse '{key}' declares shape ({rows}, {cols}), {rows * cols} values "
            f"when dense, over the limit of {MAX_ARRAY_VALUES} for one FLAME array; the file "
            "is damaged or hostile"
        )
    try:
        row, col, data = _sparse_entries(state, obj.format, (rows, cols))
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise InputError(f"{source}: sparse '{key}' is corrupt ({brief(e)})") from None
    dense = np.zeros((rows, cols))
    np.add.at(dense, (row, col), data)
    return dense


def _sparse_entries(state: dict, fmt: str, shape: tuple[int, int]):
    """Row, column and value of each stored entry, every index checked against ``shape``."""
    data = np.asarray(state["data"], np.float64).reshape(-1)
    if fmt == "coo":  # scipy >= 1.13 records ``coords``, older versions ``row`` and ``col``
        row, col = state["coords"] if "coords" in state else (state["row"], state["col"])
        row, col = np.asarray(row).reshape(-1), np.asarray(col).reshape(-1)
    else:
        n_major = shape[1] if fmt == "csc" else shape[0]
        indptr = np.asarray(state["indptr"]).reshape(-1)
        minor = np.asarray(state["indices"]).reshape(-1)
        # Checked before np.repeat, which would allocate whatever total the offsets claim.
        if indptr.dtype.kind not in "iu" or indptr.shape != (n_major + 1,):
            raise ValueError(f"indptr is {indptr.dtype} {indptr.shape}, not {n_major + 1} ints")
        indptr = indptr.astype(np.int64)  # a huge uint64 offset becomes negative, and refused
        if indptr[0] != 0 or indptr[-1] != minor.size or np.any(np.diff(indptr) < 0):
            raise ValueError(f"indptr is not non-decreasing offsets from 0 to {minor.size}")
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        row, col = (minor, major) if fmt == "csc" else (major, minor)
    if not row.size == col.size == data.size:
        raise ValueError(f"{row.size} rows, {col.size} columns and {data.size} values")
    for index, size in ((row, shape[0]), (col, shape[1])):
        if index.dtype.kind not in "iu" or np.any((index < 0) | (index >= size)):
            raise ValueError(f"an index is not an integer in [0, {size})")
    return row, col, data


def read_file_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror})") from None


def read_pickle_safely(path: str | os.PathLike) -> object:
    """Unpickle a FLAME-family file (model, masks, landmark embedding) without running code.

    Returns plain Python/numpy objects. Raises :class:`InputError` naming the file for a
    missing file, a corrupt pickle, or a pickle that names anything outside the allow-list
    or would need more than the ``MAX_*`` limits of this module.
    """
    path = Path(path)
    return unpickle_bytes(read_file_bytes(path), str(path))
