"""Fixtures: a real node behind the real API server, on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from agent.api.discovery import read_token, token_path
from agent.api.server import ApiServer, start_api
from agent.config import ApiConfig, Config, ModelConfig
from agent.daemon import NodeBackend
from agent.home import NodeHome
from agent.node import Node


@dataclass
class Api:
    server: ApiServer
    backend: NodeBackend
    node: Node
    home: NodeHome
    token: str

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def open_api(
    tmp_path: Path, model_path: Path, settings: ApiConfig | None = None
) -> AsyncIterator[Api]:
    home = NodeHome(tmp_path / "home")
    home.create()
    cfg = Config(model=ModelConfig(n_ctx=2048))
    node = await Node.open(cfg, home, model_path=model_path)
    try:
        backend = NodeBackend(node, await node.knowledge())
        server = await start_api(backend, home, settings=settings or ApiConfig(port=0))
        try:
            yield Api(server, backend, node, home, read_token(token_path(home.root)))
        finally:
            await server.aclose()
    finally:
        await node.aclose()


@pytest_asyncio.fixture
async def api(tmp_path: Path, model_path: Path) -> AsyncIterator[Api]:
    async for opened in open_api(tmp_path, model_path):
        yield opened
