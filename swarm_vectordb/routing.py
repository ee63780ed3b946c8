"""Routing and merging for distributed search, independent of the transport.

Routing. A peer publishes an *index summary*: a few unit-norm centroids of its
vectors (spherical k-means). An asker scores each peer by the best cosine between
the query and that peer's centroids and sends the query to the top `m` only;
`fan_out=None` means everyone. The same functions drive the real network search
and the 1,000-peer simulation in `bench/vectordb.py`.

A serving node republishes its summary periodically. `IncrementalSummary` keeps it
current without rerunning k-means over every vector each time: new vectors join
their nearest centroid (sequential k-means), and the full k-means runs again only
when the index has grown by `regrow` times or lost vectors.

Merging. Every hit must prove itself: its text, as UTF-8 bytes, must hash to the
Swarm reference it claims (the chunk-tree root Bee would compute). A peer that
sends even one hit that fails is a liar: its whole answer is dropped and reported.
Surviving hits are merged by score; duplicates (same reference) collapse to the
best-scored copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from swarm_vectordb.bee.chunktree import split
from swarm_vectordb.index import VectorIndex
from swarm_vectordb.protocol import Hit

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
DEFAULT_CENTROIDS = 8


def summarize(vectors: Vectors, n_centroids: int = DEFAULT_CENTROIDS, *, seed: int = 0) -> Vectors:
    """Unit-norm centroids of `vectors` (spherical k-means); fewer if there are few vectors."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    if n <= n_centroids:
        return _normalize(vectors.astype(np.float32))
    import faiss

    kmeans = faiss.Kmeans(
        vectors.shape[1],
        n_centroids,
        niter=20,
        seed=seed,
        spherical=True,
        min_points_per_centroid=1,
    )
    kmeans.train(np.ascontiguousarray(vectors, dtype=np.float32))
    centroids = kmeans.centroids
    if centroids is None:  # faiss leaves it unset only if training did not run
        raise RuntimeError("k-means produced no centroids")
    return _normalize(np.asarray(centroids, dtype=np.float32))


def _normalize(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


class IncrementalSummary:
    """An index's summary, brought up to date with what was added since the last call.

    Keeps, per centroid, the sum and count of the vectors assigned to it. Vectors
    added since the last `update` are assigned to their nearest centroid and added
    in, and each centroid is its normalised sum again (MacQueen's sequential
    k-means, spherical): an update costs O(new x centroids) instead of k-means over
    the whole index. A full `summarize` runs when there is no summary yet, while
    the index has at most `n_centroids` vectors, when it has grown `regrow` times
    since the last full run, or after vectors were removed (sums cannot forget
    vectors whose assignment was not kept).

    Blocking (numpy and FAISS): call it on a worker thread. `full_runs` counts
    the full k-means runs.
    """

    def __init__(
        self, n_centroids: int = DEFAULT_CENTROIDS, *, regrow: float = 2.0, seed: int = 0
    ) -> None:
        if n_centroids < 1 or regrow <= 1.0:
            raise ValueError("need at least one centroid and a regrow factor above 1")
        self.n_centroids, self.regrow, self.seed = n_centroids, regrow, seed
        self.full_runs = 0
        self._centroids: Vectors | None = None
        self._sums: npt.NDArray[np.float64] | None = None
        self._base = 0  # vectors in the index at the last full run
        self._adds = 0  # the index's adds_total and reshapes when last seen
        self._reshapes = 0

    def update(self, index: VectorIndex) -> Vectors:
        """Unit-norm centroids summarising `index` now."""
        fresh = index.adds_total - self._adds
        if (
            self._centroids is None
            or self._sums is None
            or index.reshapes != self._reshapes
            or self._base <= self.n_centroids
            or len(index) >= self._base * self.regrow
        ):
            if self._centroids is None or fresh or index.reshapes != self._reshapes:
                self._full(index.all_vectors()[1])
        elif fresh > 0:
            self._absorb(index.recent_vectors(fresh))
        self._adds, self._reshapes = index.adds_total, index.reshapes
        assert self._centroids is not None  # set by _full on the first call
        return self._centroids.copy()

    def _full(self, vectors: Vectors) -> None:
        self.full_runs += 1
        self._base = len(vectors)
        self._centroids = summarize(vectors, self.n_centroids, seed=self.seed)
        self._sums = np.zeros(self._centroids.shape, np.float64)
        if len(vectors):
            self._add(vectors)

    def _absorb(self, vectors: Vectors) -> None:
        self._add(vectors)
        assert self._sums is not None
        assert self._centroids is not None
        norms = np.linalg.norm(self._sums, axis=1)
        moved = norms > 0
        self._centroids[moved] = (self._sums[moved] / norms[moved, None]).astype(np.float32)

    def _add(self, vectors: Vectors) -> None:
        assert self._sums is not None
        assert self._centroids is not None
        nearest = np.argmax(vectors @ self._centroids.T, axis=1)
        np.add.at(self._sums, nearest, vectors.astype(np.float64))


@dataclass(frozen=True)
class PeerSummary:
    peer: bytes  # the peer's address
    centroids: Vectors


def route(query: Vectors, peers: Sequence[PeerSummary], fan_out: int | None) -> list[PeerSummary]:
    """The peers to ask: all (`fan_out=None`) or the `fan_out` with the closest centroid."""
    if fan_out is None or fan_out >= len(peers):
        return list(peers)
    scored = [
        (float(np.max(p.centroids @ query)) if len(p.centroids) else -1.0, i)
        for i, p in enumerate(peers)
    ]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [peers[i] for _, i in scored[:fan_out]]


def text_reference(text: str) -> bytes:
    """The Swarm reference (chunk-tree root) of `text` as UTF-8, as Bee computes it."""
    return bytes(split(text.encode("utf-8")).root)


@dataclass
class MergeResult:
    hits: list[tuple[bytes, Hit]]  # (peer, hit), best first
    liars: dict[bytes, str] = field(default_factory=dict)  # peer -> why it was dropped


def merge_answers(answers: Iterable[tuple[bytes, Sequence[Hit]]], k: int) -> MergeResult:
    """Verify every hit, drop lying peers whole, merge by score, collapse duplicates."""
    best: dict[bytes, tuple[bytes, Hit]] = {}
    result = MergeResult(hits=[])
    for peer, hits in answers:
        bad = next((h for h in hits if text_reference(h.text) != h.ref), None)
        if bad is not None:
            result.liars[peer] = f"hit text does not match its reference {bad.ref.hex()[:16]}..."
            log.warning("dropping answer from %s: %s", peer.hex(), result.liars[peer])
            continue
        for hit in hits:
            kept = best.get(hit.ref)
            if kept is None or hit.score > kept[1].score:
                best[hit.ref] = (peer, hit)
    result.hits = sorted(best.values(), key=lambda ph: (-ph[1].score, ph[1].ref))[:k]
    return result
