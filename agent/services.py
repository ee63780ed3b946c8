"""Wiring: the node's Swarm connection and knowledge base, built from the configuration.

Swarm. With `network.bee_url` set, the node talks to that Bee node and uploads
with its first usable postage batch. With it empty, the node runs the embedded dev
node in-process on `<data>/swarm` (so what was stored survives between commands)
and buys itself a batch there once.

Knowledge. The embedder, the FAISS index under `<data>/index` and the chunker,
built for the configured embedding model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent.config import Config
from agent.errors import NoosphereError
from agent.identity import NodeIdentity
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.chunking import Chunker
from swarm_vectordb.embedding import Embedder, resolve_model
from swarm_vectordb.errors import VectorDBError
from swarm_vectordb.index import VectorIndex

if TYPE_CHECKING:  # imported where used: aiohttp and eth-keys cost a local search ~0.5 s
    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.devnode import DevNode
    from swarm_vectordb.ingest import Ingestor
    from swarm_vectordb.network import NetworkResult, ServeStats
    from swarm_vectordb.peers import Inbox, PeerDirectory
    from swarm_vectordb.protocol import PeerRecord
    from swarm_vectordb.routing import IncrementalSummary

log = logging.getLogger(__name__)

DEV_BATCH_AMOUNT = 10_000_000
DEV_BATCH_DEPTH = 24


class ServiceError(NoosphereError):
    """A component the command needs could not be reached or opened."""


@dataclass(frozen=True)
class SwarmAccess:
    bee: BeeClient
    batch: BatchId
    embedded: DevNode | None  # the in-process dev node, when no bee_url is configured


@dataclass(frozen=True)
class Knowledge:
    embedder: Embedder
    index: VectorIndex
    chunker: Chunker
    data_dir: Path

    def ingestor(self, swarm: SwarmAccess) -> Ingestor:
        from swarm_vectordb.ingest import MANIFEST_NAME, BeeChunkStore, Ingestor

        return Ingestor(
            store=BeeChunkStore(swarm.bee, swarm.batch),
            embedder=self.embedder,
            index=self.index,
            chunker=self.chunker,
            manifest_path=self.data_dir / MANIFEST_NAME,
        )


@asynccontextmanager
async def open_swarm(cfg: Config, data_dir: Path) -> AsyncIterator[SwarmAccess]:
    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.devnode import DevNode

    node: DevNode | None = None
    url = cfg.network.bee_url
    try:
        if not url:
            node = await DevNode.start("127.0.0.1", 0, data_dir=data_dir / "swarm")
            url = node.url
        bee = await BeeClient.create(url, timeout=cfg.network.request_timeout_s)
    except (OSError, SwarmError) as exc:
        if node is not None:
            await node.aclose()
        raise ServiceError(f"cannot start Swarm access ({url or 'embedded'}): {exc}") from None
    try:
        batch = await _usable_batch(bee, buy=node is not None)
        yield SwarmAccess(bee, batch, node)
    except SwarmError as exc:
        raise ServiceError(f"Swarm at {url}: {exc}") from None
    finally:
        await bee.aclose()
        if node is not None:
            await node.aclose()


async def _usable_batch(bee: BeeClient, *, buy: bool) -> BatchId:
    for stamp in await bee.list_stamps():
        if stamp.usable:
            return stamp.batch_id
    if not buy:
        raise SwarmError(
            "no usable postage batch on this Bee node; buy one with "
            "`noosphere swarm stamp buy AMOUNT DEPTH` (e.g. 10000000 24) and try again"
        )
    # Mutable: every message to a GSOC inbox takes a new slot of one bucket.
    batch = await bee.buy_stamp(
        DEV_BATCH_AMOUNT, DEV_BATCH_DEPTH, label="noosphere", immutable=False
    )
    log.info("bought postage batch %s on the embedded dev node", batch.hex())
    return batch


@asynccontextmanager
async def open_knowledge(cfg: Config, data_dir: Path) -> AsyncIterator[Knowledge]:
    try:
        model_dir, _ = resolve_model(cfg.embedder.model)
        embedder = await Embedder.load(
            cfg.embedder.model, device=cfg.embedder.device, batch_size=cfg.embedder.batch_size
        )
    except VectorDBError as exc:
        raise ServiceError(str(exc)) from None
    try:
        index = await asyncio.to_thread(  # replays (and may repair) the log: blocking
            VectorIndex,
            data_dir / "index",
            embedder.dim,
            embedder.model_id,
            hnsw_threshold=cfg.index.hnsw_threshold,
        )
    except VectorDBError as exc:
        await embedder.aclose()
        raise ServiceError(str(exc)) from None
    try:
        chunker = await asyncio.to_thread(
            Chunker.for_model_dir,
            model_dir,
            max_tokens=cfg.index.chunk_tokens,
            overlap=cfg.index.chunk_overlap,
        )
        yield Knowledge(embedder, index, chunker, data_dir)
    finally:
        index.close()
        await embedder.aclose()


# ---------------------------------------------------------------- peers


async def peer_record(
    knowledge: Knowledge, inbox: Inbox, public_key: bytes, summary: IncrementalSummary
) -> PeerRecord:
    """This node's record: inbox, key, what it serves, and a summary of its index.

    `summary` catches up with what was indexed since the last record, on a worker thread.
    """
    from swarm_vectordb.protocol import PeerRecord

    centroids = await asyncio.to_thread(summary.update, knowledge.index)
    return PeerRecord(
        inbox=inbox.to_bytes(),
        public_key=public_key,
        capabilities=("search",),
        model=knowledge.embedder.model_id,
        dim=knowledge.embedder.dim,
        chunks=len(knowledge.index),
        summary=tuple(c.astype("<f4").tobytes() for c in centroids),
    )


async def my_inbox(swarm: SwarmAccess, node_address: bytes) -> Inbox:
    from swarm_vectordb.peers import node_inbox

    overlay = (await swarm.bee.addresses()).overlay
    return await asyncio.to_thread(node_inbox, node_address, overlay)


async def known_peers(
    swarm: SwarmAccess, cfg: Config, exclude: bytes, deployment_file: Path
) -> PeerDirectory:
    """Peers from `network.peers` and, with a chain configured, the `AgentRegistry`."""
    from swarm_vectordb.peers import PeerDirectory

    addresses = [bytes.fromhex(a[2:]) for a in cfg.network.peers]
    addresses += await registry_addresses(cfg, deployment_file)
    directory = PeerDirectory()
    unique = [a for a in dict.fromkeys(addresses) if a != exclude]
    await directory.refresh(swarm.bee, unique, max_bytes=cfg.limits.max_message_bytes)
    return directory


async def registry_addresses(cfg: Config, deployment_file: Path, limit: int = 1000) -> list[bytes]:
    """Accounts registered on chain; none without `network.eth_rpc_url` or a deployment."""
    if not cfg.network.eth_rpc_url:
        return []
    if not deployment_file.is_file():
        log.warning("eth_rpc_url is set but %s is missing: no registry discovery", deployment_file)
        return []
    from eth_account import Account

    from chain.client import ChainClient
    from chain.deploy import Deployment
    from chain.errors import ChainError

    try:
        deployment = Deployment.load(deployment_file)
        reader = Account.create()  # reads need no key; this one never signs
        async with await ChainClient.connect(
            cfg.network.eth_rpc_url, reader, deployment, timeout_s=cfg.network.request_timeout_s
        ) as chain:
            total = min(await chain.registry.count(), limit)
            found: list[bytes] = []
            while len(found) < total:
                page = await chain.registry.accounts(len(found), min(100, total - len(found)))
                if not page:
                    break
                found += [bytes.fromhex(a[2:]) for a in page]
            return found
    except ChainError as exc:
        raise ServiceError(f"registry discovery on {cfg.network.eth_rpc_url}: {exc}") from None


async def register_on_chain(
    cfg: Config, deployment_file: Path, node: NodeIdentity, inbox: Inbox, record_ref: bytes
) -> None:
    """Write (or update) this node's `AgentRegistry` entry. Only on the owner's request."""
    from chain.client import ChainClient
    from chain.deploy import Deployment
    from chain.errors import ChainError
    from chain.records import SwarmRef

    if not cfg.network.eth_rpc_url:
        raise ServiceError("--register needs network.eth_rpc_url (and its deployment file)")
    try:
        deployment = Deployment.load(deployment_file)
        async with await ChainClient.connect(
            cfg.network.eth_rpc_url,
            node.account,
            deployment,
            timeout_s=cfg.network.request_timeout_s,
        ) as chain:
            await chain.registry.register(
                SwarmRef(inbox.address), node.public_key, SwarmRef(record_ref)
            )
    except ChainError as exc:
        raise ServiceError(f"registering on chain: {exc}") from None


# ---------------------------------------------------------------- search


async def ask_peers(
    cfg: Config,
    swarm: SwarmAccess,
    node: NodeIdentity,
    inbox: Inbox,
    directory: PeerDirectory,
    vector: npt.NDArray[np.float32],
    model: str,
    k: int,
    *,
    fan_out: int | None = None,
    deadline_s: float | None = None,
) -> NetworkResult:
    """A signed query to the directory's live peers, with the configured limits."""
    from swarm_vectordb.network import network_search

    return await network_search(
        bee=swarm.bee,
        batch=swarm.batch,
        node_key=node.private_key,
        inbox=inbox,
        peers=directory.live(model),
        vector=vector,
        model=model,
        k=k,
        fan_out=(fan_out if fan_out is not None else cfg.network.fan_out) or None,
        deadline_s=deadline_s or cfg.network.query_deadline_s,
        max_bytes=cfg.limits.max_message_bytes,
    )


