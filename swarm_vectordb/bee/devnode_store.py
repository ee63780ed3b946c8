"""What the dev node remembers: chunks, postage batches and its own keys.

In memory by default; with a data directory everything survives a restart:

* ``chunks.log``: an append-only log of ``magic | address(32) | length(u32) |
  data | crc32``. Each request appends its records and fsyncs once before it
  answers, so an acknowledged upload is on disk. On start the log is replayed
  record by record (never read whole); a torn tail (a crash mid-append) fails
  its magic, length or CRC check and is truncated away. A later record for the
  same address wins (a SOC re-upload); a content-addressed chunk already stored
  is not written again.
* ``stamps.json`` and ``node.json`` (keys): replaced atomically (write a
  temporary file, fsync, rename, fsync the directory).

With a data directory, chunk data stays on disk: memory holds one integer per
chunk (where its record lies in the log) and a read is one ``pread`` of at most
4104 bytes, served from the page cache when hot. Without one, chunks live in a
dict: that mode is for tests and throwaway nodes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from swarm_vectordb.bee.bmt import CHUNK_SIZE, HASH_SIZE, SPAN_SIZE
from swarm_vectordb.bee.durable import atomic_write, fsync_dir
from swarm_vectordb.bee.feeds import FeedIndex, feed_update_address
from swarm_vectordb.bee.records import BatchId, PostageBatch
from swarm_vectordb.bee.soc import SOC_HEADER_SIZE

__all__ = ["ChunkStore", "StampBook", "atomic_write", "load_or_create_keys"]

log = logging.getLogger(__name__)

_MAGIC = 0xC7
_HEADER = struct.Struct(f"<B{HASH_SIZE}sI")
_CRC = struct.Struct("<I")
_MAX_RECORD_DATA = SOC_HEADER_SIZE + SPAN_SIZE + CHUNK_SIZE  # the largest chunk: a SOC
_LENGTH_BITS = 13  # a record's data length fits in 13 bits; its offset goes above them


class ChunkStore:
    """Chunks by address; on disk when given a directory (see the module docstring)."""

    def __init__(self, directory: Path | None) -> None:
        self._chunks: dict[bytes, bytes] = {}  # memory mode
        self._where: dict[bytes, int] = {}  # disk mode: offset << 13 | length of the data
        self._log_path = None if directory is None else directory / "chunks.log"
        self._lock = asyncio.Lock()
        self._reader: int | None = None
        self._end = 0
        if self._log_path is not None:
            fresh = not self._log_path.exists()
            self._end = self._replay(self._log_path)
            self._reader = os.open(self._log_path, os.O_RDONLY | os.O_CREAT, 0o644)
            if fresh:
                fsync_dir(self._log_path.parent)  # the new log's directory entry is durable

    def __len__(self) -> int:
        return len(self._where) if self._log_path is not None else len(self._chunks)

    def close(self) -> None:
        """Release the log's file descriptor; idempotent."""
        reader, self._reader = self._reader, None
        if reader is not None:
            os.close(reader)

    def _replay(self, path: Path) -> int:
        """Index the log's valid records; truncate a torn tail. Returns the log's end."""
        if not path.exists():
            return 0
        offset = 0
        with open(path, "rb") as handle:
            while True:
                header = handle.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                magic, address, length = _HEADER.unpack(header)
                if magic != _MAGIC or length > _MAX_RECORD_DATA:
                    break
                rest = handle.read(length + _CRC.size)
                if len(rest) < length + _CRC.size:
                    break
                if _CRC.unpack_from(rest, length)[0] != zlib.crc32(header + rest[:length]):
                    break
                self._where[address] = (offset + _HEADER.size) << _LENGTH_BITS | length
                offset += _HEADER.size + length + _CRC.size
            size = handle.seek(0, os.SEEK_END)
        if offset != size:
            log.warning("chunk log %s: dropping a torn tail of %d bytes", path, size - offset)
            with open(path, "r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        log.info("chunk log %s: %d chunks", path, len(self._where))
        return offset

    def get(self, address: bytes) -> bytes | None:
        if self._log_path is None:
            return self._chunks.get(bytes(address))
        where = self._where.get(bytes(address))
        if where is None or self._reader is None:
            return None
        length = where & ((1 << _LENGTH_BITS) - 1)
        return os.pread(self._reader, length, where >> _LENGTH_BITS)

    def has(self, address: bytes) -> bool:
        address = bytes(address)
        return address in (self._where if self._log_path is not None else self._chunks)

    async def put_many(
        self, chunks: Iterable[tuple[bytes, bytes]], *, content_addressed: bool = False
    ) -> None:
        """Store ``(address, data)`` pairs; durable (fsynced) when this returns.

        ``content_addressed``: the address is the data's hash, so an address already
        stored holds these very bytes and is skipped.
        """
        records = [(bytes(address), bytes(data)) for address, data in chunks]
        if content_addressed:
            unique = dict(records)
            records = [(a, d) for a, d in unique.items() if not self.has(a)]
        if self._log_path is None:
            self._chunks.update(records)
            return
        if not records:
            return
        async with self._lock:
            start = self._end
            placed = await asyncio.to_thread(self._append, self._log_path, start, records)
            self._end = placed[-1][1] + len(records[-1][1]) + _CRC.size
            for (address, data), (_, offset) in zip(records, placed, strict=True):
                self._where[address] = offset << _LENGTH_BITS | len(data)

    @staticmethod
    def _append(
        path: Path, start: int, records: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, int]]:
        """Append and fsync ``records`` at ``start``; where each one's data lies."""
        out = bytearray()
        placed = []
        for address, data in records:
            if len(data) > _MAX_RECORD_DATA:
                raise ValueError(f"chunk record of {len(data)} bytes")
            record = _HEADER.pack(_MAGIC, address, len(data)) + data
            placed.append((address, start + len(out) + _HEADER.size))
            out += record + _CRC.pack(zlib.crc32(record))
        with open(path, "r+b") as handle:  # a torn write past the valid end is overwritten
            handle.seek(start)
            handle.write(out)
            handle.flush()
            os.fsync(handle.fileno())
        return placed

    def latest_feed_index(self, owner: bytes, topic: bytes) -> FeedIndex | None:
        """Highest index of a gap-free sequence feed (exponential probe, then bisection)."""
        if not self.has(feed_update_address(owner, topic, 0)):
            return None
        present, missing = 0, 1
        while self.has(feed_update_address(owner, topic, missing)):
            present, missing = missing, missing * 2
        while missing - present > 1:
            middle = (present + missing) // 2
            if self.has(feed_update_address(owner, topic, middle)):
                present = middle
            else:
                missing = middle
        return FeedIndex(present)


