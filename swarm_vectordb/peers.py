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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from swarm_vectordb.bee.bmt import CHUNK_SIZE, keccak256
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.feeds import feed_topic
from swarm_vectordb.bee.gsoc import GsocKey, gsoc_start_from_seed, mine_gsoc_key
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.bee.soc import owner_address, soc_address
from swarm_vectordb.errors import MessageRejected
from swarm_vectordb.protocol import Envelope, PeerRecord, open_envelope, seal
from swarm_vectordb.routing import PeerSummary

log = logging.getLogger(__name__)

PEER_RECORD_TOPIC = feed_topic("noosphere/peer-record/v1")
RECORD_MAX_AGE_MS = 24 * 3600 * 1000
INBOX_PROXIMITY = 8
FRAME_INLINE = 0x01
FRAME_REFERENCE = 0x02


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


async def unframe(bee: BeeClient, frame: bytes, max_bytes: int) -> bytes:
    """The message a frame carries; a referenced one is fetched, verified and size-checked."""
    if not frame:
        raise MessageRejected("malformed", "empty frame")
    if frame[0] == FRAME_INLINE:
        return frame[1:]
    if frame[0] == FRAME_REFERENCE and len(frame) == 33:
        try:
            root = await bee.download_chunk(frame[1:])
            if root.span > max_bytes:
                raise MessageRejected("too_large", f"referenced message of {root.span} bytes")
            return await bee.download_bytes(frame[1:])
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
    """The latest valid record published by `address`, or None (logged) if there is none."""
    try:
        update = await bee.read_feed(address, PEER_RECORD_TOPIC)
        if update is None or len(update.content) != 32:
            return None
        sealed = await bee.download_bytes(update.content)
        envelope = open_envelope(
            sealed,
            max_bytes=max_bytes,
            kinds=frozenset({"peer_record"}),
            max_age_ms=RECORD_MAX_AGE_MS,
        )
    except (SwarmError, MessageRejected) as exc:
        log.info("no usable peer record from %s: %s", address.hex(), exc)
        return None
    if envelope.sender != address:
        log.warning(
            "peer record on %s's feed is signed by %s", address.hex(), envelope.sender.hex()
        )
        return None
    return envelope


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

    async def refresh(self, bee: BeeClient, addresses: Iterable[bytes], *, max_bytes: int) -> None:
        for address in addresses:
            envelope = await fetch_record(bee, address, max_bytes=max_bytes)
            if envelope is None or not isinstance(envelope.body, PeerRecord):
                continue
            known = self.peers.get(address)
            if known is None:
                self.peers[address] = PeerInfo(address, envelope.body, envelope.ts)
            elif envelope.ts > known.published_ms:
                known.record, known.published_ms = envelope.body, envelope.ts

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
