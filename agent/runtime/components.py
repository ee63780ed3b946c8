"""The node's Swarm connection and knowledge base, built from the configuration.

Swarm. With `network.bee_url` set, the node talks to that Bee node and uploads with
its first usable postage batch. With it empty, the node runs the embedded dev node
in-process on `<data>/swarm` (so what was stored survives between runs) and buys
itself a batch there once.

Knowledge. The embedder, the FAISS index under `<data>/index` and the chunker, built
for the configured embedding model.

Chain. A client of `network.eth_rpc_url` with the contracts of the deployment file.

Errors from Swarm, the vector database and the chain leave these functions as
`ServiceError` (a missing chain URL as `ConfigError`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Config
from agent.errors import ConfigError, ServiceError
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.chunking import Chunker
from swarm_vectordb.embedding import Embedder, resolve_model
from swarm_vectordb.errors import VectorDBError
from swarm_vectordb.index import VectorIndex

if TYPE_CHECKING:  # imported where used: aiohttp and eth-keys cost a local search ~0.5 s
    from eth_account.signers.local import LocalAccount

    from chain.client import ChainClient
    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.devnode import DevNode
    from swarm_vectordb.ingest import Ingestor

log = logging.getLogger(__name__)

DEV_BATCH_AMOUNT = 10_000_000
DEV_BATCH_DEPTH = 24


@dataclass(frozen=True)
class SwarmAccess:
    bee: BeeClient
    batch: BatchId
    embedded: DevNode | None  # the in-process dev node, when no bee_url is configured

    @property
    def url(self) -> str:
        return self.bee.url


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


def chain_url(cfg: Config) -> str:
    """`network.eth_rpc_url`, or a `ConfigError` saying how to get a chain."""
    if not cfg.network.eth_rpc_url:
        raise ConfigError(
            "network.eth_rpc_url",
            "empty: start `noosphere chain dev` and pass "
            "--set network.eth_rpc_url=http://127.0.0.1:8545, or set a node's URL",
        )
    return cfg.network.eth_rpc_url


async def connect_chain(
    cfg: Config, deployment_file: Path, account: LocalAccount | None
) -> ChainClient:
    """A client of the configured chain with the deployment's contracts, signing with
    `account`; with None, a reader (its throwaway key never signs). Not yet entered."""
    from eth_account import Account

    from chain.client import ChainClient
    from chain.deploy import Deployment
    from chain.errors import ChainError

    url = chain_url(cfg)
    try:
        deployment = Deployment.load(deployment_file)
        return await ChainClient.connect(
            url,
            account or Account.create(),
            deployment,
            timeout_s=cfg.network.request_timeout_s,
        )
    except ChainError as exc:  # its message names the endpoint or the file
        raise ServiceError(str(exc)) from None