class StampBook:
    """Postage batches the node sold itself (free and usable at once)."""

    def __init__(self, directory: Path | None) -> None:
        self._path = None if directory is None else directory / "stamps.json"
        self._batches: dict[bytes, PostageBatch] = {}
        if self._path is not None and self._path.exists():
            for item in json.loads(self._path.read_text()):
                batch = PostageBatch.from_json(item)
                self._batches[batch.batch_id] = batch

    def all(self) -> list[PostageBatch]:
        return list(self._batches.values())

    def get(self, batch_id: bytes) -> PostageBatch | None:
        return self._batches.get(bytes(batch_id))

    async def add(self, batch: PostageBatch) -> None:
        self._batches[batch.batch_id] = batch
        if self._path is not None:
            payload = json.dumps([b.to_json() for b in self._batches.values()]).encode()
            await asyncio.to_thread(atomic_write, self._path, payload)

    @staticmethod
    def new_id() -> BatchId:
        return BatchId(secrets.token_bytes(HASH_SIZE))


def load_or_create_keys(directory: Path | None) -> dict[str, bytes]:
    """The node's secrets (``node_key``, ``pss_key``, ``nonce``), stable across restarts."""
    path = None if directory is None else directory / "node.json"
    if path is not None and path.exists():
        stored = json.loads(path.read_text())
        return {name: bytes.fromhex(value) for name, value in stored.items()}
    keys = {name: secrets.token_bytes(32) for name in ("node_key", "pss_key", "nonce")}
    if path is not None:
        atomic_write(path, json.dumps({k: v.hex() for k, v in keys.items()}).encode(), 0o600)
    return keys
