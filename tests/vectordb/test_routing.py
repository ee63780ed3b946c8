"""Routing by index summaries and verified merging, with exact search as the oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.protocol import Hit
from swarm_vectordb.routing import (
    IncrementalSummary,
    PeerSummary,
    merge_answers,
    route,
    summarize,
    text_reference,
)

DIM = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_text_reference_is_the_swarm_address() -> None:
    # one chunk: the CAC address, checked against SWARM.md's value for "hello world"
    assert text_reference("hello world").hex() == (
        "92672a471f4419b255d7cb0cf313474a6f5856fb347c5ece85fb706d644b630f"
    )
    long_text = "x" * 10_000  # a chunk tree, not a single chunk
    assert text_reference(long_text) != Chunk.create(long_text.encode()[:4096]).address


def hits_for(peer: int, texts: list[str], scores: list[float]) -> list[Hit]:
    return [Hit(t, s, text_reference(t), f"peer{peer}") for t, s in zip(texts, scores, strict=True)]


def test_merge_equals_exact_top_k_over_the_union() -> None:
    rng = np.random.default_rng(0)
    texts = [f"chunk {i}" for i in range(60)]
    scores = list(rng.random(60))
    peers = {bytes([p]) * 20: list(range(p, 60, 3)) for p in range(3)}
    answers = [
        (peer, hits_for(p, [texts[i] for i in idx], [scores[i] for i in idx]))
        for p, (peer, idx) in enumerate(peers.items())
    ]
    # the same chunk held by two peers collapses to one hit
    answers.append((b"\x09" * 20, hits_for(9, [texts[0]], [scores[0]])))
    merged = merge_answers(answers, k=10)
    expected = sorted(range(60), key=lambda i: -scores[i])[:10]
    assert [h.text for _, h in merged.hits] == [texts[i] for i in expected]
    assert not merged.liars


def test_a_lying_peer_is_dropped_whole() -> None:
    honest = hits_for(1, ["true chunk"], [0.5])
    lie = [Hit("forged text", 0.99, text_reference("what it claims to be"), "liar")]
    half_lie = [*hits_for(2, ["real but"], [0.9]), *lie]
    merged = merge_answers([(b"\x01" * 20, honest), (b"\x02" * 20, half_lie)], k=5)
    assert [h.text for _, h in merged.hits] == ["true chunk"]
    assert set(merged.liars) == {b"\x02" * 20}


def test_summaries_and_routing_find_the_right_peer() -> None:
    rng = np.random.default_rng(1)
    topics = unit(rng, 10)
    peers = []
    for p, topic in enumerate(topics):  # each peer holds vectors near one topic
        noise = rng.standard_normal((200, DIM)).astype(np.float32) * 0.15
        vectors = topic + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        centroids = summarize(vectors, 4)
        assert centroids.shape == (4, DIM)
        assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
        peers.append(PeerSummary(bytes([p]) * 20, centroids))
    for p, topic in enumerate(topics):
        chosen = route(topic, peers, fan_out=2)
        assert chosen[0].peer == bytes([p]) * 20
    assert route(topics[0], peers, None) == peers
    assert summarize(np.zeros((0, DIM), np.float32)).shape == (0, DIM)
    assert summarize(topics[:3], 8).shape == (3, DIM)


# --- incremental summaries ------------------------------------------------------------------

SUMMARY_DIM = 32


def _peer_holdings(
    rng: np.random.Generator, peers: int, topics: int, per_peer: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    centres = rng.standard_normal((topics, SUMMARY_DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    holdings = []
    for _ in range(peers):  # each peer holds 1-3 topics, its documents in arrival order
        mine = rng.choice(topics, size=int(rng.integers(1, 4)), replace=False)
        picks = rng.choice(mine, size=per_peer)
        v = centres[picks] + rng.standard_normal((per_peer, SUMMARY_DIM)).astype(np.float32) * 0.1
        holdings.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    return centres, holdings


def _recall(
    queries: np.ndarray, holdings: list[np.ndarray], summaries: list[PeerSummary], fan_out: int
) -> float:
    union = np.concatenate(holdings)
    offsets = np.concatenate([[0], np.cumsum([len(h) for h in holdings])])
    total = 0.0
    for q in queries:
        truth = set(np.argsort(-(union @ q))[:10].tolist())
        asked = [int.from_bytes(s.peer, "big") for s in route(q, summaries, fan_out)]
        found: list[int] = []
        for p in asked:
            block = np.arange(offsets[p], offsets[p + 1])
            found += block[np.argsort(-(union[block] @ q))[:10]].tolist()
        merged = sorted(found, key=lambda j: -float(union[j] @ q))[:10]
        total += len(set(merged) & truth) / 10
    return total / len(queries)


def _index_add(index: VectorIndex, vectors: np.ndarray, start: int) -> None:
    chunks = [
        IndexedChunk(ChunkRef((start + i).to_bytes(32, "big")), f"t{start + i}")
        for i in range(len(vectors))
    ]
    index.add(chunks, vectors)


def test_an_incrementally_grown_summary_routes_as_well_as_a_full_recompute(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(7)
    centres, holdings = _peer_holdings(rng, peers=30, topics=40, per_peer=120)
    incremental, full = [], []
    for p, vectors in enumerate(holdings):
        tracker = IncrementalSummary(4, regrow=2.0)
        with VectorIndex(tmp_path / f"peer{p}", SUMMARY_DIM, "m") as index:
            first = 66  # 55 %: the rest arrives later, under the regrow factor
            _index_add(index, vectors[:first], 0)
            tracker.update(index)
            for start in range(first, len(vectors), 6):  # republish after every small batch
                _index_add(index, vectors[start : start + 6], start)
                centroids = tracker.update(index)
            assert tracker.full_runs == 1, "growth under the regrow factor never reruns k-means"
        assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
        incremental.append(PeerSummary(p.to_bytes(20, "big"), centroids))
        full.append(PeerSummary(p.to_bytes(20, "big"), summarize(vectors, 4)))
    queries = (
        centres[rng.integers(0, len(centres), 100)]
        + rng.standard_normal((100, SUMMARY_DIM)).astype(np.float32) * 0.05
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for fan_out in (2, 4):
        got, reference = (_recall(queries, holdings, s, fan_out) for s in (incremental, full))
        assert got >= reference - 0.05, (fan_out, got, reference)
        assert got > 0.5  # and far better than chance (fan-out 4 of 30 peers)


def test_summary_reruns_k_means_after_regrowth_or_removal(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 200)
    tracker = IncrementalSummary(4, regrow=2.0)
    with VectorIndex(tmp_path / "i", DIM, "m") as index:
        _index_add(index, vectors[:50], 0)
        first = tracker.update(index)
        assert tracker.full_runs == 1
        assert np.array_equal(tracker.update(index), first)  # nothing new: nothing changes
        _index_add(index, vectors[50:90], 50)
        tracker.update(index)
        assert tracker.full_runs == 1
        _index_add(index, vectors[90:100], 90)  # 100 >= 2 x 50: a full run
        tracker.update(index)
        assert tracker.full_runs == 2
        index.remove([ChunkRef((3).to_bytes(32, "big"))])
        tracker.update(index)
        assert tracker.full_runs == 3
