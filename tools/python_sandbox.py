"""The `python` tool: run a snippet of Python inside a kernel-isolated sandbox.

Linux only. `tools.sandbox_isolation` is the boundary: a bubblewrap sandbox with
fresh namespaces, where only /usr and the interpreter (read-only) and `/work`, a
size-capped tmpfs holding the code as `main.py`, exist; no network, uid 65534, an
empty environment. `tools.sandbox_launcher` runs first inside it: resource limits,
an audit hook (defence in depth), then the code. This module bounds the run from the
outside: a wall-clock timeout, capped output, and on return the sandbox's pid
namespace is killed, which takes every process the code started with it.

Without working isolation the tool refuses (`SandboxUnavailableError`, naming the
fix) and runs nothing. The tool is `local_only`: it never runs for a remote peer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.base import ToolError, ToolResult
from tools.decorator import FunctionTool, tool
from tools.sandbox_isolation import WORK_DIR, Isolation, SandboxUnavailableError
from tools.sandbox_teardown import read_info, stop_sandbox

log = logging.getLogger(__name__)

LAUNCHER_SOURCE = Path(__file__).with_name("sandbox_launcher.py").read_text(encoding="utf-8")
MEMORY_ERROR_MARK = "MemoryError"

__all__ = [
    "PythonSandbox",
    "SandboxLimits",
    "SandboxRun",
    "SandboxUnavailableError",
    "describe",
    "make_python_tool",
    "run_sandboxed",
]


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use."""

    timeout_s: float = 10.0  # wall clock, start to finish
    cpu_s: int = 10  # RLIMIT_CPU of each process
    memory_bytes: int = 512 * 1024 * 1024  # RLIMIT_AS (address space) of each process
    file_bytes: int = 16 * 1024 * 1024  # RLIMIT_FSIZE: largest file it may write
    work_bytes: int = 64 * 1024 * 1024  # size of the /work tmpfs, all files together
    max_processes: int = 8  # processes the code may add (RLIMIT_NPROC in its namespace)
    max_output_bytes: int = 64 * 1024  # stdout+stderr kept; the rest is dropped


@dataclass(frozen=True)
class SandboxRun:
    """What happened to one run."""

    output: str
    exit_code: int | None  # None when it had to be killed
    timed_out: bool
    truncated: bool
    out_of_memory: bool


class _OutputPipe(asyncio.Protocol):
    """The child's stdout+stderr: a pipe this process owns, keeping the first `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.dropped = False
        self.eof = asyncio.Event()
        self.write_fd = -1
        self.transport: asyncio.ReadTransport | None = None

    @classmethod
    async def open(cls, cap: int) -> _OutputPipe:
        pipe = cls(cap)
        read_fd, pipe.write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.connect_read_pipe(lambda: pipe, os.fdopen(read_fd, "rb"))
        except BaseException:
            os.close(pipe.write_fd)
            raise
        pipe.transport = transport
        return pipe

    def data_received(self, data: bytes) -> None:
        room = self.cap - len(self.kept)
        if len(data) > room:
            self.dropped = True
        self.kept += data[: max(room, 0)]

    def eof_received(self) -> None:
        self.eof.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof.set()

    def close_write_end(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    async def drain(self, timeout_s: float) -> None:
        """Wait for EOF; give up if something outside the session still holds the pipe."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.eof.wait()
        except TimeoutError:
            self.dropped = True
            log.warning("sandbox output pipe still open after the session was killed")

    def close(self) -> None:
        self.close_write_end()
        if self.transport is not None:
            self.transport.close()


def _code_file(code: str) -> int:
    """An anonymous in-memory file holding `code`, inheritable, positioned at 0."""
    fd = os.memfd_create("main.py", 0)
    try:
        os.write(fd, code.encode("utf-8"))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


