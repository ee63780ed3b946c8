"""The local vector index: FAISS over unit vectors, keyed by Swarm chunk reference.

Durability. The index's source of truth is an append-only write-ahead log
(`index.wal`) of framed records::

    u32 length | u32 crc32(body) | body = msgpack [op, ref, vector bytes, meta]

`add` and `remove` append one batch and fsync it before returning, so a crash loses
at most the batch in flight. On open, the log is replayed; the first torn or corrupt
record (short read, bad CRC, bad body) ends the replay and the file is truncated
there, so a crash can never leave the index unreadable. `compact()` rewrites the log
with only live entries (temporary file, fsync, atomic rename).

Search. Below `hnsw_threshold` vectors the FAISS index is exact inner product
(`IndexFlatIP`, cosine on unit vectors); at or above it, HNSW (`IndexHNSWFlat`,
inner-product metric). HNSW cannot delete, so removals there are tombstones that
searches skip; the index is rebuilt when tombstones pass a quarter of it.

Change counters. `adds_total` counts vectors added since the index was opened and
`reshapes` counts removals and compactions (anything after which vectors may have
left or moved). Together with `recent_vectors` they let a summary catch up with
what was added instead of re-reading everything (`routing.IncrementalSummary`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType

import msgpack
import numpy as np
import numpy.typing as npt

from swarm_vectordb.bee.durable import atomic_write, fsync_dir
from swarm_vectordb.errors import IndexInputError, IndexMismatchError

log = logging.getLogger(__name__)

ChunkRef = NewType("ChunkRef", bytes)  # 32-byte Swarm reference of the chunk's text
Vectors = npt.NDArray[np.float32]

WAL_NAME = "index.wal"
META_NAME = "index.json"
_FRAME = struct.Struct("<II")
_OP_ADD, _OP_DEL = 1, 2
_MAX_RECORD = 1 << 20
NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class IndexedChunk:
    """What the index keeps about a chunk besides its vector."""

    ref: ChunkRef
    text: str
    source: str = ""
    position: int = 0


@dataclass(frozen=True)
class Hit:
    chunk: IndexedChunk
    score: float


@dataclass
class _State:
    refs: list[ChunkRef | None] = field(default_factory=list)  # faiss id -> ref (None: deleted)
    chunks: dict[ChunkRef, IndexedChunk] = field(default_factory=dict)
    ids: dict[ChunkRef, int] = field(default_factory=dict)  # ref -> faiss id
    vectors: list[Vectors] = field(default_factory=list)  # faiss id -> vector


class VectorIndex:
    """A persistent index in `directory` for vectors of one model and dimension.

    Not thread-safe: callers run it on one thread (FAISS calls on big batches belong
    on a worker thread, not the event loop).
    """

    def __init__(
        self, directory: Path, dim: int, model_id: str, *, hnsw_threshold: int = 50_000
    ) -> None:
        if dim <= 0:
            raise IndexInputError(f"bad dimension {dim}")
        self.directory = directory
        self.dim = dim
        self.model_id = model_id
        self.hnsw_threshold = hnsw_threshold
        self._state = _State()
        self._faiss: Any = None
        self._hnsw = False
        self._tombstones = 0
        self.adds_total = 0  # vectors added since open, the log's replay included
        self.reshapes = 0  # removals and compactions since open
        directory.mkdir(parents=True, exist_ok=True)
        self._check_meta()
        self._wal_path = directory / WAL_NAME
        self._replay()
        self._wal = self._wal_path.open("ab")

    # ------------------------------------------------------------ public API

    def __len__(self) -> int:
        return len(self._state.chunks)

    def __contains__(self, ref: object) -> bool:
        return ref in self._state.chunks

    @property
    def kind(self) -> str:
        return "hnsw" if self._hnsw else "exact"

    def get(self, ref: ChunkRef) -> IndexedChunk | None:
        return self._state.chunks.get(ref)

    def chunks(self, start: int = 0) -> list[IndexedChunk]:
        """The live chunks in the order they were added, from the `start`-th on.

        While `reshapes` is unchanged, chunks are only ever appended, so a caller that
        has seen `n` of them gets exactly the new ones with `chunks(n)`.
        """
        return list(itertools.islice(self._state.chunks.values(), start, None))

    def vector(self, ref: ChunkRef) -> Vectors | None:
        """The unit vector stored for `ref`, or None when it is not indexed."""
        idx = self._state.ids.get(ref)
        return None if idx is None else self._state.vectors[idx]

    def add(self, chunks: Sequence[IndexedChunk], vectors: Vectors) -> int:
        """Index `chunks` with their unit `vectors`; skip refs already present.

        Returns how many were new. The batch is durable when this returns.
        """
        vectors = self._check_vectors(vectors, len(chunks))
        fresh = [(c, v) for c, v in zip(chunks, vectors, strict=True) if c.ref not in self]
        seen: set[bytes] = set()
        batch = []
        for chunk, vector in fresh:
            if len(chunk.ref) != 32:
                raise IndexInputError(f"chunk reference must be 32 bytes, got {len(chunk.ref)}")
            if chunk.ref not in seen:
                seen.add(chunk.ref)
                batch.append((chunk, vector))
        if not batch:
            return 0
        self._append([_add_record(c, v) for c, v in batch])
        self._apply_adds(batch)
        return len(batch)

    def remove(self, refs: Sequence[ChunkRef]) -> int:
        """Delete `refs` (unknown ones are ignored); durable when this returns."""
        present = [r for r in dict.fromkeys(refs) if r in self]
        if not present:
            return 0
        self._append([msgpack.packb([_OP_DEL, r, b"", None]) for r in present])
        self._apply_removes(present)
        return len(present)

    def search(self, query: Vectors, k: int) -> list[Hit]:
        """The `k` chunks most similar to the unit vector `query`, best first."""
        if k <= 0:
            raise IndexInputError("k must be positive")
        query = self._check_vectors(query.reshape(1, -1), 1)
        if not self._state.chunks:
            return []
        fetch = min(len(self._state.refs), k + self._tombstones)
        scores, ids = self._faiss.search(query, fetch)
        hits = []
        for score, idx in zip(scores[0], ids[0], strict=True):
            ref = self._state.refs[idx] if idx >= 0 else None
            if ref is not None:
                hits.append(Hit(self._state.chunks[ref], float(score)))
            if len(hits) == k:
                break
        return hits

    def all_vectors(self) -> tuple[list[IndexedChunk], Vectors]:
        """Every live chunk with its vector (for summaries and exact re-ranking)."""
        live = [(self._state.chunks[r], self._state.vectors[i]) for r, i in self._state.ids.items()]
        if not live:
            return [], np.zeros((0, self.dim), np.float32)
        return [c for c, _ in live], np.stack([v for _, v in live])

    def recent_vectors(self, count: int) -> Vectors:
        """The `count` vectors added last, oldest first.

        Exact while `reshapes` has not changed since they were added; after a removal
        some of them may be gone and others take their place.
        """
        if count <= 0:
            return np.zeros((0, self.dim), np.float32)
        return np.stack(self._state.vectors[-count:])

    def compact(self) -> None:
        """Rewrite the log with live entries only, atomically, and rebuild FAISS."""
        chunks, vectors = self.all_vectors()
        tmp = self._wal_path.with_suffix(".compact")
        with tmp.open("wb") as fh:
            for i in range(0, len(chunks), 1024):
                records = [
                    _add_record(c, v)
                    for c, v in zip(chunks[i : i + 1024], vectors[i : i + 1024], strict=True)
                ]
                fh.write(b"".join(_frame(r) for r in records))
            fh.flush()
            os.fsync(fh.fileno())
        self._wal.close()
        os.replace(tmp, self._wal_path)
        fsync_dir(self.directory)
        self._wal = self._wal_path.open("ab")
        self._state = _State()
        self._faiss, self._tombstones = None, 0
        self._apply_adds(list(zip(chunks, vectors, strict=True)))
        self.reshapes += 1

    def close(self) -> None:
        if not self._wal.closed:
            self._wal.close()

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _check_meta(self) -> None:
        """Record the model and dimension once; refuse to mix vectors of another model."""
        path = self.directory / META_NAME
        wanted = {"model_id": self.model_id, "dim": self.dim}
        if path.exists():
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise IndexMismatchError(f"{path} is unreadable: {exc}") from None
            if found != wanted:
                raise IndexMismatchError(
                    f"index in {self.directory} holds {found}, not {wanted}; "
                    "use another directory or re-ingest"
                )
            return
        atomic_write(path, json.dumps(wanted).encode())

    def _check_vectors(self, vectors: Any, n: int) -> Vectors:
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape != (n, self.dim):
            raise IndexInputError(f"expected {n} vectors of dim {self.dim}, got {array.shape}")
        if not np.isfinite(array).all():
            raise IndexInputError("vectors must be finite")
        norms = np.linalg.norm(array, axis=1)
        if n and not np.allclose(norms, 1.0, atol=NORM_TOLERANCE):
            raise IndexInputError("vectors must have unit norm")
        return np.ascontiguousarray(array)

    def _append(self, records: list[bytes]) -> None:
        self._wal.write(b"".join(_frame(r) for r in records))
        self._wal.flush()
        os.fsync(self._wal.fileno())

    def _apply_adds(self, batch: Sequence[tuple[IndexedChunk, Vectors]]) -> None:
        state = self._state
        start = len(state.refs)
        for chunk, vector in batch:
            state.ids[chunk.ref] = len(state.refs)
            state.refs.append(chunk.ref)
            state.chunks[chunk.ref] = chunk
            state.vectors.append(vector)
        self.adds_total += len(batch)
        if self._faiss is None or (not self._hnsw and len(state.refs) >= self.hnsw_threshold):
            self._rebuild()
        else:
            self._faiss.add(np.stack([v for _, v in batch]))
        log.debug("indexed %d chunk(s); %d live, faiss ids from %d", len(batch), len(self), start)

    def _apply_removes(self, refs: Sequence[ChunkRef]) -> None:
        state = self._state
        for ref in refs:
            idx = state.ids.pop(ref)
            del state.chunks[ref]
            state.refs[idx] = None
            self._tombstones += 1
        self.reshapes += 1
        if self._tombstones * 4 > len(state.refs):
            self._rebuild()

    def _rebuild(self) -> None:
        """Build FAISS afresh from the live vectors (renumbering ids densely)."""
        import faiss

        state = self._state
        live = [(r, state.chunks[r], state.vectors[state.ids[r]]) for r in state.ids]
        self._state = new = _State()
        for ref, chunk, vector in live:
            new.ids[ref] = len(new.refs)
            new.refs.append(ref)
            new.chunks[ref] = chunk
            new.vectors.append(vector)
        self._hnsw = len(live) >= self.hnsw_threshold
        index: Any
        if self._hnsw:
            index = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 128
        else:
            index = faiss.IndexFlatIP(self.dim)
        if live:
            index.add(np.stack([v for _, _, v in live]))
        self._faiss, self._tombstones = index, 0

    def _replay(self) -> None:
        """Rebuild state from the log, truncating a torn or corrupt tail."""
        adds: dict[ChunkRef, tuple[IndexedChunk, Vectors]] = {}
        good_end = 0
        if self._wal_path.exists():
            with self._wal_path.open("rb") as fh:
                data = fh.read()
            pos = 0
            while pos < len(data):
                record = _read_frame(data, pos)
                if record is None:
                    break
                body, pos = record
                try:
                    op, ref, raw, meta = msgpack.unpackb(body)
                    if op == _OP_ADD:
                        vector = np.frombuffer(raw, dtype=np.float32)
                        if vector.shape != (self.dim,):
                            raise ValueError("dimension")
                        adds[ChunkRef(ref)] = (IndexedChunk(ChunkRef(ref), *meta), vector)
                    elif op == _OP_DEL:
                        adds.pop(ChunkRef(ref), None)
                    else:
                        raise ValueError("op")
                except (ValueError, TypeError) as exc:
                    log.warning("index log %s: bad record at %d (%s)", self._wal_path, pos, exc)
                    break
                good_end = pos
            if good_end < len(data):
                log.warning(
                    "index log %s: dropping %d byte(s) of torn or corrupt tail",
                    self._wal_path,
                    len(data) - good_end,
                )
                with self._wal_path.open("r+b") as fh:
                    fh.truncate(good_end)
                    os.fsync(fh.fileno())
        self._state = _State()
        self._faiss = None
        self._apply_adds(list(adds.values()))


def _add_record(chunk: IndexedChunk, vector: Vectors) -> bytes:
    meta = [chunk.text, chunk.source, chunk.position]
    packed: bytes = msgpack.packb([_OP_ADD, chunk.ref, vector.astype(np.float32).tobytes(), meta])
    return packed


def _frame(body: bytes) -> bytes:
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _read_frame(data: bytes, pos: int) -> tuple[bytes, int] | None:
    if pos + _FRAME.size > len(data):
        return None
    length, crc = _FRAME.unpack_from(data, pos)
    start, end = pos + _FRAME.size, pos + _FRAME.size + length
    if length > _MAX_RECORD or end > len(data):
        return None
    body = data[start:end]
    if zlib.crc32(body) != crc:
        return None
    return body, end
