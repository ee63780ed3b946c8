"""The node's local HTTP API: an aiohttp server in front of an `ApiBackend`.

`await start_api(backend, home)` listens on loopback (another address only with
`api.allow_remote`), writes `<home>/node.json` once it listens and removes it on
`aclose()`. Every route but the agent card and the OpenAPI document needs the
bearer token from `<home>/api-token` (`agent.api.discovery`).

Middleware, outermost first:

- errors: every failure leaves as an OpenAI-style JSON body (`agent.api.errors`):
  our `HttpError`s, aiohttp's own (404 unknown route, 405 method, 413 body too large)
  and anything unexpected (500, logged with its traceback, never shown to the client);
- auth: `Authorization: Bearer <token>`, compared in constant time.

Requests that use the model pass through a `ModelGate` (one at a time, a bounded
line); embeddings, search and ingest share a second gate for the embedder. The
runner cancels a handler whose client disconnects, so a generation stops when its
reader goes away, whether it was streaming, waiting in line or evaluating a prompt.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable
from importlib import metadata

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent.api import node_routes, openai_routes
from agent.api.backend import ApiBackend
from agent.api.discovery import (
    NodeAddress,
    load_or_create_token,
    remove_node_file,
    write_node_file,
)
from agent.api.errors import (
    AUTHENTICATION,
    INVALID_REQUEST,
    NOT_FOUND,
    RATE_LIMIT,
    SERVER,
    ApiSetupError,
    HttpError,
    bad_request,
    error_body,
)
from agent.api.gate import ModelGate
from agent.api.state import STATE, ApiState
from agent.config import ApiConfig
from agent.errors import ConfigError, NoosphereError, PeerRefusedError, ServiceError
from agent.home import NodeHome
from agent.llm import SamplingParams

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/.well-known/agent-card.json", "/openapi.json"})
SHUTDOWN_TIMEOUT_S = 3.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def node_version() -> str:
    try:
        return metadata.version("noosphere")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class ApiServer:
    """A listening API. Stop it with `aclose()` (idempotent)."""

    def __init__(
        self, runner: web.AppRunner, home: NodeHome, address: NodeAddress, state: ApiState
    ) -> None:
        self._runner = runner
        self._home = home
        self.address = address
        self.state = state
        self._closed = False

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def app(self) -> web.Application:
        return self._runner.app

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        remove_node_file(self._home.root, self.address)
        await self._runner.cleanup()
        log.info("API at %s stopped", self.address.url)

    async def __aenter__(self) -> ApiServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback listening address unless explicitly allowed."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ApiSetupError(
            f"refusing to serve the API on {host!r}: only loopback addresses unless "
            "api.allow_remote is set (the bearer token would travel in clear)"
        )


def build_app(state: ApiState, token: str) -> web.Application:
    app = web.Application(
        middlewares=[_error_middleware, _auth_middleware(token)],
        client_max_size=state.settings.max_body_bytes,
    )
    app[STATE] = state
    openai_routes.add_routes(app)
    node_routes.add_routes(app)
    return app


async def start_api(
    backend: ApiBackend,
    home: NodeHome,
    host: str = "127.0.0.1",
    port: int = 0,
    settings: ApiConfig | None = None,
    *,
    params: SamplingParams | None = None,
) -> ApiServer:
    """Serve the API for `backend` on `host:port` (0: a free port); see the module doc."""
    settings = settings or ApiConfig()
    check_host(host, settings.allow_remote)
    token = await asyncio.to_thread(load_or_create_token, home.root)
    state = ApiState(
        backend=backend,
        settings=settings,
        params=params or SamplingParams(),
        model_gate=ModelGate(settings.max_waiting),
        embed_gate=ModelGate(settings.max_waiting),
        version=node_version(),
        started=time.monotonic(),
    )
    runner = web.AppRunner(
        build_app(state, token),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ApiSetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    state.url = f"http://{shown}:{bound_port}"
    address = NodeAddress(state.url, os.getpid(), time.time(), state.version)
    try:
        await asyncio.to_thread(write_node_file, home.root, address)
    except OSError as exc:
        await runner.cleanup()
        raise ApiSetupError(f"cannot write {home.root}/node.json: {exc}") from None
    log.info("API listening at %s", state.url)
    return ApiServer(runner, home, address, state)


# ---------------------------------------------------------------- middleware


def _auth_middleware(token: str) -> Middleware:
    expected = token.encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise HttpError(
                401,
                "missing bearer token: send `Authorization: Bearer <token>` "
                "(the token is in the node home's api-token file)",
                type=AUTHENTICATION,
                code="missing_api_key",
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise HttpError(
                401, "invalid bearer token", type=AUTHENTICATION, code="invalid_api_key"
            )
        return await handler(request)

    return auth


_STATUS_TYPES = {401: AUTHENTICATION, 404: NOT_FOUND}
_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return _error_response(exc.status, exc.body(), exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text or exc.reason
        if exc.status == 404:
            message = f"no route {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 413:
            limit = request.app[STATE].settings.max_body_bytes
            message = f"request body larger than api.max_body_bytes ({limit} bytes)"
        body = error_body(
            message,
            type=_STATUS_TYPES.get(exc.status, INVALID_REQUEST if exc.status < 500 else SERVER),
            code=_STATUS_CODES.get(exc.status),
        )
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return _error_response(exc.status, body, headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except ConfigError as exc:  # a value the request supplied, named by the node
        return _error_response(400, bad_request(exc.problem, exc.key).body(), {})
    except PeerRefusedError as exc:  # the peer said when to come back: so do we
        body = error_body(str(exc), type=RATE_LIMIT, code="peer_refused")
        retry = {"Retry-After": str(max(1, exc.retry_after_s))}
        return _error_response(429, body, retry)
    except ServiceError as exc:  # Swarm, the index, the chain or a peer failed
        log.warning("%s %s failed: %s", request.method, request.path, exc)
        body = error_body(str(exc), type=SERVER, code="service_unavailable")
        return _error_response(503, body, {})
    except NoosphereError as exc:  # the node failed in a way its message explains
        log.warning("%s %s failed: %s", request.method, request.path, exc)
        return _error_response(500, error_body(str(exc), type=SERVER, code="node_error"), {})
    except Exception:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        body = error_body("internal error; see the node's log", type=SERVER, code="internal")
        return _error_response(500, body, {})


def _error_response(status: int, body: object, headers: dict[str, str]) -> web.Response:
    return web.json_response(body, status=status, headers=headers)
