"""`noosphere swarm stamp` against the dev node, through the installed command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from swarm_vectordb.bee.devnode import DevNode

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def noosphere(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("noosphere")),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_buy_and_list_stamps(tmp_path: Path) -> None:
    node = await DevNode.start("127.0.0.1", 0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env.update(NOOSPHERE_HOME=str(tmp_path), NOOSPHERE_NETWORK_BEE_URL=node.url)
    try:
        status, out, err = await noosphere("swarm", "stamp", "buy", "1000", "20", "--yes", env=env)
        assert status == 0, err
        batch = out.strip()
        assert len(bytes.fromhex(batch)) == 32
        status, out, err = await noosphere("swarm", "stamp", "list", "--json", env=env)
        assert status == 0, err
        listed = {s["batchID"]: s for s in json.loads(out)}
        assert listed[batch]["usable"] is True
        assert listed[batch]["depth"] == 20
        assert listed[batch]["immutableFlag"] is False  # a GSOC inbox must not fill it up
        status, out, err = await noosphere(
            "swarm", "stamp", "buy", "1000", "20", "--yes", "--immutable", env=env
        )
        assert status == 0, err
        status, listing, err = await noosphere("swarm", "stamp", "list", "--json", env=env)
        assert {s["batchID"]: s for s in json.loads(listing)}[out.strip()]["immutableFlag"] is True

        # refusals: no terminal and no --yes; a depth Bee would refuse; no bee_url
        status, _, err = await noosphere("swarm", "stamp", "buy", "1000", "20", env=env)
        assert status == 2
        assert "--yes" in err
        status, _, err = await noosphere("swarm", "stamp", "buy", "1000", "3", "--yes", env=env)
        assert status == 2
        no_url = {k: v for k, v in env.items() if k != "NOOSPHERE_NETWORK_BEE_URL"}
        status, _, err = await noosphere("swarm", "stamp", "list", env=no_url)
        assert status == 2
        assert "network.bee_url" in err
        assert "Traceback" not in err
    finally:
        await node.aclose()
