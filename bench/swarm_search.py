"""Network-search latency for bench/swarm.py: two in-process peers, one asker.

Each peer is a real ``KnowledgeServer`` over a FAISS ``VectorIndex`` of random
unit vectors, with its inbox mined next to its Bee node and its record
published to its feed; the asker reads both records once, then times
``network_search`` calls (seal, GSOC to both inboxes, answers back, verified
and merged). No embedder: queries are random vectors of the same dimension.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
import numpy.typing as npt
from eth_keys.datatypes import PrivateKey

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.network import KnowledgeServer, network_search
from swarm_vectordb.peers import PeerDirectory, node_inbox, publish_record
from swarm_vectordb.protocol import PeerRecord
from swarm_vectordb.routing import summarize, text_reference

MODEL = "bench/random-384"
DIM = 384
CHUNKS_PER_PEER = 500
DEADLINE_S = 30.0


def _unit(rows: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True).astype(np.float32)
    unit: npt.NDArray[np.float32] = vectors / norms
    return unit


async def _start_peer(
    stack: AsyncExitStack, url: str, batch: BatchId, home: Path, seed: int
) -> bytes:
    rng = np.random.default_rng(seed)
    key = os.urandom(32)
    private = PrivateKey(key)
    address = private.public_key.to_canonical_address()
    vectors = _unit(CHUNKS_PER_PEER, rng)
    index = stack.enter_context(VectorIndex(home / f"peer{seed}", DIM, MODEL))
    texts = [f"chunk {seed}-{i}" for i in range(CHUNKS_PER_PEER)]
    index.add(
        [IndexedChunk(ChunkRef(text_reference(t)), t, "bench", i) for i, t in enumerate(texts)],
        vectors,
    )
    bee = await stack.enter_async_context(BeeClient(url))
    inbox = await asyncio.to_thread(node_inbox, address, (await bee.addresses()).overlay)
    server = KnowledgeServer(  # limits opened: one asker sends every query here
        bee=bee,
        batch=batch,
        node_key=key,
        inbox=inbox,
        index=index,
        model=MODEL,
        per_peer_rate=1000.0,
        per_peer_burst=1000.0,
        answer_rate=1000.0,
        answer_burst=1000.0,
    )
    serving = asyncio.create_task(server.serve())

    async def stop() -> None:
        await server.stop()
        await serving

    stack.push_async_callback(stop)
    await asyncio.wait_for(server.ready.wait(), 30)
    record = PeerRecord(
        inbox=inbox.to_bytes(),
        public_key=private.public_key.to_bytes(),
        capabilities=("search",),
        model=MODEL,
        dim=DIM,
        chunks=CHUNKS_PER_PEER,
        summary=tuple(c.astype("<f4").tobytes() for c in summarize(vectors)),
    )
    await publish_record(bee, batch, key, record)
    return bytes(address)


async def search_latencies(urls: list[str], batches: list[BatchId], count: int) -> list[float]:
    """``count`` searches from ``urls[2]`` to peers on ``urls[0]`` and ``urls[1]``.

    The milliseconds of each search every peer answered; the others are reported
    on stderr and left out (the caller counts them).
    """
    rng = np.random.default_rng(7)
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        async with AsyncExitStack() as stack:
            peers = [await _start_peer(stack, urls[n], batches[n], Path(tmp), n) for n in range(2)]
            asker = await stack.enter_async_context(BeeClient(urls[2]))
            asker_key = os.urandom(32)
            me = PrivateKey(asker_key).public_key.to_canonical_address()
            inbox = node_inbox(me, (await asker.addresses()).overlay)
            directory = PeerDirectory()
            await directory.refresh(asker, peers, max_bytes=1 << 20)
            live = directory.live(MODEL)
            if len(live) != len(peers):
                raise SystemExit(f"found {len(live)} of {len(peers)} peer records")
            for n in range(count):
                started = time.perf_counter()
                result = await network_search(
                    bee=asker,
                    batch=batches[2],
                    node_key=asker_key,
                    inbox=inbox,
                    peers=live,
                    vector=_unit(1, rng)[0],
                    model=MODEL,
                    k=10,
                    fan_out=None,
                    deadline_s=DEADLINE_S,
                    max_bytes=1 << 20,
                )
                elapsed_ms = (time.perf_counter() - started) * 1e3
                if all(o.answered for o in result.peers.values()) and len(result.hits) == 10:
                    latencies.append(elapsed_ms)
                else:
                    missing = [a.hex()[:8] for a, o in result.peers.items() if not o.answered]
                    print(f"search {n}: no answer from {missing}", file=sys.stderr)
                if (n + 1) % 10 == 0:
                    print(f"search: {n + 1}/{count}", file=sys.stderr)
    return latencies
