"""HTTP transport of the Bee client: one aiohttp session, timeouts, error translation.

``HttpTransport`` is where aiohttp meets the ``SwarmError`` tree: every request
runs under a deadline that covers the whole body, an error status becomes the
``BeeHttpError`` leaf for it with Bee's JSON ``message``, and aiohttp's
timeouts and connection failures become ``SwarmTimeoutError`` and
``SwarmConnectionError``. Nothing from aiohttp escapes except the open
response and websocket objects it hands to the client.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from swarm_vectordb.bee.errors import (
    SwarmConnectionError,
    SwarmError,
    SwarmTimeoutError,
    http_error,
)

__all__ = ["ClientState", "HttpTransport", "Reply"]

MAX_REPLY = 16 * 1024 * 1024
"""Most bytes of a non-streamed reply the client holds."""
PIECE = 64 * 1024
"""Bytes per piece when streaming."""


class ClientState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole (bounded) 2xx reply."""

    status: int
    headers: Mapping[str, str]
    """Case-insensitive (aiohttp's multidict)."""
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise SwarmError(f"node sent invalid JSON: {self.body[:200]!r}") from error
        if not isinstance(value, dict):
            raise SwarmError(f"node sent JSON {type(value).__name__}, expected an object")
        return value


async def _error_from(response: aiohttp.ClientResponse) -> SwarmError:
    raw = await response.content.read(64 * 1024)
    message = raw.decode("utf-8", "replace").strip() or (response.reason or "")
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message = body["message"]
    except ValueError:
        pass
    return http_error(response.status, message)


class HttpTransport:
    """One node's base URL and an aiohttp session; see the module docstring."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.state = ClientState.UNOPENED

    def open(self) -> None:
        if self.state is ClientState.CLOSED:
            raise SwarmError("client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
            )
        self.state = ClientState.OPEN

    async def aclose(self) -> None:
        self.state = ClientState.CLOSED
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None or self.state is not ClientState.OPEN:
            raise SwarmError(f"client is {self.state.value}: use `async with` or create()")
        return self._session

    @asynccontextmanager
    async def response(
        self,
        method: str,
        path: str,
        *,
        time_limit: float,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open response with a 2xx status; errors translated. The limit covers the body."""
        session = self._require_session()
        what = f"{method} {path}"
        try:
            async with asyncio.timeout(time_limit):
                async with session.request(
                    method, self.url + path, params=params, headers=headers, data=data
                ) as response:
                    if response.status >= 400:
                        raise await _error_from(response)
                    yield response
        except TimeoutError as error:
            raise SwarmTimeoutError(f"{what}: no answer within {time_limit} s") from error
        except aiohttp.ClientError as error:
            raise SwarmConnectionError(f"{what}: {error}") from error

    async def call(
        self,
        method: str,
        path: str,
        *,
        time_limit: float | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> Reply:
        """The whole reply (at most ``MAX_REPLY`` bytes) within ``time_limit`` or ``timeout``."""
        limit = self.timeout if time_limit is None else time_limit
        async with self.response(
            method, path, time_limit=limit, params=params, headers=headers, data=data
        ) as response:
            body = bytearray()
            async for piece in response.content.iter_chunked(PIECE):
                body += piece
                if len(body) > MAX_REPLY:
                    raise SwarmError(f"{method} {path}: reply larger than {MAX_REPLY} bytes")
            return Reply(response.status, response.headers, bytes(body))

    async def ws_connect(self, path: str) -> aiohttp.ClientWebSocketResponse:
        """A websocket to ``path``, opened within ``timeout``."""
        session = self._require_session()
        try:
            async with asyncio.timeout(self.timeout):
                return await session.ws_connect(self.url + path, heartbeat=30.0)
        except TimeoutError as error:
            raise SwarmTimeoutError(
                f"websocket {path}: no answer within {self.timeout} s"
            ) from error
        except aiohttp.ClientError as error:
            raise SwarmConnectionError(f"websocket {path}: {error}") from error
