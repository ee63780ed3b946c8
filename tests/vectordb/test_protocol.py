"""Signed peer messages: round trips, eth-account as the signature oracle, hostile input."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_vectordb.errors import MessageRejected
from swarm_vectordb.protocol import (
    MAX_AGE_MS,
    MAX_SKEW_MS,
    Answer,
    Ask,
    DropCounter,
    Hit,
    PeerRecord,
    Query,
    Refusal,
    ReplayGuard,
    Reply,
    canonical,
    check_query,
    open_envelope,
    seal,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
OTHER = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
ADDRESS = bytes.fromhex(Account.from_key(KEY).address[2:])


def unit_vector(dim: int = 384, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype("<f4")
    return v / np.linalg.norm(v)


def query(**changes: object) -> Query:
    fields: dict[str, object] = {
        "embedding": unit_vector().astype("<f4").tobytes(),
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "k": 10,
        "reply_to": b"\x01" * 64,
        "filters": {"source": "docs"},
    }
    fields.update(changes)
    return Query(**fields)  # type: ignore[arg-type]


def peer_record(key: bytes = KEY) -> PeerRecord:
    from eth_keys.datatypes import PrivateKey

    return PeerRecord(
        inbox=b"\x02" * 64,
        public_key=PrivateKey(key).public_key.to_bytes(),
        capabilities=("search", "ask"),
        model="sentence-transformers/all-MiniLM-L6-v2",
        dim=4,
        chunks=12,
        summary=(np.ones(4, "<f4").tobytes(),),
    )


BODIES = [
    query(),
    Answer(b"\x03" * 16, (Hit("chunk text", 0.75, b"\x04" * 32, "a.md"),)),
    Ask("What is a BMT?", b"\x05" * 64),
    Reply(b"\x06" * 16, "A binary Merkle tree."),
    Refusal(b"\x07" * 16, "rate_limited", 42),
    peer_record(),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.kind)
def test_round_trip_and_sender_recovery(body: object) -> None:
    data = seal(body, KEY)  # type: ignore[arg-type]
    envelope = open_envelope(data, replay=ReplayGuard())
    assert envelope.body == body
    assert envelope.sender == ADDRESS
    assert len(envelope.id) == 16
    assert abs(envelope.ts - time.time() * 1000) < 5000


def test_signature_is_an_ethereum_signature_over_keccak_of_the_canonical_rest() -> None:
    from eth_keys.datatypes import Signature
    from eth_utils import keccak

    data = seal(BODIES[2], KEY)
    wire = msgpack.unpackb(data)
    sig = wire.pop("sig")
    assert sig[64] in (27, 28)
    recovered = Signature(sig[:64] + bytes([sig[64] - 27])).recover_public_key_from_msg_hash(
        keccak(canonical(wire))
    )
    assert recovered.to_canonical_address() == ADDRESS


def test_replays_are_dropped_and_counted() -> None:
    guard, drops = ReplayGuard(), DropCounter()
    data = seal(BODIES[0], KEY)
    open_envelope(data, replay=guard)
    with pytest.raises(MessageRejected) as info:
        open_envelope(data, replay=guard)
    drops.record(info.value)
    assert drops == {"replay": 1}
    open_envelope(seal(BODIES[0], KEY), replay=guard)  # a fresh id is fine


def test_replay_guard_forgets_only_outside_the_window() -> None:
    guard = ReplayGuard(capacity=10)
    guard.check_and_remember(ADDRESS, b"\x00" * 16, 1_000_000)
    with pytest.raises(MessageRejected, match="replay"):
        guard.check_and_remember(ADDRESS, b"\x00" * 16, 1_000_000 + MAX_AGE_MS)
    later = 1_000_000 + MAX_AGE_MS + MAX_SKEW_MS + 1  # the first id is now past the window
    guard.check_and_remember(ADDRESS, b"\x00" * 16, later)  # forgotten: a stale replay anyway
    assert len(guard) == 1


def test_a_full_replay_guard_refuses_new_ids_and_keeps_the_old_ones() -> None:
    guard = ReplayGuard(capacity=10)
    for i in range(10):
        guard.check_and_remember(ADDRESS, i.to_bytes(16, "big"), 2_000_000 + i)
    for i in range(10, 15):  # full, nothing expired: new messages are refused and counted
        with pytest.raises(MessageRejected) as info:
            guard.check_and_remember(ADDRESS, i.to_bytes(16, "big"), 2_000_100)
        assert info.value.reason == "guard_full"
    assert guard.refused == 5
    for i in range(10):  # every id inside the window is still remembered: no replay slips in
        with pytest.raises(MessageRejected, match="replay"):
            guard.check_and_remember(ADDRESS, i.to_bytes(16, "big"), 2_000_200)


def test_a_full_replay_guard_prunes_expired_ids_before_refusing() -> None:
    guard = ReplayGuard(capacity=10)
    for i in range(10):  # five old ids, then five recent ones
        guard.check_and_remember(ADDRESS, i.to_bytes(16, "big"), 1_000_000 if i < 5 else 1_500_000)
    now = 1_000_000 + MAX_AGE_MS + MAX_SKEW_MS + 1  # the old five are past the window
    for i in range(10, 15):
        guard.check_and_remember(ADDRESS, i.to_bytes(16, "big"), now)
    assert len(guard) == 10
    assert guard.refused == 0
    with pytest.raises(MessageRejected) as info:
        guard.check_and_remember(ADDRESS, b"\xff" * 16, now)
    assert info.value.reason == "guard_full"


def test_open_envelope_reports_a_full_guard() -> None:
    guard, drops = ReplayGuard(capacity=1), DropCounter()
    open_envelope(seal(BODIES[0], KEY), replay=guard)
    with pytest.raises(MessageRejected) as info:
        open_envelope(seal(BODIES[0], KEY), replay=guard)
    drops.record(info.value)
    assert drops == {"guard_full": 1}


@pytest.mark.parametrize(
    ("ts_offset_ms", "reason"), [(-MAX_AGE_MS - 1000, "stale"), (120_000, "future")]
)
def test_old_and_future_messages(ts_offset_ms: int, reason: str) -> None:
    data = seal(BODIES[3], KEY, ts=int(time.time() * 1000) + ts_offset_ms)
    with pytest.raises(MessageRejected) as info:
        open_envelope(data)
    assert info.value.reason == reason


def resign(wire: dict[str, object], key: bytes = KEY, *, sort: bool = True) -> bytes:
    from eth_keys.datatypes import PrivateKey
    from eth_utils import keccak

    unsigned = {k: v for k, v in wire.items() if k != "sig"}
    sig = PrivateKey(key).sign_msg_hash(keccak(canonical(unsigned))).to_bytes()
    wire = dict(unsigned, sig=sig[:64] + bytes([sig[64] + 27]))
    return canonical(wire) if sort else msgpack.packb(dict(reversed(list(wire.items()))))


def test_forged_sender_and_non_canonical_encodings() -> None:
    wire = msgpack.unpackb(seal(BODIES[2], KEY))
    wire["sender"] = bytes.fromhex(Account.from_key(OTHER).address[2:])  # claim to be OTHER
    with pytest.raises(MessageRejected) as info:
        open_envelope(resign(wire, KEY))
    assert info.value.reason == "bad_signature"
    honest = msgpack.unpackb(seal(BODIES[2], KEY))
    with pytest.raises(MessageRejected) as info:
        open_envelope(resign(honest, sort=False))
    assert info.value.reason == "not_canonical"


def test_peer_record_key_must_be_the_senders() -> None:
    with pytest.raises(MessageRejected, match="public key"):
        open_envelope(seal(peer_record(OTHER), KEY))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (b"\x91" * 200_000, "malformed"),  # nesting bomb
        (msgpack.packb([1, 2, 3]), "bad_envelope"),
        (msgpack.packb({"v": 1}), "bad_envelope"),
        (b"\x00" * (2 << 20), "too_large"),
    ],
)
def test_garbage_is_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MessageRejected) as info:
        open_envelope(data)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("v", 2, "version"),
        ("kind", "shell", "kind"),
        ("kind", 7, "kind"),
        ("sender", b"\x00" * 19, "bad_envelope"),
        ("ts", -5, "bad_envelope"),
        ("ts", True, "bad_envelope"),
        ("body", {"text": "x"}, "bad_body"),
    ],
)
def test_bad_envelope_fields(field: str, value: object, reason: str) -> None:
    wire = msgpack.unpackb(seal(BODIES[2], KEY))
    wire[field] = value
    with pytest.raises(MessageRejected) as info:
        open_envelope(resign(wire))
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "body",
    [
        query(k=0),
        query(k=10_000),
        query(reply_to=b"\x01" * 32),
        query(filters={str(i): "x" for i in range(50)}),
        Answer(b"\x03" * 16, tuple(Hit("t", 0.5, b"\x04" * 32, "s") for _ in range(101))),
        Answer(b"\x03" * 16, (Hit("t", float("nan"), b"\x04" * 32, "s"),)),
        Answer(b"\x03" * 16, (Hit("t" * 20_000, 0.5, b"\x04" * 32, "s"),)),
        Ask("x" * 10_000, b"\x05" * 64),
        Refusal(b"\x07" * 16, "I refuse because <free text>", 1),  # only known reasons
        Refusal(b"\x07" * 16, "busy", -1),
        Refusal(b"\x07" * 16, "busy", 10**9),
        Refusal(b"\x07" * 15, "busy", 1),
        Refusal(b"\x07" * 16, ["busy"], 1),  # type: ignore[arg-type]
    ],
)
def test_bodies_outside_the_schema_are_rejected(body: object) -> None:
    with pytest.raises(MessageRejected) as info:
        open_envelope(seal(body, KEY))  # type: ignore[arg-type]
    assert info.value.reason == "bad_body"


def test_only_expected_kinds() -> None:
    with pytest.raises(MessageRejected) as info:
        open_envelope(seal(BODIES[2], KEY), kinds=frozenset({"query"}))
    assert info.value.reason == "kind"


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        (query(model="other"), "model"),
        (query(embedding=unit_vector(128).tobytes()), "dimension"),
        (query(embedding=np.full(384, np.nan, "<f4").tobytes()), "not_finite"),
        (query(embedding=(unit_vector() * 2).astype("<f4").tobytes()), "not_unit"),
    ],
)
def test_query_embedding_checks(q: Query, reason: str) -> None:
    with pytest.raises(MessageRejected) as info:
        check_query(q, dim=384, model="sentence-transformers/all-MiniLM-L6-v2")
    assert info.value.reason == reason
    good = check_query(query(), dim=384, model="sentence-transformers/all-MiniLM-L6-v2")
    assert np.allclose(good, unit_vector())


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_no_single_bit_flip_is_ever_accepted(position: int, bit: int) -> None:
    data = bytearray(seal(BODIES[1], KEY))
    data[position % len(data)] ^= 1 << bit
    with pytest.raises(MessageRejected):
        open_envelope(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_message_rejected(data: bytes) -> None:
    with pytest.raises(MessageRejected):
        open_envelope(data)
