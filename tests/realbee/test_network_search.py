"""The peer protocol over real Swarm: `noosphere serve` on two real Bee nodes, searched.

Each serving peer runs against its own Bee node (``NOOSPHERE_TEST_BEE_URL`` and
``NOOSPHERE_TEST_BEE_URL_2``, as ``scripts/bee-localnet`` sets them) and the
asker against a third (``NOOSPHERE_TEST_BEE_URL_3``), so peer records, queries
and answers cross the Bee network: feeds are read from the other nodes, queries
are GSOC messages pushed to each peer's node and answers come back the same way.
The oracle is exact top-k over the union of both peers' chunks, computed here
from the same vectors.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from eth_account import Account

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.embedding import Embedder
from swarm_vectordb.network import NetworkResult, network_search
from swarm_vectordb.peers import PeerDirectory, node_inbox
from tests.realbee.conftest import RealBee
from tests.vectordb.test_network import MODEL, ServingPeer, start_peer, stop, wait_ready

pytestmark = [pytest.mark.realbee, pytest.mark.e2e, pytest.mark.asyncio]
log = logging.getLogger(__name__)

QUESTIONS = ["Tell me about honey bees", "How do glaciers move?", "detail number 43"]
DEADLINE_S = 60.0


@dataclass
class RealNet:
    bee: BeeClient
    batch: BatchId
    embedder: Embedder
    peers: list[ServingPeer]
    asker_key: bytes


@pytest_asyncio.fixture
async def real_net(real_bee: RealBee, tmp_path: Path) -> AsyncIterator[RealNet]:
    if len(real_bee.urls) < 3:
        pytest.skip("needs three Bee nodes: two serving peers and the asker")
    embedder = await Embedder.load()
    peers: list[ServingPeer] = []
    try:
        # The asker has a node of its own: Bee never hands a GSOC message to a
        # subscriber on the node it was uploaded through (docs/realbee.md).
        async with BeeClient(real_bee.urls[2], timeout=30) as bee:
            peers = [await start_peer(tmp_path, n, real_bee.urls[n], embedder) for n in range(2)]
            for peer in peers:
                await wait_ready(peer)
            yield RealNet(bee, real_bee.batches[2], embedder, peers, os.urandom(32))
    finally:
        for peer in peers:
            if peer.process.returncode is None:
                peer.process.kill()
                await peer.process.wait()
        await embedder.aclose()


async def ask(net: RealNet, text: str) -> tuple[NetworkResult, np.ndarray]:
    directory = PeerDirectory()
    await directory.refresh(net.bee, [p.address for p in net.peers], max_bytes=1 << 20)
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
        k=10,
        fan_out=None,
        deadline_s=DEADLINE_S,
        max_bytes=1 << 20,
    )
    return result, vector


async def test_two_peers_on_two_bee_nodes_give_the_exact_top10_of_the_union(
    real_net: RealNet,
) -> None:
    union = [c for p in real_net.peers for c in p.chunks]
    for question in QUESTIONS:
        started = time.perf_counter()
        result, vector = await ask(real_net, question)
        elapsed = time.perf_counter() - started
        assert set(result.peers) == {p.address for p in real_net.peers}
        assert all(o.answered for o in result.peers.values()), result.peers
        scores = np.array([float(v @ vector) for _, _, v in union])
        exact = [union[i][0] for i in np.argsort(-scores, kind="stable")[:10]]
        assert [h.ref for _, h in result.hits] == exact
        assert [h.score for _, h in result.hits] == pytest.approx(
            sorted(scores)[::-1][:10], abs=1e-4
        )
        # answered well before the deadline: the search ends when every peer has answered
        assert elapsed < DEADLINE_S
        latencies = {a.hex()[:8]: o.latency_ms for a, o in result.peers.items()}
        log.info("%r: %.0f ms, per peer %s", question, elapsed * 1e3, latencies)
    for peer in real_net.peers:
        assert f"served {len(QUESTIONS)} query(ies)" in await stop(peer)
