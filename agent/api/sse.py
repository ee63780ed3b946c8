"""Server-sent events: the streaming response both the OpenAI and the node routes use.

Each event is `event: NAME` (optional) and `data: JSON`, ended by a blank line.
A write to a client that has gone raises `ConnectionResetError`; the route lets it
propagate out of the generation it is streaming (which stops it) and `finish`
turns it into a quiet end of the request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class EventStream:
    """A `text/event-stream` response. Create with `await EventStream.open(request)`."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response

    @classmethod
    async def open(cls, request: web.Request) -> EventStream:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        return cls(response)

    async def send(self, data: Any, *, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {event}\n" if event else ""
        await self.response.write(f"{head}data: {text}\n\n".encode())

    async def close(self) -> None:
        await self.response.write_eof()
