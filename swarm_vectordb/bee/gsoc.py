"""GSOC key mining: a shared owner key whose SOC lands in a receiver's neighbourhood.

A GSOC inbox is a single-owner chunk address that a receiving full node
watches (``GET /gsoc/subscribe/{address}``). Writers share the owner key, so
the address ``keccak256(identifier || owner)`` must fall into the receiver's
neighbourhood: it has to share at least ``proximity`` leading bits with the
receiver's overlay address. Nothing but trying keys finds one.

The search is bee-js's ``gsocMine``: private keys ``start, start + 1, ...``
(``start`` = 0xb33, at most 0xffff tries), the first whose SOC address is
close enough wins. With the defaults, ``mine_gsoc_key`` returns the very key
bee-js returns for the same overlay, identifier and proximity, so a Python
writer and a JavaScript writer agree on the inbox without talking. Another
``start`` (``gsoc_start_from_seed``) gives a different, still deterministic
key; more ``max_attempts`` finds keys for proximities the bee-js budget misses
(16 bits needs ~65k tries on average).

Consecutive keys are consecutive points on the curve, so each try costs one
point addition (one modular inverse) and two Keccak hashes instead of a full
scalar multiplication: about 10-20 us a try in pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_keys.datatypes import PrivateKey

from swarm_vectordb.bee.bmt import HASH_SIZE, ChunkAddress, keccak256
from swarm_vectordb.bee.errors import MiningError
from swarm_vectordb.bee.soc import OwnerAddress, SocIdentifier, soc_address

__all__ = [
    "BEE_JS_MAX_ATTEMPTS",
    "BEE_JS_START",
    "GsocKey",
    "gsoc_start_from_seed",
    "mine_gsoc_key",
    "proximity",
]

BEE_JS_START = 0xB33
"""First private key bee-js's ``gsocMine`` tries."""
BEE_JS_MAX_ATTEMPTS = 0xFFFF
"""How many keys bee-js's ``gsocMine`` tries before giving up."""

# secp256k1: y^2 = x^3 + 7 over F_p, generator G of prime order N.
_P = 2**256 - 2**32 - 977
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
_GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8


def proximity(a: bytes, b: bytes) -> int:
    """Leading bits ``a`` and ``b`` share (Kademlia proximity order), over the shorter length."""
    length = min(len(a), len(b))
    diff = int.from_bytes(a[:length], "big") ^ int.from_bytes(b[:length], "big")
    return 8 * length - diff.bit_length()


@dataclass(frozen=True, slots=True)
class GsocKey:
    """A mined GSOC owner key and the inbox address it yields."""

    private_key: bytes
    owner: OwnerAddress
    identifier: SocIdentifier
    address: ChunkAddress
    """SOC address keccak256(identifier || owner): subscribe to this on the receiving node."""
    attempts: int
    """Keys tried, this one included."""


def gsoc_start_from_seed(seed: bytes) -> int:
    """A deterministic mining start derived from ``seed`` (any bytes)."""
    return int.from_bytes(keccak256(seed), "big") % (_N - 2**32) + 1


def _public_point(secret: int) -> tuple[int, int]:
    raw = PrivateKey(secret.to_bytes(32, "big")).public_key.to_bytes()
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def mine_gsoc_key(
    target_overlay: bytes,
    identifier: bytes,
    proximity: int = 16,
    *,
    start: int = BEE_JS_START,
    max_attempts: int = BEE_JS_MAX_ATTEMPTS,
) -> GsocKey:
    """First key from ``start`` on whose SOC address shares ``proximity`` bits with the target.

    Raises ``MiningError`` when ``max_attempts`` keys all miss.
    """
    if len(identifier) != HASH_SIZE:
        raise ValueError(f"identifier must be {HASH_SIZE} bytes")
    if not 0 <= proximity <= 8 * len(target_overlay) or len(target_overlay) > HASH_SIZE:
        raise ValueError(f"proximity {proximity} does not fit a {len(target_overlay)}-byte target")
    if max_attempts < 1 or not 1 <= start <= _N - 1 - max_attempts:
        raise ValueError("start and max_attempts must keep every key inside 1..N-1")
    shift = 256 - proximity
    wanted = int.from_bytes(bytes(target_overlay).ljust(HASH_SIZE, b"\0"), "big") >> shift
    ident = bytes(identifier)
    x, y = _public_point(start)
    for attempt in range(max_attempts):
        owner = keccak256(x.to_bytes(32, "big"), y.to_bytes(32, "big"))[12:]
        address = keccak256(ident, owner)
        if int.from_bytes(address, "big") >> shift == wanted:
            secret = start + attempt
            return GsocKey(
                private_key=secret.to_bytes(32, "big"),
                owner=OwnerAddress(owner),
                identifier=SocIdentifier(ident),
                address=soc_address(ident, owner),
                attempts=attempt + 1,
            )
        # Next key's public point: (x, y) + G. Only P = +-G makes the chord formula fail.
        if x == _GX:
            x, y = _public_point(start + attempt + 1)
            continue
        slope = (_GY - y) * pow(_GX - x, -1, _P) % _P
        next_x = (slope * slope - x - _GX) % _P
        y = (slope * (x - next_x) - y) % _P
        x = next_x
    raise MiningError(
        f"no key in {max_attempts} tries from {start:#x} puts the SOC within "
        f"proximity {proximity} of {bytes(target_overlay).hex()}"
    )
