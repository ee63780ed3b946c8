"""Where the packages' errors meet the user: `translated` turns `SwarmError`,
`PeerAskError`, `VectorDBError` and `ChainError` into `ServiceError` naming what
failed; the agent's own errors pass through as they are.

    with translated("search"):
        hits = await index_search(...)  # a VectorDBError leaves as ServiceError
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agent.errors import NoosphereError, PeerRefusedError, ServiceError


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Errors of the packages below the agent, as `ServiceError` naming `what` failed."""
    from chain.errors import ChainError
    from swarm_vectordb.bee.errors import SwarmError
    from swarm_vectordb.errors import PeerAskError, PeerAskRefused, VectorDBError

    try:
        yield
    except BaseExceptionGroup as group:  # from a TaskGroup: report the first failure
        first = first_error(group)
        if not isinstance(first, Exception):
            raise
        with translated(what):
            raise first from None
    except NoosphereError:
        raise
    except SwarmError as exc:
        raise ServiceError(f"{what}: Swarm: {exc}") from None
    except PeerAskRefused as exc:
        raise PeerRefusedError(f"{what}: {exc}", exc.retry_after_s) from None
    except PeerAskError as exc:
        raise ServiceError(f"{what}: {exc}") from None
    except VectorDBError as exc:
        raise ServiceError(f"{what}: knowledge base: {exc}") from None
    except ChainError as exc:
        raise ServiceError(f"{what}: chain: {exc}") from None


def first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of a (nested) exception group."""
    first = group.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first
