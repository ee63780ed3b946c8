"""PSS trojan chunks: an encrypted message disguised as a chunk mined into a neighbourhood.

Bee's ``pkg/pss/trojan.go`` layout, byte for byte. A trojan is an ordinary
content-addressed chunk of 4096 payload bytes::

    span(8)    = hint: keccak256(shared_key || topic)[:8], lets a receiver skip
                 topics cheaply before decrypting
    nonce(32)  = mined so that the chunk address starts with one of the target
                 prefixes; bit 0 of nonce[28] carries the parity of the
                 ephemeral public key's y coordinate
    ephx(32)   = x coordinate of a fresh ephemeral secp256k1 key
    cipher(4032)

The plaintext is ``integrity(32) || message`` where integrity is
keccak256(message) with its first two bytes replaced by the message length
(uint16 big-endian); it is encrypted into 4032 bytes, the tail past the
plaintext being random padding. The key is ECDH: ``keccak256(x || topic)``
where x is the shared point's x coordinate as a minimal big-endian integer
(Go's ``big.Int.Bytes()``: leading zero bytes dropped). Segment ``i`` of 32
bytes is XORed with ``keccak256(keccak256(key || uint32_le(i)))``.

Without a recipient key Bee encrypts to a key everyone can derive: the topic
read as a private key (``topic_public_key``); ``unwrap`` tries that key too,
as Bee does.

Mining only ever changes the nonce, which is segment 0 of the BMT, so the
sibling hashes on its path to the root are computed once and each try costs
seven 64-byte hashes plus the address hash, run in batches of candidates.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NewType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from swarm_vectordb.bee.bmt import (
    CHUNK_SIZE,
    HASH_SIZE,
    SEGMENT_SIZE,
    SPAN_SIZE,
    Chunk,
    ChunkAddress,
    decode_span,
    keccak256,
    keccak256_each,
)
from swarm_vectordb.bee.errors import (
    MiningError,
    PssError,
    PssMessageTooLargeError,
    PssUnwrapError,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_TARGET_SIZE",
    "PssMessage",
    "PssTopic",
    "pss_public_key",
    "pss_topic",
    "shared_key",
    "topic_public_key",
    "unwrap_trojan",
    "wrap_trojan",
]

MAX_MESSAGE_SIZE = CHUNK_SIZE - 3 * HASH_SIZE
"""Most message bytes a trojan carries (4000)."""
MAX_TARGET_SIZE = 3
"""Longest target prefix Bee's API accepts, in bytes."""

PssTopic = NewType("PssTopic", bytes)
"""32-byte PSS topic: keccak256 of the topic string used in Bee's API paths."""

_CIPHERTEXT_SIZE = CHUNK_SIZE - 2 * HASH_SIZE  # 4032: payload minus nonce and ephemeral x
_NONCE_SIZE = 32
_PARITY_BYTE = 28  # nonce[28] & 1 is the parity of the ephemeral key's y
_MINING_BATCH = 256  # candidate nonces hashed per batch
_DEPTH = 7
_CURVE = ec.SECP256K1()
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def pss_topic(name: str) -> PssTopic:
    """Topic of a name, as Bee's ``/pss/send/{topic}`` computes it: keccak256(utf8)."""
    return PssTopic(keccak256(name.encode("utf-8")))


@dataclass(frozen=True, slots=True)
class PssMessage:
    """A message opened from a trojan chunk."""

    topic: PssTopic
    message: bytes


# --- keys and ECDH ------------------------------------------------------------------------


def _private(secret: bytes | int) -> ec.EllipticCurvePrivateKey:
    value = int.from_bytes(secret, "big") if isinstance(secret, bytes) else secret
    value %= _N  # as btcec's PrivKeyFromBytes does
    if value == 0:
        raise PssError("private key is zero modulo the curve order")
    return ec.derive_private_key(value, _CURVE)


def _public(key: bytes) -> ec.EllipticCurvePublicKey:
    raw = b"\x04" + key if len(key) == 64 else key
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, bytes(raw))
    except (ValueError, UnsupportedAlgorithm) as error:
        raise PssError(f"not a secp256k1 public key: {error}") from error


