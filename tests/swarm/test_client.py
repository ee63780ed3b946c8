"""BeeClient at its boundary: lifecycle, error translation, and nodes that lie or hang.

The lying node is a real aiohttp server on loopback that answers Bee's routes
with wrong bytes: the client must refuse them, not pass them on.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.bee.client import BeeClient, ClientState
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.errors import (
    BadRequestError,
    ChunkAddressMismatch,
    InvalidSocError,
    SwarmConnectionError,
    SwarmError,
    SwarmTimeoutError,
)
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.bee.soc import SingleOwnerChunk

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def lying_node() -> AsyncIterator[str]:
    """Serves Bee's routes with content that does not match what was asked for."""
    other = Chunk.create(b"something else entirely")
    soc = SingleOwnerChunk.sign(bytes(32), Chunk.create(b"x"), os.urandom(32))

    async def wrong_bytes(request: web.Request) -> web.Response:
        return web.Response(body=b"not what you uploaded")

    async def wrong_chunk(request: web.Request) -> web.Response:
        return web.Response(body=other.data if request.match_info["a"][0] != "f" else soc.data)

    async def wrong_reference(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"reference": other.address.hex()}, status=201)

    app = web.Application()
    app.router.add_get("/bytes/{a}", wrong_bytes)
    app.router.add_get("/chunks/{a}", wrong_chunk)
    app.router.add_post("/bytes", wrong_reference)
    app.router.add_post("/chunks", wrong_reference)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_downloads_that_do_not_hash_to_the_reference_are_refused(lying_node: str) -> None:
    async with BeeClient(lying_node, timeout=5) as bee:
        with pytest.raises(ChunkAddressMismatch):
            await bee.download_bytes(os.urandom(32))
        with pytest.raises(ChunkAddressMismatch):
            await bee.download_chunk(b"\x00" + os.urandom(31))
        with pytest.raises(InvalidSocError):
            await bee.download_soc(os.urandom(20), os.urandom(32))


async def test_uploads_answered_with_another_reference_are_refused(lying_node: str) -> None:
    batch = BatchId(bytes(32))
    async with BeeClient(lying_node, timeout=5) as bee:
        with pytest.raises(ChunkAddressMismatch):
            await bee.upload_bytes(b"mine", batch)
        with pytest.raises(ChunkAddressMismatch):
            await bee.upload_chunk(Chunk.create(b"mine"), batch)


async def test_an_unreachable_node_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        async with BeeClient(f"http://127.0.0.1:{port}", timeout=5) as bee:
            with pytest.raises(SwarmConnectionError):
                await bee.health()
            with pytest.raises(SwarmConnectionError):
                await bee.gsoc_subscribe(os.urandom(32))
            assert not await bee.readiness()


async def test_a_node_that_never_answers_is_a_timeout() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with BeeClient(f"http://127.0.0.1:{port}", timeout=0.3) as bee:
            with pytest.raises(SwarmTimeoutError):
                await bee.health()
            with pytest.raises(SwarmTimeoutError):
                await bee.download_bytes(os.urandom(32), time_limit=0.3)
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_http_errors_carry_bees_status_and_message(dev_node: DevNode) -> None:
    async with BeeClient(dev_node.url) as bee:
        with pytest.raises(BadRequestError) as caught:
            await bee.buy_stamp(10**8, 3)
    assert caught.value.status == 400
    assert caught.value.message == "invalid path params"


async def test_lifecycle(dev_node: DevNode) -> None:
    bee = await BeeClient.create(dev_node.url)
    assert bee.state.value == "open"
    inbox = await bee.gsoc_subscribe(os.urandom(32))
    await bee.aclose()
    await bee.aclose()  # idempotent
    assert bee.state is ClientState.CLOSED
    assert [message async for message in inbox] == []  # closed with the client
    with pytest.raises(SwarmError):
        await bee.health()
    unopened = BeeClient(dev_node.url)
    with pytest.raises(SwarmError):
        await unopened.health()
