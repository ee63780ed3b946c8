"""Distributed search over Swarm: the asking side and the serving side.

Asking (`network_search`): embed once, pick peers (all, or the `fan_out` whose
summaries are closest), send each a signed `Query` naming our inbox, then collect
`Answer`s from our inbox until every asked peer has answered or the deadline passes.
Late, unsolicited, unsigned or malformed messages are dropped and counted. Every hit
is verified against its Swarm reference and a lying peer's answer is dropped whole;
the rest are merged by score (`routing.merge_answers`). The result says which peers
answered and how long each took.

Serving (`KnowledgeServer`): read our inbox, validate each message, answer `Query`s
from the local index and, when given an `answer_ask` handler, `Ask`s with the node's
agent (`swarm_vectordb.asks`), and log what was served. `stop()` stops reading; `serve()`
then returns once the answers in flight are sent. Answering spends our postage and
CPU on behalf of strangers, and keys are free, so every limit that matters holds
across all senders, not per key:

- `allow`: when given, only these addresses are answered (`not_allowed`);
- a token bucket per sender (`rate_limited`) and one over all senders together
  (`busy`), both checked before the index is searched; asks have their own pair
  (`AskLimits`, far tighter: an ask runs the language model), a cap on asks running
  at once (`busy`) and a deadline past which the handler is cancelled and a short
  "timed out" reply is sent; an ask turned away by a rate or the cap still counts
  as dropped, and its sender is told with a signed `Refusal` carrying a retry hint
  (at most one per sender per retry period, `asks.RefusalThrottle`);
- a `PostageBudget`: the chunks answers may stamp in a sliding window (an hour by
  default). An answer that does not fit is not sent (`budget`); the first refusal
  of a window is logged as a warning, the rest are only counted.

Every drop is counted by reason in `ServeStats.dropped`. A node that also asks reads
its answers and replies from the same inbox: the server checks them like any message
and leaves them to the asking side (`ServeStats.for_asker`), never counting them as
drops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from swarm_vectordb.asks import AskHandler, AskLimits, RefusalThrottle, answer_within, retry_hint
from swarm_vectordb.bee.bmt import CHUNK_SIZE
from swarm_vectordb.bee.client import BeeClient
from swarm_vectordb.bee.errors import SwarmError
from swarm_vectordb.bee.records import BatchId
from swarm_vectordb.bee.subscription import Subscription
from swarm_vectordb.errors import MessageRejected
from swarm_vectordb.index import VectorIndex
from swarm_vectordb.peers import Inbox, PeerInfo, post, unframe
from swarm_vectordb.protocol import (
    Answer,
    Ask,
    DropCounter,
    Envelope,
    Hit,
    Query,
    Refusal,
    ReplayGuard,
    Reply,
    check_query,
    open_envelope,
    seal,
)
from swarm_vectordb.routing import merge_answers, route

log = logging.getLogger(__name__)


@dataclass
class PeerOutcome:
    answered: bool = False
    latency_ms: float | None = None
    hits: int = 0
    dropped: str | None = None  # why its answer was not used


@dataclass
class NetworkResult:
    hits: list[tuple[bytes, Hit]]
    peers: dict[bytes, PeerOutcome]
    dropped: DropCounter = field(default_factory=DropCounter)
    elapsed_ms: float = 0.0


async def network_search(
    *,
    bee: BeeClient,
    batch: BatchId,
    node_key: bytes,
    inbox: Inbox,
    peers: Sequence[PeerInfo],
    vector: npt.NDArray[np.float32],
    model: str,
    k: int,
    fan_out: int | None,
    deadline_s: float,
    max_bytes: int,
) -> NetworkResult:
    """Ask `peers` (or the best `fan_out` of them) and merge verified answers."""
    started = time.perf_counter()
    by_address = {p.address: p for p in peers}
    chosen = [by_address[s.peer] for s in route(vector, [p.summary() for p in peers], fan_out)]
    query = Query(
        embedding=vector.astype("<f4").tobytes(),
        model=model,
        k=k,
        reply_to=inbox.to_bytes(),
        filters={},
    )
    sealed = seal(query, node_key)
    query_id = open_envelope(sealed).id
    outcomes = {p.address: PeerOutcome() for p in chosen}
    answers: dict[bytes, tuple[Hit, ...]] = {}
    result = NetworkResult(hits=[], peers=outcomes)
    guard = ReplayGuard()

    async with await bee.gsoc_subscribe(inbox.address) as subscription:
        sent = await asyncio.gather(
            *(post(bee, batch, p.inbox, sealed) for p in chosen), return_exceptions=True
        )
        for peer, status in zip(chosen, sent, strict=True):
            if isinstance(status, BaseException):
                outcomes[peer.address].dropped = f"send failed: {status}"
        waiting = {p.address for p, s in zip(chosen, sent, strict=True) if s is None}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s):
                async for frame in subscription:
                    try:
                        envelope = open_envelope(
                            await unframe(bee, frame, max_bytes),
                            replay=guard,
                            max_bytes=max_bytes,
                            kinds=frozenset({"answer"}),
                        )
                    except MessageRejected as exc:
                        result.dropped.record(exc)
                        continue
                    body = envelope.body
                    if not isinstance(body, Answer) or body.query_id != query_id:
                        result.dropped["unsolicited"] += 1
                        continue
                    if envelope.sender not in waiting:
                        result.dropped["unsolicited"] += 1
                        continue
                    waiting.discard(envelope.sender)
                    peer_outcome = outcomes[envelope.sender]
                    peer_outcome.answered = True
                    peer_outcome.latency_ms = (time.perf_counter() - started) * 1000
                    peer_outcome.hits = len(body.hits)
                    answers[envelope.sender] = body.hits
                    if not waiting:
                        break
    merged = merge_answers(answers.items(), k)
    for liar, why in merged.liars.items():
        outcomes[liar].dropped = why
    result.hits = merged.hits
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    return result


FOR_ASKER = frozenset({"answer", "reply", "refusal"})  # kinds a node's asking side reads


class _TurnedAway(MessageRejected):
    """An ask a limit dropped; `retry_after_s`: when that limit may let it through."""

    def __init__(self, reason: str, retry_after_s: float, detail: str) -> None:
        super().__init__(reason, detail)
        self.retry_after_s = retry_after_s


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._stamp = burst, clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until the next token (0 when one is there)."""
        return max(0.0, (1 - self._tokens) / self.rate)


