"""Reading user-supplied text files (station, calibration and study files) with one-line errors.

Only regular files are read (a FIFO, a device such as /dev/zero or a directory is refused before
anything is read), at most :data:`MAX_BYTES`, and the parsed document may nest at most
:data:`MAX_DEPTH` levels (:func:`check_depth`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

#: the largest station, calibration or study file labrram reads, bytes
MAX_BYTES = 4 * 1024 * 1024
#: the deepest nesting of tables / objects / arrays in such a file
MAX_DEPTH = 32


def open_regular(path: str | Path, what: str, error: type[Exception]) -> int:
    """A read-only descriptor of ``path`` if it is a regular file; ``error`` (naming the file)
    for a directory, a device, a FIFO (opened without blocking) or a socket. ``OSError``
    propagates when the file cannot be opened at all."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise error(f"cannot read {what} file {path}: {kind}")
    return fd


def read_user_text(path: str | Path, what: str, fmt: str, error: type[Exception]) -> str:
    """The UTF-8 text of ``path``; ``error`` names the file when it cannot be read or decoded.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What the file is, for the message (``"station"``, ``"calibration"``, ``"study"``).
    fmt : str
        Its format, for the message (``"TOML"``, ``"JSON"``).
    error : type of Exception
        The exception class to raise (the caller's own ``...Error``).
    """
    p = Path(path)
    try:
        fd = open_regular(p, what, error)
        try:
            info = os.fstat(fd)
            if info.st_size > MAX_BYTES:
                raise error(f"{p}: {info.st_size} bytes is too large for a {what} file (at most {MAX_BYTES})")
            data = os.read(fd, MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_BYTES:
            raise error(f"{p}: too large for a {what} file (at most {MAX_BYTES} bytes)")
        return data.decode("utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} file {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not a text (UTF-8) {fmt} file ({exc.reason} at byte {exc.start})") from None


def check_depth(doc: Any, where: str, error: type[Exception], limit: int = MAX_DEPTH) -> None:
    """Refuse a parsed document nested deeper than ``limit`` levels (before anything walks it)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise error(f"{where}: nested more than {limit} levels deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
