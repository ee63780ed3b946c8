"""BMT hashing throughput against plain Keccak-256 over the same 4096-byte chunks.

    python bench/swarm_bmt.py [--chunks N] [--rounds R]

Progress goes to stderr; the last line on stdout is JSON:
``{"bmt_mb_s": ..., "keccak_mb_s": ..., "ratio": ...}`` (best of R rounds each).

What bounds the ratio: a BMT of a full chunk is 127 Keccak calls on 64-byte
inputs, each a full Keccak-f[1600] permutation (rate 136 bytes), while one flat
Keccak over 4096 bytes is 31 permutations. One state at a time the ratio cannot
pass ~31/127 = 0.24; the `_keccak` extension hashes a level's nodes 8 (AVX-512)
or 4 (AVX2) at a time, which lifts that bound 8- or 4-fold. The JSON names the
vector path in use (`simd`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from Crypto.Hash import keccak

from swarm_vectordb.bee.bmt import CHUNK_SIZE, bmt_root

try:
    from swarm_vectordb.bee._keccak import simd
except ImportError:  # built without a compiler

    def simd() -> str:
        return "not built"


def _best_rate(name: str, work: Callable[[], None], total_bytes: int, rounds: int) -> float:
    best = 0.0
    for round_number in range(1, rounds + 1):
        started = time.perf_counter()
        work()
        elapsed = time.perf_counter() - started
        rate = total_bytes / elapsed / 1e6
        best = max(best, rate)
        print(f"{name}: round {round_number}/{rounds}: {rate:.1f} MB/s", file=sys.stderr)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000, help="random 4096-byte chunks")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; the best counts")
    args = parser.parse_args()

    chunks = [os.urandom(CHUNK_SIZE) for _ in range(args.chunks)]
    total = CHUNK_SIZE * len(chunks)
    print(f"{len(chunks)} chunks, {total / 1e6:.1f} MB per round", file=sys.stderr)

    def run_bmt() -> None:
        for chunk in chunks:
            bmt_root(chunk)

    def run_keccak() -> None:
        new = keccak.new
        for chunk in chunks:
            new(data=chunk, digest_bits=256).digest()

    bmt_rate = _best_rate("bmt", run_bmt, total, args.rounds)
    keccak_rate = _best_rate("keccak", run_keccak, total, args.rounds)
    result = {
        "bmt_mb_s": round(bmt_rate, 2),
        "keccak_mb_s": round(keccak_rate, 2),
        "ratio": round(bmt_rate / keccak_rate, 4),
        "simd": simd(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