_BRANCHES = CHUNK_SIZE // 32  # references per intermediate chunk


def stamped_chunks(size: int) -> int:
    """Chunks (each needing a postage stamp) of a `size`-byte message sent with `post`.

    Inline in the GSOC chunk when it fits one; otherwise its chunk tree (leaves and
    intermediate chunks, as /bytes makes it) plus the GSOC chunk that points at it.
    """
    if size + 1 <= CHUNK_SIZE:
        return 1
    total, level = 0, math.ceil(size / CHUNK_SIZE)
    while level > 1:
        total += level
        level = math.ceil(level / _BRANCHES)
    return total + 1 + 1


class PostageBudget:
    """At most `chunks` stamped in any `window_s` seconds (a sliding window).

    Remembers one entry per spend inside the window, so its memory is bounded by
    the budget itself.
    """

    def __init__(
        self, chunks: int, window_s: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if chunks < 1 or window_s <= 0:
            raise ValueError("a postage budget needs at least one chunk and a positive window")
        self.chunks, self.window_s, self._clock = chunks, window_s, clock
        self._spent: collections.deque[tuple[float, int]] = collections.deque()
        self._in_window = 0
        self.total_spent = 0

    @property
    def spent(self) -> int:
        """Chunks spent inside the current window."""
        self._expire(self._clock())
        return self._in_window

    def try_spend(self, chunks: int) -> bool:
        """Spend `chunks` if they fit in what the window has left; False (nothing spent) if not."""
        now = self._clock()
        self._expire(now)
        if self._in_window + chunks > self.chunks:
            return False
        self._spent.append((now, chunks))
        self._in_window += chunks
        self.total_spent += chunks
        return True

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] <= now - self.window_s:
            self._in_window -= self._spent.popleft()[1]


@dataclass
class ServeStats:
    served: int = 0  # queries answered
    asks_answered: int = 0  # asks replied to (timed-out ones included)
    asks_timed_out: int = 0  # of those, replies saying the deadline passed
    asks_refused: int = 0  # asks dropped by a limit whose sender got a signed `Refusal`
    for_asker: int = 0  # answers and replies to this node's own searches and asks
    dropped: DropCounter = field(default_factory=DropCounter)

    @property
    def handled(self) -> int:
        """Messages finished either way: answered, dropped, or left to the asking side."""
        return self.served + self.asks_answered + self.for_asker + sum(self.dropped.values())


