"""Distributed search across real `noosphere serve` processes on one dev node.

The oracle is exact top-k over the union of every peer's chunks. Hostile peers (a
liar, a forger, a silent one) are built here from the protocol's own primitives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgpack
import numpy as np
import pytest
import pytest_asyncio
from eth_account import Account

from agent.identity import create_identity
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.embedding import Embedder
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.network import NetworkResult, network_search
from swarm_vectordb.peers import Inbox, PeerDirectory, node_inbox, post, publish_record
from swarm_vectordb.protocol import (
    Answer,
    Hit,
    PeerRecord,
    Query,
    canonical,
    open_envelope,
    seal,
)
from swarm_vectordb.routing import text_reference

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

PASSWORD = "correct horse battery"
TOPICS = ["honey bees", "ocean tides", "steam engines", "jazz music", "mountain glaciers"]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class ServingPeer:
    home: Path
    address: bytes
    process: asyncio.subprocess.Process
    chunks: list[tuple[bytes, str, np.ndarray]]


class Asker(Protocol):
    """What `ask` needs: a Bee node and batch, the embedder, the asking node's key."""

    bee: BeeClient
    batch: BatchId
    embedder: Embedder
    asker_key: bytes


@dataclass
class Net:
    node: DevNode
    bee: BeeClient
    batch: BatchId
    embedder: Embedder
    peers: list[ServingPeer]
    asker_key: bytes


def corpus(peer: int) -> list[str]:
    return [
        f"Note {peer}-{i}: {TOPICS[(peer + i) % len(TOPICS)]} and detail number {i * 7 + peer}."
        for i in range(15)
    ]


async def start_peer(tmp: Path, n: int, net_url: str, embedder: Embedder) -> ServingPeer:
    home = tmp / f"peer{n}"
    identity = create_identity(home / "keystore.json", PASSWORD)
    texts = corpus(n)
    vectors = (await embedder.embed(texts)).vectors
    with VectorIndex(home / "data" / "index", embedder.dim, embedder.model_id) as index:
        index.add(
            [
                IndexedChunk(ChunkRef(text_reference(t)), t, f"peer{n}.txt", i)
                for i, t in enumerate(texts)
            ],
            vectors,
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env.update(
        NOOSPHERE_HOME=str(home),
        NOOSPHERE_PASSWORD=PASSWORD,
        NOOSPHERE_NETWORK_BEE_URL=net_url,
        HF_HUB_OFFLINE="1",
    )
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("noosphere")),
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    chunks = [(text_reference(t), t, v) for t, v in zip(texts, vectors, strict=True)]
    return ServingPeer(home, bytes.fromhex(identity.address[2:]), process, chunks)


async def wait_ready(peer: ServingPeer) -> None:
    assert peer.process.stdout is not None
    line = await asyncio.wait_for(peer.process.stdout.readline(), 120)
    assert line.strip().lower() == b"0x" + peer.address.hex().encode(), line


async def kill(peers: list[ServingPeer]) -> None:
    """Kill the serving peers still running (a fixture's teardown)."""
    for peer in peers:
        if peer.process.returncode is None:
            peer.process.kill()
            await peer.process.wait()


async def stop(peer: ServingPeer) -> str:
    if peer.process.returncode is None:
        peer.process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(peer.process.communicate(), 60)
    assert peer.process.returncode == 0, err.decode()
    return err.decode()


@pytest_asyncio.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url)
    embedder = await Embedder.load()
    batch = await bee.buy_stamp(10_000_000, 24)
    peers: list[ServingPeer] = []
    try:
        peers = [await start_peer(tmp_path, n, node.url, embedder) for n in range(3)]
        await asyncio.gather(*(wait_ready(p) for p in peers))
        yield Net(node, bee, batch, embedder, peers, os.urandom(32))
    finally:
        await kill(peers)
        await embedder.aclose()
        await bee.aclose()
        await node.aclose()


async def ask(
    net: Asker, text: str, addresses: list[bytes], *, deadline: float = 20.0, k: int = 10
) -> tuple[NetworkResult, np.ndarray]:
    """A network search from the asker's own inbox to the peers at `addresses`; the
    result and the query's vector."""
    directory = PeerDirectory()
    await directory.refresh(net.bee, addresses, max_bytes=1 << 20)
    me = bytes.fromhex(Account.from_key(net.asker_key).address[2:])
    inbox = node_inbox(me, (await net.bee.addresses()).overlay)
    vector = (await net.embedder.embed([text])).vectors[0]
    result = await network_search(
        bee=net.bee,
        batch=net.batch,
        node_key=net.asker_key,
        inbox=inbox,
        peers=directory.live(MODEL),
        vector=vector,
        model=MODEL,
        k=k,
        fan_out=None,
        deadline_s=deadline,
        max_bytes=1 << 20,
    )
    return result, vector


async def test_distributed_top10_equals_exact_top10_over_the_union(net: Net) -> None:
    addresses = [p.address for p in net.peers]
    for question in ["Tell me about honey bees", "How do glaciers move?", "detail number 43"]:
        result, vector = await ask(net, question, addresses)
        assert all(o.answered for o in result.peers.values()), result.peers
        union = [c for p in net.peers for c in p.chunks]
        scores = np.array([float(v @ vector) for _, _, v in union])
        exact = [union[i][0] for i in np.argsort(-scores, kind="stable")[:10]]
        assert [h.ref for _, h in result.hits] == exact
        assert [h.score for _, h in result.hits] == pytest.approx(
            sorted(scores)[::-1][:10], abs=1e-4
        )
        assert all(
            o.latency_ms is not None and o.latency_ms < 20_000 for o in result.peers.values()
        )
    for peer in net.peers:
        assert "served 3 query(ies)" in await stop(peer)


