"""`noosphere swarm dev` as a real process: serve, SIGTERM, restart on the same data dir."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from swarm_vectordb.bee.client import BeeClient

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]

EXE = Path(sys.executable).with_name("noosphere")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def start_dev(port: int, data_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = await asyncio.create_subprocess_exec(
        str(EXE),
        "swarm",
        "dev",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        url = (await process.stdout.readline()).decode().strip()
    assert url == f"http://127.0.0.1:{port}"
    return process, url


async def stop(process: asyncio.subprocess.Process, signum: int) -> int:
    process.send_signal(signum)
    async with asyncio.timeout(15):
        _, stderr = await process.communicate()
    assert b"Traceback" not in stderr, stderr.decode()
    assert process.returncode is not None
    return process.returncode


async def test_dev_node_command_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    data = os.urandom(200_000)
    process, url = await start_dev(port, tmp_path / "node")
    try:
        async with BeeClient(url, timeout=10) as bee:
            batch = await bee.buy_stamp(10**8, 20)
            reference = await bee.upload_bytes(data, batch)
    finally:
        status = await stop(process, signal.SIGTERM)
    assert status == 0

    process, url = await start_dev(port, tmp_path / "node")
    try:
        async with BeeClient(url, timeout=10) as bee:
            assert await bee.download_bytes(reference) == data
            assert (await bee.get_stamp(batch)).usable
    finally:
        status = await stop(process, signal.SIGINT)
    assert status == 0
