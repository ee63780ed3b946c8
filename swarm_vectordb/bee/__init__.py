"""Swarm primitives, byte-exact with Bee 2.x: pure functions, no network, no I/O.

Everything here turns bytes into chunks, addresses and signatures exactly as a
Bee node or bee-js would from the same input, so what Noosphere makes a real
node accepts, and what a real node serves Noosphere can check.

Modules and what each owns:

- ``errors``: the ``SwarmError`` tree (drawn in its docstring); the network
  client adds its HTTP errors under the same root.
- ``bmt``: Keccak-256, the BMT root of a chunk payload, content-addressed
  chunk addresses and the ``Chunk`` value (``span || payload``).
- ``chunktree``: splitting data of any length into Bee's chunk tree
  (incrementally, for large uploads) and joining it back from a chunk getter,
  sync or async, verifying every chunk.
- ``soc``: single-owner chunks: address, EIP-191 signature, wire format,
  owner recovery and verification.
- ``feeds``: sequence feeds: topics, update identifiers and addresses, v1
  (timestamp + reference) and v2 (wrapped content) update payloads.
- ``gsoc``: mining a shared owner key whose SOC lands near a receiver's
  overlay (bee-js ``gsocMine``-compatible).
- ``pss``: PSS trojan chunks: ECDH encryption, nonce mining to a target
  prefix, wrap and unwrap.
"""

from __future__ import annotations

from swarm_vectordb.bee.bmt import (
    CHUNK_SIZE,
    HASH_SIZE,
    Chunk,
    ChunkAddress,
    bmt_root,
    cac_address,
    keccak256,
)
from swarm_vectordb.bee.chunktree import (
    ChunkTree,
    ChunkTreeSplitter,
    iter_chunks,
    iter_join,
    iter_join_async,
    join,
    join_async,
    split,
)
from swarm_vectordb.bee.errors import (
    ChunkAddressMismatch,
    InvalidChunkError,
    InvalidFeedUpdateError,
    InvalidSocError,
    MiningError,
    PssError,
    PssMessageTooLargeError,
    PssUnwrapError,
    SwarmError,
)
from swarm_vectordb.bee.feeds import (
    FeedIndex,
    FeedTopic,
    LegacyFeedPayload,
    feed_topic,
    feed_update_address,
    feed_update_identifier,
    format_feed_index,
    make_v1_update,
    make_v2_update,
    parse_feed_index,
    parse_v1_payload,
)
from swarm_vectordb.bee.gsoc import GsocKey, mine_gsoc_key, proximity
from swarm_vectordb.bee.pss import (
    PssMessage,
    PssTopic,
    pss_public_key,
    pss_topic,
    unwrap_trojan,
    wrap_trojan,
)
from swarm_vectordb.bee.soc import (
    OwnerAddress,
    SingleOwnerChunk,
    SocIdentifier,
    owner_address,
    soc_address,
)

__all__ = [
    "CHUNK_SIZE",
    "HASH_SIZE",
    "Chunk",
    "ChunkAddress",
    "ChunkAddressMismatch",
    "ChunkTree",
    "ChunkTreeSplitter",
    "FeedIndex",
    "FeedTopic",
    "GsocKey",
    "InvalidChunkError",
    "InvalidFeedUpdateError",
    "InvalidSocError",
    "LegacyFeedPayload",
    "MiningError",
    "OwnerAddress",
    "PssError",
    "PssMessage",
    "PssMessageTooLargeError",
    "PssTopic",
    "PssUnwrapError",
    "SingleOwnerChunk",
    "SocIdentifier",
    "SwarmError",
    "bmt_root",
    "cac_address",
    "feed_topic",
    "feed_update_address",
    "feed_update_identifier",
    "format_feed_index",
    "iter_chunks",
    "iter_join",
    "iter_join_async",
    "join",
    "join_async",
    "keccak256",
    "make_v1_update",
    "make_v2_update",
    "mine_gsoc_key",
    "owner_address",
    "parse_feed_index",
    "parse_v1_payload",
    "proximity",
    "pss_public_key",
    "pss_topic",
    "soc_address",
    "split",
    "unwrap_trojan",
    "wrap_trojan",
]
