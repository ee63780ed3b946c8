"""The one error tree of the Swarm substrate.

Every failure this package reports is a ``SwarmError``; callers that only care
that "Swarm said no" catch the root, callers that can act on a detail catch a
leaf. Foreign errors (pycryptodome, eth-keys, cryptography) are translated
where they enter and never escape as themselves.

    SwarmError
    ├── InvalidChunkError            bytes that cannot be a chunk (size, span, layout)
    │   ├── ChunkAddressMismatch     content does not hash to the address it came under
    │   └── InvalidSocError          malformed single-owner chunk, or a bad signature
    ├── InvalidFeedUpdateError       a feed update whose payload is not the expected shape
    ├── MiningError                  no GSOC key or PSS nonce found within the attempt budget
    ├── PssError
    │   ├── PssMessageTooLargeError  more message bytes than a trojan chunk carries
    │   └── PssUnwrapError           a trojan chunk that no given key and topic opens
    ├── BeeHttpError                 an error status from the node (``status``, ``message``)
    │   ├── BadRequestError          400: malformed input (hex, lengths, headers)
    │   ├── UnauthorizedError        401: Bee's answer to a SOC whose signature does not verify
    │   ├── PaymentRequiredError     402: the postage batch cannot pay (overissued, expired)
    │   ├── NotFoundError            404: no such chunk, data, feed update or batch
    │   ├── PayloadTooLargeError     413: a body over the endpoint's limit
    │   └── StampUnusableError       422: the batch exists but is not usable yet
    ├── SwarmTimeoutError            a request or subscription did not finish in time
    └── SwarmConnectionError         the node could not be reached or dropped the connection

``http_error`` picks the leaf for a status. The Bee client translates aiohttp's
exceptions into these where they enter; nothing from aiohttp escapes.
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "BeeHttpError",
    "ChunkAddressMismatch",
    "InvalidChunkError",
    "InvalidFeedUpdateError",
    "InvalidSocError",
    "MiningError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PssError",
    "PssMessageTooLargeError",
    "PssUnwrapError",
    "StampUnusableError",
    "SwarmConnectionError",
    "SwarmError",
    "SwarmTimeoutError",
    "UnauthorizedError",
    "http_error",
]


class SwarmError(Exception):
    """Root of every error raised by the Swarm substrate."""


class InvalidChunkError(SwarmError):
    """Bytes that cannot be a chunk: wrong size, span out of range, broken layout."""


class ChunkAddressMismatch(InvalidChunkError):
    """A chunk's content does not hash to the address it was fetched or announced under."""

    def __init__(self, expected: bytes, actual: bytes) -> None:
        super().__init__(f"chunk content hashes to {actual.hex()}, expected {expected.hex()}")
        self.expected = expected
        self.actual = actual


class InvalidSocError(InvalidChunkError):
    """A single-owner chunk that is malformed or whose signature does not verify."""


class InvalidFeedUpdateError(SwarmError):
    """A feed update whose wrapped payload does not have the expected layout."""


class MiningError(SwarmError):
    """No GSOC key or PSS nonce satisfied the target within the attempt budget."""


class PssError(SwarmError):
    """Base for failures building or opening PSS trojan chunks."""


class PssMessageTooLargeError(PssError):
    """The message exceeds what one trojan chunk carries (4000 bytes)."""


class PssUnwrapError(PssError):
    """A trojan chunk that none of the given keys and topics decrypts."""


class BeeHttpError(SwarmError):
    """The node answered with an error status; ``message`` is Bee's JSON ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class BadRequestError(BeeHttpError):
    """400: the node rejected malformed input."""


class UnauthorizedError(BeeHttpError):
    """401: Bee's status for a single-owner chunk whose signature does not verify."""


class PaymentRequiredError(BeeHttpError):
    """402: the postage batch cannot pay for the upload."""


class NotFoundError(BeeHttpError):
    """404: no such chunk, data, feed update or postage batch."""


class PayloadTooLargeError(BeeHttpError):
    """413: the request body is over the endpoint's limit."""


class StampUnusableError(BeeHttpError):
    """422: the postage batch exists but is not usable (yet)."""


class SwarmTimeoutError(SwarmError):
    """A request, download or subscription did not finish within its timeout."""


class SwarmConnectionError(SwarmError):
    """The node could not be reached, or it dropped the connection mid-request."""


_BY_STATUS: dict[int, type[BeeHttpError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    402: PaymentRequiredError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: StampUnusableError,
}


def http_error(status: int, message: str) -> BeeHttpError:
    """The ``BeeHttpError`` leaf for an HTTP status (the root class for unlisted ones)."""
    return _BY_STATUS.get(status, BeeHttpError)(status, message)
