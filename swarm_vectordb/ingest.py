"""Ingestion: files -> chunks -> Swarm -> embeddings -> the local index.

A chunk's identity is its Swarm reference, computed locally from its UTF-8 text
before anything is uploaded, so duplicates (within a file, across files, across
runs) are skipped without touching the network. Each new chunk is uploaded and the
reference the store returns must equal the local one.

A manifest (`sources.json`, rewritten atomically after each file) records each
source's SHA-256 and chunk references: an unchanged file is skipped outright; a
changed file's new chunks are added and its vanished chunks removed unless another
source still holds them. Re-ingesting the same files therefore changes nothing.

Everything blocking runs in worker threads, never on the event loop: walking
directories, reading and hashing files, PDF parsing, tokenising into chunks, index
writes (FAISS plus the fsynced log) and the manifest's atomic write. Index and
manifest writes, once started, are waited for even when the ingest is cancelled, so
nothing closes the index under a write in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypedDict, TypeVar

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.durable import atomic_write
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.chunking import (
    Chunker,
    DocumentError,
    TextChunk,
    find_documents,
    read_document,
    read_source,
)
from swarm_vectordb.embedding import Embedder
from swarm_vectordb.errors import VectorDBError
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.routing import text_reference

log = logging.getLogger(__name__)

MANIFEST_NAME = "sources.json"
EMBED_BATCH = 64
UPLOAD_CONCURRENCY = 8
T = TypeVar("T")


class ChunkStore(Protocol):
    """Where chunk texts are stored: Swarm (through a Bee client) in the node."""

    async def put(self, data: bytes) -> bytes:
        """Store `data`; return its Swarm reference."""
        ...


@dataclass(frozen=True)
class BeeChunkStore:
    """A `ChunkStore` on a Bee node (real or dev), stamping uploads with `batch`."""

    bee: BeeClient
    batch: BatchId

    async def put(self, data: bytes) -> bytes:
        return bytes(await self.bee.upload_bytes(data, self.batch))


class SourceEntry(TypedDict):
    sha256: str
    refs: list[str]  # hex chunk references, in document order


Manifest = dict[str, SourceEntry]


class IngestError(VectorDBError):
    """The store returned a reference that does not match the content."""


@dataclass
class IngestReport:
    files_seen: int = 0
    files_skipped_unchanged: int = 0
    files_failed: dict[str, str] = field(default_factory=dict)
    chunks_added: int = 0
    chunks_duplicate: int = 0
    chunks_removed: int = 0


ProgressCallback = Callable[[str, int, int], None]  # (source, chunks done, chunks total)


@dataclass
class _Run:
    """One `ingest` call's state: chunks waiting for a batch, files waiting for them."""

    report: IngestReport
    batch: list[IndexedChunk] = field(default_factory=list)
    queued: set[bytes] = field(default_factory=set)
    files: list[tuple[str, SourceEntry, set[str]]] = field(default_factory=list)


