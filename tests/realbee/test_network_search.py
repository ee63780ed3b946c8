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

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.embedding import Embedder
from tests.realbee.conftest import RealBee
from tests.vectordb.test_network import ServingPeer, ask, kill, start_peer, stop, wait_ready

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
        await kill(peers)
        await embedder.aclose()


async def test_two_peers_on_two_bee_nodes_give_the_exact_top10_of_the_union(
    real_net: RealNet,
) -> None:
    union = [c for p in real_net.peers for c in p.chunks]
    addresses = [p.address for p in real_net.peers]
    for question in QUESTIONS:
        started = time.perf_counter()
        result, vector = await ask(real_net, question, addresses, deadline=DEADLINE_S)
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
