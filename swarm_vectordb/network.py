"""Distributed search over Swarm: the asking side and the serving side.

Asking (`network_search`): embed once, pick peers (all, or the `fan_out` whose
summaries are closest), send each a signed `Query` naming our inbox, then collect
`Answer`s from our inbox until every asked peer has answered or the deadline passes.
Late, unsolicited, unsigned or malformed messages are dropped and counted. Every hit
is verified against its Swarm reference and a lying peer's answer is dropped whole;
the rest are merged by score (`routing.merge_answers`). The result says which peers
answered and how long each took.

Serving (`KnowledgeServer`): read our inbox, validate each message, answer `Query`s
from the local index, and log what was served. `stop()` stops reading; `serve()`
then returns once the answers in flight are sent. Answering spends our postage and
CPU on behalf of strangers, and keys are free, so every limit that matters holds
across all senders, not per key:

- `allow`: when given, only these addresses are answered (`not_allowed`);
- a token bucket per sender (`rate_limited`) and one over all senders together
  (`busy`), both checked before the index is searched;
- a `PostageBudget`: the chunks answers may stamp in a sliding window (an hour by
  default). An answer that does not fit is not sent (`budget`); the first refusal
  of a window is logged as a warning, the rest are only counted.

Every drop is counted by reason in `ServeStats.dropped`.
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
    DropCounter,
    Hit,
    Query,
    ReplayGuard,
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
    served: int = 0
    dropped: DropCounter = field(default_factory=DropCounter)

    @property
    def handled(self) -> int:
        """Messages finished either way: answered or dropped."""
        return self.served + sum(self.dropped.values())


class KnowledgeServer:
    """Answers `Query` messages arriving in `inbox` from `index`. Run with `serve()`.

    Limits (see the module docstring): `max_concurrent` answers at once;
    `per_peer_rate`/`per_peer_burst` per sender and `answer_rate`/`answer_burst`
    over all senders, in answers per second; `budget` caps the chunks answers may
    stamp (None: unlimited); `allow` restricts answers to those 20-byte addresses
    (None: anyone). Messages over `max_bytes` are dropped unread.
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
                kinds=frozenset({"query"}),
            )
            body = envelope.body
            assert isinstance(body, Query)  # kinds= above admits only queries
            if self._allow is not None and envelope.sender not in self._allow:
                raise MessageRejected("not_allowed", envelope.sender.hex())
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

    def _bucket(self, sender: bytes) -> TokenBucket:
        bucket = self._buckets.get(sender)
        if bucket is None:
            if len(self._buckets) >= self._max_peers:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[sender] = TokenBucket(self._rate, self._burst)
        return bucket
