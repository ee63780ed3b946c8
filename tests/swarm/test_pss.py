"""PSS trojan chunks: Bee's ECDH vector, Bee's layout re-derived here, and round trips."""

from __future__ import annotations

import random

import pytest
from Crypto.Hash import keccak
from cryptography.hazmat.primitives.asymmetric import ec

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.bee.errors import PssError, PssMessageTooLargeError, PssUnwrapError
from swarm_vectordb.bee.pss import (
    MAX_MESSAGE_SIZE,
    PssMessage,
    pss_public_key,
    pss_topic,
    shared_key,
    topic_public_key,
    unwrap_trojan,
    wrap_trojan,
)

TOPIC = pss_topic("topic")
RECIPIENT_KEY = bytes.fromhex("c786dd84b61485de12146fd9c4c02d87e8fd95f0542765cb7fc3d2e428c0bcfa")
RECIPIENT = pss_public_key(RECIPIENT_KEY)
EPHEMERAL_KEY = bytes.fromhex("11" * 32)

# secp256k1, for a from-scratch scalar multiplication independent of `cryptography`.
P = 2**256 - 2**32 - 977
G = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)


def k256(data: bytes) -> bytes:
    return keccak.new(data=data, digest_bits=256).digest()


def naive_point(scalar: int, point: tuple[int, int] = G) -> tuple[int, int]:
    result: tuple[int, int] | None = None
    addend = point
    while scalar:
        if scalar & 1:
            result = addend if result is None else naive_add(result, addend)
        addend = naive_add(addend, addend)
        scalar >>= 1
    assert result is not None
    return result


def naive_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    if a == b:
        slope = 3 * a[0] * a[0] * pow(2 * a[1], -1, P) % P
    else:
        slope = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (slope * slope - a[0] - b[0]) % P
    return x, (slope * (a[0] - x) - a[1]) % P


