"""Peers: this node's inbox and record, the peers it knows, and signed queries to them.

Peers come from `network.peers` and, with a chain configured, from the
`AgentRegistry`; their records are read from Swarm concurrently under one deadline.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from agent.config import Config
from agent.errors import ServiceError
from agent.identity import NodeIdentity
from agent.runtime.components import Knowledge, SwarmAccess

if TYPE_CHECKING:
    from swarm_vectordb.network import NetworkResult
    from swarm_vectordb.peers import Inbox, PeerDirectory
    from swarm_vectordb.protocol import PeerRecord
    from swarm_vectordb.routing import IncrementalSummary

log = logging.getLogger(__name__)


async def peer_record(
    knowledge: Knowledge,
    inbox: Inbox,
    public_key: bytes,
    summary: IncrementalSummary,
    capabilities: tuple[str, ...] = ("search",),
) -> PeerRecord:
    """This node's record: inbox, key, what it serves, and a summary of its index.

    `summary` catches up with what was indexed since the last record, on a worker thread.
    """
    from swarm_vectordb.protocol import PeerRecord

    centroids = await asyncio.to_thread(summary.update, knowledge.index)
    return PeerRecord(
        inbox=inbox.to_bytes(),
        public_key=public_key,
        capabilities=capabilities,
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
