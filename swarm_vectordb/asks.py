"""Agent-to-agent asks over Swarm: a question in natural language, one signed reply.

Asking (`ask_peer`, `ask_address`): seal an `Ask` naming our inbox, post it to the
peer's inbox, then read our inbox until a `Reply` arrives whose `ask_id` is our
Ask's id and whose signer is the peer we asked. Everything else on the way is
dropped and counted in `PeerReply.dropped` by reason: another signer's reply to our
id (`impostor`), replies to other asks or other kinds of messages (`unsolicited`,
`kind`), and whatever `open_envelope` refuses (`bad_signature`, `replay`, ...). No
reply within the deadline raises `PeerAskTimeout`, naming the peer and the deadline.

Answering is the serving node's (`network.KnowledgeServer`, which reads the one
inbox and dispatches by kind): it takes an `AskHandler` and `AskLimits` and calls
`answer_within` here, which runs the handler under the per-ask deadline and turns a
timeout or a failure into a short reply, so the asker always hears back.

A reply is a peer's text: untrusted. This module only carries it; the tools and the
CLI show it marked as such (`tools.ask_peer.quote_reply`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.errors import MessageRejected, PeerAskError, PeerAskTimeout
from swarm_vectordb.peers import Inbox, PeerDirectory, PeerInfo, fetch_record, post, unframe
from swarm_vectordb.protocol import (
    MAX_TEXT,
    Ask,
    DropCounter,
    PeerRecord,
    ReplayGuard,
    Reply,
    open_envelope,
    seal,
)

__all__ = [
    "ASK_CAPABILITY",
    "AskHandler",
    "AskLimits",
    "PeerAskError",
    "PeerAskTimeout",
    "PeerReply",
    "answer_within",
    "ask_address",
    "ask_peer",
    "parse_address",
    "resolve_peer",
]

log = logging.getLogger(__name__)

ASK_CAPABILITY = "ask"  # in a PeerRecord's capabilities: this node answers asks
MAX_ASK_CHARS = 8192  # longest question an Ask may carry (`protocol` refuses longer)
MAX_REPLY_CHARS = MAX_TEXT  # longest reply text; a handler's longer answer is cut
DEFAULT_ASK_DEADLINE_S = 120.0  # how long an asker waits by default
TIMED_OUT_REPLY = "This node could not answer in time (its deadline is {deadline:g} s)."
FAILED_REPLY = "This node could not answer that question (an internal error)."

AskHandler = Callable[[bytes, str], Awaitable[str]]
"""`answer_ask(sender, text) -> reply text`: the serving node's agent, for a peer."""


@dataclass(frozen=True)
class AskLimits:
    """What answering asks may cost this node; asks run a language model, so these are
    far tighter than the limits on knowledge queries."""

    per_peer_rate: float = 0.1  # asks per second from one sender (one every 10 s) ...
    per_peer_burst: float = 3.0  # ... after a burst of this many
    rate: float = 0.5  # asks per second from all senders together ...
    burst: float = 5.0  # ... after a burst of this many
    max_concurrent: int = 2  # asks answered at once; more are dropped (`busy`)
    deadline_s: float = 60.0  # the handler is cancelled past this and a short reply sent

    def __post_init__(self) -> None:
        if min(self.per_peer_rate, self.per_peer_burst, self.rate, self.burst) <= 0:
            raise ValueError("ask rates and bursts must be positive")
        if self.max_concurrent < 1 or self.deadline_s <= 0:
            raise ValueError("asks need at least one slot and a positive deadline")


@dataclass(frozen=True)
class PeerReply:
    """A peer's answer to one ask. `text` is the peer's: untrusted."""

    peer: bytes  # 20-byte address of the node that signed the reply (the one asked)
    text: str
    latency_ms: float  # from sending the ask to reading the reply
    ask_id: bytes
    dropped: DropCounter = field(default_factory=DropCounter)  # other messages read meanwhile

    @property
    def peer_hex(self) -> str:
        return "0x" + self.peer.hex()


async def ask_peer(
    *,
    bee: BeeClient,
    batch: BatchId,
    node_key: bytes,
    inbox: Inbox,
    address: bytes,
    peer_inbox: Inbox,
    text: str,
    deadline_s: float = DEFAULT_ASK_DEADLINE_S,
    max_bytes: int = 1 << 20,
) -> PeerReply:
    """Ask the peer `address` (reached at `peer_inbox`) and wait for its signed reply.

    Raises `PeerAskError` for a question that cannot be sent (empty, too long, Swarm
    refused the message) and `PeerAskTimeout` when no reply signed by `address`
    arrives within `deadline_s` (sending included).
    """
    who = "0x" + address.hex()
    if not text.strip():
        raise PeerAskError("the question is empty")
    if len(text) > MAX_ASK_CHARS:
        raise PeerAskError(
            f"the question is too long ({len(text)} characters, at most {MAX_ASK_CHARS})"
        )
    ask_id = os.urandom(16)
    sealed = seal(Ask(text=text, reply_to=inbox.to_bytes()), node_key, msg_id=ask_id)
    dropped = DropCounter()
    guard = ReplayGuard(capacity=10_000)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_s):
            async with await bee.gsoc_subscribe(inbox.address) as subscription:
                await post(bee, batch, peer_inbox, sealed)
                log.info("asked %s (ask %s)", who, ask_id.hex()[:12])
                async for frame in subscription:
                    reply = await _read_reply(bee, frame, max_bytes, guard, ask_id, dropped)
                    if reply is None:
                        continue
                    sender, body = reply
                    if sender != address:
                        dropped["impostor"] += 1
                        log.warning(
                            "a reply to our ask to %s was signed by 0x%s", who, sender.hex()
                        )
                        continue
                    latency = (time.perf_counter() - started) * 1000
                    return PeerReply(address, body.text, latency, ask_id, dropped)
    except TimeoutError:
        raise PeerAskTimeout(
            f"no reply from {who} within {deadline_s:g} s (it may be offline, busy, or "
            "limiting how often you may ask it: see its limits.ask_* settings)"
            + (f" (dropped meanwhile: {dict(dropped)})" if dropped else "")
        ) from None
    except SwarmError as exc:
        raise PeerAskError(f"could not ask {who}: {exc}") from None
    raise PeerAskError(f"our inbox closed while waiting for {who}")


