"""Agent-to-agent asks on the wire: the real dev node over HTTP, the real inbox listener.

Signed `Ask`s go to the serving node's GSOC inbox, `KnowledgeServer` (the node's one
listener) dispatches them to its `answer_ask` handler, and the signed `Reply` comes
back to the asker's inbox. The handler here is a plain coroutine that records what
it was asked: these tests are about the transport, its checks and its limits (the
real assistant behind it is tests/integration/test_peer_ask.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from eth_keys.datatypes import PrivateKey

from swarm_vectordb.asks import (
    TIMED_OUT_REPLY,
    AskLimits,
    PeerAskError,
    PeerAskRefused,
    PeerAskTimeout,
    PeerReply,
    ask_address,
    ask_peer,
    checksummed,
    parse_address,
)
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.devnode import DevNode
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.index import ChunkRef, IndexedChunk, VectorIndex
from swarm_vectordb.network import KnowledgeServer
from swarm_vectordb.peers import Inbox, node_inbox, post, publish_record
from swarm_vectordb.protocol import (
    PROTOCOL_VERSION,
    Ask,
    PeerRecord,
    Refusal,
    Reply,
    canonical,
    open_envelope,
    seal,
)
from swarm_vectordb.routing import text_reference
from tests.vectordb.knowledge_server import running

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

DIM = 8
MODEL = "test-model"
SERVER_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ASKER_KEY = bytes.fromhex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")


def address_of(key: bytes) -> bytes:
    return bytes(PrivateKey(key).public_key.to_canonical_address())


SERVER = address_of(SERVER_KEY)
ASKER = address_of(ASKER_KEY)


@dataclass
class Handler:
    """Answers "re: <question>" after `delay` seconds, recording every call."""

    delay: float = 0.0
    asked: list[tuple[bytes, str]] = field(default_factory=list)
    cancelled: int = 0

    async def __call__(self, sender: bytes, text: str) -> str:
        self.asked.append((sender, text))
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return f"re: {text}"


@dataclass
class Rig:
    node: DevNode
    bee: BeeClient
    batch: BatchId
    index: VectorIndex
    server_inbox: Inbox
    asker_inbox: Inbox


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    node = await DevNode.start("127.0.0.1", 0)
    bee = await BeeClient.create(node.url, timeout=30)
    vectors = np.eye(DIM, dtype=np.float32)[:2]
    index = VectorIndex(tmp_path / "index", DIM, MODEL)
    index.add([IndexedChunk(ChunkRef(text_reference(t)), t) for t in ("a", "b")], vectors)
    overlay = (await bee.addresses()).overlay
    try:
        yield Rig(
            node,
            bee,
            await bee.buy_stamp(10**8, 20),
            index,
            await asyncio.to_thread(node_inbox, SERVER, overlay, 2),
            await asyncio.to_thread(node_inbox, ASKER, overlay, 2),
        )
    finally:
        index.close()
        await bee.aclose()
        await node.aclose()


@asynccontextmanager
async def serving(
    rig: Rig, handler: Handler, limits: AskLimits | None = None, **options: object
) -> AsyncIterator[KnowledgeServer]:
    server = KnowledgeServer(
        bee=rig.bee,
        batch=rig.batch,
        node_key=SERVER_KEY,
        inbox=rig.server_inbox,
        index=rig.index,
        model=MODEL,
        answer_ask=handler,
        ask_limits=limits,
        **options,  # type: ignore[arg-type]
    )
    async with running(server):
        yield server


async def handled(server: KnowledgeServer, count: int, within: float = 20.0) -> None:
    """Wait until the server has finished `count` messages (answered or dropped)."""
    for _ in range(int(within / 0.02)):
        if server.stats.handled >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{server.stats.handled} of {count} message(s) handled in {within} s")


def ask_from(key: bytes, text: str, reply_to: Inbox) -> bytes:
    return seal(Ask(text=text, reply_to=reply_to.to_bytes()), key)


async def post_ask(rig: Rig, key: bytes, text: str) -> None:
    """An ask signed with `key` posted to the server's inbox, replies to the asker's."""
    await post(rig.bee, rig.batch, rig.server_inbox, ask_from(key, text, rig.asker_inbox))


async def ask_server_reply(rig: Rig, text: str, deadline_s: float = 20) -> PeerReply:
    """The asker asks the server `text` (its inbox known) and waits for the reply."""
    return await ask_peer(
        bee=rig.bee, batch=rig.batch, node_key=ASKER_KEY, inbox=rig.asker_inbox,
        address=SERVER, peer_inbox=rig.server_inbox, text=text, deadline_s=deadline_s,
    )  # fmt: skip


async def test_an_ask_gets_the_handlers_answer_signed_by_the_peer(rig: Rig) -> None:
    handler = Handler()
    async with serving(rig, handler) as server:
        reply = await ask_server_reply(rig, "what do bees eat?")
    assert reply.peer == SERVER
    assert reply.peer_hex == "0x" + SERVER.hex()
    assert reply.text == "re: what do bees eat?"
    assert handler.asked == [(ASKER, "what do bees eat?")]  # the handler saw the real signer
    assert 0 < reply.latency_ms < 20_000
    assert server.stats.asks_answered == 1
    assert server.stats.served == 0
    assert not server.stats.dropped


async def test_a_reply_signed_by_anyone_but_the_peer_is_dropped(rig: Rig) -> None:
    """We play the peer by hand: an impostor answers first, then the peer itself."""
    impostor_key = os.urandom(32)
    async with await rig.bee.gsoc_subscribe(rig.server_inbox.address) as peer_side:
        asking = asyncio.create_task(ask_server_reply(rig, "who are you?"))
        frame = await peer_side.receive(10)
    envelope = open_envelope(frame[1:])
    assert isinstance(envelope.body, Ask)
    assert envelope.sender == ASKER
    ask_id = envelope.id
    await post(
        rig.bee, rig.batch, rig.asker_inbox, seal(Reply(ask_id, "I am the peer"), impostor_key)
    )
    await post(
        rig.bee, rig.batch, rig.asker_inbox, seal(Reply(os.urandom(16), "other"), SERVER_KEY)
    )
    await asyncio.sleep(0.3)
    assert not asking.done()  # neither the impostor nor a reply to another ask ended it
    await post(rig.bee, rig.batch, rig.asker_inbox, seal(Reply(ask_id, "the real one"), SERVER_KEY))
    reply = await asyncio.wait_for(asking, 20)
    assert reply.text == "the real one"
    assert reply.peer == SERVER
    assert reply.dropped == {"impostor": 1, "unsolicited": 1}


async def test_a_replayed_ask_is_answered_once(rig: Rig) -> None:
    handler = Handler()
    sealed = ask_from(ASKER_KEY, "once only", rig.asker_inbox)
    async with (
        serving(rig, handler) as server,
        await rig.bee.gsoc_subscribe(rig.asker_inbox.address) as replies,
    ):
        await post(rig.bee, rig.batch, rig.server_inbox, sealed)
        await handled(server, 1)
        await post(rig.bee, rig.batch, rig.server_inbox, sealed)
        await handled(server, 2)
        first = open_envelope((await replies.receive(10))[1:])
        await asyncio.sleep(0.3)
        assert replies.pending == 0  # no second reply
    assert isinstance(first.body, Reply)
    assert first.body.ask_id == open_envelope(sealed).id
    assert first.sender == SERVER
    assert first.body.text == "re: once only"
    assert len(handler.asked) == 1
    assert server.stats.asks_answered == 1
    assert server.stats.dropped == {"replay": 1}


def unsigned_ask(reply_to: Inbox) -> bytes:
    wire = {
        "v": PROTOCOL_VERSION,
        "kind": "ask",
        "sender": ASKER,
        "id": os.urandom(16),
        "ts": int(time.time() * 1000),
        "body": {"text": "no signature", "reply_to": reply_to.to_bytes()},
        "sig": bytes(64) + b"\x1b",
    }
    return canonical(wire)


async def test_oversized_malformed_unsigned_and_wrong_kind_messages_are_dropped(
    rig: Rig,
) -> None:
    handler = Handler()
    hostile = [
        ask_from(ASKER_KEY, "x" * 8193, rig.asker_inbox),  # longer than an Ask may be
        b"\xc1 not msgpack at all",
        unsigned_ask(rig.asker_inbox),
        seal(Reply(os.urandom(16), "a reply is not a question"), ASKER_KEY),
        seal(record(rig.asker_inbox, ("ask",)), SERVER_KEY),  # a record is never inbox mail
        os.urandom(70_000),  # over the server's max_bytes: refused before download
    ]
    async with serving(rig, handler, max_bytes=64 * 1024) as server:
        for message in hostile:
            await post(rig.bee, rig.batch, rig.server_inbox, message)
        await handled(server, len(hostile))
    assert handler.asked == []
    assert server.stats.asks_answered == 0
    assert server.stats.for_asker == 1  # the reply: left to this node's asking side
    assert server.stats.dropped == {
        "bad_body": 1,
        "malformed": 1,
        "bad_signature": 1,
        "kind": 1,
        "too_large": 1,
    }


async def test_one_peer_is_held_to_its_own_rate_and_others_still_get_answers(rig: Rig) -> None:
    handler = Handler()
    limits = AskLimits(per_peer_rate=0.001, per_peer_burst=2, rate=1000, burst=1000)
    other_key = os.urandom(32)
    async with serving(rig, handler, limits) as server:
        for i in range(5):
            await post_ask(rig, ASKER_KEY, f"q{i}")
        await handled(server, 5)
        await post_ask(rig, other_key, "mine")
        await handled(server, 6)
    # the burst of two, in whichever order the inbox delivered them; then the other peer
    assert sorted(text for sender, text in handler.asked if sender == ASKER) == ["q0", "q1"]
    assert handler.asked[-1] == (address_of(other_key), "mine")
    assert server.stats.asks_answered == 3
    assert server.stats.dropped == {"rate_limited": 3}


async def test_the_global_ask_rate_and_the_allowlist_hold(rig: Rig) -> None:
    handler = Handler()
    limits = AskLimits(rate=0.001, burst=2)
    async with serving(rig, handler, limits, allow=[ASKER, address_of(os.urandom(32))]) as server:
        await post_ask(rig, os.urandom(32), "let me in")  # a stranger
        await handled(server, 1)
        for i in range(3):
            await post_ask(rig, ASKER_KEY, f"q{i}")
        await handled(server, 4)
    assert server.stats.dropped == {"not_allowed": 1, "busy": 1}
    assert len(handler.asked) == 2
    assert all(sender == ASKER for sender, _ in handler.asked)


async def test_a_handler_past_the_deadline_is_cancelled_and_the_asker_told(rig: Rig) -> None:
    handler = Handler(delay=3600)
    async with serving(rig, handler, AskLimits(deadline_s=0.5)) as server:
        reply = await ask_server_reply(rig, "think hard")
    assert reply.text == TIMED_OUT_REPLY.format(deadline=0.5)
    assert handler.cancelled == 1
    assert server.stats.asks_timed_out == 1
    assert server.stats.asks_answered == 1


async def test_asks_beyond_the_concurrency_cap_are_dropped_as_busy(rig: Rig) -> None:
    handler = Handler(delay=1.0)
    limits = AskLimits(
        max_concurrent=1, rate=1000, burst=1000, per_peer_rate=1000, per_peer_burst=1000
    )
    async with serving(rig, handler, limits) as server:
        await post_ask(rig, ASKER_KEY, "slow")
        for _ in range(1000):  # until the slow ask is running (10 s at most)
            if handler.asked:
                break
            await asyncio.sleep(0.01)
        await post_ask(rig, ASKER_KEY, "too")
        await handled(server, 2)
    assert [text for _, text in handler.asked] == ["slow"]
    assert server.stats.dropped == {"busy": 1}
    assert server.stats.asks_answered == 1


async def test_nobody_answering_raises_a_timeout_naming_the_peer_and_the_deadline(
    rig: Rig,
) -> None:
    with pytest.raises(PeerAskTimeout, match=f"0x{SERVER.hex()} within 0.5 s"):
        await ask_server_reply(rig, "anyone?", deadline_s=0.5)


def record(inbox: Inbox, capabilities: tuple[str, ...]) -> PeerRecord:
    return PeerRecord(
        inbox.to_bytes(),
        PrivateKey(SERVER_KEY).public_key.to_bytes(),
        capabilities,
        MODEL,
        DIM,
        0,
        (),
    )


async def test_a_peer_is_found_by_address_and_must_offer_asks(rig: Rig) -> None:
    await publish_record(rig.bee, rig.batch, SERVER_KEY, record(rig.server_inbox, ("search",)))
    with pytest.raises(PeerAskError, match="does not answer asks"):
        await ask_address(
            bee=rig.bee, batch=rig.batch, node_key=ASKER_KEY, inbox=rig.asker_inbox,
            address=SERVER, text="hello", deadline_s=5,
        )  # fmt: skip
    await publish_record(
        rig.bee, rig.batch, SERVER_KEY, record(rig.server_inbox, ("search", "ask"))
    )
    async with serving(rig, Handler()):
        reply = await ask_address(
            bee=rig.bee, batch=rig.batch, node_key=ASKER_KEY, inbox=rig.asker_inbox,
            address=SERVER, text="hello", deadline_s=20,
        )  # fmt: skip
    assert reply.text == "re: hello"
    assert reply.peer == SERVER
    with pytest.raises(PeerAskError, match="published no peer record"):
        await ask_address(
            bee=rig.bee, batch=rig.batch, node_key=ASKER_KEY, inbox=rig.asker_inbox,
            address=address_of(os.urandom(32)), text="hello", deadline_s=5,
        )  # fmt: skip


async def test_addresses_are_parsed_strictly() -> None:
    assert parse_address("0x" + SERVER.hex()) == SERVER
    assert parse_address(SERVER.hex().upper()) == SERVER
    for bad in ("0x1234", "0x" + "zz" * 20, "", "0x" + "00" * 21):
        with pytest.raises(PeerAskError, match="not an address"):
            parse_address(bad)


async def ask_server(rig: Rig, text: str, deadline_s: float = 20) -> str:
    return (await ask_server_reply(rig, text, deadline_s)).text


async def test_a_rate_limited_ask_is_refused_at_once_with_a_retry_hint(rig: Rig) -> None:
    handler = Handler()
    limits = AskLimits(per_peer_rate=0.01, per_peer_burst=1)  # one ask, then one per 100 s
    async with serving(rig, handler, limits) as server:
        assert await ask_server(rig, "first") == "re: first"
        started = time.monotonic()
        with pytest.raises(PeerAskRefused, match="refused the ask: rate_limited") as refused:
            await ask_server(rig, "again", deadline_s=30)
        assert time.monotonic() - started < 10  # told, not left to wait out the deadline
        assert 90 <= refused.value.retry_after_s <= 101
        assert f"retry in {refused.value.retry_after_s} s" in str(refused.value)
        # A sender already told is not told again before its retry time: a flood of
        # asks cannot turn into a flood of stamped refusals.
        with pytest.raises(PeerAskTimeout):
            await ask_server(rig, "and again", deadline_s=1.5)
    assert [text for _, text in handler.asked] == ["first"]
    assert server.stats.asks_refused == 1
    assert server.stats.dropped == {"rate_limited": 2}


async def test_a_refusal_signed_by_anyone_but_the_peer_does_not_end_the_ask(rig: Rig) -> None:
    async with await rig.bee.gsoc_subscribe(rig.server_inbox.address) as peer_side:
        asking = asyncio.create_task(ask_server(rig, "are you there?"))
        ask_id = open_envelope((await peer_side.receive(10))[1:]).id
    forged = seal(Refusal(ask_id, "busy", 3600), os.urandom(32))
    await post(rig.bee, rig.batch, rig.asker_inbox, forged)
    await asyncio.sleep(0.3)
    assert not asking.done()  # a stranger cannot make us give up on the peer
    await post(rig.bee, rig.batch, rig.asker_inbox, seal(Reply(ask_id, "yes"), SERVER_KEY))
    assert await asyncio.wait_for(asking, 20) == "yes"


async def test_a_node_that_asks_and_serves_on_one_inbox_counts_no_drop_for_its_replies(
    rig: Rig,
) -> None:
    """The asker runs its own server on its inbox, as `noosphere node` does: the reply
    reaches the asking side and the asker's server counts it as mail for the asker."""
    asker_server = KnowledgeServer(
        bee=rig.bee, batch=rig.batch, node_key=ASKER_KEY, inbox=rig.asker_inbox,
        index=rig.index, model=MODEL, answer_ask=Handler(),
    )  # fmt: skip
    async with running(asker_server):
        async with serving(rig, Handler()):
            assert await ask_server(rig, "both ways?") == "re: both ways?"
        await handled(asker_server, 1)
    assert asker_server.stats.for_asker == 1
    assert not asker_server.stats.dropped
    assert asker_server.stats.asks_answered == 0


# EIP-55's published examples (https://eips.ethereum.org/EIPS/eip-55)
EIP55 = (
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
)


async def test_mixed_case_addresses_must_carry_a_valid_eip55_checksum() -> None:
    for good in EIP55:
        assert checksummed(bytes.fromhex(good[2:])) == good
        assert parse_address(good) == bytes.fromhex(good[2:])
        assert parse_address(good.lower()) == parse_address(good.upper()[2:])
        at = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
        typo = good[:at] + good[at].swapcase() + good[at + 1 :]  # one letter's case flipped
        with pytest.raises(PeerAskError, match="EIP-55 checksum"):
            parse_address(typo)
    with pytest.raises(PeerAskError, match="not an address"):
        parse_address("0x" + "ab " * 20)
