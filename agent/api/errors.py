"""The API's error tree and the OpenAI-shaped body every HTTP error carries.

::

    NoosphereError
    └── ApiError                 base of everything this package raises
        ├── ApiSetupError        the API cannot start: unsafe token file, non-loopback host
        └── HttpError            a request failed; carries status, type, code and param

Every error response, whatever raised it, has the body OpenAI clients parse::

    {"error": {"message": "...", "type": "invalid_request_error",
               "param": "max_tokens", "code": "invalid_value"}}
"""

from __future__ import annotations

from typing import Any

from agent.errors import NoosphereError

# OpenAI's error types, by status class.
INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_error"
SERVER = "server_error"


class ApiError(NoosphereError):
    """Base class for errors of the node's HTTP API."""


class ApiSetupError(ApiError):
    """The API refused to start; the message says what to fix."""

    exit_status = 2


class HttpError(ApiError):
    """A request that ends in an HTTP error status with an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, code=self.code, param=self.param)


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, param: str | None, code: str = "invalid_value") -> HttpError:
    """A 400 naming the offending field."""
    return HttpError(400, message, param=param, code=code)
