"""An OpenAI chat-completions request, parsed and checked into the LLM core's terms.

Supported: `messages` (system/developer/user/assistant/tool; text content as a
string or text parts; an assistant's earlier `tool_calls`), `model` (the base model
or a loaded adapter), `temperature`, `top_p`, `max_tokens` / `max_completion_tokens`,
`stop`, `seed`, `stream` with `stream_options.include_usage`, `tools` +
`tool_choice`, `response_format` (`text`, `json_object`, `json_schema`). Other
OpenAI fields are accepted and ignored when they cannot change the answer's form
(`user`, `metadata`, penalties), refused when they would (`n` > 1, `logprobs`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.api import fields
from agent.api.errors import NOT_FOUND, HttpError, bad_request
from agent.llm import ChatMessage, Role, SamplingParams, ToolChoice, ToolSpec

MAX_MESSAGES = 1024
MAX_TOOLS = 64
MAX_STOP = 4
MAX_STOP_CHARS = 256
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    params: SamplingParams
    stream: bool
    include_usage: bool
    stop: tuple[str, ...]
    json_schema: dict[str, Any] | None
    tools: tuple[ToolSpec, ...]
    tool_choice: ToolChoice
    adapters: dict[str, float] | None


def select_model(
    requested: str, base: str, adapters: Mapping[str, float]
) -> dict[str, float] | None:
    """{} for the base model alone (the owner's default adapters are not applied: the
    request named the base), {adapter: scale} for an adapter; 404 for anything else."""
    if requested == base:
        return {}
    if requested in adapters:
        return {requested: adapters[requested]}
    raise HttpError(
        404,
        f"the model {requested!r} does not exist here; GET /v1/models lists the base model "
        "and the loaded adapters",
        type=NOT_FOUND,
        code="model_not_found",
        param="model",
    )


def parse_chat_request(
    body: Mapping[str, Any],
    *,
    base_model: str,
    adapters: Mapping[str, float],
    defaults: SamplingParams,
    n_ctx: int,
    max_input_chars: int,
) -> ChatRequest:
    model = fields.req_str(body, "model", max_chars=256)
    selected = select_model(model, base_model, adapters)
    messages = _messages(body, max_input_chars)
    n = fields.opt_int(body, "n", minimum=1, maximum=1)
    del n  # only one choice is generated
    if body.get("logprobs"):
        raise bad_request("logprobs are not supported", "logprobs", "unsupported_parameter")
    max_tokens = fields.opt_int(body, "max_completion_tokens", minimum=1, maximum=n_ctx)
    if max_tokens is None:
        max_tokens = fields.opt_int(body, "max_tokens", minimum=1, maximum=n_ctx)
    temperature = fields.opt_float(body, "temperature", minimum=0.0, maximum=2.0)
    top_p = fields.opt_float(body, "top_p", minimum=0.0, maximum=1.0)
    seed = fields.opt_int(body, "seed", minimum=-(1 << 63), maximum=(1 << 63) - 1)
    for penalty in ("presence_penalty", "frequency_penalty"):
        fields.opt_float(body, penalty, minimum=-2.0, maximum=2.0)
    changes: dict[str, Any] = {}
    if max_tokens is not None:
        changes["max_tokens"] = max_tokens
    if temperature is not None:
        changes["temperature"] = temperature
    if top_p is not None:
        changes["top_p"] = top_p
    if seed is not None:
        changes["seed"] = seed % (1 << 31)  # llama.cpp takes a 32-bit seed; -1 means random
    stream = fields.opt_bool(body, "stream")
    options = fields.opt_object(body, "stream_options") or {}
    include_usage = fields.opt_bool(options, "include_usage")
    tools, tool_choice = _tools(body)
    json_schema = _response_format(body)
    if json_schema is not None and tool_choice == "required":
        raise bad_request(
            "response_format cannot be combined with a required tool call",
            "response_format",
            "invalid_combination",
        )
    return ChatRequest(
        model=model,
        messages=messages,
        params=defaults.with_(**changes),
        stream=stream,
        include_usage=include_usage,
        stop=_stop(body),
        json_schema=json_schema,
        tools=tools,
        tool_choice=tool_choice,
        adapters=selected,
    )


def _messages(body: Mapping[str, Any], max_chars: int) -> list[ChatMessage]:
    raw = fields.opt_list(body, "messages", max_items=MAX_MESSAGES)
    if not raw:
        raise bad_request("messages must be a non-empty array", "messages")
    out: list[ChatMessage] = []
    total = 0
    for i, item in enumerate(raw):
        param = f"messages[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{param} must be an object", param, "invalid_type")
        role = ROLES.get(item.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise bad_request(f"{param}.role must be one of {', '.join(ROLES)}", f"{param}.role")
        text = _content(item.get("content"), f"{param}.content")
        calls = item.get("tool_calls")
        if role == "assistant" and calls:
            text = (text + "\n" if text else "") + _render_calls(calls, f"{param}.tool_calls")
        total += len(text)
        if total > max_chars:
            raise bad_request(f"messages are longer than {max_chars} characters", "messages")
        out.append(ChatMessage(role, text))
    return out


def _content(value: Any, param: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        parts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(f"{param}[{j}]: only text parts are supported", f"{param}[{j}]")
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"{param}[{j}].text must be a string", f"{param}[{j}].text")
            parts.append(text)
        return "".join(parts)
    raise bad_request(f"{param} must be a string or an array of text parts", param, "invalid_type")


def _render_calls(calls: Any, param: str) -> str:
    """An earlier assistant tool call, written the way the model is told to call tools."""
    if not isinstance(calls, list):
        raise bad_request(f"{param} must be an array", param, "invalid_type")
    rendered = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad_request(f"{param}[{j}].function.name is required", f"{param}[{j}]")
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError):
            raise bad_request(
                f"{param}[{j}].function.arguments must be a JSON string",
                f"{param}[{j}].function.arguments",
            ) from None
        rendered.append(json.dumps({"name": function["name"], "arguments": arguments}))
    return "\n".join(rendered)


def _tools(body: Mapping[str, Any]) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    raw = fields.opt_list(body, "tools", max_items=MAX_TOOLS) or []
    specs: list[ToolSpec] = []
    for i, tool in enumerate(raw):
        param = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise bad_request(f'{param} must be {{"type": "function", "function": {{...}}}}', param)
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise bad_request(
                f"{param}.function.name must match {TOOL_NAME.pattern}", f"{param}.function.name"
            )
        description = function.get("description") or ""
        parameters = function.get("parameters") or NO_PARAMETERS
        if not isinstance(description, str) or not isinstance(parameters, dict):
            raise bad_request(f"{param}.function has a malformed description or parameters", param)
        specs.append(ToolSpec(name, description, parameters))
    choice = body.get("tool_choice", "auto" if specs else "none")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        chosen = [t for t in specs if t.name == name]
        if not chosen:
            raise bad_request("tool_choice names a function not in tools", "tool_choice")
        return tuple(chosen), "required"
    if choice not in ("auto", "required", "none"):
        raise bad_request("tool_choice must be auto, required, none or a function", "tool_choice")
    if choice == "required" and not specs:
        raise bad_request("tool_choice 'required' needs tools", "tool_choice")
    return tuple(specs), choice


def _response_format(body: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = fields.opt_object(body, "response_format")
    if spec is None or spec.get("type") == "text":
        return None
    if spec.get("type") == "json_object":
        return {"type": "object"}
    if spec.get("type") == "json_schema":
        wrapper = spec.get("json_schema")
        if not isinstance(wrapper, dict):
            raise bad_request(
                "response_format.json_schema must be an object", "response_format.json_schema"
            )
        schema = wrapper.get("schema", wrapper if "name" not in wrapper else None)
        if not isinstance(schema, dict):
            raise bad_request(
                "response_format.json_schema.schema must be an object",
                "response_format.json_schema.schema",
            )
        return schema
    raise bad_request(
        "response_format.type must be text, json_object or json_schema", "response_format.type"
    )


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or len(items) > MAX_STOP
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in items)
    ):
        raise bad_request(
            f"stop must be a non-empty string or up to {MAX_STOP} of them "
            f"(each at most {MAX_STOP_CHARS} characters)",
            "stop",
        )
    return tuple(items)


class StopScanner:
    """Cuts generated text at the first stop sequence, holding back possible prefixes."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Text that is safe to send now; sets `stopped` when a stop sequence appeared."""
        if not self._stops:
            return piece
        self._pending += piece
        cut = min((i for s in self._stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self._pending, self.stopped = self._pending[:cut], "", True
            return out
        safe = len(self._pending) - self._hold
        if safe <= 0:
            return ""
        out, self._pending = self._pending[:safe], self._pending[safe:]
        return out

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
