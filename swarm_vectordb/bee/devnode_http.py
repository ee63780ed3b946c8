"""HTTP plumbing for the dev node: Bee's JSON errors, path and header parsing, body limits.

Bee answers every failure with ``{"code": status, "message": text}`` (plus
``reasons`` for bad path or header parameters); ``ApiError`` is raised by
handlers and turned into that shape by ``error_middleware``, which also turns
any unexpected exception into a 500 instead of a dropped connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from swarm_vectordb.bee.records import BatchId, PostageBatch

__all__ = [
    "ApiError",
    "error_middleware",
    "json_error",
    "path_hex",
    "read_capped",
    "require_batch",
    "stream_capped",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DRAIN_LIMIT = 64 * 1024 * 1024  # bytes of an oversized body we read and discard to answer cleanly


class ApiError(Exception):
    """A Bee-shaped error answer."""

    def __init__(
        self, status: int, message: str, reasons: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reasons = reasons


def json_error(
    status: int, message: str, reasons: list[dict[str, str]] | None = None
) -> web.Response:
    body: dict[str, object] = {"code": status, "message": message}
    if reasons:
        body["reasons"] = reasons
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return json_error(error.status, error.message, error.reasons)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return json_error(error.status, error.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, "Internal Server Error")


def path_hex(request: web.Request, name: str, sizes: tuple[int, ...]) -> bytes:
    """Path parameter ``name`` as bytes of one of ``sizes``; 400 ``invalid path params``."""
    text = request.match_info[name]
    try:
        raw = bytes.fromhex(text[2:] if text.startswith("0x") else text)
    except ValueError:
        raw = None
    if raw is None or len(raw) not in sizes:
        want = " or ".join(str(2 * size) for size in sizes)
        raise ApiError(
            400, "invalid path params", [{"field": name, "error": f"want {want} hex characters"}]
        )
    return raw


def require_batch(request: web.Request, lookup: Callable[[bytes], PostageBatch | None]) -> BatchId:
    """The usable batch named by ``Swarm-Postage-Batch-Id``, with Bee's statuses otherwise."""
    header = "swarm-postage-batch-id"
    text = request.headers.get(header)
    if text is None:
        raise ApiError(400, "invalid header params", [{"field": header, "error": "want required:"}])
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(
            400, "invalid header params", [{"field": header, "error": "want 64 hex characters"}]
        )
    batch = lookup(raw)
    if batch is None:
        raise ApiError(404, "batch with id not found")
    if not batch.usable:
        raise ApiError(422, "batch not usable yet or does not exist")
    return BatchId(raw)


async def stream_capped(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """The request body in pieces; 413 as soon as it is known to exceed ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before any of the body is
    used. An oversized body is read and discarded (up to 64 MiB) so that the client,
    still sending, gets the 413 instead of a reset connection.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        await _drain(request)
        raise ApiError(413, f"payload too large: {declared} bytes, at most {limit}")
    total = 0
    async for piece in request.content.iter_chunked(64 * 1024):
        total += len(piece)
        if total > limit:
            await _drain(request)
            raise ApiError(413, f"payload too large: more than {limit} bytes")
        yield piece


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole request body, or 413 when it is over ``limit`` bytes, never holding more."""
    body = bytearray()
    async for piece in stream_capped(request, limit):
        body += piece
    return bytes(body)


async def _drain(request: web.Request) -> None:
    drained = 0
    async for piece in request.content.iter_chunked(64 * 1024):
        drained += len(piece)
        if drained > _DRAIN_LIMIT:
            break
