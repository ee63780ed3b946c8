"""GSOC key mining against bee-js's gsocMine and a naive search written here."""

from __future__ import annotations

import pytest
from eth_keys.datatypes import PrivateKey

from swarm_vectordb.bee.bmt import keccak256
from swarm_vectordb.bee.errors import MiningError
from swarm_vectordb.bee.gsoc import (
    BEE_JS_START,
    gsoc_start_from_seed,
    mine_gsoc_key,
    proximity,
)
from swarm_vectordb.bee.soc import soc_address

OVERLAY = bytes.fromhex("ab" * 32)
IDENTIFIER = keccak256(b"noosphere-test")  # bee-js Identifier.fromString('noosphere-test')


def naive_soc_address(secret: int, identifier: bytes) -> bytes:
    owner = PrivateKey(secret.to_bytes(32, "big")).public_key.to_canonical_address()
    return soc_address(identifier, owner)


@pytest.mark.parametrize(
    ("overlay", "identifier", "bits", "expected_key"),
    [
        # bee-js 10.4: bee.gsocMine(overlay, identifier, bits).toHex()
        (OVERLAY, IDENTIFIER, 8, 0xC46),
        (OVERLAY, IDENTIFIER, 12, 0x1497),
        (bytes.fromhex("1f" * 32), bytes(32), 10, 0x11D1),
    ],
    ids=["ab-8", "ab-12", "1f-10"],
)
def test_mines_the_key_bee_js_mines(
    overlay: bytes, identifier: bytes, bits: int, expected_key: int
) -> None:
    mined = mine_gsoc_key(overlay, identifier, bits)
    assert mined.private_key == expected_key.to_bytes(32, "big")
    assert mined.attempts == expected_key - BEE_JS_START + 1


def test_mined_key_is_the_first_that_fits() -> None:
    mined = mine_gsoc_key(OVERLAY, IDENTIFIER, 8)
    secret = int.from_bytes(mined.private_key, "big")
    # Independent of the point-walking shortcut: derive every key's owner from scratch.
    assert naive_soc_address(secret, IDENTIFIER) == mined.address
    assert proximity(mined.address, OVERLAY) >= 8
    assert all(
        proximity(naive_soc_address(k, IDENTIFIER), OVERLAY) < 8
        for k in range(BEE_JS_START, secret)
    )
    assert mined.owner == PrivateKey(mined.private_key).public_key.to_canonical_address()
    assert mined.identifier == IDENTIFIER


def test_point_walk_survives_many_steps() -> None:
    start = gsoc_start_from_seed(b"noosphere inbox")
    mined = mine_gsoc_key(OVERLAY, IDENTIFIER, 13, start=start, max_attempts=1 << 18)
    assert naive_soc_address(int.from_bytes(mined.private_key, "big"), IDENTIFIER) == mined.address
    assert proximity(mined.address, OVERLAY) >= 13
    assert mined.attempts > 1


def test_seed_start_is_deterministic_and_in_range() -> None:
    assert gsoc_start_from_seed(b"a") == gsoc_start_from_seed(b"a") != gsoc_start_from_seed(b"b")
    assert 1 <= gsoc_start_from_seed(b"a") < 2**256


def test_gives_up_after_max_attempts() -> None:
    with pytest.raises(MiningError):
        mine_gsoc_key(OVERLAY, IDENTIFIER, 24, max_attempts=100)


def test_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError, match="identifier"):
        mine_gsoc_key(OVERLAY, bytes(31), 8)
    with pytest.raises(ValueError, match="proximity"):
        mine_gsoc_key(OVERLAY[:1], IDENTIFIER, 9)
    with pytest.raises(ValueError, match="start"):
        mine_gsoc_key(OVERLAY, IDENTIFIER, 8, start=0)


def test_short_target_prefix() -> None:
    mined = mine_gsoc_key(b"\x5a", IDENTIFIER, 8)
    assert mined.address[0] == 0x5A


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (b"\x00", b"\x00", 8),
        (b"\x80", b"\x00", 0),
        (b"\x01", b"\x00", 7),
        (b"\xff\x00", b"\xff\x80", 8),
        (bytes(32), bytes(32), 256),
        (b"\xab\xcd", b"\xab", 8),
    ],
)
def test_proximity(a: bytes, b: bytes, expected: int) -> None:
    assert proximity(a, b) == expected
