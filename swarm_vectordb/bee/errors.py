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
    └── PssError
        ├── PssMessageTooLargeError  more message bytes than a trojan chunk carries
        └── PssUnwrapError           a trojan chunk that no given key and topic opens

HTTP and transport errors of the Bee client are added under the same root by
the modules that talk to the network.
"""

from __future__ import annotations

__all__ = [
    "ChunkAddressMismatch",
    "InvalidChunkError",
    "InvalidFeedUpdateError",
    "InvalidSocError",
    "MiningError",
    "PssError",
    "PssMessageTooLargeError",
    "PssUnwrapError",
    "SwarmError",
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
