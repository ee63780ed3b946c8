"""Benchmark: the vector database.

    .venv/bin/python bench/vectordb.py [--quick] [--only search,routing]

Sections (each compares against a baseline measured in the same run):

- ingest: chunks/s through the real ingestion path (chunking, Swarm upload to an
  in-process dev node, embedding, the crash-safe index) against raw
  `SentenceTransformer.encode` on the same chunk texts: `ingest_ratio`.
- distributed: 2, 4 and 8 `noosphere serve` processes on one dev node; p50/p99 of a
  network search and `recall_at_10` against exact search over the union.
- search: local search latency (p50/p99, k=10) of `VectorIndex` at 10k and 100k
  topic-clustered chunks (exact below the HNSW threshold, HNSW above it), with numpy's
  exact search over the same vectors as the baseline and recall@10 against it.
- routing: 1,000 simulated peers holding topic-clustered chunks, using the real
  `summarize` and `route` code without Swarm: recall@10 against messages per query,
  for summary routing and for random peer choice, with full fan-out as the reference.

`--quick` shrinks sizes to finish in well under 5 minutes on 2 cores. Progress goes
to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.routing import PeerSummary, route, summarize

DIM = 384


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def clustered(rng: np.random.Generator, n: int, topics: int, noise: float) -> np.ndarray:
    """Unit vectors around `topics` centres: shaped like real embeddings, unlike uniform
    random vectors (on which every point is nearly equidistant and HNSW recall collapses)."""
    centres = unit_rows(rng, topics)
    v = (
        centres[rng.integers(0, topics, n)]
        + rng.standard_normal((n, DIM)).astype(np.float32) * noise
    )
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


WORDS = [
    "swarm",
    "chunk",
    "feed",
    "stamp",
    "node",
    "peer",
    "query",
    "index",
    "vector",
    "model",
    "token",
    "answer",
    "ledger",
    "block",
    "contract",
    "stake",
    "dataset",
    "fork",
    "vote",
    "reward",
    "proof",
    "merkle",
    "step",
    "adapter",
    "train",
    "honey",
    "river",
    "mountain",
    "engine",
    "music",
    "garden",
    "winter",
    "signal",
    "memory",
    "kernel",
    "window",
    "market",
    "bridge",
]


def synthetic_documents(directory: Path, n_docs: int, sentences: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        lines = [
            " ".join(rng.choice(WORDS, size=int(rng.integers(8, 20)))).capitalize() + "."
            for _ in range(sentences)
        ]
        (directory / f"doc{d:04}.txt").write_text(" ".join(lines))


async def bench_ingest(n_docs: int) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.devnode import DevNode
    from swarm_vectordb.chunking import Chunker, read_document
    from swarm_vectordb.embedding import Embedder, resolve_model
    from swarm_vectordb.ingest import BeeChunkStore, Ingestor

    model_dir, _ = resolve_model("all-MiniLM-L6-v2")
    chunker = Chunker.for_model_dir(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        synthetic_documents(docs, n_docs, sentences=40, seed=2)
        texts = [c.text for p in sorted(docs.iterdir()) for c in chunker.chunk(read_document(p))]
        raw = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)

        def raw_rate() -> float:
            t = time.perf_counter()
            raw.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            return len(texts) / (time.perf_counter() - t)

        raw_rate()  # warm-up
        raw_before = raw_rate()
        node = await DevNode.start("127.0.0.1", 0)
        bee = await BeeClient.create(node.url)
        embedder = await Embedder.load()
        try:
            batch = await bee.buy_stamp(10_000_000, 24)
            with VectorIndex(Path(tmp) / "index", embedder.dim, embedder.model_id) as index:
                ingestor = Ingestor(
                    store=BeeChunkStore(bee, batch),
                    embedder=embedder,
                    index=index,
                    chunker=chunker,
                    manifest_path=Path(tmp) / "sources.json",
                )
                t = time.perf_counter()
                report = await ingestor.ingest([docs])
                ingest_s = time.perf_counter() - t
        finally:
            await embedder.aclose()
            await bee.aclose()
            await node.aclose()
        raw_after = raw_rate()
    raw_cps = (raw_before + raw_after) / 2
    ingest_cps = report.chunks_added / ingest_s
    out = {
        "chunks": report.chunks_added,
        "ingest_chunks_per_s": round(ingest_cps, 1),
        "raw_encode_chunks_per_s": round(raw_cps, 1),
        "raw_before_after": [round(raw_before, 1), round(raw_after, 1)],
        "ingest_ratio": round(ingest_cps / raw_cps, 4),
    }
    say(f"ingest: {out}")
    return out


async def bench_distributed(
    peer_counts: list[int], chunks_per_peer: int, queries: int
) -> dict[str, Any]:
    """Separate `noosphere serve` processes on one in-process dev node."""
    import os
    import signal

    from eth_account import Account

    from agent.identity import create_identity
    from swarm_vectordb.bee.client import BeeClient
    from swarm_vectordb.bee.devnode import DevNode
    from swarm_vectordb.embedding import Embedder
    from swarm_vectordb.network import network_search
    from swarm_vectordb.peers import PeerDirectory, node_inbox
    from swarm_vectordb.routing import text_reference

    password = "bench password"
    rng = np.random.default_rng(3)
    out: dict[str, Any] = {}
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url)
    embedder = await Embedder.load()
    try:
        batch = await bee.buy_stamp(10_000_000, 24)
        asker = os.urandom(32)
        me = bytes.fromhex(Account.from_key(asker).address[2:])
        inbox = node_inbox(me, (await bee.addresses()).overlay)
        question_texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(queries)]
        question_vectors = (await embedder.embed(question_texts)).vectors
        for count in peer_counts:
            with tempfile.TemporaryDirectory() as tmp:
                union: list[tuple[bytes, np.ndarray]] = []
                procs, addresses = [], []
                for p in range(count):
                    home = Path(tmp) / f"peer{p}"
                    ident = create_identity(home / "keystore.json", password, scrypt_n=1 << 12)
                    texts = [
                        f"Peer {p} note {i}: " + " ".join(rng.choice(WORDS, size=12))
                        for i in range(chunks_per_peer)
                    ]
                    vectors = (await embedder.embed(texts)).vectors
                    with VectorIndex(
                        home / "data" / "index", embedder.dim, embedder.model_id
                    ) as ix:
                        ix.add(
                            [
                                IndexedChunk(ChunkRef(text_reference(t)), t, f"p{p}", i)
                                for i, t in enumerate(texts)
                            ],
                            vectors,
                        )
                    union += [(text_reference(t), v) for t, v in zip(texts, vectors, strict=True)]
                    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
                    env.update(
                        NOOSPHERE_HOME=str(home),
                        NOOSPHERE_PASSWORD=password,
                        NOOSPHERE_NETWORK_BEE_URL=node.url,
                        HF_HUB_OFFLINE="1",
                    )
                    procs.append(
                        await asyncio.create_subprocess_exec(
                            str(Path(sys.executable).with_name("noosphere")),
                            "serve",
                            env=env,
                            stdout=asyncio.subprocess.PIPE,
                            stderr=asyncio.subprocess.DEVNULL,
                        )
                    )
                    addresses.append(bytes.fromhex(ident.address[2:]))
                say(f"distributed: starting {count} serving processes")
                for proc in procs:
                    assert proc.stdout is not None
                    await asyncio.wait_for(proc.stdout.readline(), 300)
                directory = PeerDirectory()
                await directory.refresh(bee, addresses, max_bytes=1 << 20)
                live = directory.live(embedder.model_id)
                refs = [r for r, _ in union]
                matrix = np.stack([v for _, v in union])
                latencies, recalls = [], []
                for vector in question_vectors:
                    result = await network_search(
                        bee=bee,
                        batch=batch,
                        node_key=asker,
                        inbox=inbox,
                        peers=live,
                        vector=vector,
                        model=embedder.model_id,
                        k=10,
                        fan_out=None,
                        deadline_s=30.0,
                        max_bytes=1 << 20,
                    )
                    latencies.append(result.elapsed_ms)
                    exact = {refs[i] for i in np.argsort(-(matrix @ vector))[:10]}
                    recalls.append(len(exact & {h.ref for _, h in result.hits}) / 10)
                for proc in procs:
                    proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    await proc.wait()
                out[str(count)] = {
                    "p50_ms": round(percentile(latencies, 50), 1),
                    "p99_ms": round(percentile(latencies, 99), 1),
                    "recall_at_10": round(statistics.mean(recalls), 4),
                    "peers_live": len(live),
                }
                say(f"distributed {count} peers: {out[str(count)]}")
    finally:
        await embedder.aclose()
        await bee.aclose()
        await node.aclose()
    return out


def bench_search(sizes: list[int], queries: int, hnsw_threshold: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    biggest = max(sizes)
    vectors = clustered(rng, biggest, topics=2000, noise=0.08)
    picks = vectors[rng.integers(0, biggest, queries)]
    query_vectors = picks + rng.standard_normal(picks.shape).astype(np.float32) * 0.03
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            index = VectorIndex(Path(tmp), DIM, "bench", hnsw_threshold=hnsw_threshold)
            for start in range(0, size, 5000):
                stop = min(size, start + 5000)
                index.add(
                    [
                        IndexedChunk(ChunkRef(i.to_bytes(32, "big")), "", "bench", i)
                        for i in range(start, stop)
                    ],
                    vectors[start:stop],
                )
            build_s = time.perf_counter() - t0
            latencies, hits = [], []
            for q in query_vectors:
                t = time.perf_counter()
                result = index.search(q, 10)
                latencies.append((time.perf_counter() - t) * 1000)
                hits.append({int.from_bytes(h.chunk.ref, "big") for h in result})
            # exact baseline over the same vectors, same run
            exact_lat, recall = [], []
            sub = vectors[:size]
            for q, got in zip(query_vectors, hits, strict=True):
                t = time.perf_counter()
                top = np.argpartition(-(sub @ q), 10)[:10]
                exact_lat.append((time.perf_counter() - t) * 1000)
                recall.append(len(got & set(top.tolist())) / 10)
            out[str(size)] = {
                "kind": index.kind,
                "build_s": round(build_s, 2),
                "p50_ms": round(percentile(latencies, 50), 3),
                "p99_ms": round(percentile(latencies, 99), 3),
                "numpy_exact_p50_ms": round(percentile(exact_lat, 50), 3),
                "recall_at_10": round(statistics.mean(recall), 4),
            }
            say(f"search {size:>7}: {out[str(size)]}")
            index.close()
    return out


def bench_routing(peers: int, topics: int, per_peer: int, queries: int) -> dict[str, Any]:
    """recall@10 vs messages per query for summary routing and random routing."""
    rng = np.random.default_rng(1)
    centers = unit_rows(rng, topics)
    holdings: list[np.ndarray] = []
    summaries: list[PeerSummary] = []
    for p in range(peers):
        # each peer specialises in 1-3 topics (Zipf-like popularity)
        mine = rng.choice(topics, size=int(rng.integers(1, 4)), replace=False)
        picks = rng.choice(mine, size=per_peer)
        v = centers[picks] + rng.standard_normal((per_peer, DIM)).astype(np.float32) * 0.08
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        holdings.append(v.astype(np.float32))
        summaries.append(PeerSummary(p.to_bytes(20, "big"), summarize(v, 4, seed=p)))
    union = np.concatenate(holdings)
    say(f"routing: {peers} peers, {len(union)} chunks, {topics} topics")
    qs = centers[rng.integers(0, topics, size=queries)] + unit_rows(rng, queries) * 0.05
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    exact = [set(np.argsort(-(union @ q))[:10].tolist()) for q in qs]
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in holdings])])
    curve: list[dict[str, Any]] = []
    for fan_out in [1, 2, 4, 8, 16, 32, 64, 128, peers]:
        recalls: dict[str, list[float]] = {"summary": [], "random": []}
        for q, truth in zip(qs, exact, strict=True):
            chosen = {
                "summary": [int.from_bytes(s.peer, "big") for s in route(q, summaries, fan_out)],
                "random": list(rng.choice(peers, size=min(fan_out, peers), replace=False)),
            }
            for how, ids in chosen.items():
                # each asked peer answers its local top-10; the asker merges by score
                local = []
                for i in ids:
                    block = np.arange(offsets[i], offsets[i + 1])
                    local.extend(block[np.argsort(-(union[block] @ q))[:10]].tolist())
                merged = sorted(local, key=lambda j: -float(union[j] @ q))[:10]
                recalls[how].append(len(set(merged) & truth) / 10)
        curve.append(
            {
                "fan_out": fan_out,
                "messages_per_query": 2 * fan_out,  # a query out and an answer back per peer
                "recall_summary": round(statistics.mean(recalls["summary"]), 4),
                "recall_random": round(statistics.mean(recalls["random"]), 4),
            }
        )
        say(f"routing fan-out {fan_out:>5}: {curve[-1]}")
    return {"peers": peers, "chunks": len(union), "queries": queries, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description="vector database benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 5 min)")
    parser.add_argument(
        "--only", default="ingest,search,distributed,routing", help="comma-separated sections"
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    result: dict[str, Any] = {"bench": "vectordb", "quick": args.quick}
    if "ingest" in sections:
        result["ingest"] = asyncio.run(bench_ingest(20 if args.quick else 100))
        result["ingest_ratio"] = result["ingest"]["ingest_ratio"]
    if "distributed" in sections:
        result["distributed"] = asyncio.run(
            bench_distributed([2, 4, 8], chunks_per_peer=50 if args.quick else 500, queries=20)
        )
    if "search" in sections:
        if args.quick:  # HNSW above 20k, to keep its build inside the quick budget
            result["search"] = bench_search([10_000, 30_000], queries=200, hnsw_threshold=20_000)
        else:
            result["search"] = bench_search([10_000, 100_000], queries=200, hnsw_threshold=50_000)
    if "routing" in sections:
        per_peer = 50 if args.quick else 200
        result["routing"] = bench_routing(1000, topics=100, per_peer=per_peer, queries=100)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
