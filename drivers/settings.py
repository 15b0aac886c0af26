"""Declarative instrument settings: a query, a command template and a validator per setting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .errors import ReplyError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Instrument

class Setting:
    """A declarative instrument setting (PyMeasure-style property).

    Parameters
    ----------
    get_command : str or None
        Query sent to read the setting (``None``: write-only).
    set_command : str or None
        Command template formatted with the value (``None``: read-only).
    parse : callable
        Turns the reply text into a Python value.
    validate : callable, optional
        ``validate(instrument, value)`` raises (``ValueError``/``LimitError``) before any byte
        is sent; may return a normalised value.
    doc : str
        Docstring of the property.
    on_set : callable, optional
        ``on_set(instrument, value)`` after the command was sent (e.g. to remember the value the
        driver relies on, or to forget a cache the new value invalidates).
    cache : str, optional
        Name of an instrument attribute that holds the value once read (``None``: not known);
        reads answer from it without a query.
    """

    def __init__(
        self,
        get_command: str | None,
        set_command: str | None,
        parse: Callable[[str], Any] = float,
        validate: Callable[[Any, Any], Any] | None = None,
        doc: str = "",
        on_set: Callable[[Any, Any], None] | None = None,
        cache: str | None = None,
    ) -> None:
        self.get_command = get_command
        self.set_command = set_command
        self.parse = parse
        self.validate = validate
        self.on_set = on_set
        self.cache = cache
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, inst: "Instrument | None", owner: type) -> Any:
        if inst is None:
            return self
        if self.get_command is None:
            raise AttributeError(f"{self.name} is write-only")
        if self.cache is not None and getattr(inst, self.cache, None) is not None:
            return getattr(inst, self.cache)
        command = inst.format_command(self.get_command)

        def get() -> Any:
            reply = inst.query(command)
            try:
                return self.parse(reply.strip())
            except (ValueError, TypeError) as exc:
                raise ReplyError(f"{inst.name}: {self.name} reply {reply!r} does not parse: {exc}") from None

        value = inst.retrying(get, f"reading {self.name}")  # reading a setting is idempotent
        if self.cache is not None:
            setattr(inst, self.cache, value)
        return value

    def __set__(self, inst: "Instrument", value: Any) -> None:
        if self.set_command is None:
            raise AttributeError(f"{self.name} is read-only")
        if self.validate is not None:
            result = self.validate(inst, value)
            value = value if result is None else result
        inst.write(inst.format_command(self.set_command).format(value))
        if self.on_set is not None:
            self.on_set(inst, value)


def parse_bool(text: str) -> bool:
    t = text.strip().upper()
    if t in ("1", "ON", "TRUE"):
        return True
    if t in ("0", "OFF", "FALSE"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def in_range(lo: float, hi: float, what: str) -> Callable[[Any, Any], float]:
    """Validator: a finite number in ``[lo, hi]`` (instrument range, not the bench limit)."""

    def check(inst: Any, value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
        if not (lo <= v <= hi):
            raise ValueError(f"{what} {v:g} outside the instrument range [{lo:g}, {hi:g}]")
        return v

    return check
