"""Running the `noosphere` command as separate processes, and stopping every one of them.

Each child starts in its own session (so its own process group): a Ctrl-C at the
terminal reaches only the demo, which then stops the children in order. Stopping a
child signals its whole group, so grandchildren (anvil under `chain dev`) stop with
it: SIGTERM first, SIGKILL for a group still alive after the grace period.
If the demo itself dies without stopping them (SIGKILL, a crash), the kernel kills
each child too: it is started with PR_SET_PDEATHSIG (Linux), and `noosphere chain
dev` starts its anvil the same way.

One-shot commands (`run`) return their exit status and output; a non-zero status
raises `StepFailed` with the end of the child's stderr. Long-running ones (`start`)
are `Service`s whose stdout lines are collected by a reader task and can be awaited
(`wait_for`); their stderr goes to a log file under the work directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agent.demo.errors import DemoError, StepFailed

__all__ = [
    "CommandResult",
    "Node",
    "Service",
    "Supervisor",
    "die_with_parent",
    "noosphere_argv",
]

log = logging.getLogger(__name__)

KEPT = frozenset({"NOOSPHERE_ANVIL"})  # variables of ours that children still get
STOP_GRACE_S = 15.0  # SIGTERM to SIGKILL
LINE_LIMIT = 1 << 20  # longest stdout line read from a child (chain dev's JSON is ~4 KiB)
STDERR_TAIL = 1500  # characters of a failed command's stderr shown to the user


def noosphere_argv() -> list[str]:
    """How to run this installation's `noosphere` command."""
    script = Path(sys.executable).with_name("noosphere")
    if script.is_file():
        return [str(script)]
    found = shutil.which("noosphere")
    if found:
        return [found]
    return [sys.executable, "-c", "from agent.cli import main; main()"]


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGKILL the child when its parent dies; None
    where there is no prctl (not Linux).

    The parent's thread that forks is what counts; asyncio forks from the loop thread,
    which lives as long as the demo. Everything the child runs is prepared here, before
    the fork: the child only calls prctl, then kills itself if the parent is already gone.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    option, signum = ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL)
    parent = os.getpid()

    def in_child() -> None:
        prctl(option, signum)
        if os.getppid() != parent:  # the parent died before prctl: nobody will signal
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child


def child_environment(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`base` without the node's own variables (but with NOOSPHERE_ANVIL, which says
    where anvil is), plus `extra`; offline and unbuffered."""
    env = {k: v for k, v in base.items() if not k.startswith("NOOSPHERE_") or k in KEPT}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@dataclass(frozen=True)
class Node:
    """One node: a label for the output, a node home, and its environment."""

    label: str
    home: Path
    env: dict[str, str]


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]


@dataclass
class Service:
    """A long-running child: its process, its stdout lines so far, its stderr log."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    lines: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _eof: bool = False

    async def pump(self) -> None:
        """Read stdout into `lines` until the child closes it."""
        assert self.process.stdout is not None
        try:
            while raw := await self.process.stdout.readline():
                async with self._changed:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._changed.notify_all()
        finally:
            async with self._changed:
                self._eof = True
                self._changed.notify_all()

    async def wait_for(self, marker: str, within_s: float, *, start: int = 0) -> str:
        """The first line from index `start` on that contains `marker`."""

        def found() -> str | None:
            return next((line for line in self.lines[start:] if marker in line), None)

        async def watch() -> str:
            async with self._changed:
                while (line := found()) is None:
                    if self._eof:
                        raise StepFailed(
                            f"{self.name} exited ({self.process.returncode}) before printing "
                            f"{marker!r}: {self.stderr_tail()}"
                        )
                    await self._changed.wait()
                return line

        try:
            return await asyncio.wait_for(watch(), within_s)
        except TimeoutError:
            raise StepFailed(
                f"{self.name} printed no {marker!r} within {within_s:.0f} s: {self.stderr_tail()}"
            ) from None

    def stderr_tail(self) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return "(no log)"
        return text[-STDERR_TAIL:].strip() or "(nothing on stderr)"


