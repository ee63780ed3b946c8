"""The agent loop: a conversation turn that may call tools before it answers.

Each step asks the model, under a grammar built from the tools' input schemas, for
exactly one JSON choice: a call to one of the tools with arguments matching its
schema, or the built-in `respond`. Constrained decoding means every call parses and
matches its schema by construction; the arguments are still validated by the tool.
A call runs through the registry (which never raises) and its result goes back to the
model as a `tool` message: errors the model caused are observations, not crashes.
After `respond`, a repeat of a call already made this turn, or `max_steps` calls, the
answer is streamed as free text.

Tool output is data: it reaches the model in `tool` messages, and text from peers
arrives wrapped as untrusted data by the knowledge tool. When tools report the
sources they drew on (`data["sources"]` or `data["hits"][i]["source"]`), the answer
ends with a line citing them, added here rather than left to the model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import prompts
from agent.llm import ChatMessage, LLMCore, SamplingParams, ToolCall, ToolSpec
from tools import ToolContext, ToolRegistry, ToolResult

log = logging.getLogger(__name__)

RESPOND = "respond"
DECISION_PARAMS = SamplingParams(temperature=0.0, max_tokens=256, repeat_penalty=1.0)
MAX_OBSERVATION_CHARS = 8_000

EventKind = Literal["token", "tool_call", "tool_result", "notice"]


@dataclass(frozen=True)
class TurnEvent:
    kind: EventKind
    text: str = ""
    call: ToolCall | None = None
    result: ToolResult | None = None


@dataclass
class TurnResult:
    answer: str
    calls: list[tuple[ToolCall, ToolResult]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    messages: list[ChatMessage] = field(default_factory=list)  # this turn's, to persist
    cancelled: bool = False


class Agent:
    """Runs turns against one model and one tool registry."""

    def __init__(
        self,
        core: LLMCore,
        registry: ToolRegistry,
        *,
        params: SamplingParams | None = None,
        system_prompt: str | None = None,
        max_steps: int = 4,
    ) -> None:
        self.core = core
        self.registry = registry
        self.params = params or SamplingParams()
        self.system_prompt = system_prompt or prompts.load("agent")
        self.max_steps = max_steps

    def tool_specs(self) -> list[ToolSpec]:
        specs = [ToolSpec(t.name, t.description, t.input_schema) for t in self.registry.list()]
        respond = ToolSpec(RESPOND, "Answer the user directly, without a tool.", _NO_ARGUMENTS)
        return [*specs, respond]

    async def run_turn(
        self,
        history: Sequence[ChatMessage],
        user_text: str,
        context: ToolContext,
        *,
        on_event: Callable[[TurnEvent], None] | None = None,
        first_tool: str | None = None,
        direct_call: ToolCall | None = None,
    ) -> TurnResult:
        """One user message in, one answer out, with up to `max_steps` tool calls.

        `first_tool` makes the first step call that tool; the model still writes its
        arguments. `direct_call` runs exactly that call and answers with the tool's own
        output, without the model (the chat sends a bare arithmetic expression straight
        to the calculator, so the answer is exact).
        """
        emit = on_event or (lambda event: None)
        turn = [ChatMessage("user", user_text)]
        result = TurnResult(answer="")
        specs = self.tool_specs()
        for step in range(self.max_steps):
            allowed = specs
            if step == 0 and first_tool is not None:
                allowed = [s for s in specs if s.name == first_tool] or specs
            if step == 0 and direct_call is not None:
                call: ToolCall | None = direct_call
            else:
                call = await self._decide(history, turn, allowed)
            if call is None or call.name == RESPOND:
                break
            if any(call == earlier for earlier, _ in result.calls):
                # the same call again would only repeat an observation the model has
                emit(TurnEvent("notice", text=f"{call.name} already answered that; answering"))
                break
            emit(TurnEvent("tool_call", call=call))
            outcome = await self.registry.call(call.name, call.arguments, context)
            emit(TurnEvent("tool_result", call=call, result=outcome))
            result.calls.append((call, outcome))
            if call is direct_call:  # the tool's own output is the answer: exact, no model
                answer = outcome.observation()
                emit(TurnEvent("token", text=answer))
                result.answer = answer
                turn.append(ChatMessage("tool", _observation(call.name, outcome)))
                result.messages = [*turn, ChatMessage("assistant", answer)]
                return result
            result.sources += [s for s in _sources(outcome) if s not in result.sources]
            turn.append(ChatMessage("assistant", f"[{call.name} {json.dumps(call.arguments)}]"))
            turn.append(ChatMessage("tool", _observation(call.name, outcome)))
        else:
            emit(TurnEvent("notice", text=f"step limit ({self.max_steps} tool calls) reached"))

        pieces: list[str] = []
        async with self.core.stream_chat(self._messages(history, turn), params=self.params) as s:
            async for piece in s:
                pieces.append(piece)
                emit(TurnEvent("token", text=piece))
        result.cancelled = s.result.finish_reason == "cancelled"
        answer = "".join(pieces).strip()
        if result.sources:
            citation = "\n\nSources: " + "; ".join(result.sources)
            emit(TurnEvent("token", text=citation))
            answer += citation
        result.answer = answer
        result.messages = [*turn, ChatMessage("assistant", answer)]
        return result

    async def _decide(
        self, history: Sequence[ChatMessage], turn: list[ChatMessage], specs: list[ToolSpec]
    ) -> ToolCall | None:
        messages = self._messages(history, turn)
        choice = await self.core.chat(
            messages, tools=specs, tool_choice="required", params=DECISION_PARAMS
        )
        if choice.tool_call is None:  # only when generation stopped early (length, cancel)
            log.info("no tool choice (%s): answering directly", choice.finish_reason)
        return choice.tool_call

    def _messages(
        self, history: Sequence[ChatMessage], turn: Sequence[ChatMessage]
    ) -> list[ChatMessage]:
        return [ChatMessage("system", self.system_prompt), *history, *turn]


_NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


def _observation(name: str, outcome: ToolResult) -> str:
    text = outcome.observation()
    if len(text) > MAX_OBSERVATION_CHARS:
        text = text[:MAX_OBSERVATION_CHARS] + f"\n[... {len(text) - MAX_OBSERVATION_CHARS} more]"
    return f"Result of {name}:\n{text}"


def _sources(outcome: ToolResult) -> list[str]:
    data = outcome.data or {}
    listed = data.get("sources")
    if isinstance(listed, list):
        return [s for s in listed if isinstance(s, str)]
    hits = data.get("hits")
    if isinstance(hits, list):
        return [
            h["source"] for h in hits if isinstance(h, dict) and isinstance(h.get("source"), str)
        ]
    return []
