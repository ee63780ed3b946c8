"""The dev node answers bad requests the way real Bee does: same status, same JSON shape.

Each case is sent raw (aiohttp, no BeeClient) to a fresh dev node and to a real
Bee node; the status codes must be equal, and so must Bee's ``message`` where the
case names one. The two known differences are asserted as such, so a change on
either side shows up here (docs/realbee.md explains them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from swarm_vectordb.bee.devnode import DevNode
from tests.realbee.conftest import RealBee

pytestmark = [pytest.mark.realbee, pytest.mark.asyncio]

SOC_BODY = b"\x03" + bytes(7) + b"foo"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    needs_batch: bool = False
    batch_header: str | None = None
    body: bytes | None = None
    message: str | None = None
    """Bee's exact ``message``, when the dev node must use the same words."""


def _hex(size: int) -> str:
    return os.urandom(size).hex()


CASES = [
    Case("bad chunk address", "GET", "/chunks/zz", message="invalid path params"),
    Case("missing data", "GET", f"/bytes/{_hex(32)}", message="Not Found"),
    Case("no batch header", "POST", "/bytes", body=b"x", message="invalid header params"),
    Case("bad batch header", "POST", "/bytes", batch_header="abc", body=b"x"),
    Case("unknown batch", "POST", "/bytes", batch_header=_hex(32), body=b"x",
         message="batch with id not found"),
    Case("short chunk", "POST", "/chunks", needs_batch=True, body=b"\x01\x00",
         message="insufficient data length"),
    Case("unknown stamp", "GET", f"/stamps/{_hex(32)}", message="issuer does not exist"),
    Case("bad stamp id", "GET", "/stamps/xyz", message="invalid path params"),
    Case("empty feed", "GET", f"/feeds/{_hex(20)}/{_hex(32)}", message="lookup at failed"),
    Case("forged soc", "POST", f"/soc/{_hex(20)}/{_hex(32)}?sig={'11' * 65}", needs_batch=True,
         body=SOC_BODY, message="invalid chunk"),
    Case("soc without sig", "POST", f"/soc/{_hex(20)}/{_hex(32)}", needs_batch=True,
         body=SOC_BODY, message="invalid query params"),
    Case("unknown route", "GET", "/nope", message="Not Found"),
]  # fmt: skip


@dataclass
class Nodes:
    session: aiohttp.ClientSession
    dev_url: str
    dev_batch: str
    bee_url: str
    bee_batch: str


@pytest_asyncio.fixture
async def nodes(real_bee: RealBee) -> AsyncIterator[Nodes]:
    node = await DevNode.start("127.0.0.1", 0)
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(f"{node.url}/stamps/100000000/20") as reply:
                dev_batch = (await reply.json())["batchID"]
            yield Nodes(session, node.url, dev_batch, real_bee.urls[0], real_bee.batches[0].hex())
    finally:
        await node.aclose()


async def _answer(nodes: Nodes, url: str, batch: str, case: Case) -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/octet-stream"}
    if case.needs_batch:
        headers["Swarm-Postage-Batch-Id"] = batch
    elif case.batch_header is not None:
        headers["Swarm-Postage-Batch-Id"] = case.batch_header
    async with nodes.session.request(case.method, url + case.path, headers=headers,
                                     data=case.body) as reply:  # fmt: skip
        return reply.status, await reply.json(content_type=None)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_dev_node_errors_match_real_bee(nodes: Nodes, case: Case) -> None:
    dev_status, dev_body = await _answer(nodes, nodes.dev_url, nodes.dev_batch, case)
    bee_status, bee_body = await _answer(nodes, nodes.bee_url, nodes.bee_batch, case)
    assert dev_status == bee_status, (dev_body, bee_body)
    assert dev_body["code"] == bee_body["code"] == bee_status
    if case.message is not None:
        assert dev_body["message"] == bee_body["message"] == case.message


async def test_known_differences_are_still_the_documented_ones(nodes: Nodes) -> None:
    missing = Case("missing chunk", "GET", f"/chunks/{_hex(32)}")
    assert (await _answer(nodes, nodes.dev_url, nodes.dev_batch, missing))[0] == 404
    # a tiny network runs out of peers to ask: Bee says 500, BeeClient maps it to NotFoundError
    status, body = await _answer(nodes, nodes.bee_url, nodes.bee_batch, missing)
    assert (status, body["message"]) in {(404, "Not Found"), (500, "read chunk failed")}
    oversized = Case("oversized chunk", "POST", "/chunks", needs_batch=True,
                     body=bytes(8) + b"x" * 4097)  # fmt: skip
    assert (await _answer(nodes, nodes.dev_url, nodes.dev_batch, oversized))[0] == 413
    status, body = await _answer(nodes, nodes.bee_url, nodes.bee_batch, oversized)
    assert (status, body["message"]) == (500, "create chunk error")
