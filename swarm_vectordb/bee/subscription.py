"""A reconnecting websocket subscription (GSOC and PSS) read with ``async for``.

Bee pushes one binary frame per message on ``/gsoc/subscribe/{address}`` and
``/pss/subscribe/{topic}``. ``Subscription`` owns one reader task that keeps a
websocket open, reconnecting with exponential backoff (``backoff_initial``
doubling up to ``backoff_max``) when the node closes it or goes away, and puts
frames in a bounded buffer. The consumer iterates::

    async with await bee.gsoc_subscribe(address) as inbox:
        async for message in inbox:
            ...

A consumer that falls behind never blocks the reader: when the buffer is full
the oldest message is dropped and counted in ``dropped``. Messages sent while
the socket is down are lost (Bee does not replay). The first connection is
made by ``start`` and its failure raised there; only later losses are retried.
``aclose`` cancels and awaits the reader task; iteration then ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import aiohttp

from swarm_vectordb.bee.errors import SwarmConnectionError, SwarmTimeoutError

__all__ = ["Subscription", "SubscriptionState"]

log = logging.getLogger(__name__)

Connector = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]
"""Opens a fresh websocket to the subscription endpoint (with its own timeout)."""


class SubscriptionState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


class Subscription:
    """Messages from one websocket subscription; see the module docstring."""

    def __init__(
        self,
        name: str,
        connect: Connector,
        *,
        queue_size: int = 256,
        drop_empty: bool = False,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.name = name
        self._connect = connect
        self._buffer: collections.deque[bytes] = collections.deque(maxlen=queue_size)
        self._drop_empty = drop_empty
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._wakeup = asyncio.Event()
        self._state = SubscriptionState.CONNECTING
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.dropped = 0
        """Messages discarded because the consumer was ``queue_size`` behind."""
        self.reconnects = 0
        """Times the socket was reopened after the first connection."""

    @property
    def state(self) -> SubscriptionState:
        return self._state

    @property
    def pending(self) -> int:
        """Messages received and not yet iterated."""
        return len(self._buffer)

    async def start(self) -> None:
        """Open the first connection (its errors are raised here) and start reading."""
        if self._task is not None or self._state is SubscriptionState.CLOSED:
            raise RuntimeError("subscription already started")
        self._ws = await self._connect()
        self._task = asyncio.create_task(self._run(self._ws), name=f"subscription {self.name}")

    async def aclose(self) -> None:
        """Stop reading; idempotent. Buffered messages can still be iterated."""
        self._state = SubscriptionState.CLOSED
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:  # a task cancelled before it ran never closed it
            with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                async with asyncio.timeout(2.0):
                    await ws.close()
        self._wakeup.set()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._buffer:
            if self._state is SubscriptionState.CLOSED:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._buffer.popleft()

    async def receive(self, time_limit: float) -> bytes:
        """Next message, or ``SwarmTimeoutError`` after ``time_limit`` seconds."""
        try:
            async with asyncio.timeout(time_limit):
                return await self.__anext__()
        except TimeoutError as error:
            raise SwarmTimeoutError(f"{self.name}: no message within {time_limit} s") from error
        except StopAsyncIteration as error:
            raise SwarmConnectionError(f"{self.name}: subscription is closed") from error

    def _deliver(self, data: bytes) -> None:
        if self._drop_empty and not data:
            return
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(data)
        self._wakeup.set()

    async def _run(self, ws: aiohttp.ClientWebSocketResponse | None) -> None:
        delay = self._backoff_initial
        while self._state is not SubscriptionState.CLOSED:
            if ws is None:
                try:
                    ws = self._ws = await self._connect()
                except (SwarmConnectionError, SwarmTimeoutError) as error:
                    log.debug("%s: connect failed (%s), retry in %.2f s", self.name, error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
                    continue
            async with ws:
                self._state = SubscriptionState.OPEN
                delay = self._backoff_initial
                await self._read(ws)
            ws = None
            if self._state is SubscriptionState.CLOSED:
                return
            self._state = SubscriptionState.CONNECTING
            self.reconnects += 1
            log.info("%s: websocket closed, reconnecting in %.2f s", self.name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.BINARY:
                self._deliver(bytes(message.data))
            elif message.type is aiohttp.WSMsgType.TEXT:
                self._deliver(str(message.data).encode())
            elif message.type is aiohttp.WSMsgType.ERROR:
                log.debug("%s: websocket error %s", self.name, ws.exception())
                return
