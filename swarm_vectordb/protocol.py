"""Peer messages: typed, signed msgpack envelopes, validated before anything reads them.

Wire form (msgpack map, protocol version `v` = 1)::

    {"v": 1, "kind": str, "sender": bin20, "id": bin16, "ts": int ms, "body": map, "sig": bin65}

`sig` is a recoverable secp256k1 signature (r || s || v, v in {27, 28}) over
keccak256 of the *canonical* encoding of every other field: msgpack, maps with keys
sorted, binary as bin, floats as float64. The recovered address must equal `sender`.

`open_envelope` checks, in order, and raises `MessageRejected` with a stable `reason`
code at the first failure: size (`too_large`), msgpack (`malformed`), envelope shape
(`bad_envelope`), version (`version`), kind (`kind`), body schema (`bad_body`),
canonical form (`not_canonical`), signature (`bad_signature`), age (`stale`,
`future`), replay (`replay`, or `guard_full` when the replay guard holds as many
live ids as it may). Query embeddings are checked separately by `check_query`
(`dimension`, `not_finite`, `not_unit`, `model`).

Bodies: `Query`, `Answer` (with `Hit`s), `Ask`, `Reply`, `Refusal` (an ask not
answered: the reason and when to try again), `PeerRecord`.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NewType

import msgpack
import numpy as np
import numpy.typing as npt
from Crypto.Hash import keccak
from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature

from swarm_vectordb.errors import MessageRejected

PROTOCOL_VERSION = 1
Address = NewType("Address", bytes)  # 20-byte Ethereum address
MessageId = NewType("MessageId", bytes)  # 16 random bytes
InboxKey = NewType("InboxKey", bytes)  # 64 bytes: GSOC identifier || shared owner key

MAX_MESSAGE_BYTES = 1 << 20
MAX_AGE_MS = 5 * 60 * 1000
MAX_SKEW_MS = 30 * 1000
MAX_HITS = 100
MAX_TEXT = 16 * 1024
MAX_SUMMARY = 16
NORM_TOLERANCE = 1e-3
ENVELOPE_FIELDS = frozenset({"v", "kind", "sender", "id", "ts", "body", "sig"})


def _keccak(data: bytes) -> bytes:
    return keccak.new(data=data, digest_bits=256).digest()


# ---------------------------------------------------------------- bodies


@dataclass(frozen=True)
class Query:
    kind: ClassVar[str] = "query"
    embedding: bytes  # float32 little-endian, unit norm
    model: str
    k: int
    reply_to: bytes  # the asker's 64-byte inbox key
    filters: dict[str, str]

    def vector(self) -> npt.NDArray[np.float32]:
        return np.frombuffer(self.embedding, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class Hit:
    text: str
    score: float
    ref: bytes  # 32-byte Swarm reference of the text
    source: str


@dataclass(frozen=True)
class Answer:
    kind: ClassVar[str] = "answer"
    query_id: bytes
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class Ask:
    kind: ClassVar[str] = "ask"
    text: str
    reply_to: bytes  # 64-byte inbox key


@dataclass(frozen=True)
class Reply:
    kind: ClassVar[str] = "reply"
    ask_id: bytes
    text: str


@dataclass(frozen=True)
class Refusal:
    """The answer to an `Ask` this node will not run now (`rate_limited`, `busy`)."""

    kind: ClassVar[str] = "refusal"
    ask_id: bytes
    reason: str
    retry_after_s: int  # when asking again may succeed; 0: no estimate


REFUSAL_REASONS = frozenset({"rate_limited", "busy"})
MAX_RETRY_AFTER_S = 24 * 3600


@dataclass(frozen=True)
class PeerRecord:
    kind: ClassVar[str] = "peer_record"
    inbox: bytes  # 64-byte inbox key: anyone may write to it, only envelopes authenticate
    public_key: bytes  # 64 bytes, uncompressed without the 0x04 prefix
    capabilities: tuple[str, ...]
    model: str
    dim: int
    chunks: int
    summary: tuple[bytes, ...]  # centroids, float32 little-endian, dim each


Body = Query | Answer | Ask | Reply | Refusal | PeerRecord
BODIES: dict[str, type[Body]] = {
    b.kind: b for b in (Query, Answer, Ask, Reply, Refusal, PeerRecord)
}


@dataclass(frozen=True)
class Envelope:
    sender: Address
    id: MessageId
    ts: int  # unix milliseconds
    body: Body


# ---------------------------------------------------------------- encoding


def canonical(value: Any) -> bytes:
    """msgpack with sorted map keys: the bytes that are signed."""
    packed: bytes = msgpack.packb(_sorted(value), use_bin_type=True)
    return packed


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def _body_to_wire(body: Body) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(body):
        value = getattr(body, f.name)
        if f.name == "hits":
            value = [
                {"text": h.text, "score": float(h.score), "ref": h.ref, "source": h.source}
                for h in value
            ]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def seal(
    body: Body, private_key: bytes, *, ts: int | None = None, msg_id: bytes | None = None
) -> bytes:
    """Sign `body` with the node key and encode it for the wire."""
    key = PrivateKey(private_key)
    unsigned = {
        "v": PROTOCOL_VERSION,
        "kind": body.kind,
        "sender": key.public_key.to_canonical_address(),
        "id": msg_id if msg_id is not None else os.urandom(16),
        "ts": ts if ts is not None else int(time.time() * 1000),
        "body": _body_to_wire(body),
    }
    sig = key.sign_msg_hash(_keccak(canonical(unsigned))).to_bytes()
    wire = dict(unsigned, sig=sig[:64] + bytes([sig[64] + 27]))
    return canonical(wire)


# ---------------------------------------------------------------- decoding


class ReplayGuard:
    """Remembers message ids while they are inside the freshness window; bounded in size.

    An id may be forgotten only once a replay of its message would be refused as
    stale anyway; forgetting it earlier would let that replay through. So when the
    guard is full, ids past the window are pruned first and, if it is still full,
    the *new* message is refused (`guard_full`, counted in `refused`): under a flood
    the node stops accepting, it never starts accepting replays.
    """

    def __init__(self, capacity: int = 100_000, window_ms: int = MAX_AGE_MS + MAX_SKEW_MS):
        if capacity < 1:
            raise ValueError("a replay guard needs room for at least one id")
        self.capacity = capacity
        self.window_ms = window_ms
        self.refused = 0
        self._seen: OrderedDict[tuple[bytes, bytes], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_remember(self, sender: bytes, msg_id: bytes, now_ms: int) -> None:
        """Remember (sender, id) seen at `now_ms`; `MessageRejected` if seen or full."""
        self._prune(now_ms)
        key = (sender, msg_id)
        if key in self._seen:
            raise MessageRejected("replay", f"message {msg_id.hex()} seen before")
        if len(self._seen) >= self.capacity:
            self.refused += 1
            raise MessageRejected(
                "guard_full", f"{self.capacity} message ids inside the window; try later"
            )
        self._seen[key] = now_ms

    def _prune(self, now_ms: int) -> None:
        """Forget ids seen before the window (in arrival order, so the oldest first)."""
        horizon = now_ms - self.window_ms
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)


class DropCounter(Counter[str]):
    """Counts dropped messages by reason."""

    def record(self, exc: MessageRejected) -> None:
        self[exc.reason] += 1


def open_envelope(
    data: bytes,
    *,
    replay: ReplayGuard | None = None,
    now_ms: int | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    kinds: frozenset[str] | None = None,
    max_age_ms: int = MAX_AGE_MS,
) -> Envelope:
    """Decode and fully validate one message; see the module docstring for the checks."""
    if len(data) > max_bytes:
        raise MessageRejected("too_large", f"{len(data)} bytes > {max_bytes}")
    try:
        wire = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=10_000,
            max_map_len=64,
        )
    except Exception as exc:  # msgpack raises many types on hostile input
        raise MessageRejected("malformed", type(exc).__name__) from None
    if not isinstance(wire, dict) or set(wire) != {
        "v",
        "kind",
        "sender",
        "id",
        "ts",
        "body",
        "sig",
    }:
        raise MessageRejected("bad_envelope", "wrong fields")
    if wire["v"] != PROTOCOL_VERSION:
        raise MessageRejected("version", repr(wire["v"])[:20])
    kind = wire["kind"]
    if not isinstance(kind, str) or kind not in BODIES or (kinds is not None and kind not in kinds):
        raise MessageRejected("kind", repr(kind)[:40])
    sender, msg_id, ts, sig = wire["sender"], wire["id"], wire["ts"], wire["sig"]
    if not (_is_bin(sender, 20) and _is_bin(msg_id, 16) and _is_bin(sig, 65) and _is_int(ts)):
        raise MessageRejected("bad_envelope", "sender/id/ts/sig types")
    body = _parse_body(BODIES[kind], wire["body"])
    if canonical(wire) != data:  # one encoding per message: no malleable variants
        raise MessageRejected("not_canonical", "map keys unsorted or non-minimal encoding")
    unsigned = {k: v for k, v in wire.items() if k != "sig"}
    if sig[64] not in (27, 28):
        raise MessageRejected("bad_signature", "v must be 27 or 28")
    try:
        signature = Signature(sig[:64] + bytes([sig[64] - 27]))
        public = signature.recover_public_key_from_msg_hash(_keccak(canonical(unsigned)))
    except (BadSignature, ValueError) as exc:
        raise MessageRejected("bad_signature", str(exc)) from None
    if public.to_canonical_address() != sender:
        raise MessageRejected("bad_signature", "signer is not the sender")
    if isinstance(body, PeerRecord) and _keccak(body.public_key)[-20:] != sender:
        raise MessageRejected("bad_body", "PeerRecord public key is not the sender's")
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if ts < now - max_age_ms:
        raise MessageRejected("stale", f"{(now - ts) // 1000} s old")
    if ts > now + MAX_SKEW_MS:
        raise MessageRejected("future", f"{(ts - now) // 1000} s ahead")
    if replay is not None:
        replay.check_and_remember(sender, msg_id, now)
    return Envelope(Address(sender), MessageId(msg_id), ts, body)


def check_query(query: Query, *, dim: int, model: str) -> npt.NDArray[np.float32]:
    """The query's embedding if it fits this node's index, else `MessageRejected`."""
    if query.model != model:
        raise MessageRejected("model", f"{query.model!r} is not {model!r}")
    if len(query.embedding) != dim * 4:
        raise MessageRejected("dimension", f"{len(query.embedding) // 4} != {dim}")
    vector = query.vector()
    if not np.isfinite(vector).all():
        raise MessageRejected("not_finite")
    if abs(float(np.linalg.norm(vector)) - 1.0) > NORM_TOLERANCE:
        raise MessageRejected("not_unit")
    return vector


def _is_bin(value: Any, size: int) -> bool:
    return isinstance(value, bytes) and len(value) == size


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def _is_text(value: Any, limit: int = MAX_TEXT) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _parse_body(cls: type[Body], raw: Any) -> Body:
    names = {f.name for f in fields(cls)}
    if not isinstance(raw, dict) or set(raw) != names:
        raise MessageRejected("bad_body", f"{cls.__name__}: wrong fields")
    ok = True
    if cls is Query:
        ok = (
            isinstance(raw["embedding"], bytes)
            and 0 < len(raw["embedding"]) <= 16384
            and _is_text(raw["model"], 200)
            and _is_int(raw["k"])
            and 1 <= raw["k"] <= MAX_HITS
            and _is_bin(raw["reply_to"], 64)
            and isinstance(raw["filters"], dict)
            and len(raw["filters"]) <= 16
            and all(_is_text(k, 100) and _is_text(v, 1000) for k, v in raw["filters"].items())
        )
        return _build(ok, cls, raw)
    if cls is Answer:
        hits = raw["hits"]
        ok = _is_bin(raw["query_id"], 16) and isinstance(hits, list) and len(hits) <= MAX_HITS
        parsed = []
        for hit in hits if ok else []:
            good = (
                isinstance(hit, dict)
                and set(hit) == {"text", "score", "ref", "source"}
                and _is_text(hit["text"])
                and isinstance(hit["score"], float)
                and math.isfinite(hit["score"])
                and _is_bin(hit["ref"], 32)
                and _is_text(hit["source"], 1000)
            )
            if not good:
                raise MessageRejected("bad_body", "Answer: bad hit")
            parsed.append(Hit(hit["text"], hit["score"], hit["ref"], hit["source"]))
        if not ok:
            raise MessageRejected("bad_body", "Answer: bad fields")
        return Answer(raw["query_id"], tuple(parsed))
    if cls is Ask:
        ok = _is_text(raw["text"], 8192) and _is_bin(raw["reply_to"], 64)
    elif cls is Reply:
        ok = _is_bin(raw["ask_id"], 16) and _is_text(raw["text"])
    elif cls is Refusal:
        ok = (
            _is_bin(raw["ask_id"], 16)
            and isinstance(raw["reason"], str)
            and raw["reason"] in REFUSAL_REASONS
            and _is_int(raw["retry_after_s"])
            and raw["retry_after_s"] <= MAX_RETRY_AFTER_S
        )
    elif cls is PeerRecord:
        summary, caps = raw["summary"], raw["capabilities"]
        ok = (
            _is_bin(raw["inbox"], 64)
            and _is_bin(raw["public_key"], 64)
            and isinstance(caps, list)
            and len(caps) <= 32
            and all(_is_text(c, 64) for c in caps)
            and _is_text(raw["model"], 200)
            and _is_int(raw["dim"])
            and 0 < raw["dim"] <= 4096
            and _is_int(raw["chunks"])
            and isinstance(summary, list)
            and len(summary) <= MAX_SUMMARY
            and all(_is_bin(c, raw["dim"] * 4) for c in summary)
        )
        if ok:
            raw = dict(raw, capabilities=tuple(caps), summary=tuple(summary))
    return _build(ok, cls, raw)


def _build(ok: bool, cls: type[Any], raw: dict[str, Any]) -> Body:
    if not ok:
        raise MessageRejected("bad_body", f"{cls.__name__}: field types or limits")
    body: Body = cls(**raw)
    return body