class KnowledgeServer:
    """Answers `Query` messages arriving in `inbox` from `index`. Run with `serve()`.

    Limits (see the module docstring): `max_concurrent` answers at once;
    `per_peer_rate`/`per_peer_burst` per sender and `answer_rate`/`answer_burst`
    over all senders, in answers per second; `budget` caps the chunks answers may
    stamp (None: unlimited); `allow` restricts answers to those 20-byte addresses
    (None: anyone). Messages over `max_bytes` are dropped unread. With `answer_ask`,
    `Ask`s are answered by it under `ask_limits`; without it they are dropped (`kind`).
    """

    def __init__(
        self,
        *,
        bee: BeeClient,
        batch: BatchId,
        node_key: bytes,
        inbox: Inbox,
        index: VectorIndex,
        model: str,
        max_concurrent: int = 8,
        per_peer_rate: float = 5.0,
        per_peer_burst: float = 20.0,
        answer_rate: float = 20.0,
        answer_burst: float = 40.0,
        budget: PostageBudget | None = None,
        allow: Collection[bytes] | None = None,
        max_bytes: int = 1 << 20,
        max_peers_tracked: int = 10_000,
        answer_ask: AskHandler | None = None,
        ask_limits: AskLimits | None = None,
    ) -> None:
        self._bee, self._batch, self._key, self._inbox = bee, batch, node_key, inbox
        self._index, self._model = index, model
        self._slots = asyncio.Semaphore(max_concurrent)
        self._rate, self._burst = per_peer_rate, per_peer_burst
        self._buckets: dict[bytes, TokenBucket] = {}
        self._everyone = TokenBucket(answer_rate, answer_burst)
        self.budget = budget
        self._budget_warned: float | None = None  # when the spent budget was last logged
        self._allow = None if allow is None else frozenset(bytes(a) for a in allow)
        self._max_peers = max_peers_tracked
        self._max_bytes = max_bytes
        self._guard = ReplayGuard()
        self._answer_ask = answer_ask
        self._ask_limits = ask_limits or AskLimits()
        self._ask_buckets: dict[bytes, TokenBucket] = {}
        self._ask_everyone = TokenBucket(self._ask_limits.rate, self._ask_limits.burst)
        self._asks_running = 0
        self._refusals = RefusalThrottle(
            self._ask_limits.refusal_rate, self._ask_limits.refusal_burst
        )
        served = {"query", "ask"} if answer_ask is not None else {"query"}
        self._kinds = frozenset(served | FOR_ASKER)
        self.stats = ServeStats()
        self.ready = asyncio.Event()
        self.in_flight = 0
        self._subscription: Subscription | None = None

    async def serve(self) -> None:
        """Serve until `stop()`; in-flight answers finish before this returns."""
        self._subscription = await self._bee.gsoc_subscribe(self._inbox.address)
        try:
            self.ready.set()
            async with asyncio.TaskGroup() as tasks:
                async for frame in self._subscription:
                    await self._slots.acquire()  # bounded concurrency: backpressure
                    tasks.create_task(self._handle(frame))
                log.info("inbox closed: finishing %d answer(s) in flight", self.in_flight)
        finally:
            await self._subscription.aclose()

    async def stop(self) -> None:
        """Stop reading the inbox; `serve()` returns once in-flight answers are done."""
        if self._subscription is not None:
            await self._subscription.aclose()

    async def _handle(self, frame: bytes) -> None:
        self.in_flight += 1
        try:
            envelope = open_envelope(
                await unframe(self._bee, frame, self._max_bytes),
                replay=self._guard,
                max_bytes=self._max_bytes,
                kinds=self._kinds,
            )
            body = envelope.body
            if isinstance(body, Answer | Reply | Refusal):  # our own asking side reads these
                self.stats.for_asker += 1
                log.debug("%s from 0x%s: for this node's asker", body.kind, envelope.sender.hex())
                return
            if self._allow is not None and envelope.sender not in self._allow:
                raise MessageRejected("not_allowed", envelope.sender.hex())
            if isinstance(body, Ask):
                try:
                    await self._handle_ask(envelope, body)
                except MessageRejected as exc:
                    await self._refuse(envelope, body, exc)
                    raise
                return
            assert isinstance(body, Query)  # kinds= above admits only queries and asks
            if not self._bucket(envelope.sender).take():
                raise MessageRejected("rate_limited", envelope.sender.hex())
            if not self._everyone.take():
                raise MessageRejected("busy", "answer rate over all peers reached")
            vector = check_query(body, dim=self._index.dim, model=self._model)
            reply_inbox = Inbox.from_bytes(body.reply_to)
            found = await asyncio.to_thread(self._index.search, vector, body.k)
            answer = Answer(
                envelope.id,
                tuple(Hit(h.chunk.text, h.score, h.chunk.ref, h.chunk.source) for h in found),
            )
            sealed = seal(answer, self._key)
            self._spend(stamped_chunks(len(sealed)))
            await post(self._bee, self._batch, reply_inbox, sealed)
            self.stats.served += 1
            log.info(
                "served query %s from %s: %d hit(s)",
                envelope.id.hex()[:12],
                envelope.sender.hex(),
                len(found),
            )
        except MessageRejected as exc:
            self.stats.dropped.record(exc)
            log.info("dropped a message: %s", exc)
        except SwarmError as exc:
            self.stats.dropped["reply_failed"] += 1
            log.warning("could not deliver an answer: %s", exc)
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _handle_ask(self, envelope: Envelope, ask: Ask) -> None:
        """Run the handler for one ask (limits checked first) and post the signed reply."""
        assert self._answer_ask is not None  # kinds admit asks only with a handler
        limits, sender = self._ask_limits, envelope.sender
        if self._asks_running >= limits.max_concurrent:
            raise _TurnedAway("busy", limits.deadline_s, f"{limits.max_concurrent} running")
        bucket = self._bucket(
            sender, self._ask_buckets, limits.per_peer_rate, limits.per_peer_burst
        )
        if not bucket.take():
            raise _TurnedAway("rate_limited", bucket.wait_s(), sender.hex())
        if not self._ask_everyone.take():
            raise _TurnedAway("busy", self._ask_everyone.wait_s(), "ask rate over all peers")
        if self.budget is not None and self.budget.spent >= self.budget.chunks:
            self._spend(1)  # refuses (`budget`) before the model runs, and logs it once
        reply_inbox = Inbox.from_bytes(ask.reply_to)
        log.info("ask %s from 0x%s", envelope.id.hex()[:12], sender.hex())
        self._asks_running += 1
        try:
            text, timed_out = await answer_within(
                self._answer_ask, sender, ask.text, limits.deadline_s
            )
        finally:
            self._asks_running -= 1
        sealed = seal(Reply(envelope.id, text), self._key)
        self._spend(stamped_chunks(len(sealed)))
        await post(self._bee, self._batch, reply_inbox, sealed)
        self.stats.asks_answered += 1
        self.stats.asks_timed_out += timed_out
        log.info("replied to ask %s from 0x%s", envelope.id.hex()[:12], sender.hex())

    async def _refuse(self, envelope: Envelope, ask: Ask, turned_away: MessageRejected) -> None:
        """Tell the sender of an ask a limit turned away, when the throttle allows."""
        if not isinstance(turned_away, _TurnedAway):
            return
        retry = retry_hint(turned_away.retry_after_s)
        if not self._refusals.allow(envelope.sender, retry):
            return
        sealed = seal(Refusal(envelope.id, turned_away.reason, retry), self._key)
        try:
            self._spend(stamped_chunks(len(sealed)))
            await post(self._bee, self._batch, Inbox.from_bytes(ask.reply_to), sealed)
        except (MessageRejected, SwarmError) as exc:
            log.info("no refusal sent to 0x%s: %s", envelope.sender.hex(), exc)
            return
        self.stats.asks_refused += 1
        log.info(
            "refused ask %s from 0x%s (%s, retry in %d s)",
            envelope.id.hex()[:12], envelope.sender.hex(), turned_away.reason, retry,
        )  # fmt: skip

    def _spend(self, chunks: int) -> None:
        """Take `chunks` from the postage budget, or refuse the answer (`budget`)."""
        if self.budget is None:
            return
        if self.budget.try_spend(chunks):
            return
        now = time.monotonic()
        if self._budget_warned is None or now - self._budget_warned >= self.budget.window_s:
            self._budget_warned = now
            log.warning(
                "postage budget for answers spent (%d chunk(s) per %.0f s): "
                "not answering until it frees up",
                self.budget.chunks,
                self.budget.window_s,
            )
        raise MessageRejected("budget", f"an answer of {chunks} chunk(s) does not fit")

    def _bucket(
        self,
        sender: bytes,
        buckets: dict[bytes, TokenBucket] | None = None,
        rate: float | None = None,
        burst: float | None = None,
    ) -> TokenBucket:
        """The sender's bucket in `buckets` (the query buckets by default), bounded in number."""
        buckets = self._buckets if buckets is None else buckets
        bucket = buckets.get(sender)
        if bucket is None:
            if len(buckets) >= self._max_peers:
                buckets.pop(next(iter(buckets)))
            bucket = buckets[sender] = TokenBucket(
                self._rate if rate is None else rate, self._burst if burst is None else burst
            )
        return bucket
