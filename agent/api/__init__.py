"""The node's local HTTP API: OpenAI-compatible routes, the node's own, and a client.

| module          | owns                                                              |
|-----------------|-------------------------------------------------------------------|
| `server`        | `start_api` / `ApiServer`: listening, token auth, error middleware |
| `backend`       | `ApiBackend`: the one Protocol the server needs from the node     |
| `openai_routes` | `/v1/models`, `/v1/chat/completions` (SSE), `/v1/embeddings`      |
| `chat_request`  | an OpenAI chat request checked into the LLM core's terms; stops   |
| `node_routes`   | `/api/search`, `/api/ingest`, `/api/ask` (SSE), `/api/status`     |
| `openapi`       | the OpenAPI 3.1 document served at `/openapi.json`                 |
| `agentcard`     | the A2A agent card at `/.well-known/agent-card.json`              |
| `gate`          | `ModelGate`: one request on the model, a bounded line, then 429   |
| `fields`        | reading a JSON body; typed field getters whose 400s name the field |
| `sse`           | server-sent events                                                |
| `state`         | what handlers share: backend, settings, gates                     |
| `discovery`     | `<home>/api-token`, `node.json`, the running node's `node.lock`   |
| `client`        | `NodeClient`: the CLI's thin client (standard library only)       |
| `errors`        | `ApiError` and the OpenAI-shaped error body                       |

Importing this package imports nothing heavy: `start_api`, `ApiServer` and
`ApiBackend` load aiohttp only when first used, so `agent.api.client` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.api.errors import ApiError, ApiSetupError, HttpError

if TYPE_CHECKING:
    from agent.api.backend import ApiBackend
    from agent.api.client import NodeClient
    from agent.api.server import ApiServer, start_api

__all__ = [
    "ApiBackend",
    "ApiError",
    "ApiServer",
    "ApiSetupError",
    "HttpError",
    "NodeClient",
    "start_api",
]

_LAZY = {
    "ApiBackend": "agent.api.backend",
    "ApiServer": "agent.api.server",
    "start_api": "agent.api.server",
    "NodeClient": "agent.api.client",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
