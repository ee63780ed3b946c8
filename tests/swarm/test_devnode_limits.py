"""The dev node's bounds over real HTTP: body sizes, subscribers, PSS mining, disk storage."""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from swarm_vectordb.bee.chunktree import split
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode, DevNodeLimits
from swarm_vectordb.bee.devnode_store import ChunkStore
from swarm_vectordb.bee.gsoc import mine_gsoc_key
from swarm_vectordb.bee.subscription import Subscription

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MB = 1_000_000
MIB = 1 << 20


async def wait_for(condition: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    """Poll ``condition`` every 5 ms; fail the test after ``limit`` seconds."""
    for _ in range(int(limit / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"timed out waiting for {what}")


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def random_body(size: int) -> AsyncIterator[bytes]:
    """`size` bytes of fresh random data, made as they are sent."""
    for _ in range(size // MIB):
        yield os.urandom(MIB)


async def test_an_oversized_upload_gets_413_without_being_held(tmp_path: Path) -> None:
    limits = DevNodeLimits(max_upload=8 * MIB)
    node = await DevNode.start("127.0.0.1", 0, tmp_path, limits=limits)
    try:
        async with BeeClient(node.url) as bee, aiohttp.ClientSession() as http:
            batch = await bee.buy_stamp(10**8, 20)
            headers = {"Swarm-Postage-Batch-Id": batch.hex()}
            before = rss_bytes()
            started = time.monotonic()
            async with http.post(  # streamed, no Content-Length: found out while reading
                f"{node.url}/bytes", data=random_body(512 * MIB), headers=headers
            ) as response:
                assert response.status == 413
                error = await response.json()
            assert error == {
                "code": 413,
                "message": f"payload too large: more than {8 * MIB} bytes",
            }
            declared = {**headers, "Content-Length": str(1 << 30)}
            async with http.post(  # declared: refused before the body is used
                f"{node.url}/bytes", data=random_body(1 << 30), headers=declared
            ) as response:
                assert response.status == 413
                assert str(1 << 30) in (await response.json())["message"]
            grown = rss_bytes() - before
            assert grown < 64 * MB, f"RSS grew by {grown / MB:.1f} MB"
            assert time.monotonic() - started < 60
            data = os.urandom(3 * MIB)  # under the limit: stored and served
            assert await bee.download_bytes(await bee.upload_bytes(data, batch)) == data
    finally:
        await node.aclose()


async def test_websocket_subscribers_are_capped_with_a_clear_refusal() -> None:
    node = await DevNode.start("127.0.0.1", 0, limits=DevNodeLimits(max_subscribers=3))
    try:
        async with BeeClient(node.url, timeout=5) as bee, aiohttp.ClientSession() as http:
            key = mine_gsoc_key(node.addresses.overlay, os.urandom(32), 2)
            path = f"/gsoc/subscribe/{key.address.hex()}"
            held: list[Subscription] = [await bee.gsoc_subscribe(key.address) for _ in range(3)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(node.url + path)
            assert info.value.status == 503
            async with http.get(node.url + path) as response:  # the body says why
                assert response.status == 503
                assert await response.json() == {
                    "code": 503,
                    "message": "too many websocket subscriptions: 3 are open",
                }
            assert node.hub.refused == 2
            await held.pop().aclose()
            await wait_for(lambda: node.hub.open_count == 2, "the node to see the close")
            held.append(await bee.gsoc_subscribe(key.address))  # room again
            await bee.gsoc_send(key, b"still delivered", await bee.buy_stamp(10**8, 20))
            assert [await s.receive(5) for s in held] == [b"still delivered"] * 3
            for subscription in held:
                await subscription.aclose()
    finally:
        await node.aclose()


async def _pss_send(
    http: aiohttp.ClientSession, url: str, batch: str, target: bytes
) -> tuple[int, dict[str, object], float]:
    started = time.monotonic()
    async with http.post(
        f"{url}/pss/send/topic-{os.urandom(4).hex()}/{target.hex()}",
        data=b"hello",
        headers={"Swarm-Postage-Batch-Id": batch},
    ) as response:
        return response.status, await response.json(), time.monotonic() - started


async def test_pss_mining_is_bounded_in_time_and_refused_when_busy() -> None:
    limits = DevNodeLimits(pss_workers=1, pss_time_limit=0.3, pss_slice_attempts=1 << 12)
    node = await DevNode.start("127.0.0.1", 0, limits=limits)
    try:
        async with BeeClient(node.url) as bee, aiohttp.ClientSession() as http:
            batch = (await bee.buy_stamp(10**8, 20)).hex()
            # A 3-byte prefix needs ~16.7 million tries; 0.3 s gets a few tens of thousands,
            # so success is a ~0.1 % fluke: two flukes in a row would be one in a million.
            for _ in range(2):
                status, body, elapsed = await _pss_send(http, node.url, batch, os.urandom(3))
                if status != 201:
                    break
            assert status == 503
            assert body["code"] == 503
            assert "within 0.3 s" in str(body["message"])
            assert elapsed < 0.3 + 3  # the limit plus one slice and the HTTP round trip

            slow = asyncio.create_task(_pss_send(http, node.url, batch, os.urandom(3)))
            await wait_for(lambda: node.pss_miner.busy == 1, "the first mining job")
            status, body, elapsed = await _pss_send(http, node.url, batch, os.urandom(3))
            assert (status, body["code"]) == (503, 503)
            assert "busy" in str(body["message"])
            assert elapsed < 0.3  # refused at once, not queued
            await slow
            status, body, _ = await _pss_send(http, node.url, batch, os.urandom(1))
            assert status == 201  # the worker is free again and easy targets still work
    finally:
        await node.aclose()


async def test_chunks_live_on_disk_and_survive_a_restart(tmp_path: Path) -> None:
    data = os.urandom(16 * MIB)
    node = await DevNode.start("127.0.0.1", 0, tmp_path)
    try:
        async with BeeClient(node.url) as bee:
            batch = await bee.buy_stamp(10**8, 20)
            ref = await bee.upload_bytes(data, batch)
            log_size = (tmp_path / "chunks.log").stat().st_size
            await bee.upload_bytes(data, batch)  # the same content again: nothing new written
            assert (tmp_path / "chunks.log").stat().st_size == log_size
    finally:
        await node.aclose()

    tracemalloc.start()
    try:
        store = await asyncio.to_thread(ChunkStore, tmp_path)  # replay a 16 MiB log
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert len(store) == len(split(data).chunks)
        assert peak < 4 * MIB, f"replay held {peak / MIB:.1f} MiB"  # an index, not the data
    finally:
        store.close()

    node = await DevNode.start("127.0.0.1", 0, tmp_path)
    try:
        async with BeeClient(node.url) as bee:
            assert await bee.download_bytes(ref) == data
    finally:
        await node.aclose()
