"""The ArC ONE's serial protocol, shared by its driver and its emulator.

The firmware reads packets of newline-terminated ASCII tokens: an operation, then a fixed number
of arguments (integers; reals with six decimals, as the ArC ONE's host library ``libarc1``
writes them). A masked read (``2, 2, 32, 32, n``) is followed by ``n`` device packets of two
tokens (word line, bit line; 1-based). Replies are little-endian float32 resistances in ohms,
two uint16 for the firmware version, or the line ``1`` that acknowledges an initialisation.
The table of packets is in docs/boards.md.
"""

from __future__ import annotations

import copy
from typing import Any

#: arguments of each operation (``2`` depends on its mode; device packets are framed apart)
ARGUMENTS = {"00": 0, "0": 7, "01": 2, "02": 2, "1": 2, "3": 4, "04": 2, "999": 0}
#: word lines and bit lines the ArC ONE addresses (its 68-pin socket)
MAX_LINES = 32
#: read modes and sneak-path modes of the initialisation packet
READ_MODES = {"CLASSIC": 0, "TIA": 1, "TIA4P": 2, "TIA4P_NEG": 3}
SNEAK_PATHS = {"THIRD": 0, "HALF": 1, "FLOAT": 256}
#: reply float32 (little-endian) and firmware-version (two uint16) formats
RESISTANCE = "<f4"
VERSION = "<u2"


def real(x: float) -> str:
    """A real as the firmware reads it: six decimals (``libarc1``'s ``%f``)."""
    return f"{float(x):f}"


def packet(*tokens: Any) -> bytes:
    """The bytes of one packet: each token on its own line, Python floats with six decimals."""
    return b"".join((real(t) if isinstance(t, float) else str(t)).encode("ascii") + b"\n" for t in tokens)


class Framer:
    """Cuts a byte stream into packets as the firmware does (state: a partial token, the
    device packets a masked read still expects)."""

    def __init__(self) -> None:
        self.pending: list[str] = []  # tokens of the packet under way
        self.partial = b""  # bytes of a token without its newline yet
        self.devices_left = 0

    def copy(self) -> "Framer":
        return copy.deepcopy(self)

    def _need(self, tokens: list[str]) -> int | None:
        """Tokens the packet starting ``tokens`` takes (None: not known yet)."""
        op = tokens[0]
        if self.devices_left and op != "00":
            return 2
        if op == "2":
            if len(tokens) < 2:
                return None
            return {"1": 4, "2": 5}.get(tokens[1], 2)
        return 1 + ARGUMENTS.get(op, 0)

    def feed(self, data: bytes) -> list[list[str]]:
        """The packets that ``data`` completes, each a list of tokens; ``device`` packets of a
        masked read come as ``["dev", w, b]``."""
        parts = (self.partial + data).split(b"\n")
        self.partial = parts.pop()
        done: list[list[str]] = []
        for raw in parts:
            token = raw.strip(b"\r ").decode("latin-1")
            if not token and not self.pending:
                continue  # blank lines between packets
            self.pending.append(token)
            need = self._need(self.pending)
            if need is None or len(self.pending) < need:
                continue
            tokens, self.pending = self.pending, []
            if self.devices_left and tokens[0] != "00":
                self.devices_left -= 1
                done.append(["dev", *tokens])
                continue
            if tokens[0] == "00":
                self.devices_left = 0
            elif tokens[0] == "2" and tokens[1] == "2":
                try:
                    self.devices_left = max(int(tokens[4]), 0)
                except ValueError:
                    self.devices_left = 0
            done.append(tokens)
        return done

    def reset(self) -> None:
        """Forget everything under way (a device clear, a microcontroller reset)."""
        self.pending, self.partial, self.devices_left = [], b"", 0
