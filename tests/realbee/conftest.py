"""Real Bee nodes for the ``realbee`` tier, as ``scripts/bee-localnet`` describes them.

``real_bee`` reads ``NOOSPHERE_TEST_BEE_URL``, ``NOOSPHERE_TEST_BEE_URL_2``, ...
with each node's usable batch (``NOOSPHERE_TEST_BEE_BATCH``, ``..._2``, ...) and
``NOOSPHERE_TEST_ETH_RPC_URL``; tests that need it are skipped when no node is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from swarm_vectordb.bee.records import BatchId


@dataclass(frozen=True)
class RealBee:
    urls: list[str]
    batches: list[BatchId]
    """``batches[i]`` is usable on ``urls[i]`` (a batch stamps only on the node that owns it)."""
    eth_rpc_url: str


def _suffix(index: int) -> str:
    return "" if index == 0 else f"_{index + 1}"


@pytest.fixture
def real_bee() -> RealBee:
    urls: list[str] = []
    batches: list[BatchId] = []
    while url := os.environ.get(f"NOOSPHERE_TEST_BEE_URL{_suffix(len(urls))}", ""):
        batch = os.environ.get(f"NOOSPHERE_TEST_BEE_BATCH{_suffix(len(urls))}", "")
        if not batch:
            pytest.fail(f"{url} is given without a usable batch (NOOSPHERE_TEST_BEE_BATCH...)")
        urls.append(url)
        batches.append(BatchId(bytes.fromhex(batch)))
    if not urls:
        pytest.skip("no real Bee node: run under scripts/bee-localnet (scripts/test-realbee)")
    return RealBee(urls, batches, os.environ.get("NOOSPHERE_TEST_ETH_RPC_URL", ""))
