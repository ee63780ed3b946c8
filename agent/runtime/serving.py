"""Answering peers: one inbox listener for queries (and agent-to-agent asks), and the
peer record republished on a timer so that peers see the index grow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Config
from agent.identity import NodeIdentity
from agent.runtime.components import Knowledge, SwarmAccess
from agent.runtime.peering import my_inbox, peer_record, register_on_chain

if TYPE_CHECKING:
    from swarm_vectordb.asks import AskLimits
    from swarm_vectordb.network import ServeStats

log = logging.getLogger(__name__)

AskHandler = Callable[[bytes, str], Awaitable[str]]


@dataclass(frozen=True)
class ServingInfo:
    address: str
    inbox: bytes
    bee_url: str
    chunks: int
    answers_asks: bool


def ask_limits(cfg: Config) -> AskLimits:
    from swarm_vectordb.asks import AskLimits

    return AskLimits(
        per_peer_rate=cfg.limits.ask_per_peer_rate_per_s,
        per_peer_burst=cfg.limits.ask_per_peer_burst,
        rate=cfg.limits.ask_rate_per_s,
        burst=cfg.limits.ask_burst,
        max_concurrent=cfg.limits.max_concurrent_asks,
        deadline_s=cfg.limits.ask_answer_deadline_s,
    )


async def serve_peers(
    cfg: Config,
    node: NodeIdentity,
    knowledge: Knowledge,
    swarm: SwarmAccess,
    *,
    stop: asyncio.Event,
    republish_s: float,
    on_ready: Callable[[ServingInfo], None],
    register_with: Path | None = None,
    answer_ask: AskHandler | None = None,
) -> ServeStats:
    """Answer peers until `stop` is set; publish our record every `republish_s`."""
    from swarm_vectordb.network import KnowledgeServer, PostageBudget
    from swarm_vectordb.peers import publish_record
    from swarm_vectordb.routing import IncrementalSummary

    me = bytes.fromhex(node.address[2:])
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
        answer_ask=answer_ask,
        ask_limits=ask_limits(cfg),
    )
    capabilities = ("search", "ask") if answer_ask is not None else ("search",)
    summary = IncrementalSummary()

    async def publish() -> bytes:
        record = await peer_record(knowledge, inbox, node.public_key, summary, capabilities)
        return await publish_record(swarm.bee, swarm.batch, node.private_key, record)

    async def publish_forever() -> None:
        while True:
            await asyncio.sleep(republish_s)
            try:
                await publish()
            except Exception as exc:  # a Swarm hiccup must not stop the node answering
                log.warning("republishing the peer record failed: %s", exc)

    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve())
        record_ref = await publish()
        if register_with is not None:
            await register_on_chain(cfg, register_with, node, inbox, record_ref)
            log.info("registered %s in the AgentRegistry", node.address)
        await server.ready.wait()
        publisher = tasks.create_task(publish_forever())
        on_ready(
            ServingInfo(
                node.address, inbox.address, swarm.url, len(knowledge.index), answer_ask is not None
            )
        )
        await stop.wait()
        publisher.cancel()
        await server.stop()
        await serving
    return server.stats
