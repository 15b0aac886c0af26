"""Threading of the circuit solver: one BLAS thread per caller (the work is many small
matrices, where a thread team costs more than it gives) and a small pool for SuperLU solves."""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import scipy

# --------------------------------------------------------------------------------------------
# threading: one BLAS thread per caller, two SuperLU solve threads
# --------------------------------------------------------------------------------------------
def _find_openblas_local_setters() -> list:
    """``openblas_set_num_threads_local`` of the OpenBLAS builds bundled with numpy and scipy.

    The circuit works on many small matrices and vectors (128 x 128 blocks, 32k-vectors) where
    OpenBLAS threads only synchronize; on a busy 2-core machine they slow a port build from
    0.3 s to several seconds. The setting is thread-local (OpenBLAS >= 0.3.27); when it is not
    available (other BLAS, other platforms) nothing is changed.
    """
    setters = []
    for mod in (np, scipy):
        libdir = os.path.join(os.path.dirname(os.path.dirname(mod.__file__)), mod.__name__ + ".libs")
        for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
            try:
                fn = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int]
            setters.append(fn)
    return setters


_BLAS_SETTERS = _find_openblas_local_setters()


@contextmanager
def _blas_single_thread():
    prev = [fn(1) for fn in _BLAS_SETTERS]
    try:
        yield
    finally:
        for fn, p in zip(_BLAS_SETTERS, prev):
            fn(p)


def _single_blas(method):
    """Run ``method`` with one BLAS thread in the calling thread (see above)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _blas_single_thread():
            return method(*args, **kwargs)

    return wrapper


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=2,
                thread_name_prefix="labrram-splu",
                initializer=lambda: [fn(1) for fn in _BLAS_SETTERS],
            )
        return _POOL


