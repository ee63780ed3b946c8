"""Single-owner chunks (SOC): a chunk at an address its owner chose, signed by the owner.

A SOC wraps a content-addressed chunk under an address derived from an
identifier and the owner's Ethereum address instead of from the content::

    address = keccak256(identifier(32) || owner(20))
    digest  = keccak256(identifier || wrapped_chunk_address)
    sign    = secp256k1 over keccak256("\\x19Ethereum Signed Message:\\n32" || digest)

The signature is 65 bytes ``r || s || v`` with ``v`` in {27, 28}, exactly what
Bee's ``crypto.Signer.Sign`` and eth-account's ``sign_message`` produce; the
nonce is deterministic (RFC 6979), so the same key and chunk always give the
same bytes as Bee. On the wire a SOC is::

    identifier(32) | signature(65) | span(8) | payload(<=4096)

Nobody sends the owner: a reader recovers it from the signature, and the SOC
is valid only if that owner and the identifier hash to the address it was
fetched under. Signing and recovery use ``eth_keys`` (which picks coincurve
when it is installed, else its pure-Python backend: ~2 ms to sign, ~5 ms to
recover).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from swarm_vectordb.bee.bmt import CHUNK_SIZE, HASH_SIZE, SPAN_SIZE, Chunk, ChunkAddress, keccak256
from swarm_vectordb.bee.errors import InvalidChunkError, InvalidSocError

__all__ = [
    "IDENTIFIER_SIZE",
    "OWNER_SIZE",
    "SIGNATURE_SIZE",
    "SOC_HEADER_SIZE",
    "OwnerAddress",
    "SingleOwnerChunk",
    "SocIdentifier",
    "owner_address",
    "recover_owner",
    "sign_digest",
    "soc_address",
    "soc_digest",
]

IDENTIFIER_SIZE = 32
SIGNATURE_SIZE = 65
OWNER_SIZE = 20
SOC_HEADER_SIZE = IDENTIFIER_SIZE + SIGNATURE_SIZE
"""Bytes before the wrapped chunk's ``span || payload``."""

SocIdentifier = NewType("SocIdentifier", bytes)
"""32 bytes the owner picks; with the owner it fixes the SOC address."""
OwnerAddress = NewType("OwnerAddress", bytes)
"""20-byte Ethereum address (raw bytes, not a checksummed string)."""

_EIP191_PREFIX_32 = b"\x19Ethereum Signed Message:\n32"


def _identifier(value: bytes) -> SocIdentifier:
    if len(value) != IDENTIFIER_SIZE:
        raise InvalidSocError(f"SOC identifier must be {IDENTIFIER_SIZE} bytes, got {len(value)}")
    return SocIdentifier(bytes(value))


def _owner(value: bytes) -> OwnerAddress:
    if len(value) != OWNER_SIZE:
        raise InvalidSocError(f"SOC owner must be {OWNER_SIZE} bytes, got {len(value)}")
    return OwnerAddress(bytes(value))


def _private_key(secret: bytes) -> PrivateKey:
    try:
        return PrivateKey(bytes(secret))
    except (ValidationError, ValueError) as error:
        raise InvalidSocError(f"not a secp256k1 private key: {error}") from error


def soc_address(identifier: bytes, owner: bytes) -> ChunkAddress:
    """Address of the SOC with this identifier and owner: keccak256(identifier || owner)."""
    return ChunkAddress(keccak256(_identifier(identifier), _owner(owner)))


def soc_digest(identifier: bytes, wrapped_address: bytes) -> bytes:
    """The 32 bytes the owner signs (before EIP-191 wrapping): keccak256(identifier || address)."""
    if len(wrapped_address) != HASH_SIZE:
        raise InvalidSocError(f"wrapped chunk address must be {HASH_SIZE} bytes")
    return keccak256(_identifier(identifier), wrapped_address)


def owner_address(private_key: bytes) -> OwnerAddress:
    """Ethereum address of a 32-byte secp256k1 private key."""
    return OwnerAddress(_private_key(private_key).public_key.to_canonical_address())


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Bee's ``Signer.Sign`` of a 32-byte digest: EIP-191 personal message, ``r||s||v``, v+27."""
    if len(digest) != HASH_SIZE:
        raise InvalidSocError(f"digest must be {HASH_SIZE} bytes")
    signature = _private_key(private_key).sign_msg_hash(keccak256(_EIP191_PREFIX_32, digest))
    raw = signature.to_bytes()
    return raw[:64] + bytes([raw[64] + 27])


