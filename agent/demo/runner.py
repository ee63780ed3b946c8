"""One demo run: the work directory, signals, the scenario, and stopping every child.

`run_demo` owns the lifecycle. SIGINT and SIGTERM cancel the scenario once (later
ones are ignored while it cleans up); whatever way the scenario ends (done, failed,
interrupted), every child process group is stopped before `run_demo` returns or
raises, and the summary records the steps that ran. A temporary work directory is
removed afterwards unless `keep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from agent.demo.errors import BadInput, DemoError
from agent.demo.processes import Supervisor
from agent.demo.scenario import DemoOptions, Scenario
from agent.demo.summary import Summary

__all__ = ["Interrupted", "check_workdir", "prepare_workdir", "run_demo"]

log = logging.getLogger(__name__)


class Interrupted(DemoError):
    """SIGINT or SIGTERM stopped the demo (every child was stopped first)."""

    exit_status = 130


def check_workdir(workdir: Path) -> None:
    """Refuse a --workdir that exists and holds anything (it is left alone)."""
    if workdir.is_dir() and any(workdir.iterdir()):
        raise BadInput(f"{workdir} is not empty: give a new or empty --workdir")


@contextlib.contextmanager
def prepare_workdir(workdir: Path | None, keep: bool) -> Iterator[Path]:
    """The given (empty or new) directory, kept; or a temporary one, removed unless `keep`."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        check_workdir(workdir)
        yield workdir.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="noosphere-demo-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


async def run_demo(options: DemoOptions, summary: Summary) -> None:
    """Play the scenario into `summary`; raises `Interrupted` or the failing step's error."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signalled: list[int] = []

    def on_signal(signum: int) -> None:
        if not signalled:
            options.say(f"\n{signal.Signals(signum).name}: stopping every process...")
            task.cancel()
        signalled.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    log_dir = options.workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(log_dir)
    scenario = Scenario(supervisor, options, summary)
    started = time.monotonic()
    try:
        await scenario.run()
        summary.ok = True
    except asyncio.CancelledError:
        if not signalled:
            raise
        raise Interrupted("interrupted; every child process was stopped") from None
    finally:
        try:
            await asyncio.shield(_close(scenario, supervisor))
        finally:
            summary.total_seconds = time.monotonic() - started
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


async def _close(scenario: Scenario, supervisor: Supervisor) -> None:
    try:
        await scenario.aclose()
    finally:
        await supervisor.aclose()
