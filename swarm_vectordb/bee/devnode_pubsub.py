"""Websocket fan-out for the dev node's GSOC and PSS subscriptions.

A ``SubscriberHub`` maps a channel (``("gsoc", address)`` or ``("pss",
topic)``) to the websockets listening on it. Publishing never waits: each
subscriber has a bounded queue and its own pump task that sends frames with a
timeout. A subscriber whose queue overflows, or whose socket does not take a
frame within ``send_timeout``, is dropped (its connection closed) and counted
in ``evicted``: one client that stops reading cannot stall uploads, eat memory
or take the node down.

The number of open subscriptions is capped (``max_subscribers`` over all
channels): past it a new subscription is refused before the websocket
handshake with 503 and Bee's JSON error body, and counted in ``refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from swarm_vectordb.bee.devnode_http import ApiError

__all__ = ["Channel", "SubscriberHub"]

log = logging.getLogger(__name__)

Channel = tuple[str, bytes]
"""``("gsoc", soc_address)`` or ``("pss", topic)``."""


class _Subscriber:
    def __init__(self, queue_size: int) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self.pump: asyncio.Task[None] | None = None


class SubscriberHub:
    """Subscribers per channel; see the module docstring."""

    def __init__(
        self, *, queue_size: int = 256, send_timeout: float = 5.0, max_subscribers: int = 1024
    ) -> None:
        self._queue_size = queue_size
        self._send_timeout = send_timeout
        self._max_subscribers = max_subscribers
        self._channels: dict[Channel, set[_Subscriber]] = {}
        self._open = 0  # websockets being served, handshakes included
        self._closing = False
        self.evicted = 0
        """Subscribers dropped for falling behind."""
        self.refused = 0
        """Subscriptions refused because ``max_subscribers`` were open."""

    @property
    def open_count(self) -> int:
        """Websocket subscriptions being served now, over all channels."""
        return self._open

    def subscriber_count(self, channel: Channel) -> int:
        return len(self._channels.get(channel, ()))

    def publish(self, channel: Channel, frame: bytes) -> int:
        """Queue ``frame`` for every subscriber of ``channel``; how many got it."""
        delivered = 0
        for subscriber in list(self._channels.get(channel, ())):
            try:
                subscriber.queue.put_nowait(frame)
                delivered += 1
            except asyncio.QueueFull:
                self._evict(subscriber, "queue full")
        return delivered

    def _evict(self, subscriber: _Subscriber, why: str) -> None:
        if subscriber.pump is not None and not subscriber.pump.done():
            self.evicted += 1
            log.info("dropping a slow subscriber: %s", why)
            subscriber.pump.cancel()

    def close_all(self) -> None:
        """End every subscription (node shutdown)."""
        self._closing = True
        for subscribers in self._channels.values():
            for subscriber in subscribers:
                if subscriber.pump is not None:
                    subscriber.pump.cancel()

    async def serve(self, request: web.Request, channel: Channel) -> web.WebSocketResponse:
        """Handle one subscription websocket until either side ends it (503 when full)."""
        if self._open >= self._max_subscribers:
            self.refused += 1
            raise ApiError(
                503, f"too many websocket subscriptions: {self._max_subscribers} are open"
            )
        self._open += 1
        try:
            return await self._serve(request, channel)
        finally:
            self._open -= 1

    async def _serve(self, request: web.Request, channel: Channel) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, timeout=1.0, max_msg_size=4096)
        await ws.prepare(request)
        if self._closing:
            await ws.close(code=WSCloseCode.GOING_AWAY)
            return ws
        subscriber = _Subscriber(self._queue_size)
        subscriber.pump = asyncio.create_task(self._pump(subscriber, ws))
        reader = asyncio.create_task(self._read(ws))
        self._channels.setdefault(channel, set()).add(subscriber)
        try:
            await asyncio.wait({subscriber.pump, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            subscribers = self._channels.get(channel, set())
            subscribers.discard(subscriber)
            if not subscribers:
                self._channels.pop(channel, None)
            for task in (subscriber.pump, reader):
                task.cancel()
            for task in (subscriber.pump, reader):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._close(request, ws)
        return ws

    async def _pump(self, subscriber: _Subscriber, ws: web.WebSocketResponse) -> None:
        while True:
            frame = await subscriber.queue.get()
            try:
                async with asyncio.timeout(self._send_timeout):
                    await ws.send_bytes(frame)
            except TimeoutError:
                self.evicted += 1
                log.info("dropping a subscriber that took no frame for %s s", self._send_timeout)
                return
            except ConnectionError:
                return

    @staticmethod
    async def _read(ws: web.WebSocketResponse) -> None:
        async for message in ws:  # subscribers have nothing to say; drain pings and closes
            if message.type is WSMsgType.ERROR:
                return

    @staticmethod
    async def _close(request: web.Request, ws: web.WebSocketResponse) -> None:
        try:
            async with asyncio.timeout(1.0):
                await ws.close(code=WSCloseCode.GOING_AWAY)
        except (TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()  # a peer that reads nothing never takes the close frame
