"""Routing by index summaries and verified merging, with exact search as the oracle."""

from __future__ import annotations

import numpy as np

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.protocol import Hit
from swarm_vectordb.routing import PeerSummary, merge_answers, route, summarize, text_reference

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
