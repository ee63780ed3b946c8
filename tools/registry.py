"""`ToolRegistry`: the set of tools one agent (or one CLI call) may use.

An object passed to whoever needs it, never a module-level singleton. `call`
never raises for anything the caller got wrong: an unknown tool, bad arguments or
a failing tool all come back as `ToolResult(ok=False, ...)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from tools.base import JsonObject, Tool, ToolContext, ToolResult, mcp_descriptor

log = logging.getLogger(__name__)


class ToolRegistry:
    """Tools by name, in registration order."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, t: Tool) -> None:
        if not t.name or not t.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"invalid tool name {t.name!r}")
        if t.name in self._tools:
            raise ValueError(f"a tool named {t.name!r} is already registered")
        self._tools[t.name] = t

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def list(self) -> list[Tool]:
        return list(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def mcp_list(self) -> JsonObject:
        """The result of MCP's `tools/list`: `{"tools": [descriptor, ...]}`."""
        return {"tools": [mcp_descriptor(t) for t in self._tools.values()]}

    async def call(self, name: str, arguments: Any, context: ToolContext) -> ToolResult:
        t = self._tools.get(name)
        if t is None:
            known = ", ".join(self._tools) or "none"
            return ToolResult.failure(f"unknown tool {name!r} (available: {known})")
        if not isinstance(arguments, Mapping):
            return ToolResult.failure("arguments must be a JSON object")
        try:
            return await t(arguments, context)
        except Exception as exc:
            log.warning("tool %s raised", name, exc_info=True)
            return ToolResult.failure(f"{name} failed: {type(exc).__name__}: {exc}")
