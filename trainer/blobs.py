"""Content-addressed blobs on Swarm, with the reference recomputed on this side.

`put_blob` uploads and checks that the node returned the reference the bytes hash
to; `fetch_blob` downloads and checks that the bytes hash to the reference asked
for. Job documents, step logs, checkpoints, adapters and run manifests all move
through these two. (Shards and dataset manifests go through `trainer.dataset`,
which also names the shard a Bee node's chunk-address check caught.)
"""

from __future__ import annotations

from swarm_vectordb.bee import BatchId, SwarmError
from trainer.dataset import ShardSink, ShardSource, swarm_reference
from trainer.errors import ShardReferenceMismatch, StorageError

__all__ = ["fetch_blob", "put_blob"]


async def put_blob(sink: ShardSink, batch: BatchId, data: bytes) -> bytes:
    """Upload `data`; its reference, checked against the content address computed here."""
    try:
        returned = bytes(await sink.upload_bytes(data, batch))
    except SwarmError as exc:
        raise StorageError(f"uploading {len(data)} bytes to Swarm failed: {exc}") from exc
    expected = swarm_reference(data)
    if returned != expected:
        raise ShardReferenceMismatch(expected, returned)
    return returned


async def fetch_blob(source: ShardSource, reference: bytes, what: str, time_limit: float) -> bytes:
    """The bytes under `reference`, which must hash to it (`StorageError` if unavailable)."""
    try:
        data = await source.download_bytes(reference, time_limit=time_limit)
    except SwarmError as exc:
        raise StorageError(f"{what} {reference.hex()} is not retrievable: {exc}") from exc
    if swarm_reference(data) != reference:
        raise ShardReferenceMismatch(reference, swarm_reference(data))
    return data