def _compressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def pss_public_key(private_key: bytes) -> bytes:
    """Compressed (33-byte) public key: what Bee's ``/addresses`` calls ``pssPublicKey``."""
    return _compressed(_private(private_key).public_key())


def topic_public_key(topic: bytes) -> bytes:
    """Public key of the topic read as a private key: Bee's recipient when none is given."""
    return pss_public_key(bytes(topic))


def shared_key(private_key: bytes, public_key: bytes, salt: bytes) -> bytes:
    """Bee's ``crypto.DH.SharedKey``: keccak256(minimal big-endian x of d*P || salt)."""
    x = _private(private_key).exchange(ec.ECDH(), _public(public_key))
    return keccak256(x.lstrip(b"\0"), salt)


def _keystream(key: bytes, length: int) -> bytes:
    """Bee's segment cipher stream: segment i is keccak256(keccak256(key || uint32_le(i)))."""
    segments = -(-length // SEGMENT_SIZE)
    counters = b"".join([key + struct.pack("<I", i) for i in range(segments)])
    return keccak256_each(keccak256_each(counters, len(key) + 4), HASH_SIZE)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    size = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")).to_bytes(
        size, "big"
    )


# --- wrap ---------------------------------------------------------------------------------


def _bmt_levels(payload: bytes) -> list[bytes]:
    """Every level of a full 4096-byte payload's BMT, segments first, root last."""
    levels = [payload]
    while len(levels[-1]) > HASH_SIZE:
        levels.append(keccak256_each(levels[-1], 2 * HASH_SIZE))
    return levels


def _mine(
    hint: bytes, body: bytes, targets: Sequence[bytes], initial: bytes, max_attempts: int
) -> Chunk:
    """Find a nonce that puts keccak256(hint || bmt(nonce || body)) on a target prefix."""
    levels = _bmt_levels(bytes(_NONCE_SIZE) + body)
    siblings = [levels[h][HASH_SIZE : 2 * HASH_SIZE] for h in range(_DEPTH)]
    wanted = {bytes(t) for t in targets}
    prefix = len(targets[0])
    tail = initial[4:]
    for first in range(0, max_attempts, _MINING_BATCH):
        count = min(_MINING_BATCH, max_attempts - first)
        nonces = [struct.pack("<I", (first + k) & 0xFFFFFFFF) + tail for k in range(count)]
        nodes = keccak256_each(b"".join([n + siblings[0] for n in nonces]), 2 * HASH_SIZE)
        for sibling in siblings[1:]:
            nodes = keccak256_each(
                b"".join(
                    [nodes[i : i + HASH_SIZE] + sibling for i in range(0, len(nodes), HASH_SIZE)]
                ),
                2 * HASH_SIZE,
            )
        addresses = keccak256_each(
            b"".join([hint + nodes[i : i + HASH_SIZE] for i in range(0, len(nodes), HASH_SIZE)]),
            SPAN_SIZE + HASH_SIZE,
        )
        for k in range(count):
            address = addresses[k * HASH_SIZE : (k + 1) * HASH_SIZE]
            if address[:prefix] in wanted:
                return Chunk(decode_span(hint), nonces[k] + body, ChunkAddress(address))
    raise MiningError(f"no nonce in {max_attempts} tries hits any of {len(wanted)} target prefixes")


