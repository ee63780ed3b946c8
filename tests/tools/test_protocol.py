"""The tool contract: schema from hints and docstring, validation, registry behaviour."""

from __future__ import annotations

from typing import Literal

import pytest

from tools import Tool, ToolContext, ToolError, ToolRegistry, ToolResult, tool
from tools.decorator import MAX_STRING_CHARS, parse_docstring

OWNER = ToolContext(local_owner=True)
PEER = ToolContext(local_owner=False)


@tool(read_only=True)
async def greet(
    name: str,
    times: int = 1,
    loud: bool = False,
    tone: Literal["warm", "dry"] = "warm",
    scale: float = 1.0,
    tags: list[str] | None = None,
) -> str:
    """Greet someone.

    More detail that is not part of the description.

    Args:
        name: Who to greet.
        times: How many times,
            at least one.
        loud: Shout.
        tone: The tone.
        scale: A number.
        tags: Labels.
    """
    text = " ".join([f"hello {name}"] * times)
    return (text.upper() if loud else text) + f" ({tone}, {scale}, {tags})"


@tool()
async def broken(x: int) -> str:
    """Always fails."""
    raise RuntimeError(f"boom {x}")


@tool()
async def refuses(x: int) -> str:
    """Fails the caller's way."""
    raise ToolError(f"{x} is not acceptable")


def test_schema_is_built_from_hints_and_docstring() -> None:
    assert isinstance(greet, Tool)
    schema = greet.input_schema
    assert greet.description == "Greet someone."
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["name"] == {
        "type": "string",
        "maxLength": MAX_STRING_CHARS,
        "description": "Who to greet.",
    }
    assert props["times"] == {
        "type": "integer",
        "description": "How many times, at least one.",
        "default": 1,
    }
    assert props["loud"]["type"] == "boolean"
    assert props["tone"]["enum"] == ["warm", "dry"]
    assert props["scale"]["type"] == "number"
    assert props["tags"]["anyOf"][0]["type"] == "array"
    assert props["tags"]["anyOf"][1] == {"type": "null"}


def test_mcp_list_shape() -> None:
    registry = ToolRegistry([greet])
    (entry,) = registry.mcp_list()["tools"]
    assert set(entry) == {"name", "description", "inputSchema", "annotations"}
    assert entry["name"] == "greet"
    assert entry["annotations"]["readOnlyHint"] is True
    assert entry["annotations"]["destructiveHint"] is False


def test_unsupported_hint_and_sync_function_are_rejected_at_definition() -> None:
    with pytest.raises(TypeError, match="unsupported type"):

        @tool()
        async def bad(x: dict[str, int]) -> str:
            return ""

    with pytest.raises(TypeError, match="async"):
        tool()(lambda: "x")  # type: ignore[arg-type, return-value]


def test_parse_docstring_without_args() -> None:
    assert parse_docstring("One line.\n\nMore.") == ("One line.", {})
    assert parse_docstring(None) == ("", {})


@pytest.mark.asyncio
async def test_valid_call() -> None:
    result = await greet({"name": "ada", "times": 2, "scale": 2}, OWNER)
    assert result == ToolResult(ok=True, output="hello ada hello ada (warm, 2, None)")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument(s): name"),
        ({"name": "a", "colour": "red"}, "unknown argument(s) colour"),
        ({"name": 3}, "argument 'name' must be a string, got int"),
        ({"name": "a", "times": "2"}, "argument 'times' must be an integer"),
        ({"name": "a", "times": True}, "argument 'times' must be an integer"),
        ({"name": "a", "times": 1.5}, "argument 'times' must be an integer"),
        ({"name": "a", "loud": 1}, "argument 'loud' must be a boolean"),
        ({"name": "a", "tone": "cold"}, "argument 'tone' must be one of"),
        ({"name": "a", "tags": ["x", 2]}, "argument 'tags'[1] must be a string"),
        ({"name": "x" * (MAX_STRING_CHARS + 1)}, "argument 'name' is too long"),
        (["name"], "arguments must be a JSON object"),
    ],
)
async def test_bad_arguments_become_error_results(arguments: object, message: str) -> None:
    result = await ToolRegistry([greet]).call("greet", arguments, OWNER)
    assert not result.ok
    assert message in result.error


@pytest.mark.asyncio
async def test_registry_never_raises() -> None:
    registry = ToolRegistry([greet, broken, refuses])
    unknown = await registry.call("nope", {}, OWNER)
    assert not unknown.ok
    assert "unknown tool 'nope'" in unknown.error
    assert "greet" in unknown.error
    crashed = await registry.call("broken", {"x": 7}, OWNER)
    assert crashed.error == "broken failed: RuntimeError: boom 7"
    assert "Traceback" not in crashed.error
    refused = await registry.call("refuses", {"x": 3}, OWNER)
    assert refused == ToolResult(ok=False, error="3 is not acceptable")
    assert refused.observation() == "error: 3 is not acceptable"


def test_registry_rejects_duplicates_and_lists_in_order() -> None:
    registry = ToolRegistry([greet, broken])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(greet)
    assert [t.name for t in registry.list()] == ["greet", "broken"]
    assert registry.get("greet") is greet
    assert registry.get("missing") is None
    assert "broken" in registry
    assert len(registry) == 2


@pytest.mark.asyncio
async def test_local_only_refuses_remote_peers() -> None:
    @tool(local_only=True)
    async def private(x: int) -> str:
        """Owner only."""
        return str(x)

    assert (await private({"x": 1}, OWNER)).output == "1"
    refused = await private({"x": 1}, PEER)
    assert not refused.ok
    assert "never runs for a remote peer" in refused.error


@pytest.mark.asyncio
async def test_destructive_needs_confirmation() -> None:
    ran: list[int] = []
    asked: list[str] = []

    @tool(destructive=True)
    async def wipe(x: int, context: ToolContext) -> str:
        """Destroys x."""
        ran.append(x)
        return f"wiped {x} for {'owner' if context.local_owner else 'peer'}"

    assert "context" not in wipe.input_schema["properties"]

    async def no(summary: str) -> bool:
        asked.append(summary)
        return False

    async def yes(summary: str) -> bool:
        return True

    assert "nobody can confirm" in (await wipe({"x": 1}, OWNER)).error
    declined = await wipe({"x": 2}, ToolContext(local_owner=True, confirm=no))
    assert "not confirmed" in declined.error
    assert asked == ['wipe({"x": 2})']
    done = await wipe({"x": 3}, ToolContext(local_owner=True, confirm=yes))
    assert done.output == "wiped 3 for owner"
    assert ran == [3]
