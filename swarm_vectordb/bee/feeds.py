"""Sequence feeds: a mutable pointer made of numbered single-owner chunks.

A feed is an owner and a 32-byte topic (usually keccak256 of a name). Update
number ``i`` is the SOC whose identifier is ``keccak256(topic || uint64_be(i))``,
signed by the owner, so anyone who knows owner, topic and index can compute
where it lives (``feed_update_address``) and check who wrote it.

What an update wraps comes in two layouts:

* v1 (legacy): the wrapped chunk's payload is ``uint64_be(unix seconds) ||
  reference`` (32 bytes, or 64 for an encrypted reference); readers fetch the
  reference.
* v2 (Bee 2.x default): the wrapped chunk *is* the content: a leaf for up to
  4096 bytes, or the root chunk of a larger tree.

The index travels in HTTP headers (``Swarm-Feed-Index``) as 16 hex digits of
the same big-endian uint64; ``format_feed_index`` and ``parse_feed_index``
convert.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NewType

from swarm_vectordb.bee.bmt import CHUNK_SIZE, HASH_SIZE, Chunk, ChunkAddress, keccak256
from swarm_vectordb.bee.errors import InvalidFeedUpdateError
from swarm_vectordb.bee.soc import SingleOwnerChunk, SocIdentifier, soc_address

__all__ = [
    "FeedIndex",
    "FeedTopic",
    "LegacyFeedPayload",
    "feed_topic",
    "feed_update_address",
    "feed_update_identifier",
    "format_feed_index",
    "make_v1_update",
    "make_v2_update",
    "parse_feed_index",
    "parse_v1_payload",
]

FeedTopic = NewType("FeedTopic", bytes)
"""32-byte feed topic."""
FeedIndex = NewType("FeedIndex", int)
"""Position of an update in a sequence feed, 0..2**64-1."""

_UINT64_BE = struct.Struct(">Q")
_TIMESTAMP_SIZE = 8


def feed_topic(name: str) -> FeedTopic:
    """Topic of a feed name: keccak256 of its UTF-8 bytes."""
    return FeedTopic(keccak256(name.encode("utf-8")))


def _topic(topic: bytes) -> FeedTopic:
    if len(topic) != HASH_SIZE:
        raise InvalidFeedUpdateError(f"feed topic must be {HASH_SIZE} bytes, got {len(topic)}")
    return FeedTopic(bytes(topic))


def _index_bytes(index: int) -> bytes:
    if not 0 <= index < 2**64:
        raise InvalidFeedUpdateError(f"feed index {index} is outside 0..2**64-1")
    return _UINT64_BE.pack(index)


def format_feed_index(index: int) -> str:
    """The index as Bee's ``Swarm-Feed-Index`` header writes it: 16 lowercase hex digits."""
    return _index_bytes(index).hex()


def parse_feed_index(text: str) -> FeedIndex:
    """Index from a ``Swarm-Feed-Index`` header value (16 hex digits)."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as error:
        raise InvalidFeedUpdateError(f"feed index {text!r} is not hex") from error
    if len(raw) != _UINT64_BE.size:
        raise InvalidFeedUpdateError(f"feed index {text!r} is not 8 bytes")
    index: int = _UINT64_BE.unpack(raw)[0]
    return FeedIndex(index)


def feed_update_identifier(topic: bytes, index: int) -> SocIdentifier:
    """SOC identifier of update ``index``: keccak256(topic || uint64_be(index))."""
    return SocIdentifier(keccak256(_topic(topic), _index_bytes(index)))


def feed_update_address(owner: bytes, topic: bytes, index: int) -> ChunkAddress:
    """Chunk address of update ``index`` of the feed (owner, topic)."""
    return soc_address(feed_update_identifier(topic, index), owner)


@dataclass(frozen=True, slots=True)
class LegacyFeedPayload:
    """What a v1 update carries: when it was written and what it points to."""

    timestamp: int
    """Unix seconds."""
    reference: bytes
    """32-byte reference, or 64 for an encrypted one (reference || key)."""

    def __post_init__(self) -> None:
        if len(self.reference) not in (HASH_SIZE, 2 * HASH_SIZE):
            raise InvalidFeedUpdateError(
                f"reference must be 32 or 64 bytes, got {len(self.reference)}"
            )
        if not 0 <= self.timestamp < 2**64:
            raise InvalidFeedUpdateError(f"timestamp {self.timestamp} is outside 0..2**64-1")

    def encode(self) -> bytes:
        """``uint64_be(timestamp) || reference``."""
        return _UINT64_BE.pack(self.timestamp) + self.reference


def parse_v1_payload(wrapped: Chunk) -> LegacyFeedPayload:
    """Read a v1 update's wrapped chunk; raises ``InvalidFeedUpdateError`` on another layout."""
    payload = wrapped.payload
    if len(payload) not in (_TIMESTAMP_SIZE + HASH_SIZE, _TIMESTAMP_SIZE + 2 * HASH_SIZE):
        raise InvalidFeedUpdateError(
            f"a v1 feed payload is 40 or 72 bytes (timestamp || reference), got {len(payload)}"
        )
    timestamp: int = _UINT64_BE.unpack_from(payload)[0]
    return LegacyFeedPayload(timestamp, bytes(payload[_TIMESTAMP_SIZE:]))


def make_v1_update(
    private_key: bytes, topic: bytes, index: int, reference: bytes, timestamp: int
) -> SingleOwnerChunk:
    """Signed v1 update ``index`` pointing at ``reference``, stamped ``timestamp`` (unix s)."""
    wrapped = Chunk.create(LegacyFeedPayload(timestamp, bytes(reference)).encode())
    return SingleOwnerChunk.sign(feed_update_identifier(topic, index), wrapped, private_key)


def make_v2_update(
    private_key: bytes, topic: bytes, index: int, content: Chunk | bytes
) -> SingleOwnerChunk:
    """Signed v2 update ``index`` wrapping ``content``.

    ``content`` is up to 4096 bytes of data, or a chunk: for larger data, split
    it and pass the root chunk.
    """
    if isinstance(content, Chunk):
        wrapped = content
    elif len(content) <= CHUNK_SIZE:
        wrapped = Chunk.create(bytes(content))
    else:
        raise InvalidFeedUpdateError(
            f"{len(content)} bytes do not fit one chunk: split them and wrap the root chunk"
        )
    return SingleOwnerChunk.sign(feed_update_identifier(topic, index), wrapped, private_key)
