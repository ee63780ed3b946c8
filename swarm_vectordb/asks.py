"""Agent-to-agent asks over Swarm: a question in natural language, one signed reply.

Asking (`ask_peer`, `ask_address`): seal an `Ask` naming our inbox, post it to the
peer's inbox, then read our inbox until a `Reply` arrives whose `ask_id` is our
Ask's id and whose signer is the peer we asked. Everything else on the way is
dropped and counted in `PeerReply.dropped` by reason: another signer's reply to our
id (`impostor`), replies to other asks or other kinds of messages (`unsolicited`,
`kind`), and whatever `open_envelope` refuses (`bad_signature`, `replay`, ...). No
reply within the deadline raises `PeerAskTimeout`, naming the peer and the deadline;
a signed `Refusal` from the peer (it is rate limiting us, or busy) raises
`PeerAskRefused` at once, with the peer's retry hint.

Answering is the serving node's (`network.KnowledgeServer`, which reads the one
inbox and dispatches by kind): it takes an `AskHandler` and `AskLimits` and calls
`answer_within` here, which runs the handler under the per-ask deadline and turns a
timeout or a failure into a short reply, so the asker always hears back. An ask
turned away by a limit gets a signed `Refusal` instead, within the bounds
`RefusalThrottle` keeps: a refusal costs postage too, so a sender hears at most one
per retry period and all senders together at most `AskLimits.refusal_rate`.

A reply is a peer's text: untrusted. This module only carries it; the tools and the
CLI show it marked as such (`tools.ask_peer.quote_reply`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import string
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from Crypto.Hash import keccak

from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.errors import MessageRejected, PeerAskError, PeerAskRefused, PeerAskTimeout
from swarm_vectordb.peers import Inbox, PeerDirectory, PeerInfo, fetch_record, post, unframe
from swarm_vectordb.protocol import (
    MAX_RETRY_AFTER_S,
    MAX_TEXT,
    Ask,
    DropCounter,
    PeerRecord,
    Refusal,
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
    "PeerAskRefused",
    "PeerAskTimeout",
    "PeerReply",
    "RefusalThrottle",
    "answer_within",
    "ask_address",
    "ask_peer",
    "checksummed",
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
REFUSAL_TEXT = {
    "rate_limited": "it limits how often one node may ask it",
    "busy": "it is answering as many asks as it takes",
}

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
    refusal_rate: float = 1.0  # signed refusals per second to all senders together ...
    refusal_burst: float = 5.0  # ... after a burst of this many (one per sender per period)

    def __post_init__(self) -> None:
        rates = (self.per_peer_rate, self.per_peer_burst, self.rate, self.burst)
        if min(*rates, self.refusal_rate, self.refusal_burst) <= 0:
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
                    if isinstance(body, Refusal):
                        raise _refused(who, body)
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


def _refused(who: str, refusal: Refusal) -> PeerAskRefused:
    why = REFUSAL_TEXT.get(refusal.reason, refusal.reason)
    retry = f"; retry in {refusal.retry_after_s} s" if refusal.retry_after_s else ""
    return PeerAskRefused(
        f"{who} refused the ask: {refusal.reason} ({why}){retry}",
        refusal.reason,
        refusal.retry_after_s,
    )


async def _read_reply(
    bee: BeeClient,
    frame: bytes,
    max_bytes: int,
    guard: ReplayGuard,
    ask_id: bytes,
    dropped: DropCounter,
) -> tuple[bytes, Reply | Refusal] | None:
    """(signer, reply or refusal) when `frame` answers `ask_id`; None (counted) if not."""
    try:
        envelope = open_envelope(
            await unframe(bee, frame, max_bytes),
            replay=guard,
            max_bytes=max_bytes,
            kinds=frozenset({"reply", "refusal"}),
        )
    except MessageRejected as exc:
        dropped.record(exc)
        return None
    body = envelope.body
    if not isinstance(body, Reply | Refusal) or body.ask_id != ask_id:
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
    """A 20-byte address from 40 hex digits (`0x` optional); `PeerAskError` otherwise.

    As in Ethereum wallets, digits in one case are taken as they are, while mixed case
    is an EIP-55 checksum and must match: a mistyped address is refused, not asked.
    """
    digits = text.strip()
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    address = b""
    if len(digits) == 40 and all(c in string.hexdigits for c in digits):
        address = bytes.fromhex(digits)
    if len(address) != 20:
        raise PeerAskError(f"{text[:60]!r} is not an address (0x and 40 hex digits)")
    if digits not in (digits.lower(), digits.upper()) and digits != checksummed(address)[2:]:
        raise PeerAskError(
            f"{text[:60]!r} fails its EIP-55 checksum (mixed case): a mistyped address? "
            f"Send it in one case to skip the check"
        )
    return address


def checksummed(address: bytes) -> str:
    """The EIP-55 form of a 20-byte address: `0x` and hex digits, upper case where the
    keccak of the lower-case hex has a nibble of 8 or more."""
    lower = address.hex()
    nibbles = keccak.new(data=lower.encode(), digest_bits=256).hexdigest()
    return "0x" + "".join(
        c.upper() if int(n, 16) >= 8 else c for c, n in zip(lower, nibbles[:40], strict=True)
    )


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


class RefusalThrottle:
    """Whether a turned-away ask gets a signed `Refusal`: at most one per sender until
    the retry time it was told, and at most `rate` per second (`burst` saved up) to
    everyone together. Remembers at most `max_senders` senders (oldest forgotten)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_senders: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._stamp = burst, clock()
        self._quiet_until: OrderedDict[bytes, float] = OrderedDict()
        self._max_senders = max_senders

    def allow(self, sender: bytes, retry_after_s: int) -> bool:
        """True (and remembered) if `sender` may be sent a refusal now."""
        now = self._clock()
        if self._quiet_until.get(sender, 0.0) > now:
            return False
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        self._quiet_until.pop(sender, None)
        self._quiet_until[sender] = now + max(retry_after_s, 1)
        while len(self._quiet_until) > self._max_senders:
            self._quiet_until.popitem(last=False)
        return True


def retry_hint(seconds: float) -> int:
    """Whole seconds to wait, rounded up, within what a `Refusal` may carry."""
    if not math.isfinite(seconds) or seconds <= 0:
        return 0
    return min(math.ceil(seconds), MAX_RETRY_AFTER_S)
