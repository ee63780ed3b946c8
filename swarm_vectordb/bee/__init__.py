"""Swarm for Noosphere, byte-exact with Bee 2.x: primitives, an async Bee client, a dev node.

The primitives turn bytes into chunks, addresses and signatures exactly as a
Bee node or bee-js would from the same input, so what Noosphere makes a real
node accepts, and what a real node serves Noosphere can check. They are pure
functions, no network, no I/O. On top of them sit the client (any node
speaking Bee's HTTP API) and the dev node (a local node speaking it).

Modules and what each owns:

- ``errors``: the ``SwarmError`` tree (drawn in its docstring), including the
  HTTP and transport errors of the client.
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
- ``records``: typed records of Bee's API (``PostageBatch``, ``NodeAddresses``,
  ``NodeHealth``, ``FeedUpdate``, ``BatchId``) and their JSON shapes.
- ``client``: ``BeeClient``, the async HTTP client (aiohttp): bytes, chunks,
  SOCs, feeds, GSOC, PSS, stamps; everything downloaded is verified.
- ``transport``: the client's aiohttp session, deadlines and translation of
  HTTP statuses and aiohttp errors into the ``SwarmError`` tree.
- ``subscription``: ``Subscription``, a reconnecting websocket read with
  ``async for``, bounded, dropping (and counting) the oldest when behind.
- ``devnode``: ``DevNode``, the Bee-API-compatible development node (aiohttp
  server); ``devnode_store`` (chunks, stamps and keys, in memory or a
  crash-safe data dir), ``devnode_pubsub`` (websocket fan-out with flood
  control) and ``devnode_http`` (Bee's JSON errors and input parsing) are its
  parts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from swarm_vectordb.bee.client import BeeClient, ClientState
    from swarm_vectordb.bee.devnode import DevNode
    from swarm_vectordb.bee.errors import (
        BadRequestError,
        BeeHttpError,
        ChunkAddressMismatch,
        InvalidChunkError,
        InvalidFeedUpdateError,
        InvalidSocError,
        MiningError,
        NotFoundError,
        PayloadTooLargeError,
        PaymentRequiredError,
        PssError,
        PssMessageTooLargeError,
        PssUnwrapError,
        StampUnusableError,
        SwarmConnectionError,
        SwarmError,
        SwarmTimeoutError,
        UnauthorizedError,
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
    from swarm_vectordb.bee.records import (
        BatchId,
        FeedUpdate,
        NodeAddresses,
        NodeHealth,
        PostageBatch,
    )
    from swarm_vectordb.bee.soc import (
        OwnerAddress,
        SingleOwnerChunk,
        SocIdentifier,
        owner_address,
        soc_address,
    )
    from swarm_vectordb.bee.subscription import Subscription, SubscriptionState

# Exports resolve on first use (PEP 562), so importing one light module of this package
# (`bmt`, `durable`, `records`) does not pull in aiohttp, the dev node or eth-keys.
_EXPORTS: dict[str, str] = {  # exported name -> the submodule that defines it
    name: module
    for module, names in {
        "bmt": (
            "CHUNK_SIZE",
            "HASH_SIZE",
            "Chunk",
            "ChunkAddress",
            "bmt_root",
            "cac_address",
            "keccak256",
        ),
        "chunktree": (
            "ChunkTree",
            "ChunkTreeSplitter",
            "iter_chunks",
            "iter_join",
            "iter_join_async",
            "join",
            "join_async",
            "split",
        ),
        "client": ("BeeClient", "ClientState"),
        "devnode": ("DevNode",),
        "errors": (
            "BadRequestError",
            "BeeHttpError",
            "ChunkAddressMismatch",
            "InvalidChunkError",
            "InvalidFeedUpdateError",
            "InvalidSocError",
            "MiningError",
            "NotFoundError",
            "PayloadTooLargeError",
            "PaymentRequiredError",
            "PssError",
            "PssMessageTooLargeError",
            "PssUnwrapError",
            "StampUnusableError",
            "SwarmConnectionError",
            "SwarmError",
            "SwarmTimeoutError",
            "UnauthorizedError",
        ),
        "feeds": (
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
        ),
        "gsoc": ("GsocKey", "mine_gsoc_key", "proximity"),
        "pss": (
            "PssMessage",
            "PssTopic",
            "pss_public_key",
            "pss_topic",
            "unwrap_trojan",
            "wrap_trojan",
        ),
        "records": ("BatchId", "FeedUpdate", "NodeAddresses", "NodeHealth", "PostageBatch"),
        "soc": (
            "OwnerAddress",
            "SingleOwnerChunk",
            "SocIdentifier",
            "owner_address",
            "soc_address",
        ),
        "subscription": ("Subscription", "SubscriptionState"),
    }.items()
    for name in names
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "CHUNK_SIZE",
    "HASH_SIZE",
    "BadRequestError",
    "BatchId",
    "BeeClient",
    "BeeHttpError",
    "Chunk",
    "ChunkAddress",
    "ChunkAddressMismatch",
    "ChunkTree",
    "ChunkTreeSplitter",
    "ClientState",
    "DevNode",
    "FeedIndex",
    "FeedTopic",
    "FeedUpdate",
    "GsocKey",
    "InvalidChunkError",
    "InvalidFeedUpdateError",
    "InvalidSocError",
    "LegacyFeedPayload",
    "MiningError",
    "NodeAddresses",
    "NodeHealth",
    "NotFoundError",
    "OwnerAddress",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PostageBatch",
    "PssError",
    "PssMessage",
    "PssMessageTooLargeError",
    "PssTopic",
    "PssUnwrapError",
    "SingleOwnerChunk",
    "SocIdentifier",
    "StampUnusableError",
    "Subscription",
    "SubscriptionState",
    "SwarmConnectionError",
    "SwarmError",
    "SwarmTimeoutError",
    "UnauthorizedError",
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
