"""Peer discovery through the chain: `serve --register` on anvil, `search --network` finds it.

The asker is given no peer addresses at all: it can only find the server through the
AgentRegistry, then its feed, then its inbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

from agent.identity import create_identity
from chain.devchain import find_anvil
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.embedding import Embedder
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.routing import text_reference

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

PASSWORD = "correct horse battery"
NOOSPHERE = str(Path(sys.executable).with_name("noosphere"))


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env.update(NOOSPHERE_HOME=str(home), NOOSPHERE_PASSWORD=PASSWORD, HF_HUB_OFFLINE="1", **extra)
    return env


@pytest.mark.skipif(find_anvil() is None, reason="anvil missing: npm install --prefix chain")
async def test_search_finds_a_peer_only_through_the_registry(tmp_path: Path) -> None:
    server_home, asker_home = tmp_path / "server", tmp_path / "asker"
    server = create_identity(server_home / "keystore.json", PASSWORD)
    create_identity(asker_home / "keystore.json", PASSWORD)
    embedder = await Embedder.load()
    text = "Glaciers move downhill under their own weight, grinding the rock beneath."
    with VectorIndex(server_home / "data" / "index", embedder.dim, embedder.model_id) as index:
        index.add(
            [IndexedChunk(ChunkRef(text_reference(text)), text, "glaciers.txt", 0)],
            (await embedder.embed([text])).vectors,
        )
    await embedder.aclose()

    node = await DevNode.start("127.0.0.1", 0)
    async with BeeClient(node.url) as bee:
        await bee.buy_stamp(10_000_000, 24)
    chain = await asyncio.create_subprocess_exec(
        NOOSPHERE, "chain", "dev", "--port", "18645",
        env=env_for(server_home), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    serving: asyncio.subprocess.Process | None = None
    try:
        assert chain.stdout is not None
        started = json.loads(await asyncio.wait_for(chain.stdout.readline(), 120))
        assert server.address in started["funded"]
        shutil.copy(started["deployment_file"], asker_home / "deployment.json")
        urls = {
            "NOOSPHERE_NETWORK_BEE_URL": node.url,
            "NOOSPHERE_NETWORK_ETH_RPC_URL": started["rpc_url"],
        }
        serving = await asyncio.create_subprocess_exec(
            NOOSPHERE, "serve", "--register",
            env=env_for(server_home, **urls),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert serving.stdout is not None
        ready = await asyncio.wait_for(serving.stdout.readline(), 120)
        assert ready.strip().decode() == server.address

        search = await asyncio.create_subprocess_exec(
            NOOSPHERE, "search", "--network", "--json", "--deadline", "20", "How do glaciers move?",
            env=env_for(asker_home, **urls),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(search.communicate(), 180)
        assert search.returncode == 0, err.decode()
        report = json.loads(out)
        assert report["known_peers"] == 1, err.decode()
        [peer] = report["peers"]
        assert peer["address"] == server.address.lower()
        assert peer["answered"]
        assert report["hits"][0]["text"] == text
        assert report["hits"][0]["origin"] == server.address.lower()
    finally:
        for proc in (serving, chain):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.communicate(), 60)
        await node.aclose()
    assert serving is not None
    assert serving.returncode == 0
