"""Swarm test backends: the dev node in-process, and a real Bee node when one is given.

``bee`` is parametrized over both: the conformance suite runs every test
against the dev node on a free loopback port, and against the Bee node at
``NOOSPHERE_TEST_BEE_URL`` when that is set (skipped otherwise; marked
``realbee``). A real node needs a usable postage batch: ``NOOSPHERE_TEST_BEE_BATCH``
names one, else one is bought and awaited (slow on a real chain). With
``NOOSPHERE_TEST_BEE_URL_2`` the second client talks to that node, as
``scripts/bee-localnet`` arranges.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.records import BatchId, NodeAddresses

BEE_URL_ENV = "NOOSPHERE_TEST_BEE_URL"
BEE_BATCH_ENV = "NOOSPHERE_TEST_BEE_BATCH"
BEE_PEER_URL_ENV = "NOOSPHERE_TEST_BEE_URL_2"


@dataclass(frozen=True)
class Backend:
    """A node under test with two independent clients and a usable batch."""

    kind: str
    url: str
    client: BeeClient
    peer: BeeClient
    """A second client: the other side of GSOC and PSS exchanges, and the reader of
    uploads. On a real network it talks to a second Bee node when one is given
    (``NOOSPHERE_TEST_BEE_URL_2``), so what it reads has crossed the network."""
    peer_addresses: NodeAddresses
    batch: BatchId
    addresses: NodeAddresses
    node: DevNode | None
    """The dev node object, None for a real Bee."""


async def _real_batch(client: BeeClient) -> BatchId:
    named = os.environ.get(BEE_BATCH_ENV)
    if named:
        return BatchId(bytes.fromhex(named))
    batch = await client.buy_stamp(
        amount=500_000_000, depth=20, label="noosphere-test", immutable=False
    )
    await client.wait_until_usable(batch, time_limit=600)
    return batch


@pytest_asyncio.fixture(params=["dev", pytest.param("bee", marks=pytest.mark.realbee)])
async def bee(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    node: DevNode | None = None
    if request.param == "dev":
        node = await DevNode.start("127.0.0.1", 0)
        url = peer_url = node.url
    else:
        url = os.environ.get(BEE_URL_ENV, "")
        if not url:
            pytest.skip(f"set {BEE_URL_ENV} to run the conformance suite against a real Bee")
        peer_url = os.environ.get(BEE_PEER_URL_ENV) or url
    try:
        async with (
            BeeClient(url, timeout=20) as client,
            BeeClient(peer_url, timeout=20) as peer,
        ):
            if node is not None:
                batch = await client.buy_stamp(amount=10**8, depth=20)
            else:
                batch = await _real_batch(client)
            yield Backend(
                kind=request.param,
                url=url,
                client=client,
                peer=peer,
                batch=batch,
                addresses=await client.addresses(),
                peer_addresses=await peer.addresses(),
                node=node,
            )
    finally:
        if node is not None:
            await node.aclose()


@pytest_asyncio.fixture
async def dev_node() -> AsyncIterator[DevNode]:
    node = await DevNode.start("127.0.0.1", 0)
    try:
        yield node
    finally:
        await node.aclose()
