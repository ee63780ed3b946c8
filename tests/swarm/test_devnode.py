"""The dev node over real HTTP: Bee's wire shapes, durability, hostile input, flood control."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.bee.chunktree import split
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.feeds import feed_topic, make_v2_update
from swarm_vectordb.bee.gsoc import mine_gsoc_key
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.bee.soc import SingleOwnerChunk, owner_address

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BEE_KEY = bytes.fromhex("634fb5a872396d9693e5c9f9d7233cfa93f395c093371017ff44aa9ae6564cdd")


async def wait_for(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll ``condition`` every 10 ms; fail the test after ``limit`` seconds."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def buy(http: aiohttp.ClientSession, node: DevNode) -> str:
    async with http.post(f"{node.url}/stamps/100000000/20") as response:
        assert response.status == 201
        batch: str = (await response.json())["batchID"]
    return batch


# --- Bee's wire shapes, checked with a plain HTTP client ----------------------------------


async def test_check_values_through_http(dev_node: DevNode, http: aiohttp.ClientSession) -> None:
    stamp = {"Swarm-Postage-Batch-Id": await buy(http, dev_node)}
    async with http.post(f"{dev_node.url}/bytes", data=b"hello world", headers=stamp) as r:
        assert r.status == 201
        assert await r.json() == {
            "reference": "92672a471f4419b255d7cb0cf313474a6f5856fb347c5ece85fb706d644b630f"
        }
    hello = "92672a471f4419b255d7cb0cf313474a6f5856fb347c5ece85fb706d644b630f"
    async with http.head(f"{dev_node.url}/bytes/{hello}") as r:
        assert r.status == 200
        assert r.headers["Content-Length"] == "11"
    async with http.head(f"{dev_node.url}/bytes/{'ab' * 32}") as r:
        assert r.status == 404
    chunk = Chunk.create(b"greaterthanspan")
    async with http.post(f"{dev_node.url}/chunks", data=chunk.data, headers=stamp) as r:
        assert r.status == 201
        assert (await r.json())["reference"] == (
            "27913f1bdb6e8e52cbd5a5fd4ab577c857287edf6969b41efe926b51de0f4f23"
        )
    async with http.get(f"{dev_node.url}/chunks/{chunk.address.hex()}") as r:
        assert await r.read() == chunk.data  # span || payload
    soc = SingleOwnerChunk.sign(bytes(32), Chunk.create(b"foo"), BEE_KEY)
    url = f"{dev_node.url}/soc/{soc.owner.hex()}/{soc.identifier.hex()}?sig={soc.signature.hex()}"
    async with http.post(url, data=soc.wrapped.data, headers=stamp) as r:
        assert r.status == 201
        assert (await r.json())["reference"] == (
            "9d453ebb73b2fedaaf44ceddcf7a0aa37f3e3d6453fea5841c31f0ea6d61dc85"
        )
    async with http.get(f"{dev_node.url}/soc/{soc.owner.hex()}/{soc.identifier.hex()}") as r:
        assert await r.read() == b"foo"
        assert r.headers["Swarm-Soc-Signature"] == soc.signature.hex()


async def test_feed_headers_and_empty_feed(dev_node: DevNode, http: aiohttp.ClientSession) -> None:
    stamp = {"Swarm-Postage-Batch-Id": await buy(http, dev_node)}
    topic = feed_topic("chat:v1")
    owner = owner_address(BEE_KEY).hex()
    async with http.get(f"{dev_node.url}/feeds/{owner}/{topic.hex()}") as r:
        assert r.status == 404
        assert set(await r.json()) >= {"code", "message"}
    for index in range(11):
        soc = make_v2_update(BEE_KEY, topic, index, f"update {index}".encode())
        url = f"{dev_node.url}/soc/{owner}/{soc.identifier.hex()}?sig={soc.signature.hex()}"
        async with http.post(url, data=soc.wrapped.data, headers=stamp) as r:
            assert r.status == 201
    async with http.get(f"{dev_node.url}/feeds/{owner}/{topic.hex()}") as r:
        assert r.status == 200
        assert r.headers["Swarm-Feed-Index"] == "000000000000000a"
        assert r.headers["Swarm-Feed-Index-Next"] == "000000000000000b"
        assert await r.read() == b"update 10"


async def test_stamp_fields(dev_node: DevNode, http: aiohttp.ClientSession) -> None:
    batch = await buy(http, dev_node)
    async with http.get(f"{dev_node.url}/stamps/{batch}") as r:
        body = await r.json()
    assert body["batchID"] == batch
    assert body["usable"] is True
    assert body["exists"] is True
    assert (body["depth"], body["bucketDepth"], body["amount"]) == (20, 16, "100000000")
    assert {"utilization", "batchTTL", "label", "immutableFlag", "blockNumber"} <= set(body)
    async with http.get(f"{dev_node.url}/stamps") as r:
        assert [s["batchID"] for s in (await r.json())["stamps"]] == [batch]


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "/bytes/zz", b"", "none", 400),
        ("GET", "/chunks/abcd", b"", "none", 400),
        ("POST", "/chunks", b"\x01\x02\x03", "good", 400),  # truncated: no whole span
        ("POST", "/chunks", bytes(8 + 4097), "good", 413),
        ("POST", "/chunks", os.urandom(5 * 1024 * 1024), "good", 413),
        ("POST", "/bytes", b"data", "none", 400),  # missing stamp header
        ("POST", "/bytes", b"data", "bad-hex", 400),
        ("POST", "/bytes", b"data", "unknown", 404),
        ("POST", "/soc/00/00?sig=00", b"", "good", 400),
        ("POST", "/stamps/100/5", b"", "none", 400),
        ("POST", "/stamps/abc/20", b"", "none", 400),
    ],
)
async def test_hostile_input_gets_a_clean_4xx(
    dev_node: DevNode,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: bytes,
    headers: str,
    status: int,
) -> None:
    async with BeeClient(dev_node.url) as bee:
        batch = await bee.buy_stamp(10**8, 20)
        kept = await bee.upload_bytes(b"kept safe", batch)
    stamp = {
        "none": {},
        "good": {"Swarm-Postage-Batch-Id": batch.hex()},
        "bad-hex": {"Swarm-Postage-Batch-Id": "xyz"},
        "unknown": {"Swarm-Postage-Batch-Id": os.urandom(32).hex()},
    }[headers]
    payload = io.BytesIO(body) if len(body) > 1024 * 1024 else body  # aiohttp warns on big bytes
    async with http.request(method, dev_node.url + path, data=payload, headers=stamp) as r:
        assert r.status == status
        error = await r.json()
    assert error["code"] == status
    assert isinstance(error["message"], str)
    async with BeeClient(dev_node.url) as bee:
        assert (await bee.health()).status == "ok"
        assert await bee.download_bytes(kept) == b"kept safe"


async def test_soc_with_any_flipped_bit_is_refused(dev_node: DevNode) -> None:
    soc = SingleOwnerChunk.sign(os.urandom(32), Chunk.create(b"signed payload"), BEE_KEY)
    async with BeeClient(dev_node.url) as bee, aiohttp.ClientSession() as http:
        batch = await bee.buy_stamp(10**8, 20)
        for where in ("signature", "payload", "identifier"):
            sig, ident, data = (
                bytearray(soc.signature),
                bytearray(soc.identifier),
                bytearray(soc.wrapped.data),
            )
            target = {"signature": sig, "payload": data, "identifier": ident}[where]
            target[len(target) // 2 + 3] ^= 0x10
            url = f"{dev_node.url}/soc/{soc.owner.hex()}/{ident.hex()}?sig={sig.hex()}"
            headers = {"Swarm-Postage-Batch-Id": batch.hex()}
            async with http.post(url, data=bytes(data), headers=headers) as r:
                assert r.status == 401, where
        assert await bee.upload_soc(soc, batch) == soc.address  # the untouched one passes


async def test_websocket_flood_drops_the_slow_subscriber_only(tmp_path: Path) -> None:
    node = await DevNode.start("127.0.0.1", 0, tmp_path, subscriber_queue=64, ws_send_timeout=2.0)
    try:
        async with BeeClient(node.url) as bee:
            batch = await bee.buy_stamp(10**8, 20)
            kept_data = os.urandom(50_000)
            kept = await bee.upload_bytes(kept_data, batch)
            key = mine_gsoc_key(node.addresses.overlay, os.urandom(32), 4)
            soc = SingleOwnerChunk.sign(
                key.identifier, Chunk.create(os.urandom(4096)), key.private_key
            )
            stalled = await _stalled_websocket(node.url, f"/gsoc/subscribe/{key.address.hex()}")
            try:
                async with await bee.gsoc_subscribe(key.address, queue_size=10_000) as good:
                    await wait_for(
                        lambda: node.hub.subscriber_count(("gsoc", key.address)) == 2, ""
                    )
                    sent = 0
                    while node.hub.evicted == 0 and sent < 5_000:
                        await bee.upload_soc(soc, batch)
                        sent += 1
                    assert node.hub.evicted == 1, "the subscriber that never reads is dropped"
                    for _ in range(20):
                        await bee.upload_soc(soc, batch)
                        sent += 1
                    await wait_for(lambda: good.pending == sent, "all frames to the reader")
                    assert good.dropped == 0
                    assert node.hub.subscriber_count(("gsoc", key.address)) == 1
            finally:
                stalled.close()
            assert (await bee.health()).status == "ok"
            assert await bee.download_bytes(kept) == kept_data
            assert (await bee.download_chunk_data(soc.address)) == soc.data
    finally:
        await node.aclose()


async def _stalled_websocket(url: str, path: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads a byte."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        await loop.sock_connect(sock, (host, int(port)))
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


# --- durability -----------------------------------------------------------------------------


def _append(path: Path, data: bytes) -> None:
    """Append bytes as a crash mid-append leaves them: a torn, unfinished record."""
    with open(path, "ab") as log:
        log.write(data)


async def test_ten_megabytes_survive_a_restart(tmp_path: Path) -> None:
    data = os.urandom(10 * 1024 * 1024)
    node = await DevNode.start("127.0.0.1", 0, tmp_path)
    try:
        async with BeeClient(node.url) as bee:
            batch = await bee.buy_stamp(10**8, 20)
            ref = await bee.upload_bytes(data, batch)
            assert ref == split(data).root
            assert await bee.download_bytes(ref) == data
            overlay = (await bee.addresses()).overlay
    finally:
        await node.aclose()
    await asyncio.to_thread(_append, tmp_path / "chunks.log", b"\xc7" + os.urandom(40))
    node = await DevNode.start("127.0.0.1", 0, tmp_path)
    try:
        async with BeeClient(node.url) as bee:
            assert await bee.download_bytes(ref) == data
            assert (await bee.addresses()).overlay == overlay
            assert (await bee.get_stamp(batch)).usable
            assert await bee.upload_bytes(b"after restart", batch)
    finally:
        await node.aclose()


async def test_subscription_reconnects_after_a_node_restart(tmp_path: Path) -> None:
    node = await DevNode.start("127.0.0.1", 0, tmp_path)
    port = int(node.url.rsplit(":", 1)[1])
    async with BeeClient(node.url, timeout=5) as bee:
        batch = await bee.buy_stamp(10**8, 20)
        key = mine_gsoc_key(node.addresses.overlay, os.urandom(32), 4)
        inbox = await bee.gsoc_subscribe(key.address)
        await node.aclose()
        node = await DevNode.start("127.0.0.1", port, tmp_path)
        try:
            await wait_for(
                lambda: node.hub.subscriber_count(("gsoc", key.address)) == 1, "the resubscription"
            )
            assert inbox.reconnects >= 1
            await bee.gsoc_send(key, b"after restart", batch)
            assert await inbox.receive(5) == b"after restart"
        finally:
            await node.aclose()


async def test_subscription_drops_oldest_when_the_consumer_lags(dev_node: DevNode) -> None:
    async with BeeClient(dev_node.url) as bee:
        batch = await bee.buy_stamp(10**8, 20)
        key = mine_gsoc_key(dev_node.addresses.overlay, os.urandom(32), 4)
        inbox = await bee.gsoc_subscribe(key.address, queue_size=2)
        for n in range(5):
            await bee.gsoc_send(key, b"m%d" % n, batch)
        await wait_for(lambda: inbox.dropped == 3, "three drops")
        assert [await inbox.receive(5), await inbox.receive(5)] == [b"m3", b"m4"]


async def test_unknown_batch_on_every_upload_route(dev_node: DevNode) -> None:
    unknown = BatchId(os.urandom(32))
    async with BeeClient(dev_node.url) as bee:
        with pytest.raises(Exception, match="batch with id not found"):
            await bee.upload_chunk(Chunk.create(b"x"), unknown)
        with pytest.raises(Exception, match="batch with id not found"):
            await bee.upload_soc(
                SingleOwnerChunk.sign(bytes(32), Chunk.create(b"x"), BEE_KEY), unknown
            )
