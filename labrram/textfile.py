"""Reading user-supplied text files (station, calibration and study files) with one-line errors."""

from __future__ import annotations

from pathlib import Path


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
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read {what} file {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not a text (UTF-8) {fmt} file ({exc.reason} at byte {exc.start})") from None
