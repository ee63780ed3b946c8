"""A small client of a running node's API, on the standard library only.

The CLI's thin commands (`search`, `ask`, `ingest`, `chat`) use it to reach a node
that already has everything loaded, and fall back to doing the work in-process when
`NodeClient.discover(home)` finds none. It imports neither aiohttp nor anything
heavy, so a command that finds a node answers in the time of one HTTP request.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.api.discovery import pid_alive, read_node_file, read_token, token_path
from agent.api.errors import ApiError

log = logging.getLogger(__name__)

DISCOVER_TIMEOUT_S = 0.5
REQUEST_TIMEOUT_S = 60.0
ASK_TIMEOUT_S = 600.0  # per socket read: a streamed answer resets it with every event


class NodeApiError(ApiError):
    """The node answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NodeClient:
    """Talks to one node's API. Usually made by `discover`."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"not an http://host:port URL: {url!r}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port
        self._token = token

    @classmethod
    def discover(cls, home: Path) -> NodeClient | None:
        """The node running for `home`, or None when none answers within 0.5 s."""
        address = read_node_file(home)
        if address is None or not token_path(home).exists():
            return None
        if address.pid != os.getpid() and not pid_alive(address.pid):
            log.debug("node.json names pid %d, which is not running", address.pid)
            return None
        try:
            client = cls(address.url, read_token(token_path(home)))
            client.status(timeout=DISCOVER_TIMEOUT_S)
        except (ValueError, ApiError, OSError) as exc:
            log.debug("no node answers at %s: %s", address.url, exc)
            return None
        return client

    # ------------------------------------------------------------ routes

    def status(self, *, timeout: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        return self._json("GET", "/api/status", None, timeout)

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        network: bool = False,
        fan_out: int | None = None,
        deadline_s: float | None = None,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "k": k, "network": network}
        if fan_out is not None:
            body["fan_out"] = fan_out
        if deadline_s is not None:
            body["deadline_s"] = deadline_s
        return self._json("POST", "/api/search", body, timeout)

    def peer_ask(
        self, address: str, question: str, *, timeout: float = ASK_TIMEOUT_S
    ) -> dict[str, Any]:
        """Another node's signed reply, through this node: {peer, text, latency_ms}."""
        body = {"address": address, "question": question}
        return self._json("POST", "/api/peer-ask", body, timeout)

    def ingest_paths(self, paths: list[Path], *, timeout: float = ASK_TIMEOUT_S) -> dict[str, Any]:
        body = {"paths": [str(Path(p).expanduser().absolute()) for p in paths]}
        return self._json("POST", "/api/ingest", body, timeout)

    def ingest_text(
        self, name: str, text: str, *, timeout: float = ASK_TIMEOUT_S
    ) -> dict[str, Any]:
        return self._json("POST", "/api/ingest", {"name": name, "text": text}, timeout)

    def ask(
        self,
        question: str,
        *,
        network: bool = False,
        model: str | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        body = _ask_body(question, network, model, stream=False, history=history)
        return self._json("POST", "/api/ask", body, ASK_TIMEOUT_S)

    def ask_stream(
        self,
        question: str,
        *,
        network: bool = False,
        model: str | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """(event, data) pairs: `token`, `tool_call`, `tool_result`, `notice`, then `report`.

        Closing the iterator early closes the connection, which stops the node's turn.
        A stream that ends before its `report` (the node stopped or crashed) raises
        `NodeApiError`: a cut answer never passes for a whole one.
        """
        body = _ask_body(question, network, model, stream=True, history=history)
        connection, response = self._send("POST", "/api/ask", body, ASK_TIMEOUT_S)
        try:
            if response.status != 200:
                raise _error(response)
            last = ""
            for last, data in _events(response):
                yield last, data
        except (OSError, http.client.HTTPException) as exc:
            raise self._lost("in the middle of its answer", exc, ASK_TIMEOUT_S) from None
        finally:
            connection.close()
        if last != "report":  # the connection closed cleanly, but mid-stream
            raise self._lost("in the middle of its answer")

    # ------------------------------------------------------------ plumbing

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=data, headers=headers)
        except OSError as exc:
            connection.close()
            raise NodeApiError(f"cannot reach the node at {self.url}: {exc}") from None
        try:
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self._lost("before answering", exc, timeout) from None

    def _json(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> dict[str, Any]:
        connection, response = self._send(method, path, body, timeout)
        try:
            if response.status != 200:
                raise _error(response)
            value = json.loads(response.read())
        except (OSError, http.client.HTTPException) as exc:
            raise self._lost("in the middle of its answer", exc, timeout) from None
        except ValueError as exc:
            raise NodeApiError(f"bad answer from the node at {self.url}: {exc}") from None
        finally:
            connection.close()
        if not isinstance(value, dict):
            raise NodeApiError(f"bad answer from the node at {self.url}: not an object")
        return value

    def _lost(self, when: str, exc: Exception | None = None, timeout: float = 0.0) -> NodeApiError:
        """The error for a node that stopped talking after taking the request: it timed
        out, or it closed the connection (it stopped or crashed)."""
        if isinstance(exc, TimeoutError):
            return NodeApiError(f"the node at {self.url} did not answer within {timeout:g} s")
        log.debug("the connection to %s ended %s: %r", self.url, when, exc)
        return NodeApiError(f"the node at {self.url} went away {when}: did it stop?")


def _ask_body(
    question: str,
    network: bool,
    model: str | None,
    *,
    stream: bool,
    history: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question, "network": network, "stream": stream}
    if history:
        body["history"] = history
    if model is not None:
        body["model"] = model
    return body


def _error(response: http.client.HTTPResponse) -> NodeApiError:
    try:
        error = json.loads(response.read())["error"]
        return NodeApiError(
            f"the node refused: {error['message']}", status=response.status, code=error.get("code")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return NodeApiError(f"the node answered HTTP {response.status}", status=response.status)


def _events(response: http.client.HTTPResponse) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse server-sent events: `event:` and `data:` lines, a blank line ends one."""
    event, data = "message", []
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            payload = json.loads("\n".join(data))
            if event == "error":
                raise NodeApiError(f"the node failed: {payload['error']['message']}")
            yield event, payload
            event, data = "message", []
