"""One suite, two backends: BeeClient over real HTTP against the dev node and a real Bee.

Expected values are oracles: SWARM.md's check values (Bee's own), or the
reference the pure splitter computes from the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.bee.chunktree import split
from swarm_vectordb.bee.errors import NotFoundError, UnauthorizedError
from swarm_vectordb.bee.feeds import feed_topic
from swarm_vectordb.bee.gsoc import mine_gsoc_key
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.bee.soc import SingleOwnerChunk, owner_address
from tests.swarm.conftest import Backend

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BEE_KEY = bytes.fromhex("634fb5a872396d9693e5c9f9d7233cfa93f395c093371017ff44aa9ae6564cdd")
EMPTY_REF = "b34ca8c22b9e982354f9c7f50b470d66db428d880c8a904d5fe4ec9713171526"
HELLO_REF = "92672a471f4419b255d7cb0cf313474a6f5856fb347c5ece85fb706d644b630f"
SPAN_REF = "27913f1bdb6e8e52cbd5a5fd4ab577c857287edf6969b41efe926b51de0f4f23"
FOO_SOC = "9d453ebb73b2fedaaf44ceddcf7a0aa37f3e3d6453fea5841c31f0ea6d61dc85"


def fresh_key() -> bytes:
    return os.urandom(32)


async def test_health_readiness_and_addresses(bee: Backend) -> None:
    health = await bee.client.health()
    assert health.status == "ok"
    assert await bee.client.readiness()
    assert len(bee.addresses.overlay) == 32
    assert len(bee.addresses.pss_public_key) == 33
    assert (await bee.client.addresses()).overlay == bee.addresses.overlay  # stable


@pytest.mark.parametrize(("data", "reference"), [(b"", EMPTY_REF), (b"hello world", HELLO_REF)])
async def test_bytes_check_values(bee: Backend, data: bytes, reference: str) -> None:
    ref = await bee.client.upload_bytes(data, bee.batch)
    assert ref.hex() == reference
    assert await bee.peer.download_bytes(ref) == data


async def test_bytes_tree_round_trip_both_ways(bee: Backend) -> None:
    data = os.urandom(4096 * 130 + 17)  # two levels, a lone child on the last group
    ref = await bee.client.upload_bytes(data, bee.batch)
    assert ref == split(data).root
    assert await bee.peer.download_bytes(ref) == data
    assert await bee.peer.download_bytes_by_chunks(ref) == data


async def test_streamed_upload_gives_the_same_reference(bee: Backend) -> None:
    data = os.urandom(300_000)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7_777):
            yield data[start : start + 7_777]

    assert await bee.client.upload_bytes(pieces(), bee.batch) == split(data).root


async def test_missing_data_is_not_found(bee: Backend) -> None:
    with pytest.raises(NotFoundError) as caught:
        await bee.client.download_bytes(os.urandom(32))
    assert caught.value.status == 404
    with pytest.raises(NotFoundError):
        await bee.client.download_chunk(os.urandom(32))


async def test_chunk_round_trip(bee: Backend) -> None:
    chunk = Chunk.create(b"greaterthanspan")
    assert (await bee.client.upload_chunk(chunk, bee.batch)).hex() == SPAN_REF
    assert await bee.peer.download_chunk(chunk.address) == chunk


async def test_soc_check_value_round_trip(bee: Backend) -> None:
    soc = SingleOwnerChunk.sign(bytes(32), Chunk.create(b"foo"), BEE_KEY)
    assert (await bee.client.upload_soc(soc, bee.batch)).hex() == FOO_SOC
    fetched = await bee.peer.download_soc(soc.owner, soc.identifier)
    assert fetched == soc


async def test_soc_with_a_flipped_signature_bit_is_refused(bee: Backend) -> None:
    soc = SingleOwnerChunk.sign(os.urandom(32), Chunk.create(b"tampered"), fresh_key())
    signature = bytearray(soc.signature)
    signature[5] ^= 0x01
    forged = SingleOwnerChunk(soc.identifier, bytes(signature), soc.owner, soc.wrapped)
    with pytest.raises(UnauthorizedError) as caught:
        await bee.client.upload_soc(forged, bee.batch)
    assert 400 <= caught.value.status < 500
    with pytest.raises(NotFoundError):
        await bee.client.download_chunk_data(soc.address)


async def test_feed_sequence(bee: Backend) -> None:
    key, topic = fresh_key(), feed_topic("chat:v1")
    owner = owner_address(key)
    assert await bee.client.read_feed(owner, topic) is None
    for expected_index, text in enumerate([b"first", b"second", b"third"]):
        index = await bee.client.write_next_feed_update(key, topic, text, bee.batch)
        assert index == expected_index
    latest = await bee.peer.read_feed(owner, topic)
    assert latest is not None
    assert (latest.index, latest.next_index, latest.content) == (2, 3, b"third")
    assert latest.soc.owner == owner
    exact = await bee.peer.read_feed_update(owner, topic, 1)
    assert exact.content == b"second"
    with pytest.raises(NotFoundError):
        await bee.peer.read_feed_update(owner, topic, 3)


async def test_feed_update_wrapping_a_large_tree(bee: Backend) -> None:
    key, topic = fresh_key(), feed_topic("big")
    data = os.urandom(20_000)
    tree = split(data)
    for chunk in tree.chunks[:-1]:
        await bee.client.upload_chunk(chunk, bee.batch)
    await bee.client.write_feed_update(key, topic, 0, tree.chunks[-1], bee.batch)
    update = await bee.peer.read_feed(owner_address(key), topic)
    assert update is not None
    assert update.content == data


async def test_gsoc_message_reaches_another_client(bee: Backend) -> None:
    # mined into the receiving node's neighbourhood, as an inbox is
    key = mine_gsoc_key(bee.peer_addresses.overlay, os.urandom(32), 8)
    async with await bee.peer.gsoc_subscribe(key.address) as inbox:
        for text in (b"one", b"two"):
            await bee.client.gsoc_send(key, text, bee.batch)
        received = [await inbox.receive(10), await inbox.receive(10)]
        while set(received) != {b"one", b"two"} and len(received) < 6:
            received.append(await inbox.receive(10))
    assert set(received) == {b"one", b"two"}
    if bee.kind == "dev":  # real Bee may deliver a message twice (docs/realbee.md)
        assert received == [b"one", b"two"]


async def test_pss_message_reaches_another_client(bee: Backend) -> None:
    topic = f"noosphere-test-{os.urandom(4).hex()}"
    async with await bee.peer.pss_subscribe(topic) as inbox:
        await bee.client.pss_send(
            topic,
            bee.peer_addresses.overlay[:1],
            b"psst",
            bee.batch,
            recipient=bee.peer_addresses.pss_public_key,
        )
        assert await inbox.receive(20) == b"psst"


async def test_stamps(bee: Backend) -> None:
    stamp = await bee.client.get_stamp(bee.batch)
    assert stamp.batch_id == bee.batch
    assert stamp.usable
    assert stamp.exists
    assert stamp.depth >= 17
    assert stamp.bucket_depth == 16
    assert stamp.batch_ttl > 0
    assert bee.batch in [s.batch_id for s in await bee.client.list_stamps()]
    with pytest.raises(NotFoundError):
        await bee.client.get_stamp(BatchId(os.urandom(32)))


async def test_upload_with_an_unknown_batch_is_refused(bee: Backend) -> None:
    with pytest.raises(NotFoundError) as caught:
        await bee.client.upload_bytes(b"unpaid", BatchId(os.urandom(32)))
    assert caught.value.message
