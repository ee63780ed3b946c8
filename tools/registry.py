"""`ToolRegistry`: the set of tools one agent (or one CLI call) may use.

An object passed to whoever needs it, never a module-level singleton. `call`
never raises for anything the caller got wrong: an unknown tool, bad arguments or
a failing tool all come back as `ToolResult(ok=False, ...)`.

`call` is also where a turn's taint is kept (see `tools.base`): a result marked
`untrusted` taints the context's turn, and in a tainted turn a tool that acts
(`tools.base.acts`: python, chain writes) needs the owner's confirmation. A
destructive tool asks `context.confirm` itself with the exact action, so the
registry only adds a warning to that question; any other acting tool is asked about
here, before it runs. With nobody to confirm, it is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from tools.base import (
    Confirm,
    JsonObject,
    Taint,
    Tool,
    ToolContext,
    ToolResult,
    acts,
    mcp_descriptor,
)

log = logging.getLogger(__name__)

MAX_SHOWN_CHARS = 8_000  # of a call's arguments in a confirmation question


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
        if context.taint.tainted and acts(t.annotations):
            refusal, context = await _owner_gate(t, arguments, context)
            if refusal is not None:
                return refusal
        try:
            result = await t(arguments, context)
        except Exception as exc:
            log.warning("tool %s raised", name, exc_info=True)
            return ToolResult.failure(f"{name} failed: {type(exc).__name__}: {exc}")
        if result.untrusted:
            context.taint.mark(name)
        return result


def taint_warning(taint: Taint) -> str:
    return (
        f"Caution: this turn has read text from outside this node ({', '.join(taint.sources)}),"
        " which may be trying to steer the assistant. Check that you asked for this."
    )


async def _owner_gate(
    t: Tool, arguments: Mapping[str, Any], context: ToolContext
) -> tuple[ToolResult | None, ToolContext]:
    """In a tainted turn: (a refusal, or None) and the context the tool runs with."""
    if context.confirm is None:
        return ToolResult.failure(
            f"this turn read untrusted text ({', '.join(context.taint.sources)}), so the "
            f"{t.name} tool needs the owner's confirmation, and nobody can confirm; "
            "nothing was run"
        ), context
    confirm: Confirm = context.confirm
    warning = taint_warning(context.taint)

    async def warned(summary: str) -> bool:
        return await confirm(f"{warning}\n{summary}")

    if not t.annotations.destructive:  # a destructive tool asks itself, with the exact action
        summary = f"Run the {t.name} tool with:\n{_show_arguments(arguments)}"
        if not await warned(summary):
            return ToolResult.failure(
                f"the owner declined the {t.name} call (this turn read untrusted text); "
                "nothing was run"
            ), context
    return None, replace(context, confirm=warned)


def _show_arguments(arguments: Mapping[str, Any], limit: int = MAX_SHOWN_CHARS) -> str:
    """Each argument on its own lines; strings (code) as written, not JSON-escaped,
    except control characters, which are shown escaped (no terminal escape sequences)."""
    parts = []
    for key, value in arguments.items():
        text = _printable(value if isinstance(value, str) else json.dumps(value, default=str))
        name = _printable(str(key))
        parts.append(f"{name}:\n{text}" if "\n" in text else f"{name}: {text}")
    shown = "\n".join(parts)
    if len(shown) > limit:
        shown = shown[:limit] + f"\n[... {len(shown) - limit} more characters]"
    return shown


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() or c in "\n\t" else ascii(c)[1:-1] for c in text)
