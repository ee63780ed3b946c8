"""Swarm substrate benchmark: BMT vs Keccak, dev-node round trips, GSOC latency.

    python bench/swarm.py [--chunks N] [--roundtrips N] [--messages N] [--size BYTES]

Progress goes to stderr; the last line on stdout is JSON::

    {"bmt_keccak_ratio": ..., "bmt_mb_s": ..., "keccak_mb_s": ...,
     "roundtrips_per_s": ..., "gsoc_p50_ms": ..., "gsoc_p99_ms": ...}

* ``bmt_keccak_ratio``: BMT-hashing throughput over plain Keccak-256 of the
  same 4096-byte payloads (best of 3 rounds each; ``bench/swarm_bmt.py`` explains
  what bounds it and how the vectorised extension lifts the bound).
* ``roundtrips_per_s``: sequential ``upload_bytes`` + verified
  ``download_bytes`` of ``--size`` random bytes against an in-process dev
  node over loopback HTTP.
* ``gsoc_p50_ms`` / ``gsoc_p99_ms``: from the start of ``gsoc_send`` (sign +
  upload, which the dev node verifies) until the subscribed client holds the
  payload. Signing and the node's signature recovery dominate; both run at
  eth_keys speed (pure Python unless coincurve is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from Crypto.Hash import keccak

from swarm_vectordb.bee.bmt import CHUNK_SIZE, bmt_root
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.gsoc import mine_gsoc_key
from swarm_vectordb.bee.records import BatchId


def _best_rate(
    name: str, work: list[bytes], hash_one: Callable[[bytes], bytes], rounds: int = 3
) -> float:
    total = CHUNK_SIZE * len(work)
    best = 0.0
    for round_number in range(1, rounds + 1):
        started = time.perf_counter()
        for payload in work:
            hash_one(payload)
        rate = total / (time.perf_counter() - started) / 1e6
        best = max(best, rate)
        print(f"{name}: round {round_number}/{rounds}: {rate:.1f} MB/s", file=sys.stderr)
    return best


def _keccak(payload: bytes) -> bytes:
    return keccak.new(data=payload, digest_bits=256).digest()


async def _roundtrips(bee: BeeClient, batch: BatchId, count: int, size: int) -> float:
    payloads = [os.urandom(size) for _ in range(count)]
    started = time.perf_counter()
    for n, data in enumerate(payloads, 1):
        reference = await bee.upload_bytes(data, batch)
        if await bee.download_bytes(reference) != data:
            raise SystemExit("round trip returned different bytes")
        if n % 100 == 0:
            print(f"roundtrips: {n}/{count}", file=sys.stderr)
    return count / (time.perf_counter() - started)


async def _gsoc(node: DevNode, batch: BatchId, count: int) -> list[float]:
    key = mine_gsoc_key(node.addresses.overlay, os.urandom(32), 8)
    latencies: list[float] = []
    async with (
        BeeClient(node.url) as sender,
        BeeClient(node.url) as receiver,
        await receiver.gsoc_subscribe(key.address) as inbox,
    ):
        for n in range(count):
            payload = n.to_bytes(4, "big") + os.urandom(60)
            started = time.perf_counter()
            await sender.gsoc_send(key, payload, batch)
            received = await inbox.receive(10)
            latencies.append((time.perf_counter() - started) * 1e3)
            if received != payload:
                raise SystemExit("GSOC delivered a different payload")
            if (n + 1) % 100 == 0:
                print(f"gsoc: {n + 1}/{count}", file=sys.stderr)
    return latencies


async def _network(args: argparse.Namespace) -> dict[str, float]:
    node = await DevNode.start("127.0.0.1", 0)
    try:
        async with BeeClient(node.url) as bee:
            batch = await bee.buy_stamp(10**8, 20)
            rate = await _roundtrips(bee, batch, args.roundtrips, args.size)
        latencies = sorted(await _gsoc(node, batch, args.messages))
    finally:
        await node.aclose()
    return {
        "roundtrips_per_s": round(rate, 1),
        "gsoc_p50_ms": round(statistics.median(latencies), 3),
        "gsoc_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000, help="4096-byte payloads to hash")
    parser.add_argument("--roundtrips", type=int, default=300, help="upload+download pairs")
    parser.add_argument("--size", type=int, default=4096, help="bytes per round trip")
    parser.add_argument("--messages", type=int, default=300, help="GSOC messages timed")
    args = parser.parse_args()

    work = [os.urandom(CHUNK_SIZE) for _ in range(args.chunks)]
    bmt_rate = _best_rate("bmt", work, bmt_root)
    keccak_rate = _best_rate("keccak", work, _keccak)
    result: dict[str, float] = {
        "bmt_keccak_ratio": round(bmt_rate / keccak_rate, 4),
        "bmt_mb_s": round(bmt_rate, 2),
        "keccak_mb_s": round(keccak_rate, 2),
    }
    result.update(asyncio.run(_network(args)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
