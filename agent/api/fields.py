"""Reading request bodies: one JSON object, every field checked before use.

Each getter names the field in the 400 it raises (`param`), so a client learns
exactly what was wrong; booleans never pass for numbers, NaN and infinities never
pass at all.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from agent.api.errors import HttpError, bad_request

BODY_TIMEOUT_S = 30.0


async def read_object(request: web.Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object (413 over `limit` bytes, 400 when not JSON, 415
    when the client declares another type: a form post is a mistake, not JSON)."""
    declared = request.headers.get("Content-Type")
    if declared is not None and not _is_json(request.content_type):
        raise HttpError(
            415,
            f"the body must be JSON (Content-Type: application/json), not {declared[:80]!r}",
            code="unsupported_media_type",
            param="Content-Type",
        )
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):  # a client trickling its body is cut off
            raw = await request.read()
    except TimeoutError:
        raise HttpError(
            408, f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s", code="timeout"
        ) from None
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise HttpError(400, "the body must be a JSON object", code="invalid_json")
    return value


def _is_json(mime: str) -> bool:
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def opt_int(
    body: Mapping[str, Any], name: str, *, minimum: int, maximum: int, param: str | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer", param or name, "invalid_type")
    if not minimum <= value <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}", param or name)
    return value


def opt_float(
    body: Mapping[str, Any], name: str, *, minimum: float, maximum: float
) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{name} must be a number", name, "invalid_type")
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}", name)
    return float(value)


def opt_bool(body: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false", name, "invalid_type")
    return value


def opt_str(body: Mapping[str, Any], name: str, *, max_chars: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", name, "invalid_type")
    if len(value) > max_chars:
        raise bad_request(f"{name} is longer than {max_chars} characters", name)
    return value


def req_str(body: Mapping[str, Any], name: str, *, max_chars: int) -> str:
    value = opt_str(body, name, max_chars=max_chars)
    if value is None or not value.strip():
        raise bad_request(f"{name} is required and must be a non-empty string", name)
    return value


def opt_object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{name} must be an object", name, "invalid_type")
    return value


def opt_list(body: Mapping[str, Any], name: str, *, max_items: int) -> list[Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_request(f"{name} must be an array", name, "invalid_type")
    if len(value) > max_items:
        raise bad_request(f"{name} has more than {max_items} items", name)
    return value
