"""The local FAISS index: brute-force numpy as the search oracle; crashes and corruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from swarm_vectordb.errors import IndexInputError, IndexMismatchError
from swarm_vectordb.index import WAL_NAME, ChunkRef, IndexedChunk, VectorIndex

DIM = 32
MODEL = "test-model"


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def chunks(start: int, n: int) -> list[IndexedChunk]:
    return [
        IndexedChunk(ChunkRef(i.to_bytes(32, "big")), f"text {i}", "src.md", i)
        for i in range(start, start + n)
    ]


def count(directory: Path) -> int:
    with VectorIndex(directory, DIM, MODEL) as index:
        return len(index)


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(vectors @ query), kind="stable")[:k])


def test_exact_search_equals_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = unit(rng, 500)
    index = VectorIndex(tmp_path, DIM, MODEL)
    assert index.add(chunks(0, 500), vectors) == 500
    assert index.kind == "exact"
    for query in unit(rng, 20):
        hits = index.search(query, 10)
        expected = brute_force(vectors, query, 10)
        assert [int.from_bytes(h.chunk.ref, "big") for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(list(vectors[expected] @ query), abs=1e-5)
    index.close()


def test_hnsw_above_threshold_has_high_recall(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 3000)
    index = VectorIndex(tmp_path, DIM, MODEL, hnsw_threshold=2000)
    index.add(chunks(0, 1500), vectors[:1500])
    assert index.kind == "exact"
    index.add(chunks(1500, 1500), vectors[1500:])
    assert index.kind == "hnsw"
    found = total = 0
    for query in unit(rng, 50):
        got = {int.from_bytes(h.chunk.ref, "big") for h in index.search(query, 10)}
        found += len(got & set(brute_force(vectors, query, 10)))
        total += 10
    assert found / total >= 0.95
    index.close()


def test_dedup_remove_and_reload(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vectors = unit(rng, 100)
    index = VectorIndex(tmp_path, DIM, MODEL)
    assert index.add(chunks(0, 100), vectors) == 100
    assert index.add(chunks(0, 100), vectors) == 0  # the same refs again change nothing
    assert index.add(chunks(0, 1) * 2, vectors[:2]) == 0
    removed = [c.ref for c in chunks(0, 40)]
    assert index.remove([*removed, ChunkRef(b"\xff" * 32)]) == 40
    query = vectors[5]
    assert all(h.chunk.ref not in removed for h in index.search(query, 60))
    index.close()

    reopened = VectorIndex(tmp_path, DIM, MODEL)
    assert len(reopened) == 60
    assert ChunkRef((5).to_bytes(32, "big")) not in reopened
    top = reopened.search(vectors[70], 1)[0]
    assert top.chunk == IndexedChunk(ChunkRef((70).to_bytes(32, "big")), "text 70", "src.md", 70)
    assert top.score == pytest.approx(1.0, abs=1e-5)
    size_before = (tmp_path / WAL_NAME).stat().st_size
    reopened.compact()
    assert (tmp_path / WAL_NAME).stat().st_size < size_before
    assert len(reopened) == 60
    reopened.close()
    assert count(tmp_path) == 60


def test_deleting_from_hnsw_uses_tombstones_then_rebuilds(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 400)
    index = VectorIndex(tmp_path, DIM, MODEL, hnsw_threshold=100)
    index.add(chunks(0, 400), vectors)
    gone = [c.ref for c in chunks(0, 50)]
    index.remove(gone)
    hits = index.search(vectors[0], 20)
    assert len(hits) == 20
    assert all(h.chunk.ref not in gone for h in hits)
    index.remove([c.ref for c in chunks(50, 100)])  # past a quarter: rebuilt
    assert len(index) == 250
    assert len(index.search(vectors[300], 250)) == 250
    index.close()


@pytest.mark.parametrize(
    ("vectors", "words"),
    [
        (np.zeros((2, DIM + 1), np.float32), "dim"),
        (np.full((2, DIM), np.nan, np.float32), "finite"),
        (np.ones((2, DIM), np.float32), "unit norm"),
        (np.zeros((3, DIM), np.float32), "expected 2"),
    ],
)
def test_hostile_vectors_are_refused_and_nothing_changes(
    tmp_path: Path, vectors: np.ndarray, words: str
) -> None:
    index = VectorIndex(tmp_path, DIM, MODEL)
    index.add(chunks(0, 3), unit(np.random.default_rng(4), 3))
    with pytest.raises(IndexInputError, match=words):
        index.add(chunks(10, 2), vectors)
    with pytest.raises(IndexInputError):
        index.search(np.zeros(DIM + 1, np.float32), 3)
    with pytest.raises(IndexInputError, match="32 bytes"):
        index.add([IndexedChunk(ChunkRef(b"short"), "x")], unit(np.random.default_rng(5), 1))
    assert len(index) == 3
    index.close()
    assert count(tmp_path) == 3


def test_other_model_or_dimension_is_refused(tmp_path: Path) -> None:
    VectorIndex(tmp_path, DIM, MODEL).close()
    with pytest.raises(IndexMismatchError, match="another directory"):
        VectorIndex(tmp_path, DIM, "other-model").close()
    with pytest.raises(IndexMismatchError):
        VectorIndex(tmp_path, DIM * 2, MODEL).close()


def test_torn_and_corrupt_tails_are_dropped_not_fatal(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    index = VectorIndex(tmp_path, DIM, MODEL)
    index.add(chunks(0, 10), unit(rng, 10))
    index.add(chunks(10, 10), unit(rng, 10))
    index.close()
    wal = tmp_path / WAL_NAME
    whole = wal.read_bytes()
    # a torn final write: cut in the middle of the last record
    wal.write_bytes(whole[:-7])
    assert count(tmp_path) == 19
    # a flipped byte inside a record: replay stops there, earlier records survive
    data = bytearray(wal.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wal.write_bytes(bytes(data))
    reopened = VectorIndex(tmp_path, DIM, MODEL)
    assert 0 < len(reopened) < 19
    reopened.add(chunks(100, 1), unit(rng, 1))  # and it keeps working
    reopened.close()
    assert count(tmp_path) == len(reopened)


@pytest.mark.integration
def test_kill_9_mid_ingest_loses_at_most_the_batch_in_flight(tmp_path: Path) -> None:
    batch = 50
    script = textwrap.dedent(
        f"""
        import numpy as np, sys
        from pathlib import Path
        from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
        index = VectorIndex(Path({str(tmp_path)!r}), {DIM}, {MODEL!r})
        rng = np.random.default_rng(7)
        i = 0
        while True:
            v = rng.standard_normal(({batch}, {DIM})).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            index.add([IndexedChunk(ChunkRef(n.to_bytes(32, "big")), "t" * 500)
                       for n in range(i, i + {batch})], v)
            i += {batch}
            print(i, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 60
    while acknowledged < 2000 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert acknowledged >= 2000, "the writer was too slow to test"
    index = VectorIndex(tmp_path, DIM, MODEL)
    # every acknowledged batch survived; at most the one in flight is missing or whole
    assert acknowledged <= len(index) <= acknowledged + batch
    assert len(index) % batch == 0
    for n in range(len(index)):
        assert ChunkRef(n.to_bytes(32, "big")) in index
    index.close()
