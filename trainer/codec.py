"""Canonical msgpack for everything the trainer hashes: shards, manifests, records, state.

Canonical means one byte string per value: maps are written with their keys sorted,
binary fields as msgpack `bin`, integers in their shortest form, floats never (a
float goes in as its IEEE-754 bits). Decoding is bounded and strict: a document
must be a map with exactly the expected keys and `version`, and every field is read
through a typed accessor that says what was wrong. Whatever goes wrong is raised as
the error class the caller names, so each format keeps its own error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgpack

from trainer.errors import TrainerError

__all__ = ["Fields", "pack", "unpack"]

MAX_DOCUMENT = 256 * 1024 * 1024

T = TypeVar("T")


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v) for v in value]
    return value


def pack(document: Mapping[str, Any]) -> bytes:
    """Canonical msgpack bytes of a map (keys sorted at every depth)."""
    return bytes(msgpack.packb(_sorted(document), use_bin_type=True))


def unpack(
    data: bytes,
    *,
    what: str,
    version: int,
    keys: frozenset[str],
    error: type[TrainerError],
    max_bytes: int = MAX_DOCUMENT,
) -> Fields:
    """Decode one canonical document: exactly `keys` (plus `version`), re-encoding to itself."""
    if len(data) > max_bytes:
        raise error(f"{what}: {len(data)} bytes, more than the {max_bytes} allowed")
    try:
        document = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=10_000_000,
            max_map_len=1_000,
        )
    except Exception as exc:  # msgpack raises many types on hostile input
        raise error(f"{what}: not msgpack ({exc})") from exc
    if not isinstance(document, dict):
        raise error(f"{what}: expected a map, got {type(document).__name__}")
    expected = keys | {"version"}
    if set(document) != expected:
        missing = sorted(expected - set(document))
        extra = sorted(set(document) - expected)
        raise error(f"{what}: missing fields {missing}, unexpected fields {extra}")
    if document["version"] != version or type(document["version"]) is not int:
        raise error(f"{what}: version {document['version']!r}, this node reads {version}")
    if pack(document) != bytes(data):
        raise error(f"{what}: not in canonical form (sorted keys, shortest encodings)")
    return Fields(document, what=what, error=error)


class Fields:
    """Typed reads from a decoded map; each failure names the document and the field."""

    def __init__(self, document: dict[str, Any], *, what: str, error: type[TrainerError]) -> None:
        self._doc = document
        self._what = what
        self._error = error

    def fail(self, message: str) -> TrainerError:
        return self._error(f"{self._what}: {message}")

    def integer(self, key: str, *, low: int = 0, high: int = 2**64 - 1) -> int:
        value = self._doc[key]
        if type(value) is not int or not low <= value <= high:
            raise self.fail(f"{key} must be an integer in [{low}, {high}], got {value!r}")
        return value

    def blob(self, key: str, *, size: int | None = None) -> bytes:
        value = self._doc[key]
        if not isinstance(value, bytes) or (size is not None and len(value) != size):
            want = "bytes" if size is None else f"{size} bytes"
            raise self.fail(f"{key} must be {want}, got {type(value).__name__}")
        return value

    def text(self, key: str, *, max_len: int = 1024) -> str:
        value = self._doc[key]
        if not isinstance(value, str) or len(value) > max_len:
            raise self.fail(f"{key} must be a string of at most {max_len} characters")
        return value

    def items(self, key: str, *, max_len: int = 10_000_000) -> list[Any]:
        value = self._doc[key]
        if not isinstance(value, list) or len(value) > max_len:
            raise self.fail(f"{key} must be a list of at most {max_len} items")
        return value

    def flag(self, key: str) -> bool:
        value = self._doc[key]
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be a boolean")
        return value

    def raw(self, key: str) -> Any:
        return self._doc[key]

    def parsed(self, key: str, parse: Callable[[Any], T]) -> T:
        """The field read by `parse` (e.g. `ExecutionProfile.from_document`); the
        `ValueError` it raises on a bad value, as this document's error."""
        try:
            return parse(self._doc[key])
        except ValueError as exc:
            raise self.fail(f"{key}: {exc}") from exc
