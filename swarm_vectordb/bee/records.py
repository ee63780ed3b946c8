"""Typed records of Bee's HTTP API, shared by the client and the dev node.

Each record knows its JSON shape (Bee's field names) in both directions, so the
client parses exactly what the dev node writes and what a real Bee writes.
Parsing validates: a field of the wrong type or a bad hex string raises
``SwarmError`` instead of leaking a ``KeyError`` or ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NewType

from swarm_vectordb.bee.errors import SwarmError

if TYPE_CHECKING:  # annotations only: soc pulls in eth-keys, which readers of ids need not
    from swarm_vectordb.bee.feeds import FeedIndex
    from swarm_vectordb.bee.soc import SingleOwnerChunk

__all__ = [
    "BatchId",
    "FeedUpdate",
    "NodeAddresses",
    "NodeHealth",
    "PostageBatch",
    "parse_hex",
]

BatchId = NewType("BatchId", bytes)
"""32-byte postage batch id."""


def parse_hex(text: object, size: int | None = None, *, what: str = "value") -> bytes:
    """Bytes of a hex string (``0x`` prefix allowed); ``size`` checks the length in bytes."""
    if not isinstance(text, str):
        raise SwarmError(f"{what}: expected a hex string, got {type(text).__name__}")
    digits = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        raw = bytes.fromhex(digits)
    except ValueError as error:
        raise SwarmError(f"{what}: {text!r} is not hex") from error
    if size is not None and len(raw) != size:
        raise SwarmError(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SwarmError(f"field {name!r}: expected {kind.__name__}, got {value!r}")
    return value


def _int_field(body: dict[str, Any], name: str) -> int:
    """Bee sends big integers (amount) as decimal strings and small ones as numbers."""
    value = body.get(name)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    result: int = _field(body, name, int)
    return result


@dataclass(frozen=True, slots=True)
class PostageBatch:
    """A postage batch as ``GET /stamps/{id}`` describes it."""

    batch_id: BatchId
    amount: int
    """PLUR per chunk slot, paid up front."""
    depth: int
    """log2 of the chunk slots the batch pays for."""
    bucket_depth: int
    utilization: int
    """Fullest bucket's chunk count."""
    usable: bool
    exists: bool
    batch_ttl: int
    """Seconds until the batch expires."""
    label: str = ""
    immutable: bool = False
    block_number: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "batchID": self.batch_id.hex(),
            "utilization": self.utilization,
            "usable": self.usable,
            "label": self.label,
            "depth": self.depth,
            "amount": str(self.amount),
            "bucketDepth": self.bucket_depth,
            "blockNumber": self.block_number,
            "immutableFlag": self.immutable,
            "exists": self.exists,
            "batchTTL": self.batch_ttl,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PostageBatch:
        label = body.get("label", "")
        return cls(
            batch_id=BatchId(parse_hex(body.get("batchID"), 32, what="batchID")),
            amount=_int_field(body, "amount"),
            depth=_int_field(body, "depth"),
            bucket_depth=_int_field(body, "bucketDepth"),
            utilization=_int_field(body, "utilization"),
            usable=_field(body, "usable", bool),
            exists=bool(body.get("exists", True)),
            batch_ttl=_int_field(body, "batchTTL"),
            label=label if isinstance(label, str) else "",
            immutable=bool(body.get("immutableFlag", False)),
            block_number=int(body.get("blockNumber", 0) or 0),
        )


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    """``GET /addresses``: who the node is."""

    overlay: bytes
    """32-byte overlay address: where the node sits in Swarm's address space."""
    ethereum: bytes
    """20-byte Ethereum address of the node key."""
    public_key: bytes
    """33-byte compressed secp256k1 public key."""
    pss_public_key: bytes
    """33-byte compressed public key that PSS messages to this node are encrypted to."""
    underlay: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "overlay": self.overlay.hex(),
            "underlay": list(self.underlay),
            "ethereum": "0x" + self.ethereum.hex(),
            "chain_address": "0x" + self.ethereum.hex(),
            "publicKey": self.public_key.hex(),
            "pssPublicKey": self.pss_public_key.hex(),
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> NodeAddresses:
        underlay = body.get("underlay") or []
        return cls(
            overlay=parse_hex(body.get("overlay"), 32, what="overlay"),
            ethereum=parse_hex(body.get("ethereum"), 20, what="ethereum"),
            public_key=parse_hex(body.get("publicKey"), what="publicKey"),
            pss_public_key=parse_hex(body.get("pssPublicKey"), what="pssPublicKey"),
            underlay=tuple(str(u) for u in underlay) if isinstance(underlay, list) else (),
        )


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """``GET /health``."""

    status: str
    version: str
    api_version: str

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "version": self.version, "apiVersion": self.api_version}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> NodeHealth:
        return cls(
            status=str(body.get("status", "")),
            version=str(body.get("version", "")),
            api_version=str(body.get("apiVersion", "")),
        )


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """One verified feed update: where it sits in the feed and what it carries."""

    index: FeedIndex
    next_index: FeedIndex
    soc: SingleOwnerChunk
    """The update itself, its signature checked against the feed's owner."""
    content: bytes
    """The wrapped content: the leaf payload, or the whole tree under the wrapped root."""
