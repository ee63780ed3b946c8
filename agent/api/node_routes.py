"""The node's own routes: search, ingest, ask, status, and the two public documents.

- `POST /api/search` `{"query", "k"?, "network"?}`: the search report (`hits`, peers);
- `POST /api/ingest` `{"paths": [...]}` (files or directories on this machine) or
  `{"name", "text"}`: the ingest report;
- `POST /api/ask` `{"question", "history"?, "network"?, "model"?, "stream"?}`: one
  assistant turn (the owner's: destructive tools are refused, nobody can confirm);
  the report as JSON, or with `stream` server-sent events: `token`, `tool_call`,
  `tool_result`, `notice` as the turn runs, then one `report` event;
- `POST /api/peer-ask` `{"address", "question"}`: another node's signed reply (its
  text is the peer's: untrusted);
- `GET /api/status`: model, adapters, embedder, index size, uptime, queue;
- `GET /openapi.json` and `GET /.well-known/agent-card.json`, served without a token.

Every field is checked before anything runs; a bad one is a 400 naming it (`param`),
and so is a field the route does not know (a misspelt `fan_out` would otherwise be
ignored in silence). Peer addresses follow `swarm_vectordb.asks.parse_address`:
mixed case must be a valid EIP-55 checksum.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.api import fields
from agent.api.agentcard import agent_card
from agent.api.chat_request import select_model
from agent.api.errors import SERVER, bad_request, error_body
from agent.api.openapi import openapi_document
from agent.api.sse import EventStream
from agent.api.state import STATE, ApiState
from agent.errors import NoosphereError
from agent.llm import ChatMessage
from agent.loop import TurnEvent
from swarm_vectordb.asks import PeerAskError, parse_address

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 10_000
MAX_QUESTION_CHARS = 200_000
MAX_K = 100
MAX_PATHS = 256
MAX_NAME_CHARS = 256
MAX_HISTORY = 200
MAX_PEER_QUESTION_CHARS = 8192  # what an Ask may carry (swarm_vectordb.asks.MAX_ASK_CHARS)
MAX_FAN_OUT = 10_000
MAX_DEADLINE_S = 600.0
EVENT_QUEUE_DEPTH = 1024

SEARCH_FIELDS = frozenset({"query", "k", "network", "fan_out", "deadline_s"})
INGEST_FIELDS = frozenset({"paths", "name", "text"})
ASK_FIELDS = frozenset({"question", "history", "network", "model", "stream"})
PEER_ASK_FIELDS = frozenset({"address", "question"})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/search", search)
    app.router.add_post("/api/ingest", ingest)
    app.router.add_post("/api/ask", ask)
    app.router.add_post("/api/peer-ask", peer_ask)
    app.router.add_get("/api/status", status)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/.well-known/agent-card.json", card)


async def search(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = _known(await fields.read_object(request, state.settings.max_body_bytes), SEARCH_FIELDS)
    query = fields.req_str(body, "query", max_chars=MAX_QUERY_CHARS)
    k = fields.opt_int(body, "k", minimum=1, maximum=MAX_K) or 10
    network = fields.opt_bool(body, "network")
    fan_out = fields.opt_int(body, "fan_out", minimum=0, maximum=MAX_FAN_OUT)  # 0: every peer
    deadline_s = fields.opt_float(body, "deadline_s", minimum=0.1, maximum=MAX_DEADLINE_S)
    async with state.embed_gate.hold():
        report = await state.backend.search(
            query, k=k, network=network, fan_out=fan_out, deadline_s=deadline_s
        )
    return web.json_response(report.to_json())


async def ingest(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = _known(await fields.read_object(request, state.settings.max_body_bytes), INGEST_FIELDS)
    raw_paths = fields.opt_list(body, "paths", max_items=MAX_PATHS)
    if raw_paths is not None:
        if "text" in body:
            raise bad_request("send either paths or name and text, not both", "paths")
        paths = _existing_paths(raw_paths)
        async with state.embed_gate.hold():
            report = await state.backend.ingest_paths(paths)
        return web.json_response(report)
    name = fields.req_str(body, "name", max_chars=MAX_NAME_CHARS)
    text = fields.req_str(body, "text", max_chars=state.settings.max_body_bytes)
    async with state.embed_gate.hold():
        report = await state.backend.ingest_text(name, text)
    return web.json_response(report)


def _known(body: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """`body`, if it holds no field but `names`; else a 400 naming the first stranger."""
    for name in body:
        if name not in names:
            expected = ", ".join(sorted(names))
            raise bad_request(f"unknown field {name[:64]!r} (expected: {expected})", name[:64],
                              "unknown_field")  # fmt: skip
    return body


def _existing_paths(raw: list[Any]) -> list[Path]:
    if not raw:
        raise bad_request("paths must not be empty", "paths")
    paths = []
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item or "\x00" in item:
            raise bad_request("paths must be non-empty strings", f"paths[{i}]", "invalid_type")
        path = Path(item).expanduser()
        if not path.is_absolute():
            raise bad_request(f"{item!r} is not an absolute path", f"paths[{i}]")
        if not path.exists():
            raise bad_request(f"{item!r} does not exist on this machine", f"paths[{i}]")
        paths.append(path)
    return paths


async def ask(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = _known(await fields.read_object(request, state.settings.max_body_bytes), ASK_FIELDS)
    question = fields.req_str(body, "question", max_chars=MAX_QUESTION_CHARS)
    history = _history(fields.opt_list(body, "history", max_items=MAX_HISTORY) or [])
    network = fields.opt_bool(body, "network")
    stream = fields.opt_bool(body, "stream")
    backend = state.backend
    model = fields.opt_str(body, "model", max_chars=256)
    adapters = None  # no model named: the owner's default adapters
    if model is not None:
        adapters = select_model(
            model,
            backend.model_name,
            {name: backend.adapter_scale(name) for name in backend.adapter_names()},
        )
    async with state.model_gate.hold():
        if not stream:
            report = await backend.ask(
                question, history=history, on_event=None, network=network, adapters=adapters
            )
            return web.json_response(report.to_json())
        return await _stream_ask(request, state, question, history, network, adapters)


def _history(raw: list[Any]) -> list[ChatMessage]:
    messages = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"role", "content"}:
            raise bad_request("each history item is {role, content}", f"history[{i}]")
        role, content = item["role"], item["content"]
        if role not in ("user", "assistant"):  # a system prompt is the node's, not a client's
            raise bad_request("role must be user or assistant", f"history[{i}].role")
        if not isinstance(content, str):
            raise bad_request("content must be a string", f"history[{i}].content", "invalid_type")
        if len(content) > MAX_QUESTION_CHARS:
            raise bad_request(
                f"content is longer than {MAX_QUESTION_CHARS} characters", f"history[{i}].content"
            )
        messages.append(ChatMessage(role, content))
    return messages


async def peer_ask(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await fields.read_object(request, state.settings.max_body_bytes)
    body = _known(body, PEER_ASK_FIELDS)
    raw = fields.req_str(body, "address", max_chars=64)
    question = fields.req_str(body, "question", max_chars=MAX_PEER_QUESTION_CHARS)
    try:
        address = parse_address(raw)
    except PeerAskError as exc:
        raise bad_request(str(exc), "address") from None
    reply = await state.backend.ask_peer(address, question)
    return web.json_response(
        {
            "peer": reply.peer_hex,
            "text": reply.text,
            "latency_ms": round(reply.latency_ms, 1),
            "untrusted": True,
        }
    )


async def _stream_ask(
    request: web.Request,
    state: ApiState,
    question: str,
    history: list[ChatMessage],
    network: bool,
    adapters: dict[str, float] | None,
) -> web.StreamResponse:
    events = await EventStream.open(request)
    queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue(EVENT_QUEUE_DEPTH)

    def on_event(event: TurnEvent) -> None:
        if queue.full():  # a reader this slow gets the report, not every piece
            return
        queue.put_nowait(event)

    async def turn() -> Any:
        try:
            return await state.backend.ask(
                question, history=history, on_event=on_event, network=network, adapters=adapters
            )
        finally:
            await queue.put(None)

    try:
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(turn())
            while (event := await queue.get()) is not None:
                await events.send(_event_json(event), event=event.kind)
        await events.send(running.result().to_json(), event="report")
        await events.close()
    except* ConnectionResetError:
        log.debug("client left a streamed ask; the turn was cancelled")
    except* Exception as group:
        # The response has started: the failure can only be reported as an event.
        first = group.exceptions[0]
        if isinstance(first, NoosphereError):
            message = str(first)
        else:
            log.error("streamed ask failed", exc_info=first)
            message = "internal error; see the node's log"
        await events.send(error_body(message, type=SERVER, code="ask_failed"), event="error")
        await events.close()
    return events.response


def _event_json(event: TurnEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"text": event.text} if event.text else {}
    if event.call is not None:
        out["name"] = event.call.name
        out["arguments"] = event.call.arguments
    if event.result is not None:
        out["result"] = event.result.to_json()
    return out


async def status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    backend = state.backend
    return web.json_response(
        {
            "model": backend.model_name,
            "adapters": backend.adapter_names(),
            "embedder": backend.embedder_id,
            "index_size": backend.index_size(),
            "uptime_s": round(time.monotonic() - state.started, 3),
            "version": state.version,
            "model_busy": state.model_gate.busy,
            "waiting": state.model_gate.waiting,
            "turned_away": state.model_gate.turned_away + state.embed_gate.turned_away,
        }
    )


async def openapi(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(openapi_document(state.version, state.url))


async def card(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(agent_card(state.backend, state.url, state.version))