class PythonSandbox:
    """Runs snippets under `Isolation`; one per tool, so the isolation probe runs once."""

    def __init__(
        self,
        *,
        deny: Sequence[Path] = (),
        limits: SandboxLimits | None = None,
        isolation: Isolation | None = None,
    ) -> None:
        self.deny = tuple(str(Path(p).expanduser().absolute()) for p in deny)
        self.limits = limits or SandboxLimits()
        self.isolation = isolation or Isolation()

    def _argv(self) -> list[str]:
        limits = self.limits
        config = {
            "workdir": WORK_DIR,
            "deny": list(self.deny),
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "max_processes": limits.max_processes,
        }
        python = self.isolation.interpreter.executable
        return [python, "-I", "-B", "-c", LAUNCHER_SOURCE, json.dumps(config)]

    async def run(self, code: str) -> SandboxRun:
        """Run `code`; raises `SandboxUnavailableError` (running nothing) without isolation."""
        await self.isolation.ready()
        limits = self.limits
        code_fd = _code_file(code)
        info_read, info_write = os.pipe()
        os.set_blocking(info_read, False)
        try:
            command = self.isolation.command(
                self._argv(),
                work_bytes=limits.work_bytes,
                deny=self.deny,
                code_fd=code_fd,
                info_fd=info_write,
            )
            output = await _OutputPipe.open(limits.max_output_bytes)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output.write_fd,
                    stderr=asyncio.subprocess.STDOUT,
                    env={},
                    cwd="/",
                    start_new_session=True,
                    pass_fds=(code_fd, info_write),
                )
                output.close_write_end()
                os.close(info_write)
                info_write = -1
                timed_out = False
                try:
                    async with asyncio.timeout(limits.timeout_s):
                        await proc.wait()
                except TimeoutError:
                    timed_out = True
                finally:  # stopped early: whatever the code started goes with it
                    if proc.returncode is None:
                        await stop_sandbox(proc, read_info(info_read))
                await output.drain(timeout_s=2)
            finally:
                output.close()
        finally:
            for fd in (code_fd, info_read, info_write):
                if fd >= 0:
                    os.close(fd)
        text = output.kept.decode("utf-8", errors="replace")
        return SandboxRun(
            output=text,
            exit_code=None if timed_out else _exit_code(proc.returncode),
            timed_out=timed_out,
            truncated=output.dropped,
            out_of_memory=MEMORY_ERROR_MARK in text,
        )


def _exit_code(status: int | None) -> int | None:
    """bwrap reports a child killed by signal N as 128+N; return -N as Python does.

    A program that itself exits with 129..159 reads as killed by that signal.
    """
    if status is not None and 128 < status < 128 + signal.NSIG:
        return -(status - 128)
    return status


async def run_sandboxed(
    code: str,
    *,
    deny: Sequence[Path] = (),
    limits: SandboxLimits | None = None,
    isolation: Isolation | None = None,
) -> SandboxRun:
    """Run `code` once in a fresh sandbox (probing the isolation unless one is given)."""
    return await PythonSandbox(deny=deny, limits=limits, isolation=isolation).run(code)


def describe(run: SandboxRun, limits: SandboxLimits) -> ToolResult:
    """Turn a run into the result a model reads."""
    output = run.output
    if run.truncated:
        output += f"\n[output truncated at {limits.max_output_bytes} bytes]"
    data = {
        "exit_code": run.exit_code,
        "timed_out": run.timed_out,
        "truncated": run.truncated,
    }
    if run.timed_out:
        return ToolResult.failure(
            f"timed out after {limits.timeout_s:g} s; the process was killed", output, data
        )
    if run.out_of_memory:
        limit_mb = limits.memory_bytes // (1024 * 1024)
        return ToolResult.failure(f"ran out of memory (limit {limit_mb} MB)", output, data)
    if run.exit_code == -signal.SIGXCPU:
        return ToolResult.failure(f"killed by the CPU limit ({limits.cpu_s} s)", output, data)
    if run.exit_code is not None and run.exit_code < 0:
        name = signal.Signals(-run.exit_code).name
        return ToolResult.failure(f"killed by {name}", output, data)
    if run.exit_code != 0:
        return ToolResult.failure(f"exited with status {run.exit_code}", output, data)
    return ToolResult.success(output, data)


def make_python_tool(
    *,
    deny: Sequence[Path] = (),
    limits: SandboxLimits | None = None,
    bwrap: str | None = None,
) -> FunctionTool:
    """The `python` tool; `deny` lists paths (the node home) the code may never touch.

    `bwrap` overrides where bubblewrap is (default: looked up on PATH).
    """
    if not sys.platform.startswith("linux"):
        raise ToolError("the python sandbox needs Linux")
    sandbox = PythonSandbox(deny=deny, limits=limits, isolation=Isolation(bwrap))

    @tool(name="python", local_only=True, open_world=False)
    async def python(code: str) -> ToolResult:
        """Run Python 3 code in a sandbox and return what it printed.

        No network, no access to the node's files, a fresh temporary working
        directory, limited time, memory and output. Print the values you need.

        Args:
            code: A complete Python program; use print() for results.
        """
        run = await sandbox.run(code)
        return describe(run, sandbox.limits)

    return python
