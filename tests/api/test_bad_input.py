"""Bad input on the node's own routes (`/api/*`): each case is a 400 (413 for a body over
the cap, 415 for a body declared as something other than JSON) whose OpenAI-style
error names the offending field, and the node keeps serving afterwards with nothing
lost. The server is the real one, in front of a real node (tests/api/conftest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from agent.config import ApiConfig
from tests.api.conftest import Api, open_api
from tests.api.test_hostile import assert_error_shape

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TIMEOUT = aiohttp.ClientTimeout(total=60)
JSON = "application/json"
ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55's first example
BAD_CHECKSUM = ADDRESS[:3] + ADDRESS[3].swapcase() + ADDRESS[4:]  # one letter's case flipped
FACT = "The lighthouse keeper's cat is called Marmalade."

Case = tuple[str, Any, str]  # (what, body, the field the 400 must name)


async def send(api: Api, path: str, body: Any, content_type: str | None = JSON) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = api.auth()
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT, skip_auto_headers=["Content-Type"]) as session,
        session.post(api.url + path, data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def assert_400s(api: Api, path: str, cases: list[Case]) -> None:
    for what, body, param in cases:
        status, reply = await send(api, path, body)
        assert status == 400, (what, reply)
        assert_error_shape(reply, param=param)
        assert reply["error"]["type"] == "invalid_request_error", what


async def assert_still_serving(api: Api) -> None:
    """The node answers, ingests and finds what it ingested: nothing was lost or stuck."""
    status, _ = await send(api, "/api/ingest", {"name": "cat.md", "text": FACT})
    assert status == 200
    status, found = await send(api, "/api/search", {"query": "name of the cat", "k": 1})
    assert status == 200
    assert found["hits"][0]["text"] == FACT
    assert not api.server.state.model_gate.busy
    assert not api.server.state.embed_gate.busy


async def test_peer_ask_refuses_malformed_addresses_and_questions(api: Api) -> None:
    ok = "What is the capital of Vell?"
    await assert_400s(
        api,
        "/api/peer-ask",
        [
            ("not hex", {"address": "0x" + "zz" * 20, "question": ok}, "address"),
            ("too short", {"address": "0x1234", "question": ok}, "address"),
            ("too long", {"address": "0x" + "ab" * 21, "question": ok}, "address"),
            ("inner spaces", {"address": "0x" + "ab " * 20, "question": ok}, "address"),
            ("bad checksum", {"address": BAD_CHECKSUM, "question": ok}, "address"),
            ("a number", {"address": 42, "question": ok}, "address"),
            ("no address", {"question": ok}, "address"),
            ("no question", {"address": ADDRESS}, "question"),
            ("empty question", {"address": ADDRESS, "question": ""}, "question"),
            ("blank question", {"address": ADDRESS, "question": " \n\t "}, "question"),
            ("oversized", {"address": ADDRESS, "question": "x" * 8193}, "question"),
            ("a list", {"address": ADDRESS, "question": ["x"]}, "question"),
            ("unknown field", {"address": ADDRESS, "question": ok, "deadline": 5}, "deadline"),
        ],
    )
    status, reply = await send(api, "/api/peer-ask", {"address": BAD_CHECKSUM, "question": ok})
    assert status == 400
    assert "EIP-55 checksum" in reply["error"]["message"]
    await assert_still_serving(api)


async def test_ask_refuses_foreign_roles_non_text_content_and_oversized_history(
    api: Api,
) -> None:
    def ask(history: Any, **more: Any) -> dict[str, Any]:
        return {"question": "hi", "history": history, **more}

    user = {"role": "user", "content": "earlier"}
    await assert_400s(
        api,
        "/api/ask",
        [
            ("system role", ask([{"role": "system", "content": "obey"}]), "history[0].role"),
            ("tool role", ask([user, {"role": "tool", "content": "x"}]), "history[1].role"),
            ("unknown role", ask([{"role": "wizard", "content": "x"}]), "history[0].role"),
            ("number content", ask([{"role": "user", "content": 42}]), "history[0].content"),
            ("list content", ask([{"role": "user", "content": ["x"]}]), "history[0].content"),
            ("huge content", ask([{"role": "user", "content": "x" * 200_001}]),
             "history[0].content"),
            ("extra key", ask([{"role": "user", "content": "x", "name": "eve"}]), "history[0]"),
            ("not an object", ask(["hello"]), "history[0]"),
            ("not a list", ask("hello"), "history"),
            ("too many turns", ask([user] * 201), "history"),
            ("no question", {"history": [user]}, "question"),
            ("stream as text", ask([], stream="yes"), "stream"),
            ("network as number", ask([], network=1), "network"),
            ("model as number", ask([], model=7), "model"),
            ("unknown field", ask([], temperature=0.5), "temperature"),
        ],
    )  # fmt: skip
    await assert_still_serving(api)


async def test_search_refuses_out_of_range_fan_out_and_deadline(api: Api) -> None:
    def search(**more: Any) -> dict[str, Any]:
        return {"query": "cat", **more}

    await assert_400s(
        api,
        "/api/search",
        [
            ("fan_out -1", search(fan_out=-1), "fan_out"),
            ("fan_out huge", search(fan_out=10**9), "fan_out"),
            ("fan_out fraction", search(fan_out=1.5), "fan_out"),
            ("fan_out bool", search(fan_out=True), "fan_out"),
            ("deadline negative", search(deadline_s=-1), "deadline_s"),
            ("deadline zero", search(deadline_s=0), "deadline_s"),
            ("deadline huge", search(deadline_s=1e9), "deadline_s"),
            ("deadline as text", search(deadline_s="5"), "deadline_s"),
            ("k zero", search(k=0), "k"),
            ("k huge", search(k=101), "k"),
            ("no query", {"k": 3}, "query"),
            ("empty query", search(query=""), "query"),
            ("oversized query", search(query="x" * 10_001), "query"),
            ("misspelt field", search(fanout=2), "fanout"),
        ],
    )
    # JSON has no NaN or infinity: the body is not JSON at all. A literal too large
    # for a float parses as infinity and is refused as a value.
    for raw in (
        b'{"query": "cat", "deadline_s": NaN}',
        b'{"query": "cat", "deadline_s": -Infinity}',
    ):
        status, reply = await send(api, "/api/search", raw)
        assert status == 400, raw
        assert_error_shape(reply, code="invalid_json")
    status, reply = await send(api, "/api/search", b'{"query": "cat", "deadline_s": 1e400}')
    assert status == 400
    assert_error_shape(reply, param="deadline_s")
    status, _ = await send(api, "/api/search", search(fan_out=0, deadline_s=0.1))  # the bounds
    assert status == 200
    await assert_still_serving(api)


async def test_bodies_that_are_not_json_objects_are_400s(api: Api) -> None:
    for path in ("/api/search", "/api/ask", "/api/ingest", "/api/peer-ask"):
        for raw in (b"{not json", b"", b"\xff\xfe", b'["query"]', b'"cat"', b"null"):
            status, reply = await send(api, path, raw)
            assert status == 400, (path, raw)
            assert_error_shape(reply, code="invalid_json")
    await assert_still_serving(api)


async def test_a_body_declared_as_anything_but_json_is_415_naming_the_content_type(
    api: Api,
) -> None:
    body = json.dumps({"query": "cat"}).encode()
    for declared in (
        "application/x-www-form-urlencoded",  # curl -d without -H
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/octet-stream",
    ):
        status, reply = await send(api, "/api/search", body, content_type=declared)
        assert status == 415, declared
        assert_error_shape(reply, param="Content-Type", code="unsupported_media_type")
    for accepted in (JSON, "application/json; charset=utf-8", "application/vnd.x+json", None):
        status, _ = await send(api, "/api/search", body, content_type=accepted)
        assert status == 200, accepted
    await assert_still_serving(api)


async def test_ingest_refuses_bad_paths_and_mixed_forms(api: Api, tmp_path: Path) -> None:
    real = tmp_path / "real.md"
    real.write_text(FACT)
    await assert_400s(
        api,
        "/api/ingest",
        [
            ("both forms", {"paths": [str(real)], "text": "x", "name": "a.md"}, "paths"),
            ("no paths", {"paths": []}, "paths"),
            ("path as number", {"paths": [1]}, "paths[0]"),
            ("relative path", {"paths": ["real.md"]}, "paths[0]"),
            ("missing path", {"paths": [str(real), str(tmp_path / "gone.md")]}, "paths[1]"),
            ("nul in path", {"paths": [str(real) + "\x00"]}, "paths[0]"),
            ("too many paths", {"paths": [str(real)] * 257}, "paths"),
            ("text without name", {"text": "x"}, "name"),
            ("name without text", {"name": "a.md"}, "text"),
            ("unknown field", {"name": "a.md", "text": "x", "tags": []}, "tags"),
        ],
    )
    assert api.backend.index_size() == 0  # nothing half-ingested by a refused request
    await assert_still_serving(api)


@pytest_asyncio.fixture
async def small_api(tmp_path: Path, model_path: Path) -> AsyncIterator[Api]:
    async for opened in open_api(tmp_path, model_path, ApiConfig(port=0, max_body_bytes=4096)):
        yield opened


async def test_bodies_over_the_cap_are_413_on_every_node_route(small_api: Api) -> None:
    api = small_api
    big = {"query": "x" * 5000, "question": "x" * 5000}
    for path in ("/api/search", "/api/ask", "/api/ingest", "/api/peer-ask"):
        status, reply = await send(api, path, big)
        assert status == 413, path
        assert_error_shape(reply, code="request_too_large")
    await assert_still_serving(api)


async def test_a_peers_signed_refusal_is_a_429_with_its_retry_time(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal itself is exercised over Swarm in tests/vectordb/test_asks.py; here the
    Swarm side raises it (the fault) and the node must pass the peer's retry time on."""
    from swarm_vectordb.errors import PeerAskRefused

    async def refused(address: bytes, question: str) -> object:
        raise PeerAskRefused(f"0x{address.hex()} refused the ask: rate_limited", "rate_limited", 42)

    monkeypatch.setattr(api.node, "_ask_peer", refused)
    headers = {**api.auth(), "Content-Type": JSON}
    body = json.dumps({"address": ADDRESS, "question": "hello?"}).encode()
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.post(api.url + "/api/peer-ask", data=body, headers=headers) as resp,
    ):
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "42"
        reply = await resp.json()
    assert reply["error"]["type"] == "rate_limit_error"
    assert reply["error"]["code"] == "peer_refused"
    assert "rate_limited" in reply["error"]["message"]
    await assert_still_serving(api)
