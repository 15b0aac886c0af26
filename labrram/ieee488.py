"""IEEE 488.2 definite-length arbitrary blocks (``#<n><len><payload>``), shared by the drivers
and the emulators so both sides encode bulk data identically."""

from __future__ import annotations


class BlockError(ValueError):
    """Bytes that are not a well-formed definite-length block."""


def encode_block(payload: bytes) -> bytes:
    """``#<n><len><payload>``, e.g. ``encode_block(b"abc") == b"#13abc"``."""
    length = str(len(payload)).encode()
    if len(length) > 9:
        raise BlockError("payload too large for a definite-length block")
    return b"#" + str(len(length)).encode() + length + payload


def split_block(data: bytes) -> tuple[bytes, bytes]:
    """Split a block at the start of ``data`` into ``(payload, rest)``."""
    if len(data) < 2 or data[:1] != b"#" or not data[1:2].isdigit() or data[1:2] == b"0":
        raise BlockError(f"expected a definite-length block '#<n><len>...', got {data[:20]!r}")
    ndig = int(data[1:2])
    header = data[2 : 2 + ndig]
    if len(header) != ndig or not header.isdigit():
        raise BlockError(f"malformed block header {data[: 2 + ndig]!r}")
    length = int(header)
    payload = data[2 + ndig : 2 + ndig + length]
    if len(payload) != length:
        raise BlockError(f"block announced {length} bytes, carries {len(payload)}")
    return payload, data[2 + ndig + length :]