def recover_owner(signature: bytes, digest: bytes) -> OwnerAddress:
    """Owner whose ``sign_digest`` of ``digest`` is ``signature``; raises ``InvalidSocError``."""
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidSocError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(signature)}")
    if len(digest) != HASH_SIZE:
        raise InvalidSocError(f"digest must be {HASH_SIZE} bytes")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSocError(f"signature recovery byte is {v}, expected 27 or 28")
    try:
        parsed = Signature(signature_bytes=bytes(signature[:64]) + bytes([v - 27]))
        public_key = parsed.recover_public_key_from_msg_hash(keccak256(_EIP191_PREFIX_32, digest))
    except (BadSignature, ValidationError, ValueError) as error:
        raise InvalidSocError(f"signature does not recover a key: {error}") from error
    return OwnerAddress(public_key.to_canonical_address())


@dataclass(frozen=True, slots=True)
class SingleOwnerChunk:
    """A signed single-owner chunk.

    Make one with ``sign`` (you hold the key), ``from_signature`` (someone
    signed elsewhere) or ``parse`` (bytes from the network). All three
    guarantee that ``signature`` recovers ``owner``; the plain constructor
    checks sizes only.
    """

    identifier: SocIdentifier
    signature: bytes
    owner: OwnerAddress
    wrapped: Chunk
    """The content-addressed chunk inside; its span may exceed 4096 (a tree root)."""

    def __post_init__(self) -> None:
        _identifier(self.identifier)
        _owner(self.owner)
        if len(self.signature) != SIGNATURE_SIZE:
            raise InvalidSocError(f"signature must be {SIGNATURE_SIZE} bytes")

    @property
    def address(self) -> ChunkAddress:
        """keccak256(identifier || owner)."""
        return soc_address(self.identifier, self.owner)

    @property
    def data(self) -> bytes:
        """Wire form: identifier | signature | span | payload."""
        return self.identifier + self.signature + self.wrapped.data

    @classmethod
    def sign(cls, identifier: bytes, wrapped: Chunk, private_key: bytes) -> SingleOwnerChunk:
        """Sign ``wrapped`` under ``identifier`` with a 32-byte secp256k1 private key."""
        ident = _identifier(identifier)
        signature = sign_digest(private_key, soc_digest(ident, wrapped.address))
        return cls(ident, signature, owner_address(private_key), wrapped)

    @classmethod
    def from_signature(
        cls, identifier: bytes, wrapped: Chunk, signature: bytes, owner: bytes | None = None
    ) -> SingleOwnerChunk:
        """SOC from a signature made elsewhere; with ``owner`` given, it must be the signer."""
        ident = _identifier(identifier)
        recovered = recover_owner(signature, soc_digest(ident, wrapped.address))
        if owner is not None and recovered != owner:
            raise InvalidSocError(
                f"signature is by {recovered.hex()}, not the claimed owner {bytes(owner).hex()}"
            )
        return cls(ident, bytes(signature), recovered, wrapped)

    @classmethod
    def parse(
        cls, data: bytes, *, address: bytes | None = None, owner: bytes | None = None
    ) -> SingleOwnerChunk:
        """SOC from its wire form, the owner recovered from the signature.

        Any bytes with a recoverable signature parse; it is ``address`` (the
        address the chunk was fetched under) or ``owner`` that makes this a
        verification: a mismatch raises ``InvalidSocError``.
        """
        if not SOC_HEADER_SIZE + SPAN_SIZE <= len(data) <= SOC_HEADER_SIZE + SPAN_SIZE + CHUNK_SIZE:
            raise InvalidSocError(f"{len(data)} bytes cannot be a single-owner chunk")
        try:
            wrapped = Chunk.parse(data[SOC_HEADER_SIZE:])
        except InvalidChunkError as error:
            raise InvalidSocError(f"wrapped chunk: {error}") from error
        soc = cls.from_signature(
            data[:IDENTIFIER_SIZE], wrapped, data[IDENTIFIER_SIZE:SOC_HEADER_SIZE], owner
        )
        if address is not None and soc.address != address:
            raise InvalidSocError(
                f"SOC by {soc.owner.hex()} lives at {soc.address.hex()}, "
                f"not at {bytes(address).hex()}"
            )
        return soc

    def verify(self) -> None:
        """Raise ``InvalidSocError`` unless ``signature`` is ``owner``'s over the content."""
        recovered = recover_owner(self.signature, soc_digest(self.identifier, self.wrapped.address))
        if recovered != self.owner:
            raise InvalidSocError(f"signature is by {recovered.hex()}, not {self.owner.hex()}")
