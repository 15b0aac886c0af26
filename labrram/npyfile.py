"""Loading user-supplied ``.npy`` arrays without trusting them.

:func:`load_array` reads the header first and refuses, before reading any data: anything that is
not a ``.npy`` file (a pickle, an ``.npz`` archive, text), object and structured arrays (which
could only be loaded by unpickling), non-real dtypes, a shape other than the expected one, and a
file shorter (truncated) or longer than its header says. Nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .textfile import open_regular

__all__ = ["ArrayFileError", "load_array", "MAX_BYTES"]

#: largest array accepted, bytes (a 4096 x 4096 float64 array is 128 MiB)
MAX_BYTES = 1 << 30


class ArrayFileError(ValueError):
    """A ``.npy`` file that cannot be used; the message names the file and the problem."""


def load_array(path: str | Path, what: str = "array", shape: tuple[int, ...] | None = None, ndim: int | None = None) -> np.ndarray:
    """Load a real-valued ``.npy`` array (float64), checking it first (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the array is, for messages (``"targets"``).
    shape : tuple, optional
        The shape it must have.
    ndim : int, optional
        The number of dimensions it must have.
    """
    path = Path(path)
    try:
        fd = open_regular(path, what, ArrayFileError)
    except OSError as exc:
        raise ArrayFileError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        magic = fh.read(6)
        if magic != b"\x93NUMPY":
            kind = "a pickle" if magic[:1] == b"\x80" else "a zip archive (.npz?)" if magic[:2] == b"PK" else "empty" if not magic else "not a .npy file"
            raise ArrayFileError(f"{what} file {path} is {kind}: give a .npy array saved with numpy.save (pickles are never loaded)")
        version = fh.read(2)
        try:
            if version == b"\x01\x00":
                header = np.lib.format.read_array_header_1_0(fh)
            elif version == b"\x02\x00":
                header = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ArrayFileError(f"{what} file {path}: unsupported .npy format version {tuple(version)}")
        except ArrayFileError:
            raise
        except (ValueError, EOFError, SyntaxError, TypeError) as exc:
            raise ArrayFileError(f"{what} file {path}: corrupt .npy header ({exc})") from None
        arr_shape, fortran, dtype = header
        if dtype.hasobject or dtype.fields is not None:
            raise ArrayFileError(f"{what} file {path} holds an object or structured array ({dtype}); only real numbers are accepted (it would need unpickling)")
        if dtype.kind not in "fiu":
            raise ArrayFileError(f"{what} file {path} holds {dtype} values; {what} must be real numbers (float or integer)")
        if ndim is not None and len(arr_shape) != ndim:
            raise ArrayFileError(f"{what} file {path} holds a {len(arr_shape)}-D array of shape {arr_shape}; expected {ndim}-D")
        if shape is not None and tuple(arr_shape) != tuple(shape):
            raise ArrayFileError(f"{what} in {path} have shape {tuple(arr_shape)}, the array is {tuple(shape)}")
        if any(not isinstance(n, int) or n < 0 for n in arr_shape):
            raise ArrayFileError(f"{what} file {path}: corrupt .npy header (shape {arr_shape})")
        count = math.prod(arr_shape)  # Python integers: a shape that would overflow int64 is still counted right
        nbytes = count * dtype.itemsize
        if nbytes > MAX_BYTES:
            raise ArrayFileError(f"{what} file {path} declares {nbytes} bytes of data, more than the {MAX_BYTES}-byte limit")
        data = fh.read(nbytes + 1)
    if len(data) < nbytes:
        raise ArrayFileError(f"{what} file {path} is truncated: its header promises {nbytes} bytes of data, it holds {len(data)}")
    if len(data) > nbytes:
        raise ArrayFileError(f"{what} file {path} has bytes after its data (not a single .npy array)")
    values = np.frombuffer(data, dtype=dtype, count=count).reshape(arr_shape, order="F" if fortran else "C")
    return values.astype(np.float64)
