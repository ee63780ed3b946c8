"""Inboxes and the peer directory.

Inbox. Every node owns one GSOC inbox: a SOC address keccak256(id || owner) where
`id` derives from the node's address and the owner key is mined (bee-js style) so the
address lands near the node's Bee overlay. The pair (id, key) is public by design
(it is the node's `PeerRecord.inbox`, 64 bytes): anyone may write, and only the
signed envelope inside says who wrote. A frame in the inbox is either the envelope
itself (tag 0x01) or, when it does not fit one chunk, the 32-byte Swarm reference of
the envelope uploaded with /bytes (tag 0x02).

Directory. A node publishes its sealed `PeerRecord` by uploading it with /bytes and
writing that reference as the next update of its feed `noosphere/peer-record/v1`.
Others read the feed of each address they know (bootstrap list or the chain's
`AgentRegistry`), verify the envelope (signed by that very address) and keep the
record while it is younger than `RECORD_MAX_AGE_MS`.

Bounds. Everything here is read from strangers. A referenced message or record is
fetched with `download_capped`: the root chunk's span (part of its address, so it
cannot lie) is checked first, then the body is streamed and cut off past the cap,
so a peer that points at a gigabyte costs one chunk. A refresh asks at most
`REFRESH_CONCURRENCY` feeds at once and ends at its deadline; what is unfinished
then is counted as `timeout` in the `RefreshReport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from swarm_vectordb.bee.bmt import CHUNK_SIZE, keccak256
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.feeds import feed_topic, feed_update_address
from swarm_vectordb.bee.gsoc import GsocKey, gsoc_start_from_seed, mine_gsoc_key
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.bee.soc import SingleOwnerChunk, owner_address, soc_address
from swarm_vectordb.errors import MessageRejected
from swarm_vectordb.protocol import DropCounter, Envelope, PeerRecord, open_envelope, seal
from swarm_vectordb.routing import PeerSummary

log = logging.getLogger(__name__)

PEER_RECORD_TOPIC = feed_topic("noosphere/peer-record/v1")
RECORD_MAX_AGE_MS = 24 * 3600 * 1000
INBOX_PROXIMITY = 8
FRAME_INLINE = 0x01
FRAME_REFERENCE = 0x02
REFRESH_CONCURRENCY = 16
REFRESH_DEADLINE_S = 60.0


@dataclass(frozen=True)
class Inbox:
    identifier: bytes
    private_key: bytes  # shared: knowing it lets anyone post here

    @property
    def address(self) -> bytes:
        return bytes(soc_address(self.identifier, owner_address(self.private_key)))

    def to_bytes(self) -> bytes:
        return self.identifier + self.private_key

    @classmethod
    def from_bytes(cls, data: bytes) -> Inbox:
        if len(data) != 64:
            raise MessageRejected("bad_body", "an inbox key is 64 bytes")
        return cls(data[:32], data[32:])

    def gsoc_key(self) -> GsocKey:
        owner = owner_address(self.private_key)
        return GsocKey(
            private_key=self.private_key,
            owner=owner,
            identifier=self.identifier,  # type: ignore[arg-type]
            address=soc_address(self.identifier, owner),
            attempts=0,
        )


def node_inbox(node_address: bytes, overlay: bytes, proximity: int = INBOX_PROXIMITY) -> Inbox:
    """The node's inbox: deterministic for (node address, overlay), so it survives restarts."""
    identifier = keccak256(b"noosphere/inbox/v1", node_address)
    key = mine_gsoc_key(
        overlay,
        identifier,
        proximity,
        start=gsoc_start_from_seed(node_address),
        max_attempts=1 << 20,
    )
    return Inbox(identifier, key.private_key)


async def post(bee: BeeClient, batch: BatchId, inbox: Inbox, message: bytes) -> None:
    """Deliver a sealed message to `inbox`, through /bytes when it exceeds one chunk."""
    if len(message) + 1 <= CHUNK_SIZE:
        frame = bytes([FRAME_INLINE]) + message
    else:
        reference = await bee.upload_bytes(message, batch)
        frame = bytes([FRAME_REFERENCE]) + bytes(reference)
    await bee.gsoc_send(inbox.gsoc_key(), frame, batch)


async def download_capped(bee: BeeClient, reference: bytes, max_bytes: int) -> bytes:
    """The verified data under `reference`, refused (`too_large`) if it exceeds `max_bytes`.

    Never holds more than `max_bytes` plus one streamed piece: the root chunk's span
    is checked before the body is asked for, and the stream is cut off past the cap
    should the node send more than the span promised.
    """
    root = await bee.download_chunk(reference)
    if root.span > max_bytes:
        raise MessageRejected("too_large", f"{root.span} bytes under {reference.hex()[:16]}...")
    body = bytearray()
    stream = cast(AsyncGenerator[bytes, None], bee.iter_bytes(reference))  # closable
    async with contextlib.aclosing(stream) as pieces:
        async for piece in pieces:
            body += piece
            if len(body) > max_bytes:
                raise MessageRejected("too_large", f"more than {max_bytes} bytes streamed")
    return bytes(body)


async def unframe(bee: BeeClient, frame: bytes, max_bytes: int) -> bytes:
    """The message a frame carries; a referenced one is fetched, verified and size-checked."""
    if not frame:
        raise MessageRejected("malformed", "empty frame")
    if frame[0] == FRAME_INLINE:
        return frame[1:]
    if frame[0] == FRAME_REFERENCE and len(frame) == 33:
        try:
            return await download_capped(bee, frame[1:], max_bytes)
        except SwarmError as exc:
            raise MessageRejected("unavailable", f"referenced message: {exc}") from None
    raise MessageRejected("malformed", f"unknown frame tag {frame[0]}")


