"""A real `KnowledgeServer` running for the length of a test's `async with` block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from swarm_vectordb.network import KnowledgeServer


@asynccontextmanager
async def running(
    server: KnowledgeServer, *, stop_within: float = 30
) -> AsyncIterator[KnowledgeServer]:
    """`server` reading its inbox (subscribed before the block starts) until the block
    ends; then stopped, and its serving task awaited within `stop_within` seconds."""
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.ready.wait(), 10)
        yield server
    finally:
        await server.stop()
        await asyncio.wait_for(task, stop_within)
