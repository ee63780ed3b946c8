"""Hostile HTTP input: every bad request gets a 4xx with an OpenAI-style error body,
and the node keeps serving afterwards, with the model free and nothing lost."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from typing import Any

import aiohttp
import pytest

from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LONG_STORY = [{"role": "user", "content": "Tell me a very long story about a dragon."}]
TIMEOUT = aiohttp.ClientTimeout(total=120)


def assert_error_shape(body: Any, *, param: str | None = None, code: str | None = None) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def json_headers(api: Api) -> dict[str, str]:
    return {**api.auth(), "Content-Type": "application/json"}


async def post(api: Api, path: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    data = (
        body
        if isinstance(body, bytes | io.BytesIO) or not isinstance(body, dict | list)
        else json.dumps(body).encode()
    )
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(api.url + path, data=data, headers=json_headers(api), **kwargs) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def chat(api: Api, **fields: Any) -> dict[str, Any]:
    return {"model": api.backend.model_name, "messages": [{"role": "user", "content": "hi"}],
            **fields}  # fmt: skip


async def test_bad_json_is_a_400_that_says_so(api: Api) -> None:
    for raw in (b"{not json", b'{"model": NaN}', b"[1, 2]", b"", b"\xff\xfe"):
        status, body = await post(api, "/v1/chat/completions", raw)
        assert status == 400, raw
        assert_error_shape(body, code="invalid_json")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10**12}, "max_tokens"),
        ({"max_completion_tokens": -5}, "max_completion_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 9}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"stream": "yes"}, "stream"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages[0].content[0]"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 3}, "n"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 5}}},
         "response_format.json_schema.schema"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
         "tools[0].function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"model": 7}, "model"),
    ],
)  # fmt: skip
async def test_invalid_chat_fields_are_400s_naming_the_field(
    api: Api, fields: dict[str, Any], param: str
) -> None:
    status, body = await post(api, "/v1/chat/completions", chat(api, **fields))
    assert status == 400
    assert_error_shape(body, param=param)
    assert body["error"]["type"] == "invalid_request_error"


async def test_unknown_models_are_404_model_not_found(api: Api) -> None:
    status, body = await post(api, "/v1/chat/completions", chat(api, model="gpt-5"))
    assert status == 404
    assert_error_shape(body, param="model", code="model_not_found")
    status, body = await post(api, "/v1/embeddings", {"model": "gpt-5", "input": "x"})
    assert status == 404
    assert_error_shape(body, param="model", code="model_not_found")
    status, body = await post(api, "/api/ask", {"question": "hi", "model": "gpt-5"})
    assert status == 404
    assert_error_shape(body, code="model_not_found")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": []}, "input"),
        ({"input": [1, 2, 3]}, "input[0]"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "x", "dimensions": 12}, "dimensions"),
    ],
)
async def test_invalid_embedding_requests_are_400s(
    api: Api, fields: dict[str, Any], param: str
) -> None:
    status, body = await post(api, "/v1/embeddings", {"model": api.backend.embedder_id, **fields})
    assert status == 400
    assert_error_shape(body, param=param)


async def test_unknown_route_and_wrong_method_have_the_error_shape(api: Api) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(api.url + "/v1/nothing", headers=api.auth()) as resp:
            assert resp.status == 404
            assert_error_shape(await resp.json(), code="not_found")
        async with session.get(api.url + "/v1/chat/completions", headers=api.auth()) as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "POST"
            assert_error_shape(await resp.json(), code="method_not_allowed")
        async with session.get(api.url + "/v1/nothing") as resp:  # no token: no route leak
            assert resp.status == 401


async def test_50_mb_bodies_get_413_and_the_server_keeps_serving(api: Api) -> None:
    big = io.BytesIO(b'{"model": "' + b"x" * (50 << 20) + b'"}')
    status, body = await post(api, "/v1/chat/completions", big)
    assert status == 413
    assert_error_shape(body, code="request_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit must hold while reading
        for _ in range(50):
            yield b"x" * (1 << 20)

    status, body = await post(api, "/v1/embeddings", chunks())
    assert status == 413
    assert_error_shape(body, code="request_too_large")
    status, body = await post(api, "/v1/chat/completions", chat(api, max_tokens=4))
    assert status == 200
    assert body["choices"][0]["message"]["content"]


async def test_a_raw_socket_lying_about_its_length_is_refused_before_reading(api: Api) -> None:
    host, port = api.url.removeprefix("http://").split(":")

    def exchange() -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {api.token}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n{"
            )
            return sock.recv(65536)

    reply = await asyncio.to_thread(exchange)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"request_too_large"' in reply


async def read_chunks(resp: aiohttp.ClientResponse, n: int) -> int:
    seen = 0
    async for line in resp.content:
        if line.startswith(b"data: {") and b'"content"' in line:
            seen += 1
            if seen >= n:
                break
    return seen


async def test_a_disconnected_long_generation_frees_the_model_for_the_next_request(
    api: Api,
) -> None:
    core = await api.backend.core()
    body = chat(api, messages=LONG_STORY, stream=True, max_tokens=1900, temperature=0.8, seed=1)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        resp = await session.post(api.url + "/v1/chat/completions", json=body, headers=api.auth())
        assert resp.status == 200
        assert await read_chunks(resp, 5) == 5
        resp.close()  # the client goes away mid-answer
    at_disconnect = core.tokens_generated
    status, reply = await post(api, "/v1/chat/completions", chat(api, max_tokens=8))
    assert status == 200
    # The long answer stopped within a few tokens of the disconnect: everything the
    # core generated since is the next request's answer plus a little slack.
    extra = core.tokens_generated - at_disconnect - reply["usage"]["completion_tokens"]
    assert 0 <= extra < 64
    assert not api.server.state.model_gate.busy


async def test_100_concurrent_streams_that_disconnect_leave_the_server_serving(
    api: Api,
) -> None:
    fact = "The lighthouse keeper's cat is called Marmalade."
    status, _ = await post(api, "/api/ingest", {"name": "cat.md", "text": fact})
    assert status == 200
    core = await api.backend.core()
    body = chat(api, messages=LONG_STORY, stream=True, max_tokens=1000, temperature=0.8)
    statuses: list[int | str] = []
    refusals: list[tuple[Any, str | None]] = []

    async def one(session: aiohttp.ClientSession) -> None:
        outcome: int | str = "left"  # still waiting in line at the timeout: the client leaves
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(3):
                resp = await session.post(
                    api.url + "/v1/chat/completions", json=body, headers=api.auth()
                )
                outcome = resp.status
                if resp.status == 429:
                    refusals.append((await resp.json(), resp.headers.get("Retry-After")))
                else:
                    await read_chunks(resp, 2)  # then disconnect mid-stream
        except TimeoutError:
            pass
        finally:
            if resp is not None:
                resp.close()
        statuses.append(outcome)

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT, connector=connector) as session,
        asyncio.TaskGroup() as tasks,
    ):
        for _ in range(100):
            tasks.create_task(one(session))
    assert len(statuses) == 100
    assert set(statuses) <= {200, 429, "left"}
    assert 200 in statuses
    assert statuses.count(429) >= 100 - 1 - api.server.state.settings.max_waiting - 10
    for refusal, retry_after in refusals:
        assert_error_shape(refusal, code="model_busy")
        assert refusal["error"]["type"] == "rate_limit_error"
        assert retry_after is not None
        assert int(retry_after) > 0
    at_end = core.tokens_generated
    async with asyncio.timeout(30):  # the next request answers promptly
        status, reply = await post(api, "/v1/chat/completions", chat(api, max_tokens=8))
    assert status == 200
    assert core.tokens_generated - at_end - reply["usage"]["completion_tokens"] < 64
    gate = api.server.state.model_gate
    assert gate.waiting == 0
    assert not gate.busy
    status, found = await post(api, "/api/search", {"query": "name of the cat", "k": 1})
    assert status == 200
    assert found["hits"][0]["text"] == fact  # nothing lost


async def test_a_client_trickling_its_body_is_cut_off_with_408(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.api import fields

    monkeypatch.setattr(fields, "BODY_TIMEOUT_S", 0.5)
    host, port = api.url.removeprefix("http://").split(":")

    def exchange() -> bytes:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {api.token}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            return sock.recv(65536)  # sends nothing more: the server must give up

    reply = await asyncio.to_thread(exchange)
    assert reply.startswith(b"HTTP/1.1 408")
    status, _ = await post(api, "/v1/embeddings", {"model": api.backend.embedder_id, "input": "x"})
    assert status == 200
