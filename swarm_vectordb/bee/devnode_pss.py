"""Trojan-chunk mining for the dev node's ``/pss/send``, bounded in time and in threads.

Wrapping a PSS message means mining a nonce that puts the chunk's address on one
of the target prefixes: 256 tries per target byte on average, so a 3-byte prefix
costs some 16 million hashes and a caller decides how much work it asks for.
``PssMiner`` bounds that work three ways:

* its own executor of ``workers`` threads, never asyncio's shared default pool
  (which the node's disk writes use), so mining cannot starve storage;
* a request that finds every worker busy is refused at once (503), never queued;
* mining goes in slices of ``slice_attempts`` nonces, each a fresh wrap with new
  randomness; between slices the worker checks its deadline and whether the
  request or the node went away. A request therefore ends within ``time_limit``
  plus one slice, with 503 and a message naming the limit when no nonce was found.

Errors are ``ApiError`` in Bee's shape; bad input (a wrong target length, an
oversized message) stays the 400 that ``wrap_trojan``'s ``PssError`` becomes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence

from swarm_vectordb.bee.bmt import Chunk
from swarm_vectordb.bee.devnode_http import ApiError
from swarm_vectordb.bee.errors import MiningError, PssError
from swarm_vectordb.bee.pss import wrap_trojan

__all__ = ["PssMiner"]

log = logging.getLogger(__name__)


class PssMiner:
    """Mines trojan chunks off the event loop; see the module docstring."""

    def __init__(
        self, *, workers: int = 2, time_limit: float = 20.0, slice_attempts: int = 1 << 14
    ) -> None:
        if workers < 1 or time_limit <= 0 or slice_attempts < 1:
            raise ValueError("a miner needs a worker, a positive time limit and a slice")
        self.workers, self.time_limit, self.slice_attempts = workers, time_limit, slice_attempts
        self._lock = threading.Lock()
        self.busy = 0
        """Mining jobs running now (threads that have not finished, abandoned ones included)."""
        self._closing = threading.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="devnode-pss"
        )
        self.refused_busy = 0
        self.timed_out = 0

    async def wrap(
        self, topic: bytes, message: bytes, targets: Sequence[bytes], recipient: bytes | None
    ) -> Chunk:
        """The trojan chunk for ``message``; 503 when busy or out of time, 400 on bad input."""
        if self._closing.is_set():
            raise ApiError(503, "pss: the node is shutting down")
        if not self._claim():
            self.refused_busy += 1
            raise ApiError(503, f"pss: all {self.workers} mining workers are busy; try again later")
        abandoned = threading.Event()
        try:
            job = self._executor.submit(
                self._mine, topic, message, list(targets), recipient, abandoned
            )
        except RuntimeError:  # the executor is shut down
            self._release()
            raise ApiError(503, "pss: the node is shutting down") from None
        try:
            return await asyncio.wrap_future(job)
        except PssError as error:
            raise ApiError(400, f"pss: {error}") from error
        except asyncio.CancelledError:
            abandoned.set()  # the worker stops at its next slice
            raise

    def _mine(
        self,
        topic: bytes,
        message: bytes,
        targets: list[bytes],
        recipient: bytes | None,
        abandoned: threading.Event,
    ) -> Chunk:
        try:
            deadline = time.monotonic() + self.time_limit
            while not (abandoned.is_set() or self._closing.is_set()):
                try:
                    return wrap_trojan(
                        topic, message, targets, recipient, max_attempts=self.slice_attempts
                    )
                except MiningError:
                    pass
                if time.monotonic() >= deadline:
                    self.timed_out += 1
                    log.info(
                        "pss mining gave up after %s s on %d target(s)",
                        self.time_limit,
                        len(targets),
                    )
                    raise ApiError(
                        503,
                        f"pss: no chunk address on the {len(targets)} target prefix(es) "
                        f"within {self.time_limit} s; use shorter prefixes or more targets",
                    )
            raise ApiError(503, "pss: mining abandoned")
        finally:
            self._release()

    def _claim(self) -> bool:
        with self._lock:
            if self.busy >= self.workers:
                return False
            self.busy += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self.busy -= 1

    def close(self) -> None:
        """Stop every mining job at its next slice and let the threads end; idempotent."""
        self._closing.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
