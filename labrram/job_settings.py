"""A job's settings given by name, and the error a job that cannot run as asked raises.

Every protocol and characterization routine takes its settings as a frozen dataclass
(:class:`~labrram.protocols.write_verify_pcm.PCMWriteVerify`,
:class:`~labrram.calibration.pcm_routine.PCMCharacterization`, ...). :func:`protocol_settings`
builds one from a few fields given by name — from Python (``settings={"reads": 4}``,
``characterize(n_devices=64)``) or as text from the command line (``--setting reads=4``) — with
the others at their defaults, and refuses a name the class does not have before anything runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

__all__ = ["JobError", "protocol_settings"]


class JobError(ValueError):
    """A job that cannot run as asked (kinds that disagree, a protocol that does not fit the
    chip); nothing was sent."""


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse_like(default: Any, text: str) -> Any:
    """``text`` (a command-line value) converted to the type of a setting's ``default``."""
    t = text.strip()
    if isinstance(default, bool):
        if t.lower() in _TRUE + _FALSE:
            return t.lower() in _TRUE
        raise ValueError("true or false")
    if isinstance(default, int):
        return int(t)
    if isinstance(default, float) or default is None:
        return float(t)
    if isinstance(default, tuple):
        return tuple(float(x) for x in t.split(","))
    return t


def protocol_settings(cls: type, settings: Any = None) -> Any:
    """The settings of a job as an instance of its settings class ``cls`` (a dataclass such
    as :class:`~labrram.protocols.write_verify_pcm.PCMWriteVerify`).

    ``settings`` is None (the defaults), an instance of ``cls``, or a mapping of field names to
    values that replace those of the defaults; values given as text (``"4"``, ``"1.5e-6"``,
    ``"true"``, ``"0.5e-6,30e-6"``, as from ``labrram program --setting``) are converted to the
    type of the field's default. The class's own checks then apply.

    Raises
    ------
    JobError
        For a name that is not a setting of ``cls`` (the message lists those that are), a value
        that does not convert, or one the class refuses.
    """
    if settings is None:
        return cls()
    if isinstance(settings, cls):
        return settings
    if not isinstance(settings, Mapping):
        raise JobError(f"settings must be a {cls.__name__} or a mapping of its fields, got {type(settings).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise JobError(f"{cls.__name__} has no setting(s) {unknown}; it has {sorted(known)}")
    base = cls()
    values = {}
    for key, value in settings.items():
        if isinstance(value, str):
            default = getattr(base, key)
            try:
                value = _parse_like(default, value)
            except ValueError:
                kind = "true or false" if isinstance(default, bool) else type(default).__name__ if default is not None else "a number"
                raise JobError(f"setting {key}={value!r}: expected {kind}") from None
        values[key] = value
    try:
        return dataclasses.replace(base, **values)
    except (TypeError, ValueError) as exc:
        raise JobError(f"{cls.__name__}: {exc}") from None