class Supervisor:
    """Starts `noosphere` children and stops all of them on `aclose` (idempotent)."""

    def __init__(self, log_dir: Path) -> None:
        self._argv = noosphere_argv()
        self._die_with_parent = die_with_parent()
        self._log_dir = log_dir
        self._services: list[Service] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._running: set[asyncio.subprocess.Process] = set()
        self._closed = False
        self._count = 0

    def _log_file(self, name: str) -> Path:
        self._count += 1
        return self._log_dir / f"{self._count:02d}-{name}.log"

    async def _spawn(
        self, node: Node, args: Sequence[str], stdout: int, stderr: int | IO[bytes]
    ) -> asyncio.subprocess.Process:
        if self._closed:
            raise DemoError("the demo is stopping")
        env = {**node.env, "NOOSPHERE_HOME": str(node.home)}
        return await asyncio.create_subprocess_exec(
            *self._argv,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,  # its own process group: stopped as a whole
            preexec_fn=self._die_with_parent,  # killed if the demo dies without stopping it
            limit=LINE_LIMIT,
        )

    async def run(
        self, node: Node, *args: str, limit_s: float = 300, check: bool = True
    ) -> CommandResult:
        """Run `noosphere ARGS` for `node` to completion."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        log.debug("%s: noosphere %s", node.label, " ".join(args))
        process = await self._spawn(node, args, asyncio.subprocess.PIPE, asyncio.subprocess.PIPE)
        self._running.add(process)
        try:
            out, err = await asyncio.wait_for(process.communicate(), limit_s)
        except TimeoutError:
            raise StepFailed(f"`noosphere {args[0]}` took longer than {limit_s:.0f} s") from None
        finally:
            if process.returncode is None:
                await stop_process(process)
            self._running.discard(process)
        result = CommandResult(
            list(args),
            process.returncode if process.returncode is not None else -1,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            loop.time() - started,
        )
        self._keep_output(node, result)
        if check and result.returncode != 0:
            raise StepFailed(
                f"`noosphere {' '.join(args[:3])}` exited {result.returncode}: "
                f"{result.stderr[-STDERR_TAIL:].strip() or result.stdout[-STDERR_TAIL:].strip()}"
            )
        return result

    def _keep_output(self, node: Node, result: CommandResult) -> None:
        """Write a finished command's output under the log directory (for --keep)."""
        path = self._log_file(f"{node.home.name}-{result.argv[0]}")
        header = f"$ noosphere {' '.join(result.argv)}\nexit {result.returncode}\n"
        try:
            path.write_text(f"{header}--- stdout\n{result.stdout}--- stderr\n{result.stderr}")
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)

    async def start(self, node: Node, name: str, *args: str) -> Service:
        """Start `noosphere ARGS` for `node` in the background."""
        log_path = self._log_file(name)
        with log_path.open("wb") as stderr:  # the child keeps its own descriptor
            process = await self._spawn(node, args, asyncio.subprocess.PIPE, stderr)
        service = Service(name, process, log_path)
        self._services.append(service)
        self._pumps.append(asyncio.create_task(service.pump(), name=f"pump {name}"))
        return service

    async def stop(self, service: Service) -> int:
        """Stop one service (SIGTERM, then SIGKILL); its exit status."""
        return await stop_process(service.process)

    def pids(self) -> list[int]:
        """Process ids of the children still running (for tests and diagnostics)."""
        processes = [s.process for s in self._services] + list(self._running)
        return [p.pid for p in processes if p.returncode is None]

    async def aclose(self) -> None:
        """Stop every child, the newest first (workers before the chain they talk to)."""
        self._closed = True
        for process in list(self._running):
            await stop_process(process)
        for service in reversed(self._services):
            await stop_process(service.process)
        for pump in self._pumps:
            pump.cancel()
        for pump in self._pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self._pumps.clear()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)  # the child leads its own group (start_new_session)


async def stop_process(process: asyncio.subprocess.Process, grace: float = STOP_GRACE_S) -> int:
    """SIGTERM the child's process group, SIGKILL it after `grace` s; the exit status.

    Shielded: a second Ctrl-C during shutdown does not leave a group running.
    """

    async def stop() -> int:
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                log.warning("process %d did not stop in %.0f s: killing it", process.pid, grace)
        _signal_group(process.pid, signal.SIGKILL)  # whatever of the group is left
        return await process.wait()

    return await asyncio.shield(stop())
