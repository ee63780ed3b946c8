"""One request at a time on the model, with a bounded line of waiting requests.

llama.cpp runs one generation at a time anyway (`agent.llm` has one worker
thread); the gate makes the wait explicit and bounded: at most `max_waiting`
requests queue behind the running one, in arrival order, and any beyond that are
turned away at once with a 429 and a `Retry-After`, instead of piling up.
A waiting request whose client goes away is cancelled and leaves the line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent.api.errors import RATE_LIMIT, HttpError

log = logging.getLogger(__name__)


class ModelGate:
    """An asyncio lock with a cap on how many may wait for it."""

    def __init__(self, max_waiting: int, *, retry_after_s: int = 2) -> None:
        if max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._lock = asyncio.Lock()
        self._waiting = 0
        self.turned_away = 0  # requests refused since start (for status and tests)

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold the model for the body of the `async with`, or raise a 429."""
        if self._lock.locked() and self._waiting >= self.max_waiting:
            self.turned_away += 1
            raise HttpError(
                429,
                f"the model is busy and {self._waiting} request(s) are already waiting; "
                "try again shortly",
                type=RATE_LIMIT,
                code="model_busy",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()