async def hostile_peer(net: Net, behaviour: str) -> tuple[bytes, asyncio.Task[None]]:
    """A peer that publishes a record and then lies, forges, or stays silent."""
    key = os.urandom(32)
    from eth_keys.datatypes import PrivateKey

    address = PrivateKey(key).public_key.to_canonical_address()
    inbox = node_inbox(address, (await net.bee.addresses()).overlay)
    vectors = (await net.embedder.embed(["honey bees make honey"])).vectors
    record = PeerRecord(
        inbox=inbox.to_bytes(),
        public_key=PrivateKey(key).public_key.to_bytes(),
        capabilities=("search",),
        model=MODEL,
        dim=net.embedder.dim,
        chunks=1,
        summary=(vectors[0].astype("<f4").tobytes(),),
    )
    await publish_record(net.bee, net.batch, key, record)
    subscription = await net.bee.gsoc_subscribe(inbox.address)

    async def behave() -> None:
        async with subscription:
            async for frame in subscription:
                envelope = open_envelope(frame[1:])
                assert isinstance(envelope.body, Query)
                real = "honey bees make honey"
                if behaviour == "silent":
                    continue
                if behaviour == "liar":  # a real reference, but other text under it
                    hit = Hit("bees are a kind of fish", 0.99, text_reference(real), "lie")
                    await post(
                        net.bee,
                        net.batch,
                        Inbox.from_bytes(envelope.body.reply_to),
                        seal(Answer(envelope.id, (hit,)), key),
                    )
                if behaviour == "forger":  # claims to come from us, signed by another key
                    hit = Hit(real, 0.99, text_reference(real), "forged")
                    wire = msgpack.unpackb(seal(Answer(envelope.id, (hit,)), os.urandom(32)))
                    wire["sender"] = address
                    await post(
                        net.bee,
                        net.batch,
                        Inbox.from_bytes(envelope.body.reply_to),
                        canonical(wire),
                    )

    return address, asyncio.create_task(behave())


async def test_liars_forgers_and_silent_peers(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    liar, liar_task = await hostile_peer(net, "liar")
    forger, forger_task = await hostile_peer(net, "forger")
    silent, silent_task = await hostile_peer(net, "silent")
    honest = [p.address for p in net.peers]
    try:
        started = time.monotonic()
        result, _ = await ask(net, "honey bees", [*honest, liar, forger, silent], deadline=4.0)
        elapsed = time.monotonic() - started
    finally:
        for task in (liar_task, forger_task, silent_task):
            task.cancel()
    texts = [h.text for _, h in result.hits]
    assert "bees are a kind of fish" not in texts
    assert result.peers[liar].dropped is not None
    assert "does not match" in result.peers[liar].dropped
    assert any("dropping answer" in r.getMessage() for r in caplog.records)
    assert not result.peers[forger].answered  # its envelope failed the signature check
    assert result.dropped["bad_signature"] >= 1
    assert not result.peers[silent].answered
    assert all(result.peers[a].answered for a in honest)
    assert elapsed < 4.0 + 10  # the deadline, plus embedding and directory reads
    assert result.elapsed_ms < 4_000 + 3_000


async def test_hostile_messages_are_dropped_counted_and_serving_goes_on(net: Net) -> None:
    target = net.peers[0]
    directory = PeerDirectory()
    await directory.refresh(net.bee, [target.address], max_bytes=1 << 20)
    inbox = directory.peers[target.address].inbox
    reply = node_inbox(b"\x01" * 20, (await net.bee.addresses()).overlay).to_bytes()
    vector = (await net.embedder.embed(["bees"])).vectors[0]

    def query(embedding: bytes, model: str = MODEL) -> Query:
        return Query(embedding=embedding, model=model, k=3, reply_to=reply, filters={})

    good = seal(query(vector.astype("<f4").tobytes()), net.asker_key)
    hostile = [
        b"\x01" + b"\xc1\xff not msgpack",
        b"\x01" + seal(query(vector[:100].astype("<f4").tobytes()), net.asker_key),
        b"\x01" + seal(query(np.full(384, np.nan, "<f4").tobytes()), net.asker_key),
        b"\x01" + seal(query(vector.astype("<f4").tobytes(), model="other"), net.asker_key),
        b"\x07" + b"unknown frame",
    ]
    for frame in hostile:
        await net.bee.gsoc_send(inbox.gsoc_key(), frame, net.batch)
    oversized = await net.bee.upload_bytes(os.urandom(2 << 20), net.batch)
    await net.bee.gsoc_send(inbox.gsoc_key(), b"\x02" + bytes(oversized), net.batch)
    await post(net.bee, net.batch, inbox, good)
    await post(net.bee, net.batch, inbox, good)  # a replay
    # the peer still answers honest questions
    result, _ = await ask(net, "honey bees", [target.address])
    assert result.peers[target.address].answered
    report = await stop(target)
    for reason in [
        "malformed 2",
        "dimension 1",
        "not_finite 1",
        "model 1",
        "replay 1",
        "too_large 1",
    ]:
        assert reason in report, report
    assert "served 2 query(ies)" in report  # the good one once, and the search above
