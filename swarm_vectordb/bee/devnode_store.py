"""What the dev node remembers: chunks, postage batches and its own keys.

In memory by default; with a data directory everything survives a restart:

* ``chunks.log``: an append-only log of ``magic | address(32) | length(u32) |
  data | crc32``. Each request appends its records and fsyncs once before it
  answers, so an acknowledged upload is on disk. On start the log is replayed;
  a torn tail (a crash mid-append) fails its length or CRC check and is
  truncated away. A later record for the same address wins (a SOC re-upload).
* ``stamps.json`` and ``node.json`` (keys): replaced atomically (write a
  temporary file, fsync, rename, fsync the directory).

Every chunk also lives in a dict, so reads never touch the disk: this is a
development node, sized for development data.
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

from swarm_vectordb.bee.bmt import HASH_SIZE
from swarm_vectordb.bee.durable import atomic_write
from swarm_vectordb.bee.feeds import FeedIndex, feed_update_address
from swarm_vectordb.bee.records import BatchId, PostageBatch

__all__ = ["ChunkStore", "StampBook", "atomic_write", "load_or_create_keys"]

log = logging.getLogger(__name__)

_MAGIC = 0xC7
_HEADER = struct.Struct(f"<B{HASH_SIZE}sI")
_CRC = struct.Struct("<I")


class ChunkStore:
    """Chunks by address; durable when given a directory (see the module docstring)."""

    def __init__(self, directory: Path | None) -> None:
        self._chunks: dict[bytes, bytes] = {}
        self._log_path = None if directory is None else directory / "chunks.log"
        self._lock = asyncio.Lock()
        if self._log_path is not None:
            self._replay(self._log_path)

    def __len__(self) -> int:
        return len(self._chunks)

    def _replay(self, path: Path) -> None:
        if not path.exists():
            return
        data = path.read_bytes()
        offset = 0
        while offset + _HEADER.size <= len(data):
            magic, address, length = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length + _CRC.size
            if magic != _MAGIC or end > len(data):
                break
            record = data[offset : end - _CRC.size]
            if _CRC.unpack_from(data, end - _CRC.size)[0] != zlib.crc32(record):
                break
            self._chunks[address] = record[_HEADER.size :]
            offset = end
        if offset != len(data):
            log.warning("chunk log %s: dropping a torn tail of %d bytes", path, len(data) - offset)
            with open(path, "r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        log.info("chunk log %s: %d chunks", path, len(self._chunks))

    def get(self, address: bytes) -> bytes | None:
        return self._chunks.get(bytes(address))

    def has(self, address: bytes) -> bool:
        return bytes(address) in self._chunks

    async def put_many(self, chunks: Iterable[tuple[bytes, bytes]]) -> None:
        """Store ``(address, data)`` pairs; durable (fsynced) when this returns."""
        records = [(bytes(address), bytes(data)) for address, data in chunks]
        if self._log_path is not None:
            async with self._lock:
                await asyncio.to_thread(self._append, self._log_path, records)
        for address, data in records:
            self._chunks[address] = data

    @staticmethod
    def _append(path: Path, records: list[tuple[bytes, bytes]]) -> None:
        out = bytearray()
        for address, data in records:
            record = _HEADER.pack(_MAGIC, address, len(data)) + data
            out += record + _CRC.pack(zlib.crc32(record))
        with open(path, "ab") as handle:
            handle.write(out)
            handle.flush()
            os.fsync(handle.fileno())

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
