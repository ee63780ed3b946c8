"""Steering a training run from outside: pause, stop, and the test-only dishonest variants.

`WorkerControl` is checked at every step boundary (thread-safe: training runs in a
worker thread): pause blocks there, stop raises `Stopped` there, so a run never
stops half-way through a step and its local state is always a finished step.
`Dishonesty` exists for tests only: it makes the worker corrupt one step's update
or skip one step's batch, and is refused unless the test switch is on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from trainer.errors import TrainerError

__all__ = ["Dishonesty", "Stopped", "WorkerControl"]


class Stopped(TrainerError):
    """Training stopped at a step boundary on request; the local state is saved."""


@dataclass(frozen=True)
class Dishonesty:
    """Test-only misbehaviour: corrupt one step's update, or skip one step's batch."""

    kind: str  # "corrupt" | "skip"
    step: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Dishonesty | None:
        """From NOOSPHERE_TEST_DISHONEST=corrupt:STEP|skip:STEP; refused unless the test
        switch is on: NOOSPHERE_TEST=1 or NOOSPHERE_TEST_MODE=1 (the CLI's configuration
        loader rejects the former: only NOOSPHERE_TEST_* names are left to tests)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOOSPHERE_TEST_DISHONEST")
        if not raw:
            return None
        if "1" not in (env.get("NOOSPHERE_TEST"), env.get("NOOSPHERE_TEST_MODE")):
            raise TrainerError(
                "NOOSPHERE_TEST_DISHONEST is test-only: it needs NOOSPHERE_TEST=1 "
                "(or NOOSPHERE_TEST_MODE=1)"
            )
        kind, _, step = raw.partition(":")
        if kind not in ("corrupt", "skip") or not step.isdigit():
            raise TrainerError(f"NOOSPHERE_TEST_DISHONEST={raw!r}: expected corrupt:N or skip:N")
        return cls(kind, int(step))


class WorkerControl:
    """Pause and stop requests, honoured at step boundaries (thread-safe)."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def toggle_pause(self) -> None:
        if self._running.is_set():
            self._running.clear()
        else:
            self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def boundary(self, on_pause: Callable[[], None] | None = None) -> None:
        """Block while paused; raise `Stopped` when a stop was asked for."""
        if self.paused and on_pause is not None:
            on_pause()
        while not self._running.wait(0.2):
            pass
        if self._stop.is_set():
            raise Stopped("stopped at a step boundary")