class Ingestor:
    def __init__(
        self,
        *,
        store: ChunkStore,
        embedder: Embedder,
        index: VectorIndex,
        chunker: Chunker,
        manifest_path: Path,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._index = index
        self._chunker = chunker
        self._manifest_path = manifest_path
        self._manifest: Manifest = _load_manifest(manifest_path)

    async def ingest(
        self, paths: Sequence[Path], *, on_progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Ingest `paths`; chunks are embedded in batches that span files.

        A file's manifest entry is written only after every one of its chunks is
        indexed, so a crash never marks a file as done with chunks missing.
        """
        run = _Run(report=IngestReport())
        for path in await asyncio.to_thread(lambda: list(find_documents(paths))):
            run.report.files_seen += 1
            source = str(path.resolve())
            try:  # read once: the hash recorded is the hash of the text indexed
                raw = await asyncio.to_thread(read_source, path)
            except DocumentError as exc:
                run.report.files_failed[source] = str(exc)
                log.warning("skipping %s", exc)
                continue
            digest = hashlib.sha256(raw).hexdigest()
            previous = self._manifest.get(source)
            if previous is not None and previous["sha256"] == digest:
                run.report.files_skipped_unchanged += 1
                continue
            try:
                chunks = await asyncio.to_thread(self._read_chunks, path, raw)
            except DocumentError as exc:
                run.report.files_failed[source] = str(exc)
                log.warning("skipping %s", exc)
                continue
            refs: list[bytes] = []
            for done, item in enumerate(chunks, start=1):
                ref = text_reference(item.text)
                refs.append(ref)
                if ref in run.queued or ChunkRef(ref) in self._index:
                    run.report.chunks_duplicate += 1
                else:
                    run.queued.add(ref)
                    run.batch.append(IndexedChunk(ChunkRef(ref), item.text, source, item.position))
                if len(run.batch) >= EMBED_BATCH:
                    await self._flush(run)
                if on_progress is not None:
                    on_progress(source, done, len(chunks))
            entry: SourceEntry = {"sha256": digest, "refs": [r.hex() for r in refs]}
            run.files.append((source, entry, set(previous["refs"]) if previous else set()))
        await self._flush(run)
        return run.report

    def _read_chunks(self, path: Path, raw: bytes) -> list[TextChunk]:
        """Parse (PDF: extract) and chunk one file's bytes; blocking, for a worker thread."""
        return self._chunker.chunk(read_document(path, raw))

    async def _flush(self, run: _Run) -> None:
        """Index the queued chunks, then record the files whose chunks are all in."""
        run.report.chunks_added += await self._store_and_index(run.batch)
        run.batch = []
        files, run.files = run.files, []
        if files:
            run.report.chunks_removed += await _finish(self._record_files, files)

    def _record_files(self, files: list[tuple[str, SourceEntry, set[str]]]) -> int:
        """Enter `files` in the manifest, drop their vanished chunks, save; blocking."""
        removed = 0
        for source, entry, old_refs in files:
            self._manifest[source] = entry
            vanished = old_refs - set(entry["refs"]) - self._refs_held_elsewhere(source)
            gone = [ChunkRef(bytes.fromhex(r)) for r in sorted(vanished)]
            removed += self._index.remove(gone)
        _save_manifest(self._manifest_path, self._manifest)
        return removed

    async def _store_and_index(self, batch: list[IndexedChunk]) -> int:
        """Upload and embed `batch` at the same time; index it once both are done.

        Indexing last keeps the invariant that every indexed chunk is on Swarm.
        """
        if not batch:
            return 0
        slots = asyncio.Semaphore(UPLOAD_CONCURRENCY)

        async def upload(chunk: IndexedChunk) -> None:
            async with slots:
                stored = await self._store.put(chunk.text.encode("utf-8"))
            if stored != chunk.ref:
                raise IngestError(
                    f"store returned {stored.hex()} for a chunk whose reference is "
                    f"{chunk.ref.hex()}"
                )

        try:
            async with asyncio.TaskGroup() as tasks:  # one failed upload cancels the rest
                embedding = tasks.create_task(self._embedder.embed([c.text for c in batch]))
                for chunk in batch:
                    tasks.create_task(upload(chunk))
        except ExceptionGroup as group:  # callers catch SwarmError, IngestError, ...
            raise _first_error(group) from None
        return await _finish(self._index.add, batch, embedding.result().vectors)

    def _refs_held_elsewhere(self, source: str) -> set[str]:
        held: set[str] = set()
        for other, entry in self._manifest.items():
            if other != source:
                held.update(entry["refs"])
        return held


async def _finish(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in a worker thread, awaited to the end even if we are cancelled.

    A thread cannot be stopped; leaving early would let the caller close the index
    (or start another write) while this one is still running.
    """
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


def _first_error(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first failure in a task group's error (the one that cancelled the rest)."""
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


def _load_manifest(path: Path) -> Manifest:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VectorDBError(f"{path} is corrupt ({exc}); delete it to re-ingest") from None
    valid = isinstance(data, dict) and all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("refs"), list)
        for e in data.values()
    )
    if not valid:
        raise VectorDBError(f"{path} is not a manifest; delete it to re-ingest")
    manifest: Manifest = data
    return manifest


def _save_manifest(path: Path, manifest: Manifest) -> None:
    atomic_write(path, json.dumps(manifest).encode())
