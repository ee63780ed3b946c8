"""Errors of the vector database (the Swarm substrate has its own: `bee.errors`)::

VectorDBError
├── IndexInputError      wrong dimension, non-finite or non-unit vectors, bad refs
├── IndexMismatchError   an index on disk was built for another model or dimension
├── EmbedderError        the embedding model is missing or failed
├── MessageRejected      a peer message failed validation (`.reason` says which check)
└── PeerAskError         an agent-to-agent ask could not be sent or the peer cannot be asked
    ├── PeerAskTimeout   no reply within the deadline
    └── PeerAskRefused   the peer answered with a signed refusal (rate limited, busy)
"""

from __future__ import annotations


class VectorDBError(Exception):
    """Base class for vector-database errors."""


class IndexInputError(VectorDBError):
    """Bad vectors or chunk references given to the index."""


class IndexMismatchError(VectorDBError):
    """The index on disk belongs to another embedding model or dimension."""


class EmbedderError(VectorDBError):
    """The embedding model could not be loaded or run."""


class MessageRejected(VectorDBError):
    """A peer message was dropped; `reason` is a short stable code for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class PeerAskError(VectorDBError):
    """An agent-to-agent ask could not be sent, or its peer cannot be asked."""


class PeerAskTimeout(PeerAskError):
    """No reply from the peer within the deadline."""


class PeerAskRefused(PeerAskError):
    """The peer refused the ask (signed): `reason` and, when it gave one, `retry_after_s`."""

    def __init__(self, message: str, reason: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s