def go_shared_key(private_key: bytes, public_point: tuple[int, int], salt: bytes) -> bytes:
    """Bee's crypto.DH.SharedKey: keccak256(big.Int(x).Bytes() || salt), no leading zeros."""
    x = naive_point(int.from_bytes(private_key, "big"), public_point)[0]
    return k256(x.to_bytes((x.bit_length() + 7) // 8, "big") + salt)


def go_transcrypt(key: bytes, data: bytes) -> bytes:
    """Bee's encryption.Transcrypt, segment by segment."""
    out = bytearray()
    for i in range(0, len(data), 32):
        segment_key = k256(k256(key + (i // 32).to_bytes(4, "little")))
        out += bytes(a ^ b for a, b in zip(data[i : i + 32], segment_key, strict=False))
    return bytes(out)


def naive_cac_address(span: bytes, payload: bytes) -> bytes:
    level = [payload.ljust(4096, b"\0")[i : i + 32] for i in range(0, 4096, 32)]
    while len(level) > 1:
        level = [k256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return k256(span + level[0])


def test_shared_key_matches_bee_vector() -> None:
    # Bee pkg/crypto/dh_test.go TestSharedKey.
    public = bytes.fromhex("0271e574ad8f6a6c998c84c27df18124fddd906aba9d852150da4223edde14044f")
    salt = bytes.fromhex("cb7e692f211f8ae4f858ff56ce8a4fc0e40bae1a36f8283f0ceb6bb4be133f1e")
    assert shared_key(RECIPIENT_KEY, public, salt).hex() == (
        "9edbd3beeb48c090158ccb82d679c5ea2bcb74850d34fe55c10b32e16b822007"
    )


def test_shared_key_drops_leading_zero_bytes_like_go() -> None:
    recipient = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), RECIPIENT)
    rng = random.Random(4)
    for _ in range(5000):  # about 1 in 256 shared secrets has x < 2**248
        key = rng.randbytes(32)
        secret = ec.derive_private_key(int.from_bytes(key, "big"), ec.SECP256K1())
        x = secret.exchange(ec.ECDH(), recipient)
        if x[0] == 0:
            break
    else:
        pytest.fail("no shared secret with a leading zero byte found")
    point = naive_point(int.from_bytes(RECIPIENT_KEY, "big"))
    assert shared_key(key, RECIPIENT, TOPIC) == go_shared_key(key, point, TOPIC)
    assert shared_key(key, RECIPIENT, TOPIC) != k256(x + TOPIC)


def test_ecdh_ignores_the_parity_bee_unwrap_gets_wrong() -> None:
    # Bee's extractPublicKey always sets the 0x03 prefix; d*(-P) has the same x, so it works.
    x = RECIPIENT[1:]
    key = bytes.fromhex("22" * 32)
    assert shared_key(key, b"\x02" + x, TOPIC) == shared_key(key, b"\x03" + x, TOPIC)


def test_wrap_follows_bee_trojan_layout() -> None:
    message = b"some payload"
    chunk = wrap_trojan(TOPIC, message, [b"\xab"], RECIPIENT, ephemeral_key=EPHEMERAL_KEY)
    data = chunk.data
    assert len(data) == 8 + 4096
    hint, nonce, ephemeral_x, ciphertext = data[:8], data[8:40], data[40:72], data[72:]

    ephemeral_point = naive_point(int.from_bytes(EPHEMERAL_KEY, "big"))
    assert ephemeral_x == ephemeral_point[0].to_bytes(32, "big")
    assert nonce[28] & 1 == ephemeral_point[1] & 1

    recipient_point = naive_point(int.from_bytes(RECIPIENT_KEY, "big"))
    key = go_shared_key(EPHEMERAL_KEY, recipient_point, TOPIC)
    assert hint == k256(key + TOPIC)[:8]

    plaintext = go_transcrypt(key, ciphertext[: 32 + len(message)])
    assert plaintext[:2] == len(message).to_bytes(2, "big")
    assert plaintext[2:32] == k256(message)[2:]
    assert plaintext[32:] == message

    assert chunk.address[:1] == b"\xab"
    assert chunk.address == naive_cac_address(hint, data[8:])
    assert Chunk.parse(data, chunk.address) == chunk


def test_round_trip_to_a_recipient() -> None:
    chunk = wrap_trojan(TOPIC, b"hello", [b"\x01", b"\x02"], RECIPIENT)
    assert chunk.address[:1] in (b"\x01", b"\x02")
    others = [pss_topic("topic-1"), pss_topic("topic-2")]
    assert unwrap_trojan(chunk, RECIPIENT_KEY, [*others, TOPIC]) == PssMessage(TOPIC, b"hello")
    assert unwrap_trojan(chunk.data, RECIPIENT_KEY, [TOPIC]).message == b"hello"


def test_round_trip_without_recipient_uses_the_topic_key() -> None:
    chunk = wrap_trojan(TOPIC, b"for anyone on the topic", [b"\x07"])
    stranger = bytes.fromhex("33" * 32)
    assert unwrap_trojan(chunk, stranger, [TOPIC]).message == b"for anyone on the topic"
    explicit = wrap_trojan(TOPIC, b"same", [b"\x07"], topic_public_key(TOPIC))
    assert unwrap_trojan(explicit, stranger, [TOPIC]).message == b"same"


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, MAX_MESSAGE_SIZE])
def test_round_trip_message_sizes(size: int) -> None:
    message = random.Random(size).randbytes(size)
    chunk = wrap_trojan(TOPIC, message, [b"\x00"], RECIPIENT)
    assert unwrap_trojan(chunk, RECIPIENT_KEY, [TOPIC]).message == message


def test_two_byte_targets() -> None:
    targets = [b"\x12\x34", b"\x56\x78", b"\x9a\xbc", b"\xde\xf0"]
    chunk = wrap_trojan(TOPIC, b"far away", targets, RECIPIENT)
    assert chunk.address[:2] in targets


def test_wrong_key_or_topic_does_not_open() -> None:
    chunk = wrap_trojan(TOPIC, b"secret", [b"\x05"], RECIPIENT)
    with pytest.raises(PssUnwrapError):
        unwrap_trojan(chunk, bytes.fromhex("44" * 32), [TOPIC])
    with pytest.raises(PssUnwrapError):
        unwrap_trojan(chunk, RECIPIENT_KEY, [pss_topic("other")])


def test_tampered_ciphertext_does_not_open() -> None:
    chunk = wrap_trojan(TOPIC, b"integrity", [b"\x05"], RECIPIENT)
    data = bytearray(chunk.data)
    data[72 + 35] ^= 0x01  # inside the message bytes
    with pytest.raises(PssUnwrapError):
        unwrap_trojan(bytes(data), RECIPIENT_KEY, [TOPIC])


def test_rejects_bad_inputs() -> None:
    with pytest.raises(PssMessageTooLargeError):
        wrap_trojan(TOPIC, bytes(MAX_MESSAGE_SIZE + 1), [b"\x00"], RECIPIENT)
    with pytest.raises(PssError):
        wrap_trojan(TOPIC, b"x", [], RECIPIENT)
    with pytest.raises(PssError):
        wrap_trojan(TOPIC, b"x", [b"\x00", b"\x00\x01"], RECIPIENT)
    with pytest.raises(PssError):
        wrap_trojan(TOPIC, b"x", [b"\x00" * 4], RECIPIENT)
    with pytest.raises(PssError):
        wrap_trojan(TOPIC[:31], b"x", [b"\x00"], RECIPIENT)
    with pytest.raises(PssError):
        wrap_trojan(TOPIC, b"x", [b"\x00"], b"\x02" + bytes(32))  # not on the curve
    with pytest.raises(PssUnwrapError):
        unwrap_trojan(b"too short", RECIPIENT_KEY, [TOPIC])
