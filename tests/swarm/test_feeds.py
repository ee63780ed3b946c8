"""Sequence feeds against SWARM.md's and bee-js's values, and v1/v2 payload round trips."""

from __future__ import annotations

import pytest

from swarm_vectordb.bee.bmt import Chunk, keccak256
from swarm_vectordb.bee.errors import InvalidFeedUpdateError, InvalidSocError
from swarm_vectordb.bee.feeds import (
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
from swarm_vectordb.bee.soc import SingleOwnerChunk, owner_address, soc_address

KEY = bytes.fromhex("634fb5a872396d9693e5c9f9d7233cfa93f395c093371017ff44aa9ae6564cdd")
CHAT = feed_topic("chat:v1")


def test_topic_check_value() -> None:
    assert CHAT.hex() == "7e15a90abbff6ee821a98dfd278e2967c16a1f8d3fa62534bce0c231169befce"


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        # bee-js 10.4 makeFeedIdentifier(Topic.fromString('chat:v1'), index)
        (0, "a5f146947610873d92825b219d12751b6f5b90d37ef6a5adf0ca68d153b8aba1"),
        (1, "30b8dc662e2110eff23ee0391cb62d02077024de9e876bd57fb047b56af582ce"),
        (2**40, "572200cb7bdbc08cb9531c7ca7742345f9169227a43364da172311e30e2bcd80"),
    ],
)
def test_update_identifier_matches_bee_js(index: int, expected: str) -> None:
    assert feed_update_identifier(CHAT, index).hex() == expected
    assert feed_update_identifier(CHAT, index) == keccak256(CHAT + index.to_bytes(8, "big"))


def test_update_address_is_the_soc_address_of_the_identifier() -> None:
    owner = owner_address(KEY)
    assert feed_update_address(owner, CHAT, 5) == soc_address(
        feed_update_identifier(CHAT, 5), owner
    )


def test_index_header_format() -> None:
    assert format_feed_index(258) == "0000000000000102"  # bee-js FeedIndex.toHex()
    assert parse_feed_index("0000000000000102") == 258
    assert parse_feed_index(format_feed_index(2**64 - 1)) == 2**64 - 1
    for bad in ("zz", "0102", "00" * 9):
        with pytest.raises(InvalidFeedUpdateError):
            parse_feed_index(bad)
    with pytest.raises(InvalidFeedUpdateError):
        format_feed_index(2**64)
    with pytest.raises(InvalidFeedUpdateError):
        feed_update_identifier(CHAT, -1)
    with pytest.raises(InvalidFeedUpdateError):
        feed_update_identifier(CHAT[:31], 0)


def test_v1_update_round_trip() -> None:
    reference = keccak256(b"some content root")
    update = make_v1_update(KEY, CHAT, 3, reference, timestamp=1_700_000_000)
    assert update.wrapped.payload == (1_700_000_000).to_bytes(8, "big") + reference
    parsed = SingleOwnerChunk.parse(
        update.data, address=feed_update_address(owner_address(KEY), CHAT, 3)
    )
    assert parse_v1_payload(parsed.wrapped) == LegacyFeedPayload(1_700_000_000, reference)


def test_v1_payload_with_encrypted_reference() -> None:
    reference = bytes(range(64))
    wrapped = Chunk.create(LegacyFeedPayload(7, reference).encode())
    assert parse_v1_payload(wrapped).reference == reference


def test_v1_payload_rejects_other_layouts() -> None:
    with pytest.raises(InvalidFeedUpdateError):
        parse_v1_payload(Chunk.create(b"just some v2 content"))
    with pytest.raises(InvalidFeedUpdateError):
        LegacyFeedPayload(0, bytes(33))
    with pytest.raises(InvalidFeedUpdateError):
        LegacyFeedPayload(-1, bytes(32))


def test_v2_update_wraps_the_content() -> None:
    update = make_v2_update(KEY, CHAT, 0, b'{"msg": "hi"}')
    parsed = SingleOwnerChunk.parse(
        update.data, address=feed_update_address(owner_address(KEY), CHAT, 0)
    )
    assert parsed.wrapped.payload == b'{"msg": "hi"}'
    assert parsed.wrapped.span == len(b'{"msg": "hi"}')


def test_v2_update_can_wrap_a_tree_root_but_not_loose_big_data() -> None:
    root = Chunk.create(bytes(96), span=3 * 4096)
    assert make_v2_update(KEY, CHAT, 1, root).wrapped == root
    with pytest.raises(InvalidFeedUpdateError):
        make_v2_update(KEY, CHAT, 1, bytes(4097))


def test_updates_by_another_key_do_not_verify_at_the_feed_address() -> None:
    other = keccak256(b"another key")
    update = make_v2_update(other, CHAT, 0, b"spoof")
    with pytest.raises(InvalidSocError):
        SingleOwnerChunk.parse(
            update.data, address=feed_update_address(owner_address(KEY), CHAT, 0)
        )
