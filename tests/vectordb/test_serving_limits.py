"""A serving node under a flood of fresh keys: its stamps, its CPU and its allowlist hold.

Everything is real: signed `Query` envelopes from freshly generated keys, posted to
the server's GSOC inbox on the dev node over HTTP, read by the real `KnowledgeServer`
from its websocket subscription. The dev node's `usage` (chunks stamped per batch) is
the independent count of what answering spent.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from eth_keys.datatypes import PrivateKey

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.network import KnowledgeServer, PostageBudget, stamped_chunks
from swarm_vectordb.peers import Inbox, node_inbox, post
from swarm_vectordb.protocol import Answer, Query, open_envelope, seal
from swarm_vectordb.routing import text_reference
from tests.vectordb.knowledge_server import running

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

DIM = 8
MODEL = "test-model"
WAVE = 200  # below every queue on the way (256), so no message is lost while we wait


@dataclass
class Rig:
    node: DevNode
    bee: BeeClient
    server_batch: BatchId
    attacker_batch: BatchId
    index: VectorIndex
    server_inbox: Inbox
    reply_inbox: Inbox


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url, timeout=30)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"passage {i}" for i in range(20)]
    index = VectorIndex(tmp_path / "index", DIM, MODEL)
    index.add([IndexedChunk(ChunkRef(text_reference(t)), t) for t in texts], vectors)
    overlay = (await bee.addresses()).overlay
    try:
        yield Rig(
            node,
            bee,
            await bee.buy_stamp(10**8, 20),
            await bee.buy_stamp(10**8, 20),
            index,
            await asyncio.to_thread(node_inbox, b"\x11" * 20, overlay, 2),
            await asyncio.to_thread(node_inbox, b"\x22" * 20, overlay, 2),
        )
    finally:
        index.close()
        await bee.aclose()
        await node.aclose()


QUESTION = np.eye(DIM, dtype="<f4")[0]


def query_from(key: bytes, reply: Inbox) -> bytes:
    return seal(Query(QUESTION.tobytes(), MODEL, 1, reply.to_bytes(), {}), key)


@pytest_asyncio.fixture
async def serving(rig: Rig, request: pytest.FixtureRequest) -> AsyncIterator[KnowledgeServer]:
    server = KnowledgeServer(
        bee=rig.bee,
        batch=rig.server_batch,
        node_key=os.urandom(32),
        inbox=rig.server_inbox,
        index=rig.index,
        model=MODEL,
        **request.param,
    )
    async with running(server, stop_within=10):
        yield server


async def flood(rig: Rig, server: KnowledgeServer, messages: Sequence[bytes]) -> None:
    """Post `messages` in waves, each wave only once the server has handled the last."""
    slots = asyncio.Semaphore(16)
    sent = 0

    async def send(message: bytes) -> None:
        async with slots:
            await post(rig.bee, rig.attacker_batch, rig.server_inbox, message)

    for start in range(0, len(messages), WAVE):
        wave = messages[start : start + WAVE]
        await asyncio.gather(*(send(m) for m in wave))
        sent += len(wave)
        for _ in range(3000):  # 30 s
            if server.stats.handled >= sent:
                break
            await asyncio.sleep(0.01)
        assert server.stats.handled == sent, "the server stopped reading its inbox"


PARAMS_BUDGET = {"budget": PostageBudget(60), "answer_rate": 1e6, "answer_burst": 1e6}


@pytest.mark.parametrize("serving", [PARAMS_BUDGET], indirect=True)
async def test_ten_thousand_fresh_keys_cannot_spend_more_than_the_budget(
    rig: Rig, serving: KnowledgeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="swarm_vectordb.network")
    keys = [os.urandom(32) for _ in range(10_000)]
    messages = [query_from(key, rig.reply_inbox) for key in keys]
    assert len({open_envelope(m).sender for m in messages[:100]}) == 100  # fresh senders
    async with await rig.bee.gsoc_subscribe(rig.reply_inbox.address, queue_size=20_000) as replies:
        await flood(rig, serving, messages)
        answer_size = stamped_chunks(len(seal(Answer(bytes(16), ()), os.urandom(32))) + 200)
        assert answer_size == 1  # one hit fits one GSOC chunk: one stamp per answer
        spent = rig.node.usage[bytes(rig.server_batch)]
        assert spent <= 60  # the dev node's own count of what the server stamped
        assert serving.stats.served == spent == 60  # the budget was used, then answers stopped
        assert serving.stats.dropped["budget"] == 10_000 - 60
        assert serving.stats.handled == 10_000
        await asyncio.sleep(0.5)  # answers are posted before `served` counts them
        assert replies.pending == 60  # what actually arrived in the attacker's inbox
    budget_warnings = [r for r in caplog.records if "postage budget" in r.getMessage()]
    assert len(budget_warnings) == 1  # logged once, not 9,940 times


PARAMS_RATE = {"answer_rate": 0.001, "answer_burst": 3}


@pytest.mark.parametrize("serving", [PARAMS_RATE], indirect=True)
async def test_the_answer_rate_holds_over_all_senders(rig: Rig, serving: KnowledgeServer) -> None:
    messages = [query_from(os.urandom(32), rig.reply_inbox) for _ in range(30)]
    await flood(rig, serving, messages)
    assert serving.stats.served == 3  # the burst, then nothing: fresh keys do not help
    assert serving.stats.dropped["busy"] == 27
    assert rig.node.usage[bytes(rig.server_batch)] == 3


LISTED_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
LISTED = PrivateKey(LISTED_KEY).public_key.to_canonical_address()


@pytest.mark.parametrize("serving", [{"allow": [LISTED]}], indirect=True)
async def test_only_listed_peers_are_answered(rig: Rig, serving: KnowledgeServer) -> None:
    listed = query_from(LISTED_KEY, rig.reply_inbox)
    stranger = query_from(os.urandom(32), rig.reply_inbox)
    async with await rig.bee.gsoc_subscribe(rig.reply_inbox.address) as replies:
        await flood(rig, serving, [stranger, listed])
        frame = await replies.receive(10)
        answer = open_envelope(frame[1:]).body
        assert isinstance(answer, Answer)
        assert answer.query_id == open_envelope(listed).id
        best = rig.index.search(QUESTION.astype(np.float32), 1)[0]
        assert [h.text for h in answer.hits] == [best.chunk.text]
        await asyncio.sleep(0.5)
        assert replies.pending == 0  # the stranger got nothing
    assert serving.stats.served == 1
    assert serving.stats.dropped == {"not_allowed": 1}
    assert rig.node.usage[bytes(rig.server_batch)] == 1
