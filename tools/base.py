"""The tool contract: what a tool is, who is asking, and what comes back.

A tool has a `name`, a `description`, a JSON Schema for its arguments and MCP
annotations (`readOnlyHint`, `destructiveHint`, ...). Calling it never raises for
anything the caller (usually a language model) got wrong: bad arguments, a refused
request or a failing computation come back as `ToolResult(ok=False, error=...)`, an
observation the model can read and correct. Only bugs in the node itself escape.

`ToolError` is what a tool body raises to report such a failure; the wrapper turns
it into an error result.

Taint. Text from outside the node (a peer's answer, a fetched document) may be
written to steer the model. Tools whose output carries such text set
`ToolResult.untrusted` and wrap it in `<untrusted-data>` blocks (`UNTRUSTED_MARK`).
Once such text has entered a turn (a result, or a wrapper already in the turn's
messages: `ToolContext.for_turn`), the turn's `Taint` is set, and for the rest of
the turn every tool that is not read-only (`python`, chain writes, anything
destructive or local-only) runs only after the owner confirms; with nobody to
confirm it is refused. `ToolRegistry.call` enforces this and records the taint.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
Confirm = Callable[[str], Awaitable[bool]]
UNTRUSTED_MARK = "<untrusted-data"  # opens every block of outside text a model reads


class ToolError(Exception):
    """A failure caused by the request (bad input, refused action); shown to the caller."""


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one call: text for the model, plus optional structured data."""

    ok: bool
    output: str = ""  # what the tool produced (stdout, the computed value, ...)
    error: str = ""  # why it failed; empty when ok
    data: JsonObject | None = None  # machine-readable extras (exact values, exit codes)
    untrusted: bool = False  # the output carries text from outside the node (taints the turn)

    @classmethod
    def success(
        cls, output: str, data: JsonObject | None = None, *, untrusted: bool = False
    ) -> ToolResult:
        return cls(ok=True, output=output, data=data, untrusted=untrusted)

    @classmethod
    def failure(cls, error: str, output: str = "", data: JsonObject | None = None) -> ToolResult:
        return cls(ok=False, output=output, error=error, data=data)

    def to_json(self) -> JsonObject:
        return {
            "ok": self.ok,
            "output": self.output,
            "error": self.error,
            "data": self.data,
            "untrusted": self.untrusted,
        }

    def observation(self) -> str:
        """The text a model sees: the output, or `error: ...` (with any partial output)."""
        if self.ok:
            return self.output
        return f"{self.output}\nerror: {self.error}" if self.output else f"error: {self.error}"


@dataclass(eq=False)
class Taint:
    """Whether text from outside the node has entered the current turn, and how."""

    sources: list[str] = field(default_factory=list)  # e.g. "knowledge", "earlier messages"

    @property
    def tainted(self) -> bool:
        return bool(self.sources)

    def mark(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)
            log.info("untrusted text entered the turn (%s)", source)


@dataclass(frozen=True)
class ToolContext:
    """Who is asking. `local_owner` is False whenever the request came from a peer."""

    local_owner: bool
    # Asked before a destructive action; None means nobody can confirm, so refuse.
    confirm: Confirm | None = None
    # This turn's taint, shared by every copy of this context (see the module docstring).
    taint: Taint = field(default_factory=Taint)

    def for_turn(self, messages: Iterable[str] = ()) -> ToolContext:
        """A copy with a fresh taint for a new turn, already set when any of `messages`
        (the history and prompt the model will read) carries outside text."""
        taint = Taint()
        if any(UNTRUSTED_MARK in text for text in messages):
            taint.mark("untrusted text in the conversation")
        return replace(self, taint=taint)


def acts(annotations: ToolAnnotations) -> bool:
    """Whether a tool can change something or run code: gated once a turn is tainted."""
    return not annotations.read_only or annotations.destructive or annotations.local_only


@dataclass(frozen=True)
class ToolAnnotations:
    """MCP behaviour hints, plus `local_only` (never run for a remote peer)."""

    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = False
    local_only: bool = False
    title: str | None = None

    def to_mcp(self) -> JsonObject:
        out: JsonObject = {
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
            "openWorldHint": self.open_world,
        }
        if self.title is not None:
            out["title"] = self.title
        return out


@runtime_checkable
class Tool(Protocol):
    """Anything with these (read-only) attributes and an async call is a tool."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def input_schema(self) -> JsonObject:
        """A JSON Schema object: `{"type": "object", "properties": ..., "required": ...}`."""
        ...

    @property
    def annotations(self) -> ToolAnnotations: ...

    async def __call__(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolResult: ...


def mcp_descriptor(t: Tool) -> JsonObject:
    """The tool as one entry of MCP's `tools/list` answer."""
    return {
        "name": t.name,
        "description": t.description,
        "inputSchema": t.input_schema,
        "annotations": t.annotations.to_mcp(),
    }


@dataclass(frozen=True)
class Refusal:
    """Policy checks shared by every tool, applied before the arguments are looked at."""

    annotations: ToolAnnotations = field(default_factory=ToolAnnotations)

    async def check(self, name: str, summary: str, context: ToolContext) -> str | None:
        """None when the call may go ahead, else the reason it may not."""
        if self.annotations.local_only and not context.local_owner:
            return f"the {name} tool never runs for a remote peer"
        if self.annotations.destructive:
            if context.confirm is None:
                return f"the {name} tool needs confirmation and nobody can confirm"
            if not await context.confirm(summary):
                return f"the {name} call was not confirmed"
        return None
