"""Reading strangers' records is bounded: size, time and concurrency.

The hostile records are real: a gigabyte of zeros as a Swarm chunk tree on the dev
node, which serves it lazily (zeros deduplicate to four chunks). Memory is measured
as the process's resident set (VmRSS). A lying Bee node, the one fault the honest dev
node cannot produce, is a small aiohttp server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web
from eth_keys.datatypes import PrivateKey

from swarm_vectordb.bee.bmt import CHUNK_SIZE, Chunk
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.feeds import make_v2_update
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.errors import MessageRejected
from swarm_vectordb.peers import (
    PEER_RECORD_TOPIC,
    PeerDirectory,
    download_capped,
    fetch_record,
    node_inbox,
    publish_record,
)
from swarm_vectordb.protocol import PeerRecord

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GIB = 1 << 30
MB = 1_000_000


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def zeros_tree(size: int) -> list[Chunk]:
    """The chunk tree of `size` zero bytes (a power of 4096 x 128^n x m), root last.

    Every chunk of a level is the same, so the whole tree is one chunk per level.
    """
    level = Chunk.create(bytes(CHUNK_SIZE))
    chunks, span = [level], CHUNK_SIZE
    while span < size:
        fan = min(CHUNK_SIZE // 32, size // span)
        span *= fan
        level = Chunk.create(level.address * fan, span=span)
        chunks.append(level)
    assert span == size
    return chunks


@dataclass
class Rig:
    node: DevNode
    bee: BeeClient
    batch: BatchId


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url, timeout=10)
    try:
        yield Rig(node, bee, await bee.buy_stamp(10**8, 20))
    finally:
        await bee.aclose()
        await node.aclose()


async def honest_peer(rig: Rig) -> bytes:
    key = os.urandom(32)
    address = PrivateKey(key).public_key.to_canonical_address()
    inbox = await asyncio.to_thread(node_inbox, address, (await rig.bee.addresses()).overlay, 2)
    record = PeerRecord(
        inbox=inbox.to_bytes(),
        public_key=PrivateKey(key).public_key.to_bytes(),
        capabilities=("search",),
        model="m",
        dim=4,
        chunks=1,
        summary=(bytes(16),),
    )
    await publish_record(rig.bee, rig.batch, key, record)
    return address


async def test_zeros_tree_is_what_bee_computes(rig: Rig) -> None:
    """The hand-built tree is Swarm's: the root of uploading 1 MiB of zeros (a partial top
    level, the shape of the gigabyte's), and the gigabyte reads back as zeros."""
    size = 1 << 20
    assert await rig.bee.upload_bytes(bytes(size), rig.batch) == zeros_tree(size)[-1].address
    tree = zeros_tree(GIB)
    for chunk in tree:
        await rig.bee.upload_chunk(chunk, rig.batch)
    root = await rig.bee.download_chunk(tree[-1].address)
    assert root.span == GIB
    async with contextlib.aclosing(rig.bee.iter_bytes(tree[-1].address)) as pieces:
        async for piece in pieces:
            assert piece == bytes(len(piece))
            break


async def test_a_gigabyte_peer_record_is_refused_without_downloading_it(rig: Rig) -> None:
    hostile_key = os.urandom(32)
    hostile = PrivateKey(hostile_key).public_key.to_canonical_address()
    tree = zeros_tree(GIB)
    for chunk in tree:
        await rig.bee.upload_chunk(chunk, rig.batch)
    await rig.bee.write_next_feed_update(
        hostile_key, PEER_RECORD_TOPIC, tree[-1].address, rig.batch
    )
    honest = await honest_peer(rig)

    before = rss_bytes()
    started = time.monotonic()
    with pytest.raises(MessageRejected) as info:
        await fetch_record(rig.bee, hostile, max_bytes=1 << 20)
    assert info.value.reason == "too_large"
    assert str(GIB) in str(info.value)  # the error names the size it refused
    directory = PeerDirectory()
    report = await directory.refresh(rig.bee, [hostile, honest], max_bytes=1 << 20)
    grown = rss_bytes() - before
    assert grown < 64 * MB, f"RSS grew by {grown / MB:.1f} MB"
    assert time.monotonic() - started < 10
    assert report.rejected == {"too_large": 1}
    assert set(directory.peers) == {honest}


async def test_a_feed_update_wrapping_a_gigabyte_tree_is_not_joined(rig: Rig) -> None:
    hostile_key = os.urandom(32)
    hostile = PrivateKey(hostile_key).public_key.to_canonical_address()
    tree = zeros_tree(GIB)
    for chunk in tree:
        await rig.bee.upload_chunk(chunk, rig.batch)
    update = make_v2_update(hostile_key, PEER_RECORD_TOPIC, 0, tree[-1])  # the SOC wraps the root
    await rig.bee.upload_soc(update, rig.batch)

    before = rss_bytes()
    with pytest.raises(MessageRejected) as info:
        await fetch_record(rig.bee, hostile, max_bytes=1 << 20)
    assert info.value.reason == "bad_feed"
    assert rss_bytes() - before < 64 * MB


# --- a lying or stalling Bee node -----------------------------------------------------------


@dataclass
class FakeBee:
    url: str
    small: Chunk  # what it serves as the root chunk, whatever address is asked for
    in_flight: int = 0
    most_in_flight: int = 0


@pytest_asyncio.fixture
async def fake_bee() -> AsyncIterator[FakeBee]:
    """Serves a small root chunk but streams a gigabyte for it, and never answers feeds."""
    small = Chunk.create(b"a small record")
    release = asyncio.Event()
    state = FakeBee("", small)

    async def chunk(request: web.Request) -> web.Response:
        return web.Response(body=small.data)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        piece = bytes(1 << 16)
        for _ in range(GIB // len(piece)):
            await response.write(piece)
        return response

    async def feed(request: web.Request) -> web.Response:
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.wait_for(release.wait(), 30)
        finally:
            state.in_flight -= 1
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/chunks/{address}", chunk)
    app.router.add_get("/bytes/{address}", stream)
    app.router.add_get("/feeds/{owner}/{topic}", feed)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        release.set()
        await runner.cleanup()


async def test_a_node_streaming_more_than_the_span_is_cut_off(fake_bee: FakeBee) -> None:
    small = fake_bee.small
    async with BeeClient(fake_bee.url, timeout=10) as bee:
        before = rss_bytes()
        with pytest.raises(MessageRejected) as info:
            await download_capped(bee, small.address, 1 << 20)
        assert info.value.reason == "too_large"
        assert rss_bytes() - before < 64 * MB


async def test_refresh_is_concurrent_bounded_and_ends_at_its_deadline(fake_bee: FakeBee) -> None:
    addresses = [os.urandom(20) for _ in range(40)]
    async with BeeClient(fake_bee.url, timeout=30) as bee:
        directory = PeerDirectory()
        started = time.monotonic()
        report = await directory.refresh(
            bee, addresses, max_bytes=1 << 20, concurrency=8, deadline_s=1.0
        )
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 5.0
    assert report.asked == 40
    assert report.rejected == {"timeout": 40}
    assert fake_bee.most_in_flight == 8  # concurrent, and never more than allowed
    assert not directory.peers
