"""The agent loop: a conversation turn that may call tools before it answers.

Each step asks the model, under a grammar built from the offered tools' input
schemas, for exactly one JSON choice: a call to one of those tools with arguments
matching its schema, or the built-in `respond`. Constrained decoding means every
call parses and matches its schema by construction; the arguments are still
validated by the tool. A call runs through the registry (which never raises) and its
result goes back to the model as a `tool` message.

The caller (`agent.assistant`, after routing) decides what the model may choose from:
`offered` names the tools (none: the model just answers), `direct_call` is a call
code already made (its result is the answer, exact, without the model), and
`grounding` holds retrieved passages the answer is written from.

Rules that keep a turn from ending empty:

- a call identical to one already made this turn is not run again;
- after a failed call the model answers without tools, told what failed;
- a direct call that failed or returned nothing may be `repair`ed into a different
  call, at most `max_repairs` times, never into a call already tried;
- an empty answer is generated once more, and if it is still empty the turn says
  plainly what happened (the tool's result or error, or that the model said nothing).

Tool output is data: it reaches the model in `tool` messages, and text from peers
arrives wrapped as untrusted data. The sources an answer drew on (retrieved passages,
`data["sources"]` or `data["hits"][i]["source"]` of tool results) are cited on a last
line added here, not left to the model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import prompts
from agent.llm import ChatMessage, ChatResult, LLMCore, SamplingParams, ToolCall, ToolSpec
from tools import ToolContext, ToolRegistry, ToolResult

if TYPE_CHECKING:
    from agent.grounding import Grounding

log = logging.getLogger(__name__)

RESPOND = "respond"
DECISION_PARAMS = SamplingParams(temperature=0.0, max_tokens=256, repeat_penalty=1.0)
RETRY_PARAMS = SamplingParams(temperature=0.7, max_tokens=256, repeat_penalty=1.15, seed=7)
MAX_OBSERVATION_CHARS = 8_000
UNTRUSTED = "python and chain writes ask you first for the rest of this turn"
MAX_SHOWN_OUTPUT_CHARS = 4_000

EventKind = Literal["token", "tool_call", "tool_result", "notice"]
Repair = Callable[[ToolCall, ToolResult], Awaitable[ToolCall | None]]


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
    generation: ChatResult | None = None  # the model's answer, when the model wrote one


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
        max_repairs: int = 3,
    ) -> None:
        self.core = core
        self.registry = registry
        self.params = params or SamplingParams()
        self.system_prompt = system_prompt or prompts.load("agent")
        self.max_steps = max_steps
        self.max_repairs = max_repairs

    def tool_specs(self, offered: Sequence[str] | None = None) -> list[ToolSpec]:
        """`respond` plus the registered tools named in `offered` (all when None)."""
        tools = self.registry.list()
        if offered is not None:
            tools = [t for t in tools if t.name in offered]
        specs = [ToolSpec(t.name, t.description, t.input_schema) for t in tools]
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
        offered: Sequence[str] | None = None,
        grounding: Grounding | None = None,
        repair: Repair | None = None,
        params: SamplingParams | None = None,
        adapters: Mapping[str, float] | None = None,
    ) -> TurnResult:
        """One user message in, one non-empty answer out, with up to `max_steps` calls.

        `first_tool` makes the first step call that tool; the model still writes its
        arguments. `direct_call` runs exactly that call and answers with the tool's own
        output, without the model. `offered` limits the tools the model may choose
        (an empty sequence: none, the model answers at once). `params` replaces the
        agent's sampling for this turn's answer. `adapters` is the LoRA selection of
        every model call in the turn (`LLMCore.stream_chat`).
        """
        emit = on_event or (lambda event: None)
        asked = grounding.prompt(user_text) if grounding and grounding.passages else user_text
        turn = [ChatMessage("user", asked)]
        context = context.for_turn(m.content for m in [*history, *turn])  # taint: tools.base
        result = TurnResult(answer="")
        if grounding is not None:
            result.sources += grounding.sources
        if direct_call is not None:
            return await self._direct(history, user_text, context, direct_call, repair, emit)
        specs = self.tool_specs(offered)
        failed: tuple[ToolCall, ToolResult] | None = None
        for step in range(self.max_steps):
            allowed = specs
            if step == 0 and first_tool is not None:
                allowed = [s for s in specs if s.name == first_tool] or specs
            if len(allowed) == 1 and allowed[0].name == RESPOND:
                break  # nothing to choose: answer
            call = await self._decide(history, turn, allowed, adapters)
            if call is None or call.name == RESPOND:
                break
            if any(call == earlier for earlier, _ in result.calls):
                # the same call again would only repeat an observation the model has
                emit(TurnEvent("notice", text=f"{call.name} already answered that; answering"))
                break
            outcome = await self._call(call, context, result, emit)
            result.sources += [s for s in _sources(outcome) if s not in result.sources]
            turn.append(ChatMessage("assistant", f"[{call.name} {json.dumps(call.arguments)}]"))
            observation = _observation(call.name, outcome)
            if not outcome.ok:
                failed = (call, outcome)
                note = prompts.load("tool_failed").format(error=outcome.error[:300])
                turn.append(ChatMessage("tool", f"{observation}\n\n{note}"))
                break  # after a tool error the model answers without tools
            turn.append(ChatMessage("tool", observation))
        else:
            emit(TurnEvent("notice", text=f"step limit ({self.max_steps} tool calls) reached"))

        answer = await self._answer(history, turn, result, emit, params or self.params, adapters)
        if not answer and not result.cancelled:
            answer = _fallback(result, failed)
            emit(TurnEvent("token", text=answer))
        if result.sources and not result.cancelled:
            citation = "\n\nSources: " + "; ".join(result.sources)
            emit(TurnEvent("token", text=citation))
            answer += citation
        result.answer = answer
        result.messages = [ChatMessage("user", user_text), *turn[1:]]
        result.messages.append(ChatMessage("assistant", answer))
        return result

    async def _direct(
        self,
        history: Sequence[ChatMessage],
        user_text: str,
        context: ToolContext,
        call: ToolCall,
        repair: Repair | None,
        emit: Callable[[TurnEvent], None],
    ) -> TurnResult:
        """A call made by code: the tool's own output is the answer (exact, no model)."""
        result = TurnResult(answer="")
        outcome = await self._call(call, context, result, emit)
        tried, attempts = [call], 0
        while repair is not None and _unusable(outcome) and attempts < self.max_repairs:
            attempts += 1
            fixed = await repair(call, outcome)
            if fixed is None:
                break
            if fixed in tried:  # never the same call again
                continue
            call = fixed
            tried.append(call)
            outcome = await self._call(call, context, result, emit)
        result.sources += [s for s in _sources(outcome) if s not in result.sources]
        answer = direct_answer(call, outcome)
        emit(TurnEvent("token", text=answer))
        result.answer = answer
        result.messages = [
            ChatMessage("user", user_text),
            ChatMessage("tool", _observation(call.name, outcome)),
            ChatMessage("assistant", answer),
        ]
        return result

    async def _call(
        self,
        call: ToolCall,
        context: ToolContext,
        result: TurnResult,
        emit: Callable[[TurnEvent], None],
    ) -> ToolResult:
        emit(TurnEvent("tool_call", call=call))
        outcome = await self.registry.call(call.name, call.arguments, context)
        emit(TurnEvent("tool_result", call=call, result=outcome))
        result.calls.append((call, outcome))
        if outcome.untrusted:  # the registry tainted the turn: acting tools now ask first
            emit(TurnEvent("notice", text=f"{call.name} returned outside text: {UNTRUSTED}"))
        return outcome

    async def _answer(
        self,
        history: Sequence[ChatMessage],
        turn: list[ChatMessage],
        result: TurnResult,
        emit: Callable[[TurnEvent], None],
        first: SamplingParams,
        adapters: Mapping[str, float] | None = None,
    ) -> str:
        """The streamed answer; generated once more (sampling) if the first is empty."""
        for params in (first, RETRY_PARAMS.with_(max_tokens=first.max_tokens)):
            pieces: list[str] = []
            messages = self._messages(history, turn)
            async with self.core.stream_chat(messages, params=params, adapters=adapters) as s:
                async for piece in s:
                    pieces.append(piece)
                    emit(TurnEvent("token", text=piece))
            result.generation = s.result
            result.cancelled = s.result.finish_reason == "cancelled"
            answer = "".join(pieces).strip()
            if answer or result.cancelled:
                return answer
            log.info("the model answered with nothing; trying once more")
        return ""

    async def _decide(
        self,
        history: Sequence[ChatMessage],
        turn: list[ChatMessage],
        specs: list[ToolSpec],
        adapters: Mapping[str, float] | None = None,
    ) -> ToolCall | None:
        messages = self._messages(history, turn)
        choice = await self.core.chat(
            messages, tools=specs, tool_choice="required", params=DECISION_PARAMS,
            adapters=adapters,
        )  # fmt: skip
        if choice.tool_call is None:  # only when generation stopped early (length, cancel)
            log.info("no tool choice (%s): answering directly", choice.finish_reason)
        return choice.tool_call

    def _messages(
        self, history: Sequence[ChatMessage], turn: Sequence[ChatMessage]
    ) -> list[ChatMessage]:
        return [ChatMessage("system", self.system_prompt), *history, *turn]


_NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


def direct_answer(call: ToolCall, outcome: ToolResult) -> str:
    """What the user reads when a tool's result is the answer; never empty."""
    output = outcome.output.strip()
    if len(output) > MAX_SHOWN_OUTPUT_CHARS:
        output = output[:MAX_SHOWN_OUTPUT_CHARS] + " [...]"
    if call.name == "python":
        code = str(call.arguments.get("code", ""))
        shown = f"```python\n{code}\n```\n"
        shown += f"Output:\n{output}" if output else "It printed nothing."
        return shown if outcome.ok else f"{shown}\nIt failed: {outcome.error}"
    if not outcome.ok:
        return f"{call.name} failed: {outcome.error}" + (f"\n{output}" if output else "")
    if call.name == "calculator" and output:
        return f"{call.arguments.get('expression', '')} = {output}"
    return output or f"{call.name} returned nothing."


def _unusable(outcome: ToolResult) -> bool:
    return not outcome.ok or not outcome.output.strip()


def _fallback(result: TurnResult, failed: tuple[ToolCall, ToolResult] | None) -> str:
    """A plain answer for a turn where the model said nothing."""
    if failed is not None:
        call, outcome = failed
        return f"I could not answer that: {call.name} failed ({outcome.error})."
    for call, outcome in reversed(result.calls):
        if outcome.ok and outcome.output.strip():
            return direct_answer(call, outcome)
    return "I have no answer to that: the model produced no text. Try rephrasing the question."


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