async def publish_record(
    bee: BeeClient, batch: BatchId, node_key: bytes, record: PeerRecord
) -> bytes:
    """Make `record` the latest entry of this node's peer-record feed; its Swarm reference."""
    reference = bytes(await bee.upload_bytes(seal(record, node_key), batch))
    await bee.write_next_feed_update(node_key, PEER_RECORD_TOPIC, reference, batch)
    return reference


async def fetch_record(bee: BeeClient, address: bytes, *, max_bytes: int) -> Envelope | None:
    """The latest record published by `address`, verified; None if its feed is empty.

    Raises `MessageRejected` for anything else: `unavailable` (Swarm failed),
    `bad_feed` (the update is not one 32-byte reference), `too_large` (the record is
    over `max_bytes`; nothing past the root chunk is downloaded), `wrong_signer`, or
    the reason `open_envelope` gives.
    """
    try:
        indexes = await bee.feed_indexes(address, PEER_RECORD_TOPIC)
        if indexes is None:
            return None
        update = feed_update_address(address, PEER_RECORD_TOPIC, indexes[0])
        wrapped = SingleOwnerChunk.parse(
            await bee.download_chunk_data(update), address=update, owner=address
        ).wrapped
        if not wrapped.is_leaf or len(wrapped.payload) != 32:  # read one chunk, never a tree
            raise MessageRejected("bad_feed", f"update of {wrapped.span} bytes, not a reference")
        sealed = await download_capped(bee, wrapped.payload, max_bytes)
    except SwarmError as exc:
        raise MessageRejected("unavailable", str(exc)) from None
    envelope = open_envelope(
        sealed,
        max_bytes=max_bytes,
        kinds=frozenset({"peer_record"}),
        max_age_ms=RECORD_MAX_AGE_MS,
    )
    if envelope.sender != address:
        raise MessageRejected("wrong_signer", f"signed by {envelope.sender.hex()}")
    return envelope


@dataclass
class RefreshReport:
    """What one directory refresh found."""

    asked: int = 0
    updated: int = 0  # records that were new or newer than the one known
    empty: int = 0  # addresses that have published nothing
    rejected: DropCounter = field(default_factory=DropCounter)  # by reason, `timeout` included


@dataclass
class PeerInfo:
    address: bytes
    record: PeerRecord
    published_ms: int

    @property
    def inbox(self) -> Inbox:
        return Inbox.from_bytes(self.record.inbox)

    def summary(self) -> PeerSummary:
        dim = self.record.dim
        centroids = (
            np.stack(
                [np.frombuffer(c, dtype="<f4").astype(np.float32) for c in self.record.summary]
            )
            if self.record.summary
            else np.zeros((0, dim), np.float32)
        )
        return PeerSummary(self.address, centroids)


@dataclass
class PeerDirectory:
    """What this node knows about other peers, refreshed from their feeds."""

    peers: dict[bytes, PeerInfo] = field(default_factory=dict)

    async def refresh(
        self,
        bee: BeeClient,
        addresses: Iterable[bytes],
        *,
        max_bytes: int,
        concurrency: int = REFRESH_CONCURRENCY,
        deadline_s: float = REFRESH_DEADLINE_S,
    ) -> RefreshReport:
        """Read the records of `addresses`, `concurrency` at a time, for at most `deadline_s`.

        Each record is applied as soon as it is verified, so a deadline keeps what was
        read before it; the addresses still pending count as `timeout`.
        """
        report = RefreshReport()
        pending = list(dict.fromkeys(addresses))
        report.asked = len(pending)
        slots = asyncio.Semaphore(concurrency)
        unfinished = set(pending)

        async def read_one(address: bytes) -> None:
            async with slots:
                try:
                    envelope = await fetch_record(bee, address, max_bytes=max_bytes)
                except MessageRejected as exc:
                    unfinished.discard(address)
                    report.rejected.record(exc)
                    log.info("no usable peer record from %s: %s", address.hex(), exc)
                    return
            unfinished.discard(address)
            if envelope is None or not isinstance(envelope.body, PeerRecord):
                report.empty += 1
            elif self._apply(address, envelope.body, envelope.ts):
                report.updated += 1

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s), asyncio.TaskGroup() as tasks:
                for address in pending:
                    tasks.create_task(read_one(address))
        if unfinished:
            report.rejected["timeout"] += len(unfinished)
            log.warning(
                "peer directory refresh: %d of %d record(s) unread after %s s",
                len(unfinished),
                len(pending),
                deadline_s,
            )
        return report

    def _apply(self, address: bytes, record: PeerRecord, published_ms: int) -> bool:
        known = self.peers.get(address)
        if known is None:
            self.peers[address] = PeerInfo(address, record, published_ms)
            return True
        if published_ms > known.published_ms:
            known.record, known.published_ms = record, published_ms
            return True
        return False

    def live(self, model: str, *, now_ms: int | None = None) -> list[PeerInfo]:
        """Peers with a fresh record for `model` that serve search."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return [
            p
            for p in self.peers.values()
            if p.record.model == model
            and "search" in p.record.capabilities
            and now - p.published_ms < RECORD_MAX_AGE_MS
        ]

    def by_address(self, addresses: Sequence[bytes]) -> list[PeerInfo]:
        return [self.peers[a] for a in addresses if a in self.peers]