@dataclass(frozen=True)
class FoundChunk:
    origin: str  # "local", or the 0x address of the peer that returned it
    text: str
    score: float
    ref: bytes
    source: str
    position: int | None  # known for local chunks only


@dataclass
class SearchReport:
    query: str
    hits: list[FoundChunk]
    network: NetworkResult | None = None
    known_peers: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "query": self.query,
            "hits": [dict(asdict(h), ref=h.ref.hex()) for h in self.hits],
        }
        if self.network is not None:
            out["known_peers"] = self.known_peers
            out["elapsed_ms"] = round(self.network.elapsed_ms, 1)
            out["dropped"] = dict(self.network.dropped)
            out["peers"] = [
                {
                    "address": "0x" + address.hex(),
                    "answered": o.answered,
                    "latency_ms": None if o.latency_ms is None else round(o.latency_ms, 1),
                    "hits": o.hits,
                    "dropped": o.dropped,
                }
                for address, o in self.network.peers.items()
            ]
        return out


async def search_knowledge(
    cfg: Config,
    data_dir: Path,
    text: str,
    *,
    k: int,
    node: NodeIdentity | None = None,
    fan_out: int | None = None,
    deadline_s: float | None = None,
    deployment_file: Path,
) -> SearchReport:
    """Local search; with `node`, also the network, merged (duplicates collapse).

    `deployment_file` (the node home's, `NodeHome.deployment_file`, unless the user
    named another) is where registry discovery finds the contracts.
    """
    async with open_knowledge(cfg, data_dir) as knowledge:
        query = (await knowledge.embedder.embed([text])).vectors[0]
        local = [
            FoundChunk(
                "local", h.chunk.text, h.score, h.chunk.ref, h.chunk.source, h.chunk.position
            )
            for h in await asyncio.to_thread(knowledge.index.search, query, k)
        ]
        if node is None:
            return SearchReport(text, local)
        me = bytes.fromhex(node.address[2:])
        async with open_swarm(cfg, data_dir) as swarm:
            inbox = await my_inbox(swarm, me)
            directory = await known_peers(swarm, cfg, me, deployment_file)
            found = await ask_peers(
                cfg,
                swarm,
                node,
                inbox,
                directory,
                query,
                knowledge.embedder.model_id,
                k,
                fan_out=fan_out,
                deadline_s=deadline_s,
            )
    remote = [
        FoundChunk("0x" + p.hex(), h.text, h.score, h.ref, h.source, None) for p, h in found.hits
    ]
    best: dict[bytes, FoundChunk] = {}
    for hit in [*local, *remote]:
        if hit.ref not in best or hit.score > best[hit.ref].score:
            best[hit.ref] = hit
    hits = sorted(best.values(), key=lambda h: -h.score)[:k]
    return SearchReport(text, hits, found, len(directory.peers))


