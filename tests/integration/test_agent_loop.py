"""The agent loop with the real bundled model and real tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ModelConfig
from agent.llm import ChatMessage, LLMCore, SamplingParams
from agent.loop import Agent, TurnEvent
from tools import ToolContext, ToolRegistry, ToolResult, make_calculator, tool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

OWNER = ToolContext(local_owner=True)
SHORT = SamplingParams(temperature=0.0, max_tokens=40)


@tool(read_only=True)
async def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: Anything.
    """
    raise RuntimeError(f"boom: {reason[:20]}")


@tool(read_only=True)
async def cite(topic: str) -> ToolResult:
    """Returns a fact with its source.

    Args:
        topic: What to look up.
    """
    return ToolResult.success("Bees make honey.", data={"sources": ["bees.md#0"]})


async def agent_with(model_path: Path, *tools: object, max_steps: int = 3) -> Agent:
    core = await LLMCore.load(model_path, ModelConfig(n_ctx=2048))
    registry = ToolRegistry([make_calculator(), *tools])  # type: ignore[list-item]
    return Agent(core, registry, params=SHORT, max_steps=max_steps)


async def test_a_forced_calculator_call_is_valid_runs_and_feeds_the_answer(
    model_path: Path,
) -> None:
    agent = await agent_with(model_path)
    events: list[TurnEvent] = []
    try:
        result = await agent.run_turn(
            [], "What is 123456789 * 987654321?", OWNER, on_event=events.append,
            first_tool="calculator",
        )  # fmt: skip
    finally:
        await agent.core.aclose()
    call, outcome = result.calls[0]
    assert call.name == "calculator"
    assert isinstance(call.arguments["expression"], str)  # grammar-valid by construction
    assert [e.kind for e in events][:2] == ["tool_call", "tool_result"]
    # whatever the (tiny) model wrote, the tool's verdict is what the model saw next
    observations = [m.content for m in result.messages if m.role == "tool"]
    assert any(outcome.observation() in o for o in observations)
    if call.arguments["expression"].replace(" ", "") == "123456789*987654321":
        assert "121932631112635269" in outcome.output
    assert result.answer
    assert result.messages[0] == ChatMessage("user", "What is 123456789 * 987654321?")
    assert result.messages[-1].role == "assistant"


async def test_tool_failures_become_observations_and_steps_are_bounded(model_path: Path) -> None:
    agent = await agent_with(model_path, explode, max_steps=2)
    events: list[TurnEvent] = []
    try:
        result = await agent.run_turn(
            [], "Try the explode tool.", OWNER, on_event=events.append, first_tool="explode"
        )
    finally:
        await agent.core.aclose()
    call, outcome = result.calls[0]
    assert call.name == "explode"
    assert not outcome.ok
    assert "boom" in outcome.error
    assert any("error: " in m.content for m in result.messages if m.role == "tool")
    assert len(result.calls) <= 2
    assert result.answer  # the turn still ends with an answer
    if len(result.calls) == 2:
        assert any(e.kind == "notice" and "step limit" in e.text for e in events)


async def test_hostile_arguments_reach_the_model_as_observations(model_path: Path) -> None:
    registry = ToolRegistry([make_calculator()])
    for hostile in [{"expression": 7}, {}, {"expression": "1+" * 60_000 + "1"}, {"x": "1"}]:
        outcome = await registry.call("calculator", hostile, OWNER)
        assert not outcome.ok
        assert outcome.error


async def test_sources_are_cited(model_path: Path) -> None:
    agent = await agent_with(model_path, cite)
    try:
        result = await agent.run_turn([], "Tell me about bees.", OWNER, first_tool="cite")
    finally:
        await agent.core.aclose()
    assert result.sources == ["bees.md#0"]
    assert result.answer.endswith("Sources: bees.md#0")


async def test_auto_mode_always_ends_with_an_answer(model_path: Path) -> None:
    agent = await agent_with(model_path)
    try:
        result = await agent.run_turn(
            [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello!")], "Say hi again.", OWNER
        )
    finally:
        await agent.core.aclose()
    assert result.answer
    assert all(call.name == "calculator" for call, _ in result.calls)
