"""Swarm substrate benchmark: BMT vs Keccak, round trips, GSOC and network-search latency.

    python bench/swarm.py [--chunks N] [--roundtrips N] [--messages N] [--size BYTES]
                          [--searches N] [--bee URL --bee URL ...]

Progress goes to stderr; the last line on stdout is JSON::

    {"bmt_keccak_ratio": ..., "bmt_mb_s": ..., "keccak_mb_s": ...,
     "roundtrips_per_s": ..., "gsoc_p50_ms": ..., "gsoc_p99_ms": ...,
     "search_p50_ms": ..., "search_p99_ms": ..., "bee": {...same keys, real Bee...}}

* ``bmt_keccak_ratio``: BMT-hashing throughput over plain Keccak-256 of the
  same 4096-byte payloads (best of 3 rounds each; ``bench/swarm_bmt.py`` explains
  what bounds it and how the vectorised extension lifts the bound).
* ``roundtrips_per_s``: sequential ``upload_bytes`` + verified
  ``download_bytes`` of ``--size`` random bytes over loopback HTTP.
* ``gsoc_p50_ms`` / ``gsoc_p99_ms``: from the start of ``gsoc_send`` (sign +
  upload) until the subscribed client holds the payload; ``gsoc_duplicates``:
  earlier messages delivered again meanwhile (real Bee does that).
* ``search_p50_ms`` / ``search_p99_ms``: one ``network_search`` (k=10) over two
  in-process ``KnowledgeServer`` peers with 500 random 384-d vectors each, from
  sealing the query until the merged answer; peer records are read once before.
  ``search_incomplete``: searches in which a peer's answer did not arrive within
  the 30 s deadline (left out of the percentiles).

Without ``--bee`` everything runs on an in-process dev node. With ``--bee URL``
given three times (three real Bee nodes, e.g. ``NOOSPHERE_TEST_BEE_URL``,
``_2``, ``_3`` inside ``scripts/bee-localnet run --nodes 3``) the same
measurements also run on real Bee under ``"bee"``: uploads and GSOC sends go
through the first node and are received on the second; the search's two peers
sit on the first and second node and the asker on the third. Bee never hands a
GSOC message to a subscriber on the node it was uploaded through, hence the
separate nodes. Batches come from ``NOOSPHERE_TEST_BEE_BATCH``, ``_2``, ``_3``
(else one is bought per node and awaited).
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
from pathlib import Path

from Crypto.Hash import keccak

from swarm_vectordb.bee.bmt import CHUNK_SIZE, bmt_root
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.gsoc import mine_gsoc_key
from swarm_vectordb.bee.records import BatchId

sys.path.insert(0, str(Path(__file__).resolve().parent))
from swarm_search import search_latencies


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


async def _gsoc(
    send_url: str, receive_url: str, batch: BatchId, count: int
) -> tuple[list[float], int]:
    """Latency of each message, and how many earlier messages were delivered again.

    Real Bee can hand a subscriber one message twice (pushed to the node, then
    pulled from a neighbour that stored it too): those are counted, not timed.
    """
    latencies: list[float] = []
    duplicates = 0
    async with BeeClient(send_url) as sender, BeeClient(receive_url) as receiver:
        key = mine_gsoc_key((await receiver.addresses()).overlay, os.urandom(32), 8)
        async with await receiver.gsoc_subscribe(key.address) as inbox:
            for n in range(count):
                payload = n.to_bytes(4, "big") + os.urandom(60)
                started = time.perf_counter()
                await sender.gsoc_send(key, payload, batch)
                while (received := await inbox.receive(30)) != payload:
                    if int.from_bytes(received[:4], "big") >= n:
                        raise SystemExit("GSOC delivered a payload that was never sent")
                    duplicates += 1
                latencies.append((time.perf_counter() - started) * 1e3)
                if (n + 1) % 100 == 0:
                    print(f"gsoc: {n + 1}/{count}", file=sys.stderr)
    return latencies, duplicates


def _percentiles(name: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        f"{name}_p50_ms": round(statistics.median(ordered), 3),
        f"{name}_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


async def _measure(
    urls: list[str], batches: list[BatchId], args: argparse.Namespace
) -> dict[str, float]:
    """Round trips on urls[0], GSOC urls[0] -> urls[1], search from urls[2] to peers on 0 and 1."""
    async with BeeClient(urls[0]) as bee:
        rate = await _roundtrips(bee, batches[0], args.roundtrips, args.size)
    result: dict[str, float] = {"roundtrips_per_s": round(rate, 1)}
    latencies, duplicates = await _gsoc(urls[0], urls[1], batches[0], args.messages)
    result.update(_percentiles("gsoc", latencies))
    result["gsoc_duplicates"] = duplicates
    searches = await search_latencies(urls, batches, args.searches)
    result["search_incomplete"] = args.searches - len(searches)
    if searches:
        result.update(_percentiles("search", searches))
    return result


async def _bee_batches(urls: list[str]) -> list[BatchId]:
    batches: list[BatchId] = []
    for n, url in enumerate(urls):
        named = os.environ.get("NOOSPHERE_TEST_BEE_BATCH" + ("" if n == 0 else f"_{n + 1}"))
        if named:
            batches.append(BatchId(bytes.fromhex(named)))
            continue
        async with BeeClient(url) as bee:
            batch = await bee.buy_stamp(500_000_000, 20, label="bench", immutable=False)
            await bee.wait_until_usable(batch)
            batches.append(batch)
    return batches


async def _network(args: argparse.Namespace) -> dict[str, object]:
    node = await DevNode.start("127.0.0.1", 0)
    try:
        async with BeeClient(node.url) as bee:
            batch = await bee.buy_stamp(10**8, 20)
        print("dev node:", file=sys.stderr)
        result: dict[str, object] = dict(await _measure([node.url] * 3, [batch] * 3, args))
    finally:
        await node.aclose()
    if args.bee:
        if len(args.bee) != 3:
            raise SystemExit("--bee takes three nodes (given three times)")
        print("real Bee:", file=sys.stderr)
        result["bee"] = await _measure(args.bee, await _bee_batches(args.bee), args)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1000, help="4096-byte payloads to hash")
    parser.add_argument("--roundtrips", type=int, default=300, help="upload+download pairs")
    parser.add_argument("--size", type=int, default=4096, help="bytes per round trip")
    parser.add_argument("--messages", type=int, default=300, help="GSOC messages timed")
    parser.add_argument("--searches", type=int, default=30, help="network searches timed")
    parser.add_argument(
        "--bee", action="append", metavar="URL", help="a real Bee node (give three)"
    )
    args = parser.parse_args()

    work = [os.urandom(CHUNK_SIZE) for _ in range(args.chunks)]
    bmt_rate = _best_rate("bmt", work, bmt_root)
    keccak_rate = _best_rate("keccak", work, _keccak)
    result: dict[str, object] = {
        "bmt_keccak_ratio": round(bmt_rate / keccak_rate, 4),
        "bmt_mb_s": round(bmt_rate, 2),
        "keccak_mb_s": round(keccak_rate, 2),
    }
    result.update(asyncio.run(_network(args)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