# ---------------------------------------------------------------- serving


@dataclass(frozen=True)
class ServingInfo:
    address: str
    inbox: bytes
    bee_url: str
    chunks: int


async def serve_knowledge(
    cfg: Config,
    data_dir: Path,
    node: NodeIdentity,
    *,
    stop: asyncio.Event,
    republish_s: float,
    on_ready: Callable[[ServingInfo], None],
    register_with: Path | None = None,
) -> ServeStats:
    """Answer peers' queries until `stop` is set; publish our record every `republish_s`."""
    from swarm_vectordb.network import KnowledgeServer, PostageBudget
    from swarm_vectordb.peers import publish_record
    from swarm_vectordb.routing import IncrementalSummary

    me = bytes.fromhex(node.address[2:])
    async with open_knowledge(cfg, data_dir) as knowledge, open_swarm(cfg, data_dir) as swarm:
        inbox = await my_inbox(swarm, me)
        server = KnowledgeServer(
            bee=swarm.bee,
            batch=swarm.batch,
            node_key=node.private_key,
            inbox=inbox,
            index=knowledge.index,
            model=knowledge.embedder.model_id,
            max_concurrent=cfg.limits.max_concurrent_requests,
            max_bytes=cfg.limits.max_message_bytes,
            answer_rate=cfg.limits.answer_rate_per_s,
            answer_burst=cfg.limits.answer_burst,
            budget=PostageBudget(cfg.limits.answer_chunks_per_hour, window_s=3600.0),
            allow=[bytes.fromhex(a[2:]) for a in cfg.network.allow_peers] or None,
        )
        summary = IncrementalSummary()

        async def publish_forever() -> None:
            while True:
                record = await peer_record(knowledge, inbox, node.public_key, summary)
                await publish_record(swarm.bee, swarm.batch, node.private_key, record)
                await asyncio.sleep(republish_s)

        async with asyncio.TaskGroup() as tasks:
            serving = tasks.create_task(server.serve())
            record_ref = await publish_record(
                swarm.bee,
                swarm.batch,
                node.private_key,
                await peer_record(knowledge, inbox, node.public_key, summary),
            )
            if register_with is not None:
                await register_on_chain(cfg, register_with, node, inbox, record_ref)
                log.info("registered %s in the AgentRegistry", node.address)
            await server.ready.wait()
            publisher = tasks.create_task(publish_forever())
            url = cfg.network.bee_url or (swarm.embedded.url if swarm.embedded else "")
            on_ready(ServingInfo(node.address, inbox.address, url, len(knowledge.index)))
            await stop.wait()
            publisher.cancel()
            await server.stop()
            await serving
        return server.stats
