"""Single-owner chunks against Bee's and bee-js's vectors and eth-account's recovery."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from swarm_vectordb.bee.bmt import Chunk, keccak256
from swarm_vectordb.bee.errors import InvalidSocError
from swarm_vectordb.bee.soc import (
    SOC_HEADER_SIZE,
    SingleOwnerChunk,
    owner_address,
    recover_owner,
    sign_digest,
    soc_address,
    soc_digest,
)

# Bee pkg/crypto/signer_test.go: this key's address is the owner of Bee's SOC vectors.
BEE_KEY = bytes.fromhex("634fb5a872396d9693e5c9f9d7233cfa93f395c093371017ff44aa9ae6564cdd")
BEE_OWNER = bytes.fromhex("8d3766440f0d7b949a5e32995d09619a7f86e632")
# Bee pkg/soc/soc_test.go: identifier 0, wrapped chunk `foo`.
FOO_SOC_ADDRESS = "9d453ebb73b2fedaaf44ceddcf7a0aa37f3e3d6453fea5841c31f0ea6d61dc85"
FOO_SIGNATURE = bytes.fromhex(
    "5acd384febc133b7b245e5ddc62d82d2cded9182d2716126cd8844509af65a05"
    "3deb418208027f548e3e88343af6f84a8772fb3cebc0a1833a0ea7ec0c1348311b"
)
FOO_SOC_DATA = bytes(32) + FOO_SIGNATURE + bytes.fromhex("0300000000000000") + b"foo"
# bee-js 10.4 makeSingleOwnerChunk(cac('noosphere'), keccak256('noosphere-soc'), BEE_KEY):
# a different (non-RFC 6979) nonce, so a different signature by the same owner.
BEE_JS_SOC_DATA = bytes.fromhex(
    "71c524423724d6ed72d6a8ae46eb920a70fde535d4a3fc141764569ecee5d9cf"
    "284f51ee5705b9b013e16590d5248050e70d43ded7e5ea4dc487aec91ddffd88"
    "5f3618458cad0e67f7d335983babe72587d0b073d16b47346cce23551beac74f"
    "1c09000000000000006e6f6f737068657265"
)
BEE_JS_SOC_ADDRESS = "a253aa99fe14ab71d09786dd3a56ac1585c2ed9eb1af58388f65ebfa80de67e6"


def test_soc_address_check_value() -> None:
    assert soc_address(bytes(32), BEE_OWNER).hex() == FOO_SOC_ADDRESS


def test_owner_of_bee_key() -> None:
    assert owner_address(BEE_KEY) == BEE_OWNER


def test_sign_digest_matches_bee_deterministic_signer() -> None:
    # Bee pkg/crypto/signer_test.go TestDefaultSignerDeterministic.
    digest = bytes.fromhex("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
    expected = (
        "336d24afef78c5883b96ad9a62552a8db3d236105cb059ddd04dc49680869dc1"
        "6234f6852c277087f025d4114c4fac6b40295ecffd1194a84cdb91bd571769491b"
    )
    assert sign_digest(BEE_KEY, digest).hex() == expected


def test_signing_foo_reproduces_bee_soc_vector_byte_for_byte() -> None:
    soc = SingleOwnerChunk.sign(bytes(32), Chunk.create(b"foo"), BEE_KEY)
    assert soc.signature == FOO_SIGNATURE
    assert soc.owner == BEE_OWNER
    assert soc.address.hex() == FOO_SOC_ADDRESS
    assert soc.data == FOO_SOC_DATA


def test_parse_bee_soc_vector() -> None:
    soc = SingleOwnerChunk.parse(FOO_SOC_DATA, address=bytes.fromhex(FOO_SOC_ADDRESS))
    assert soc.owner == BEE_OWNER
    assert soc.identifier == bytes(32)
    assert soc.wrapped.payload == b"foo"
    assert soc.wrapped.address.hex() == (
        "2387e8e7d8a48c2a9339c97c1dc3461a9a7aa07e994c5cb8b38fd7c1b3e6ea48"
    )


def test_parse_bee_js_soc() -> None:
    soc = SingleOwnerChunk.parse(BEE_JS_SOC_DATA, address=bytes.fromhex(BEE_JS_SOC_ADDRESS))
    assert soc.owner == BEE_OWNER
    assert soc.identifier == keccak256(b"noosphere-soc")
    assert soc.wrapped.payload == b"noosphere"
    assert soc.data == BEE_JS_SOC_DATA


def test_eth_account_recovers_the_owner_from_a_soc_signature() -> None:
    key = keccak256(b"some other key")
    soc = SingleOwnerChunk.sign(keccak256(b"id"), Chunk.create(b"payload"), key)
    digest = soc_digest(soc.identifier, soc.wrapped.address)
    recovered = Account.recover_message(encode_defunct(primitive=digest), signature=soc.signature)
    assert bytes.fromhex(recovered[2:]) == soc.owner == owner_address(key)
    assert soc.signature[64] in (27, 28)


def test_eth_account_signature_verifies_as_soc() -> None:
    wrapped = Chunk.create(b"signed by eth-account")
    identifier = keccak256(b"ident")
    digest = soc_digest(identifier, wrapped.address)
    signed = Account.sign_message(encode_defunct(primitive=digest), private_key=BEE_KEY)
    soc = SingleOwnerChunk.from_signature(identifier, wrapped, bytes(signed.signature), BEE_OWNER)
    assert soc.signature == sign_digest(BEE_KEY, digest)  # both RFC 6979


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize(
    "bit",
    [
        0,  # identifier
        8 * 31 + 7,  # identifier, last byte
        8 * 32,  # signature r
        8 * 70,  # signature s
        8 * (SOC_HEADER_SIZE - 1),  # signature v
        8 * SOC_HEADER_SIZE,  # span
        8 * (SOC_HEADER_SIZE + 8),  # payload
        8 * len(FOO_SOC_DATA) - 1,  # payload, last bit
    ],
)
def test_any_flipped_bit_fails_verification(bit: int) -> None:
    with pytest.raises(InvalidSocError):
        SingleOwnerChunk.parse(_flip(FOO_SOC_DATA, bit), address=bytes.fromhex(FOO_SOC_ADDRESS))
    with pytest.raises(InvalidSocError):
        SingleOwnerChunk.parse(_flip(FOO_SOC_DATA, bit), owner=BEE_OWNER)


def test_verify_catches_a_forged_owner() -> None:
    soc = SingleOwnerChunk.sign(bytes(32), Chunk.create(b"foo"), BEE_KEY)
    soc.verify()
    forged = SingleOwnerChunk(
        soc.identifier, soc.signature, owner_address(b"\x01" * 32), soc.wrapped
    )
    with pytest.raises(InvalidSocError):
        forged.verify()
    with pytest.raises(InvalidSocError):
        SingleOwnerChunk.from_signature(
            soc.identifier, soc.wrapped, soc.signature, owner=owner_address(b"\x01" * 32)
        )


def test_soc_can_wrap_an_intermediate_chunk() -> None:
    root = Chunk.create(bytes(64), span=10_000)
    soc = SingleOwnerChunk.sign(bytes(32), root, BEE_KEY)
    parsed = SingleOwnerChunk.parse(soc.data, address=soc.address)
    assert parsed.wrapped == root


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(SOC_HEADER_SIZE + 7),  # no room for a span
        bytes(SOC_HEADER_SIZE + 8 + 4097),  # payload too long
    ],
)
def test_parse_rejects_wrong_sizes(data: bytes) -> None:
    with pytest.raises(InvalidSocError):
        SingleOwnerChunk.parse(data)


def test_bad_inputs_raise_typed_errors() -> None:
    with pytest.raises(InvalidSocError):
        soc_address(bytes(31), BEE_OWNER)
    with pytest.raises(InvalidSocError):
        soc_address(bytes(32), bytes(19))
    with pytest.raises(InvalidSocError):
        owner_address(bytes(32))  # zero is not a private key
    with pytest.raises(InvalidSocError):
        recover_owner(FOO_SIGNATURE[:64] + b"\x00", bytes(32))
    with pytest.raises(InvalidSocError):
        recover_owner(bytes(64) + b"\x1b", bytes(32))