def wrap_trojan(
    topic: bytes,
    message: bytes,
    targets: Sequence[bytes],
    recipient: bytes | None = None,
    *,
    ephemeral_key: bytes | None = None,
    max_attempts: int = 1 << 24,
) -> Chunk:
    """Trojan chunk carrying ``message`` on ``topic``, its address on one of ``targets``.

    ``recipient`` is the receiver's PSS public key (33-byte compressed, 65-byte
    uncompressed or 64-byte raw); None encrypts to ``topic_public_key(topic)``.
    ``targets`` are address prefixes of equal length (1..3 bytes): each extra
    byte multiplies the expected work by 256. ``ephemeral_key`` is for tests;
    leave it None.
    """
    if len(topic) != HASH_SIZE:
        raise PssError(f"topic must be {HASH_SIZE} bytes")
    if len(message) > MAX_MESSAGE_SIZE:
        raise PssMessageTooLargeError(f"{len(message)} bytes exceed {MAX_MESSAGE_SIZE}")
    if not targets or len({len(t) for t in targets}) != 1:
        raise PssError("targets must be a non-empty list of prefixes of one length")
    if not 1 <= len(targets[0]) <= MAX_TARGET_SIZE:
        raise PssError(f"target prefixes must be 1..{MAX_TARGET_SIZE} bytes")
    salt = bytes(topic)
    recipient_key = topic_public_key(salt) if recipient is None else bytes(recipient)
    ephemeral = ephemeral_key if ephemeral_key is not None else secrets.token_bytes(32)
    ephemeral_public = pss_public_key(ephemeral)
    key = shared_key(ephemeral, recipient_key, salt)

    integrity = struct.pack(">H", len(message)) + keccak256(message)[2:]
    plaintext = integrity + message
    ciphertext = _xor(plaintext, _keystream(key, len(plaintext)))
    ciphertext += secrets.token_bytes(_CIPHERTEXT_SIZE - len(ciphertext))
    body = ephemeral_public[1:] + ciphertext
    hint = keccak256(key, salt)[:SPAN_SIZE]

    initial = bytearray(secrets.token_bytes(_NONCE_SIZE))
    initial[_PARITY_BYTE] = (initial[_PARITY_BYTE] & 0xFE) | (ephemeral_public[0] & 0x01)
    return _mine(hint, body, targets, bytes(initial), max_attempts)


# --- unwrap -------------------------------------------------------------------------------


def _open(key: bytes, ciphertext: bytes) -> bytes | None:
    """Message inside ``ciphertext`` under ``key``, or None if integrity fails."""
    head = _xor(ciphertext[:HASH_SIZE], _keystream(key, HASH_SIZE))
    length = struct.unpack(">H", head[:2])[0]
    if length > MAX_MESSAGE_SIZE:
        return None
    plaintext = _xor(ciphertext[: HASH_SIZE + length], _keystream(key, HASH_SIZE + length))
    message = plaintext[HASH_SIZE:]
    return message if keccak256(message)[2:] == plaintext[2:HASH_SIZE] else None


def unwrap_trojan(chunk: Chunk | bytes, private_key: bytes, topics: Sequence[bytes]) -> PssMessage:
    """Open a trojan chunk (a ``Chunk`` or its ``span || payload``) for one of ``topics``.

    Tries, per topic, ``private_key`` and then the topic's own key, as Bee
    does. Raises ``PssUnwrapError`` when nothing opens it.
    """
    data = chunk.data if isinstance(chunk, Chunk) else bytes(chunk)
    if len(data) != SPAN_SIZE + CHUNK_SIZE:
        raise PssUnwrapError(f"a trojan chunk has {SPAN_SIZE + CHUNK_SIZE} bytes, got {len(data)}")
    hint = data[:SPAN_SIZE]
    parity = data[SPAN_SIZE + _PARITY_BYTE] & 0x01
    ephemeral_x = data[SPAN_SIZE + _NONCE_SIZE : SPAN_SIZE + _NONCE_SIZE + HASH_SIZE]
    ciphertext = data[SPAN_SIZE + _NONCE_SIZE + HASH_SIZE :]
    try:
        ephemeral_public = bytes([0x02 | parity]) + ephemeral_x
        _public(ephemeral_public)
    except PssError as error:
        raise PssUnwrapError(f"no ephemeral key in the chunk: {error}") from error
    for topic in topics:
        salt = bytes(topic)
        for candidate in (bytes(private_key), salt):
            try:
                key = shared_key(candidate, ephemeral_public, salt)
            except PssError:
                continue
            if keccak256(key, salt)[:SPAN_SIZE] != hint:
                continue
            message = _open(key, ciphertext)
            if message is not None:
                return PssMessage(PssTopic(salt), message)
    raise PssUnwrapError("no key and topic opens this trojan chunk")
