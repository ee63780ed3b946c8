"""OpenAI-compatible routes: `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`.

Chat completions run on the node's one model, behind the model gate; streaming
answers are server-sent events of `chat.completion.chunk` objects ending with
`data: [DONE]`. `response_format` and a required tool call are enforced by a
grammar during decoding, so a `json_schema` answer always parses and matches.
With `tools` and `tool_choice` `auto`, an answer that is a JSON call of one of the
tools comes back as `tool_calls` (while streaming, text that may be such a call is
held back until it is known).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from typing import Any

import numpy as np
from aiohttp import web

from agent.api import fields
from agent.api.chat_request import ChatRequest, StopScanner, parse_chat_request
from agent.api.errors import NOT_FOUND, SERVER, HttpError, bad_request, error_body
from agent.api.sse import EventStream
from agent.api.state import STATE, ApiState
from agent.errors import GenerationError
from agent.llm import ChatResult, ChatStream, LLMCore

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 1_000_000
MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_CHARS = 100_000


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)


# ---------------------------------------------------------------- models


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    backend = state.backend
    created = int(time.time() - (time.monotonic() - state.started))
    names = [backend.model_name, *backend.adapter_names(), backend.embedder_id]
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "noosphere"}
                for name in names
            ],
        }
    )


# ---------------------------------------------------------------- chat


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await fields.read_object(request, state.settings.max_body_bytes)
    backend = state.backend
    core = await backend.core()
    chat = parse_chat_request(
        body,
        base_model=backend.model_name,
        adapters={name: backend.adapter_scale(name) for name in backend.adapter_names()},
        defaults=state.params,
        n_ctx=core.n_ctx,
        max_input_chars=MAX_INPUT_CHARS,
    )
    async with state.model_gate.hold():
        stream = _open_stream(core, chat)
        if chat.stream:
            return await _stream_answer(request, chat, stream)
        return await _whole_answer(chat, stream)


def _open_stream(core: LLMCore, chat: ChatRequest) -> ChatStream:
    extra: dict[str, Any] = {"adapters": chat.adapters} if chat.adapters is not None else {}
    try:
        return core.stream_chat(
            chat.messages,
            params=chat.params,
            json_schema=chat.json_schema,
            tools=chat.tools,
            tool_choice=chat.tool_choice,
            **extra,
        )
    except ValueError as exc:  # a schema the grammar converter cannot express
        raise bad_request(str(exc), "response_format", "unsupported_schema") from None


def _generation_error(exc: GenerationError) -> HttpError:
    if "grammar" in str(exc):
        return bad_request(str(exc), "response_format", "unsupported_schema")
    return HttpError(500, f"generation failed: {exc}", type=SERVER, code="generation_failed")


async def _whole_answer(chat: ChatRequest, stream: ChatStream) -> web.Response:
    scanner = StopScanner(chat.stop)
    pieces: list[str] = []
    try:
        async with stream:
            async for piece in stream:
                pieces.append(scanner.feed(piece))
                if scanner.stopped:
                    break
    except GenerationError as exc:
        raise _generation_error(exc) from None
    result = stream.result
    if not scanner.stopped:
        pieces.append(scanner.flush())
    message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces)}
    finish = _finish_reason(result, scanner)
    if chat.tools and result.tool_call is not None:
        message["content"] = None
        message["tool_calls"] = [_tool_call_json(result)]
        finish = "tool_calls"
    return web.json_response(
        {
            **_envelope(chat, "chat.completion"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "usage": _usage(result),
        }
    )


async def _stream_answer(
    request: web.Request, chat: ChatRequest, stream: ChatStream
) -> web.StreamResponse:
    envelope = _envelope(chat, "chat.completion.chunk")
    scanner = StopScanner(chat.stop)
    # With tools, text that may turn out to be a JSON tool call is held back.
    held: list[str] | None = [] if chat.tools and chat.tool_choice != "none" else None
    events: EventStream | None = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **envelope,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    try:
        async with stream:
            events = await EventStream.open(request)
            await events.send(chunk({"role": "assistant", "content": ""}))
            async for piece in stream:
                text = scanner.feed(piece)
                if held is not None:
                    held.append(text)
                    start = "".join(held).lstrip()
                    if start and not start.startswith("{") and chat.tool_choice != "required":
                        text, held = "".join(held), None
                    else:
                        text = ""
                if text:
                    await events.send(chunk({"content": text}))
                if scanner.stopped:
                    break
        result = stream.result
        tail = "" if scanner.stopped else scanner.flush()
        finish = _finish_reason(result, scanner)
        if held is not None and result.tool_call is not None:
            call = {"index": 0, **_tool_call_json(result)}
            await events.send(chunk({"tool_calls": [call]}))
            finish = "tool_calls"
        elif held is not None or tail:
            text = "".join(held or []) + tail
            if text:
                await events.send(chunk({"content": text}))
        await events.send(chunk({}, finish))
        if chat.include_usage:
            await events.send({**envelope, "choices": [], "usage": _usage(result)})
        await events.send("[DONE]")
        await events.close()
    except GenerationError as exc:
        if events is None:
            raise _generation_error(exc) from None
        failure = _generation_error(exc)
        await events.send(error_body(failure.message, type=failure.type, code=failure.code))
        await events.close()
    except ConnectionResetError:
        if events is None:
            raise
        log.debug("client left a streamed chat completion; generation stopped")
    return events.response


def _envelope(chat: ChatRequest, kind: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-" + secrets.token_hex(12),
        "object": kind,
        "created": int(time.time()),
        "model": chat.model,
        "system_fingerprint": None,
    }


def _finish_reason(result: ChatResult, scanner: StopScanner) -> str:
    if scanner.stopped or result.finish_reason == "stop":
        return "stop"
    return "length" if result.finish_reason == "length" else "stop"


def _tool_call_json(result: ChatResult) -> dict[str, Any]:
    if result.tool_call is None:
        raise ValueError("no tool call in this result")
    return {
        "id": "call_" + secrets.token_hex(12),
        "type": "function",
        "function": {
            "name": result.tool_call.name,
            "arguments": json.dumps(result.tool_call.arguments),
        },
    }


def _usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


# ---------------------------------------------------------------- embeddings


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await fields.read_object(request, state.settings.max_body_bytes)
    model = fields.req_str(body, "model", max_chars=256)
    _check_embedder(state, model)
    texts = _embedding_inputs(body.get("input"))
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    dimensions = fields.opt_int(body, "dimensions", minimum=1, maximum=1 << 16)
    async with state.embed_gate.hold():
        vectors, tokens = await state.backend.embed(texts)
    if dimensions is not None and dimensions != vectors.shape[1]:
        raise bad_request(
            f"this model's vectors have {vectors.shape[1]} dimensions; it cannot shorten them",
            "dimensions",
        )
    data = []
    for i, vector in enumerate(np.asarray(vectors, dtype="<f4")):
        value: Any = (
            base64.b64encode(vector.tobytes()).decode()
            if encoding == "base64"
            else [float(x) for x in vector]
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _check_embedder(state: ApiState, model: str) -> None:
    known = state.backend.embedder_id
    if model not in (known, known.rsplit("/", 1)[-1]):
        raise HttpError(
            404,
            f"the embedding model {model!r} does not exist here; this node embeds with {known!r}",
            type=NOT_FOUND,
            code="model_not_found",
            param="model",
        )


def _embedding_inputs(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise bad_request("input must be a string or a non-empty array of strings", "input")
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise bad_request(f"input has more than {MAX_EMBEDDING_INPUTS} items", "input")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise bad_request(
                "input must be strings (token arrays are not supported)", f"input[{i}]"
            )
        if not item.strip() or len(item) > MAX_EMBEDDING_CHARS:
            raise bad_request(
                f"input[{i}] must be non-empty and at most {MAX_EMBEDDING_CHARS} characters",
                f"input[{i}]",
            )
    return list(items)
