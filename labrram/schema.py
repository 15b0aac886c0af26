"""Checks of what a user hands in, shared by the loaders: unknown keys with a "did you mean",
and the schema of a run store's group attributes.

A run store is read back by ``resume``, ``report``, ``calibrate`` and ``watch``; its attributes
drive the chip on a resume (the plan, its parameters, the array shape, the chip's identity). A
store edited by hand or by another tool is checked against :data:`RUN_ATTRS` before anything is
rebuilt from it: every attribute labrram writes has a type (and, where it has one, a range),
and an attribute labrram does not know is refused with a suggestion — labs keep their own
metadata in the free-form ``user`` attribute.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Callable

__all__ = ["RUN_ATTRS", "check_run_attrs", "unknown_keys"]


def unknown_keys(given: Any, known: Any, where: str) -> str | None:
    """The message for keys of ``given`` that are not in ``known`` (with a "did you mean"
    suggestion for each near miss), or None when every key is known."""
    bad = sorted(set(given) - set(known))
    if not bad:
        return None
    hints = []
    for key in bad:
        close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"{where}: unknown key(s) {', '.join(hints)}; known: {sorted(known)}"


Check = Callable[[Any], str | None]  # None when fine, else what is wrong


def _is(*types: type, none: bool = False) -> Check:
    names = " or ".join(t.__name__ for t in types) + (" or null" if none else "")

    def check(v: Any) -> str | None:
        if v is None and none:
            return None
        if isinstance(v, bool) and bool not in types:
            return f"must be {names}, got a boolean"
        return None if isinstance(v, types) else f"must be {names}, got {type(v).__name__}"

    return check


def _text(limit: int = 4096, none: bool = False) -> Check:
    def check(v: Any) -> str | None:
        problem = _is(str, none=none)(v)
        if problem is None and isinstance(v, str) and len(v) > limit:
            return f"is {len(v)} characters long (at most {limit})"
        return problem

    return check


def _one_of(*values: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in values else f"must be one of {list(values)}, got {v!r}"

    return check


def _non_negative(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return f"must be a finite number >= 0, got {v!r}"
    return None


def _shape(v: Any) -> str | None:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(n, int) and not isinstance(n, bool) for n in v)):
        return f"must be [rows, cols], two integers, got {v!r}"
    if not all(1 <= n <= 1 << 16 for n in v):
        return f"must have 1 to 65536 rows and columns, got {v!r}"
    return None


def _texts(v: Any) -> str | None:
    if not (isinstance(v, list) and all(isinstance(x, str) and len(x) <= 4096 for x in v)):
        return f"must be a list of strings, got {v!r}"[:200]
    return None


def _index(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        return f"must be a whole number >= 0, got {v!r}"
    return None


def _indices(v: Any) -> str | None:
    if not isinstance(v, list) or not v:
        return f"must be a non-empty list of whole numbers >= 0, got {type(v).__name__}"
    return next((f"holds {x!r}: {p}" for x in v if (p := _index(x))), None)


#: every group attribute a run store of a plan (``kind`` program or characterize) may hold
RUN_ATTRS: dict[str, Check] = {
    "labrram_format": _is(int),
    "kind": _one_of("program", "characterize"),
    "software": _is(dict),
    "created": _text(64),
    "plan": _text(64),
    "plan_params": _is(dict),
    "array_shape": _shape,
    "status": _one_of("running", "interrupted", "complete"),
    "reason": _text(none=True),
    "station": _is(dict, none=True),
    "calibration": _is(dict, none=True),
    "chip": _text(),
    "chips": _texts,
    "array_index": _index,
    "array_indices": _indices,
    "stations": _texts,
    "device_kind": _one_of("reram", "pcm", "passive"),
    "targets_spec": _text(none=True),
    "settings": _is(dict, none=True),
    "journal": lambda v: None if isinstance(v, dict) else f"holds no commit record (a table), got {type(v).__name__}",
    "summary": _is(dict, none=True),
    "physical_limit": _non_negative,
    "bench_time": _non_negative,
    "wall_time": _non_negative,
    "faults_recovered": _non_negative,
    "safe_state": _text(none=True),
    "network": _is(dict, none=True),
    "network_job": _text(256, none=True),
    "job": _text(256, none=True),
    "encoding": _text(64, none=True),
    "progress_v2": _is(dict, none=True),
    "imported_from": _is(dict, none=True),
    "user": _is(dict, str, none=True),
}


def check_run_attrs(path: Any, attrs: dict[str, Any]) -> list[str]:
    """What is wrong with a run store's group attributes (empty when nothing): unknown keys
    (with a suggestion), types and ranges, each message naming the store and the attribute."""
    problems = []
    message = unknown_keys(attrs, RUN_ATTRS, f"{path}: attributes")
    if message:
        problems.append(message + " (a lab's own metadata goes in the 'user' attribute)")
    for key, value in attrs.items():
        check = RUN_ATTRS.get(key)
        problem = check(value) if check is not None else None
        if problem:
            problems.append(f"{path}: attribute {key!r} {problem}")
    return problems