async def _read_reply(
    bee: BeeClient,
    frame: bytes,
    max_bytes: int,
    guard: ReplayGuard,
    ask_id: bytes,
    dropped: DropCounter,
) -> tuple[bytes, Reply] | None:
    """(signer, reply) when `frame` is a valid reply to `ask_id`; None (counted) if not."""
    try:
        envelope = open_envelope(
            await unframe(bee, frame, max_bytes),
            replay=guard,
            max_bytes=max_bytes,
            kinds=frozenset({"reply"}),
        )
    except MessageRejected as exc:
        dropped.record(exc)
        return None
    body = envelope.body
    if not isinstance(body, Reply) or body.ask_id != ask_id:
        dropped["unsolicited"] += 1
        return None
    return bytes(envelope.sender), body


async def resolve_peer(
    bee: BeeClient,
    address: bytes,
    *,
    max_bytes: int,
    directory: PeerDirectory | None = None,
    timeout_s: float = 30.0,
) -> PeerInfo:
    """The peer's verified record (from `directory`, else its feed) if it takes asks."""
    who = "0x" + address.hex()
    peer = directory.peers.get(address) if directory is not None else None
    if peer is None:
        try:
            async with asyncio.timeout(timeout_s):
                envelope = await fetch_record(bee, address, max_bytes=max_bytes)
        except TimeoutError:
            raise PeerAskError(f"reading {who}'s peer record took over {timeout_s:g} s") from None
        except MessageRejected as exc:
            raise PeerAskError(f"{who} has no usable peer record ({exc})") from None
        if envelope is None or not isinstance(envelope.body, PeerRecord):
            raise PeerAskError(f"{who} has published no peer record")
        peer = PeerInfo(address, envelope.body, envelope.ts)
    if ASK_CAPABILITY not in peer.record.capabilities:
        offered = ", ".join(peer.record.capabilities) or "nothing"
        raise PeerAskError(f"{who} does not answer asks (it offers: {offered})")
    return peer


async def ask_address(
    *,
    bee: BeeClient,
    batch: BatchId,
    node_key: bytes,
    inbox: Inbox,
    address: bytes,
    text: str,
    deadline_s: float = DEFAULT_ASK_DEADLINE_S,
    max_bytes: int = 1 << 20,
    directory: PeerDirectory | None = None,
) -> PeerReply:
    """`ask_peer` for a peer known only by its address: its record says where its inbox is."""
    peer = await resolve_peer(bee, address, max_bytes=max_bytes, directory=directory)
    return await ask_peer(
        bee=bee,
        batch=batch,
        node_key=node_key,
        inbox=inbox,
        address=address,
        peer_inbox=peer.inbox,
        text=text,
        deadline_s=deadline_s,
        max_bytes=max_bytes,
    )


def parse_address(text: str) -> bytes:
    """A 20-byte address from `0x` and 40 hex digits; `PeerAskError` otherwise."""
    digits = text.strip()
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    try:
        address = bytes.fromhex(digits)
    except ValueError:
        address = b""
    if len(address) != 20:
        raise PeerAskError(f"{text[:60]!r} is not an address (0x and 40 hex digits)")
    return address


async def answer_within(
    handler: AskHandler, sender: bytes, text: str, deadline_s: float
) -> tuple[str, bool]:
    """(reply text, whether it timed out): the handler's answer, cut to fit a `Reply`.

    Past `deadline_s` the handler is cancelled and the reply says so; a handler that
    fails gets a short reply naming no detail (the asker is a stranger).
    """
    try:
        async with asyncio.timeout(deadline_s):
            answer = await handler(sender, text)
    except TimeoutError:
        log.info("the ask from 0x%s ran past %g s: cancelled", sender.hex(), deadline_s)
        return TIMED_OUT_REPLY.format(deadline=deadline_s), True
    except Exception:
        log.warning("answering an ask from 0x%s failed", sender.hex(), exc_info=True)
        return FAILED_REPLY, False
    answer = answer.strip() or "(no answer)"
    if len(answer) > MAX_REPLY_CHARS:
        answer = answer[: MAX_REPLY_CHARS - 6] + " [...]"
    return answer, False
