"""The errors every driver raises: instrument errors, and the link faults among them."""

from __future__ import annotations

from labrram.safety import LimitError

class InstrumentError(RuntimeError):
    """The instrument reported errors, or answered something a driver cannot use."""


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the timeout."""


class ReplyError(InstrumentError):
    """A reply that does not parse as what the command returns."""


class ConnectionLost(InstrumentError):
    """The connection failed (device unplugged, reset, re-enumerated); it must be reopened."""


#: what a retry of an idempotent exchange can cure: no reply, a garbled reply, a lost connection
LINK_ERRORS = (InstrumentTimeout, ReplyError, ConnectionLost)


# --- Ctrl-C / SIGTERM deferral ------------------------------------------------------------


__all__ = ["ConnectionLost", "InstrumentError", "InstrumentTimeout", "LINK_ERRORS", "LimitError", "ReplyError"]
