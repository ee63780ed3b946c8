"""The agent loop: its never-empty rules, and turns with the real bundled model.

The rules (a repeated call is not run again, a failure ends tool use, an empty answer
is retried and then explained) are control flow, so they are tested against a
scripted stand-in for the model that records what it was asked. Everything the
model itself must get right runs on the real bundled model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.config import ModelConfig
from agent.grounding import Grounding
from agent.llm import ChatMessage, ChatResult, LLMCore, SamplingParams, ToolCall, ToolSpec
from agent.loop import Agent, TurnEvent
from agent.pycode import CodeExamples, write_code
from tools import ToolContext, ToolRegistry, ToolResult, builtin_registry, make_calculator, tool
from tools.knowledge import KnowledgeHit

pytestmark = pytest.mark.asyncio

OWNER = ToolContext(local_owner=True)
SHORT = SamplingParams(temperature=0.0, max_tokens=40)
RESPOND = ToolCall("respond", {})


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


class _Stream:
    def __init__(self, text: str) -> None:
        self.text = text
        self.result = ChatResult(text, "stop", 1, 1, 0.0, 0.0)

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[str]:
        for word in self.text.split(" ") if self.text else []:
            yield word + " "


class ScriptedModel:
    """Stands in for LLMCore: scripted tool choices and answers; records every request."""

    def __init__(self, choices: Sequence[ToolCall], answers: Sequence[str]) -> None:
        self.choices, self.answers = list(choices), list(answers)
        self.offered: list[list[str]] = []  # tool names offered at each decision
        self.answered_from: list[list[ChatMessage]] = []

    async def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResult:
        tools: Sequence[ToolSpec] = kwargs["tools"]
        self.offered.append([t.name for t in tools])
        call = self.choices.pop(0) if self.choices else RESPOND
        return ChatResult("", "stop", 1, 1, 0.0, 0.0, tool_call=call)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> _Stream:
        self.answered_from.append(list(messages))
        return _Stream(self.answers.pop(0) if self.answers else "")


def scripted(choices: Sequence[ToolCall], answers: Sequence[str], *tools: Any) -> Agent:
    registry = ToolRegistry([make_calculator(), *tools])
    return Agent(ScriptedModel(choices, answers), registry, max_steps=4)  # type: ignore[arg-type]


def model_of(agent: Agent) -> ScriptedModel:
    assert isinstance(agent.core, ScriptedModel)
    return agent.core


async def test_a_repeated_call_is_not_run_again() -> None:
    same = ToolCall("calculator", {"expression": "6*7"})
    agent = scripted([same, same], ["It is 42."])
    events: list[TurnEvent] = []
    result = await agent.run_turn([], "6 times 7?", OWNER, on_event=events.append)
    assert [c for c, _ in result.calls] == [same]  # run once
    assert any(e.kind == "notice" and "already answered" in e.text for e in events)
    assert result.answer == "It is 42."


async def test_after_a_failed_call_the_model_answers_without_tools() -> None:
    agent = scripted([ToolCall("explode", {"reason": "x"})], ["Sorry, that failed."], explode)
    result = await agent.run_turn([], "Try the explode tool.", OWNER)
    model = model_of(agent)
    assert len(model.offered) == 1  # no second decision after the failure
    assert len(result.calls) == 1
    assert not result.calls[0][1].ok
    last = model.answered_from[0][-1]
    assert last.role == "tool"
    assert "boom" in last.content
    assert "Do not call tools again" in last.content
    assert result.answer == "Sorry, that failed."


async def test_an_empty_answer_is_generated_again() -> None:
    agent = scripted([], ["", "Hello there."])
    result = await agent.run_turn([], "Hi", OWNER, offered=())
    assert len(model_of(agent).answered_from) == 2
    assert result.answer == "Hello there."


async def test_a_turn_that_stays_empty_says_what_failed() -> None:
    agent = scripted([ToolCall("explode", {"reason": "x"})], ["", ""], explode)
    result = await agent.run_turn([], "Try the explode tool.", OWNER)
    assert result.answer.startswith("I could not answer that: explode failed")
    assert "boom" in result.answer


async def test_a_turn_with_nothing_at_all_still_answers_plainly() -> None:
    agent = scripted([], ["", ""])
    result = await agent.run_turn([], "Hi", OWNER, offered=())
    assert "the model produced no text" in result.answer


async def test_no_offered_tools_means_no_decision_step() -> None:
    agent = scripted([ToolCall("calculator", {"expression": "1"})], ["Fine."])
    result = await agent.run_turn([], "How are you?", OWNER, offered=())
    assert model_of(agent).offered == []  # never asked to choose
    assert result.calls == []


async def test_only_offered_tools_and_respond_are_choices() -> None:
    agent = scripted([], ["ok"], explode)
    await agent.run_turn([], "x", OWNER, offered=["explode"])
    assert model_of(agent).offered == [["explode", "respond"]]


async def test_a_failed_direct_call_is_repaired_never_into_a_call_already_tried() -> None:
    bad = ToolCall("calculator", {"expression": "1/0"})
    offers = iter(["1/0", "2/0", "1/0", "2/0"])  # the repair keeps proposing tried calls
    asked: list[ToolCall] = []

    async def repeat(call: ToolCall, outcome: ToolResult) -> ToolCall | None:
        asked.append(call)
        return ToolCall("calculator", {"expression": next(offers)})

    agent = scripted([], [])
    result = await agent.run_turn([], "1/0", OWNER, direct_call=bad, repair=repeat)
    assert len(asked) == agent.max_repairs  # bounded
    assert [c.arguments["expression"] for c, _ in result.calls] == ["1/0", "2/0"]
    assert result.answer == "calculator failed: division by zero"


async def test_a_repair_that_works_gives_the_answer() -> None:
    bad = ToolCall("calculator", {"expression": "1/0"})

    async def fixed(call: ToolCall, outcome: ToolResult) -> ToolCall | None:
        return ToolCall("calculator", {"expression": "1/1"})

    agent = scripted([], [])
    result = await agent.run_turn([], "1/0", OWNER, direct_call=bad, repair=fixed)
    assert [c.arguments["expression"] for c, _ in result.calls] == ["1/0", "1/1"]
    assert result.answer == "1/1 = 1"


async def test_a_direct_call_that_works_is_not_repaired() -> None:
    async def never(call: ToolCall, outcome: ToolResult) -> ToolCall | None:
        raise AssertionError("repair called for a good result")

    agent = scripted([], [])
    good = ToolCall("calculator", {"expression": "2**64 - 1"})
    result = await agent.run_turn([], "2^64-1", OWNER, direct_call=good, repair=never)
    assert result.answer == "2**64 - 1 = 18446744073709551615"


# ---------------------------------------------------------------- the real bundled model


async def agent_with(model_path: Path, *tools: object, max_steps: int = 3) -> Agent:
    core = await LLMCore.load(model_path, ModelConfig(n_ctx=2048))
    registry = ToolRegistry([make_calculator(), *tools])  # type: ignore[list-item]
    return Agent(core, registry, params=SHORT, max_steps=max_steps)


@pytest.mark.integration
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
    observations = [m.content for m in result.messages if m.role == "tool"]
    assert any(outcome.observation() in o for o in observations)
    assert result.answer
    assert result.messages[0] == ChatMessage("user", "What is 123456789 * 987654321?")
    assert result.messages[-1].role == "assistant"


@pytest.mark.integration
async def test_a_failing_tool_ends_with_a_real_answer_and_one_call(model_path: Path) -> None:
    agent = await agent_with(model_path, explode, max_steps=3)
    try:
        result = await agent.run_turn([], "Try the explode tool.", OWNER, first_tool="explode")
    finally:
        await agent.core.aclose()
    assert [c.name for c, _ in result.calls] == ["explode"]
    assert "boom" in result.calls[0][1].error
    assert result.answer.strip()


@pytest.mark.integration
async def test_sources_are_cited(model_path: Path) -> None:
    agent = await agent_with(model_path, cite)
    try:
        result = await agent.run_turn([], "Tell me about bees.", OWNER, first_tool="cite")
    finally:
        await agent.core.aclose()
    assert result.sources == ["bees.md#0"]
    assert result.answer.endswith("Sources: bees.md#0")


@pytest.mark.integration
async def test_a_grounded_answer_states_the_passage_fact_and_cites_it(model_path: Path) -> None:
    agent = await agent_with(model_path)
    passage = KnowledgeHit(
        "The Zorblax festival is held every March in the town of Velmora.",
        0.8, "/notes/festival.md", "local", "ab" * 32,
    )  # fmt: skip
    try:
        result = await agent.run_turn(
            [], "When is the Zorblax festival held?", OWNER, offered=(),
            grounding=Grounding((passage,), 0.8),
        )  # fmt: skip
    finally:
        await agent.core.aclose()
    body, _, cited = result.answer.rpartition("\n\nSources: ")
    assert "March" in body  # the fact is in the answer itself, not only in the citation
    assert cited == "/notes/festival.md"
    assert result.messages[0] == ChatMessage("user", "When is the Zorblax festival held?")


@pytest.mark.integration
async def test_the_model_writes_code_that_the_sandbox_runs(
    model_path: Path, tmp_path: Path
) -> None:
    from swarm_vectordb.embedding import Embedder

    core = await LLMCore.load(model_path, ModelConfig(n_ctx=2048))
    embedder = await Embedder.load()

    async def embed(texts: Sequence[str]) -> Any:
        return (await embedder.embed(texts)).vectors

    agent = Agent(core, builtin_registry(deny=[tmp_path]), params=SHORT)
    request = "Use Python to print 2 to the power of 100."
    try:
        code = await write_code(core, request, CodeExamples(embed))
        result = await agent.run_turn(
            [], request, OWNER, direct_call=ToolCall("python", {"code": code})
        )
    finally:
        await core.aclose()
        await embedder.aclose()
    assert result.calls[0][1].ok, result.answer
    assert "1267650600228229401496703205376" in result.calls[0][1].output
    assert result.answer.startswith(f"```python\n{code}\n```")


@pytest.mark.integration
async def test_hostile_arguments_reach_the_model_as_observations() -> None:
    registry = ToolRegistry([make_calculator()])
    for hostile in [{"expression": 7}, {}, {"expression": "1+" * 60_000 + "1"}, {"x": "1"}]:
        outcome = await registry.call("calculator", hostile, OWNER)
        assert not outcome.ok
        assert outcome.error
