"""Keithley 2636B emulator: the Lua bridge. A sandboxed Lua runtime (lupa) runs each chunk under
an instruction budget; the instrument objects are Lua proxies whose index, assignment, call and
length operations call back into Python (:class:`LuaBridge`). The Lua side lives in
``keithley2600_prelude.lua``.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

try:  # Lua 5.4 when lupa ships it, else lupa's default runtime
    from lupa.lua54 import LuaError, LuaRuntime, lua_type
except ImportError:  # pragma: no cover - depends on the lupa build
    from lupa import LuaError, LuaRuntime, lua_type  # type: ignore[assignment]

from .keithley2600_objects import (
    _Budget,
    _IndexNode,
    MARK,
    _MISSING,
    _Node,
    RUNTIME_ERROR,
    SYNTAX_ERROR,
    TspError,
)


_PRELUDE = resources.files(__package__).joinpath("keithley2600_prelude.lua").read_text(encoding="utf-8")
_CHUNK_PREFIX = re.compile(r"^[^\n:]{1,64}:(\d+): ", re.DOTALL)
_EXIT_MARKER = "\x00tsp-exit"


def _split_lua_message(message: str) -> tuple[int | None, str]:
    """``"tsp:3: msg"`` → ``(3, "msg")``; nested prefixes (re-raised errors) are stripped."""
    line = None
    while True:
        m = _CHUNK_PREFIX.match(message)
        if not m:
            return line, message
        if line is None:
            line = int(m.group(1))
        message = message[m.end() :]


class LuaBridge:
    """Mixin of :class:`~labrram.sim.keithley2600.Keithley2636B`: runs chunks and answers the proxies."""

    # ===== Lua ===================================================================================
    def _build_lua(self) -> None:
        try:
            lua = LuaRuntime(
                unpack_returned_tuples=True,
                register_eval=False,
                register_builtins=False,
                encoding="latin-1",
                attribute_filter=self._deny_attribute,
                max_memory=self.max_lua_memory,
            )
        except TypeError:  # pragma: no cover - lupa without max_memory
            lua = LuaRuntime(
                unpack_returned_tuples=True,
                register_eval=False,
                register_builtins=False,
                encoding="latin-1",
                attribute_filter=self._deny_attribute,
            )
        self._lua = lua
        bridge = lua.table_from(
            {
                "index": self._cb_index,
                "newindex": self._cb_newindex,
                "call": self._cb_call,
                "len": self._cb_len,
                "name": self._cb_name,
                "mark": MARK,
                "hook_step": self.hook_step,
                "exit_marker": _EXIT_MARKER,
                "budget_message": "",
            }
        )
        self._api = lua.execute(_PRELUDE, bridge)

    def _budget_message(self) -> str:
        return (
            f"instruction budget of {self.instruction_budget:,} exceeded: the emulator stopped a "
            "runaway chunk (endless loop?)"
        )

    @staticmethod
    def _deny_attribute(obj: Any, attr: Any, is_setting: bool) -> Any:
        raise AttributeError("Python attributes are not accessible from TSP")

    def _execute(self, code: Any, chunkname: str) -> None:
        """Run a line (string) or a compiled script (Lua function); errors go to the queue."""
        steps = max(1, self.instruction_budget // self.hook_step)
        self._call_limit = max(1, self.instruction_budget // max(1, self.call_cost))
        self._calls = 0
        self._raised.clear()
        self._aborting = False
        if not isinstance(code, str):
            chunkname = "=" + chunkname
        try:
            status, message = self._run(code, chunkname, steps)
        except LuaError as exc:  # memory errors outside pcall, errors in error handling
            status, message = "runtime", str(exc)
        if status == "ok":
            return
        if isinstance(message, BaseException) and not isinstance(message, Exception):
            raise message  # Ctrl-C / SystemExit raised inside a callback: not the instrument's business
        if not isinstance(message, str):
            message = str(self._api.tostring(message)) if lua_type(message) else str(message)
        if status == "syntax":
            line, msg = _split_lua_message(message)
            self._push_error(SYNTAX_ERROR, f"TSP Syntax error at line {line}: {msg}" if line else f"TSP Syntax error: {msg}")
        elif status == "budget":
            self._push_error(RUNTIME_ERROR, f"TSP Runtime error: {message}")
        else:
            line, msg = _split_lua_message(message)
            code_ = self._raised.get(msg)
            if code_ is not None:
                self._push_error(code_, msg)
            else:
                where = f" at line {line}" if line else ""
                self._push_error(RUNTIME_ERROR, f"TSP Runtime error{where}: {msg}")

    def _run(self, code: Any, chunkname: str, steps: int) -> tuple[str, Any]:
        result = self._api.run(code, chunkname, steps, self._budget_message())
        if isinstance(result, tuple):
            return result[0], (result[1] if len(result) > 1 else None)
        return result, None

    # --- callbacks from Lua -------------------------------------------------------------
    def _charge(self) -> None:
        self._calls += 1
        if self._calls > self._call_limit:
            raise _Budget()

    def _error_result(self, exc: Exception) -> str:
        if isinstance(exc, _Budget):
            msg = self._budget_message()
            self._api.abort(msg)
            return msg
        if isinstance(exc, TspError):
            self._raised[exc.message] = exc.code
            return exc.message
        self.last_internal_error = exc
        return f"internal emulator error: {type(exc).__name__}: {exc}"

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(MARK):
            return self._nodes[int(value[len(MARK) :])]
        return value

    def _ret(self, value: Any, cacheable: bool = False) -> tuple:
        if isinstance(value, _Node):
            return (1, value.id, cacheable)
        return (0, value)

    def _cb_index(self, node_id: int, key: Any) -> tuple:
        try:
            self._charge()
            node = self._nodes[node_id]
            if not isinstance(key, str):
                value = node.item(key)
                return self._ret(None if value is _MISSING else value)
            if node.permissive and key in node.values:
                return self._ret(node.values[key])
            member = node.members.get(key)
            if member is None:
                if node.permissive:
                    child = self._register(_Node(f"{node.name}.{key}", permissive=True))
                    node.members[key] = ("child", child)
                    return (1, child.id, False)
                return (0, None)
            kind = member[0]
            if kind == "const":
                return (3, member[1])
            if kind == "child":  # fixed objects are cached by Lua; a permissive key may be assigned later
                return (1, member[1].id, not node.permissive)
            if kind == "method":
                return (2,)
            return self._ret(member[1]())
        except Exception as exc:  # everything the instrument does wrong becomes a Lua error
            return (9, self._error_result(exc))

    def _cb_newindex(self, node_id: int, key: Any, value: Any) -> str | None:
        try:
            self._charge()
            node = self._nodes[node_id]
            value = self._resolve(value)
            if not isinstance(key, str):
                node.set_item(key, value)
                return None
            member = node.members.get(key)
            if node.permissive and (member is None or member[0] == "child"):
                node.values[key] = value
                return None
            if member is None:
                raise TspError(RUNTIME_ERROR, f"{node.name} has no attribute '{key}'")
            if member[0] != "prop" or member[2] is None:
                raise TspError(RUNTIME_ERROR, f"{node.name}.{key} is read-only")
            member[2](value)
            return None
        except Exception as exc:
            return self._error_result(exc)

    def _cb_call(self, node_id: int, key: Any, *args: Any) -> tuple:
        try:
            self._charge()
            node = self._nodes[node_id]
            if key is None:
                if node.permissive:
                    return (0, None)
                raise TspError(RUNTIME_ERROR, f"attempt to call {node.name}")
            member = node.members.get(key)
            if member is None or member[0] != "method":
                raise TspError(RUNTIME_ERROR, f"attempt to call {node.name}.{key}")
            result = member[1](*(self._resolve(a) for a in args))
            if isinstance(result, _Node):
                return (1, result.id)
            if isinstance(result, tuple):
                return (0, *result)
            return (0, result)
        except Exception as exc:
            return (9, self._error_result(exc))

    def _cb_len(self, node_id: int) -> tuple:
        try:
            self._charge()
            return (0, self._nodes[node_id].length())
        except Exception as exc:
            return (9, self._error_result(exc))

    def _cb_name(self, node_id: int) -> str:
        node = self._nodes.get(node_id)
        return f"table: {node.name}" if node else "table"

    # ===== the object tree ===================================================================
    def _register(self, node: _Node) -> _Node:
        node.id = len(self._nodes) + 1
        self._nodes[node.id] = node
        for member in list(node.members.values()):
            if member[0] == "child" and member[1].id < 0:
                self._register(member[1])
        if isinstance(node, _IndexNode):
            for item in node.items:
                if item.id < 0:
                    self._register(item)
        return node
