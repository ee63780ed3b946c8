"""The `python` tool: run a snippet of Python in a confined child process.

Linux only. Each call gets a fresh temporary work directory (the only writable
place, deleted afterwards), an empty environment and a child started in its own
session. `tools/sandbox_launcher.py` confines the child before the code runs
(network namespace when the kernel allows it, resource limits, an audit hook
that is always installed); this module bounds it from the outside: a wall-clock
timeout, capped output, and on return the whole session is killed, whatever the
code did. The node home is passed as a denied path.

The tool is `local_only`: it never runs for a remote peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.base import ToolError, ToolResult
from tools.decorator import FunctionTool, tool

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
MEMORY_ERROR_MARK = "MemoryError"


@dataclass(frozen=True)
class SandboxLimits:
    """What one run may use."""

    timeout_s: float = 10.0  # wall clock, start to finish
    cpu_s: int = 10  # RLIMIT_CPU of the child
    memory_bytes: int = 512 * 1024 * 1024  # RLIMIT_AS (address space) of the child
    file_bytes: int = 16 * 1024 * 1024  # RLIMIT_FSIZE: largest file it may write
    max_processes: int = 8  # RLIMIT_NPROC headroom above the user's current tasks
    max_output_bytes: int = 64 * 1024  # stdout+stderr kept; the rest is dropped
    namespaces: bool = True  # try a private network namespace (the audit hook is always on)


@dataclass(frozen=True)
class SandboxRun:
    """What happened to one run."""

    output: str
    exit_code: int | None  # None when it had to be killed
    timed_out: bool
    truncated: bool
    out_of_memory: bool


def session_members(sid: int) -> list[int]:
    """Pids of live processes in session `sid` (read from /proc; no psutil)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry))
    return members


def kill_session(sid: int) -> None:
    """SIGKILL the process group and every remaining member of the session."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


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


async def run_sandboxed(
    code: str, *, deny: Sequence[Path] = (), limits: SandboxLimits | None = None
) -> SandboxRun:
    """Run `code` in a confined child and return what it printed."""
    limits = limits or SandboxLimits()
    workdir = Path(tempfile.mkdtemp(prefix="noosphere-py-"))
    try:
        (workdir / "main.py").write_text(code, encoding="utf-8")
        config = {
            "workdir": str(workdir),
            "deny": [str(p) for p in deny],
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_bytes,
            "file_bytes": limits.file_bytes,
            "max_processes": limits.max_processes,
            "namespaces": limits.namespaces,
        }
        output = await _OutputPipe.open(limits.max_output_bytes)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-B",
                str(LAUNCHER),
                json.dumps(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output.write_fd,
                stderr=asyncio.subprocess.STDOUT,
                cwd=workdir,
                env={},
                start_new_session=True,
            )
            output.close_write_end()
            timed_out = False
            try:
                async with asyncio.timeout(limits.timeout_s):
                    await proc.wait()
            except TimeoutError:
                timed_out = True
            finally:
                kill_session(proc.pid)  # whatever it left behind goes with it
                await proc.wait()
            await output.drain(timeout_s=2)
        finally:
            output.close()
        kept, truncated = output.kept, output.dropped
        text = kept.decode("utf-8", errors="replace")
        exit_code = proc.returncode
        return SandboxRun(
            output=text,
            exit_code=None if timed_out else exit_code,
            timed_out=timed_out,
            truncated=truncated,
            out_of_memory=MEMORY_ERROR_MARK in text,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)


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
    *, deny: Sequence[Path] = (), limits: SandboxLimits | None = None
) -> FunctionTool:
    """The `python` tool; `deny` lists paths (the node home) the code may never touch."""
    chosen = limits or SandboxLimits()
    denied = tuple(Path(p).expanduser().absolute() for p in deny)
    if not sys.platform.startswith("linux"):
        raise ToolError("the python sandbox needs Linux")

    @tool(name="python", local_only=True, open_world=False)
    async def python(code: str) -> ToolResult:
        """Run Python 3 code in a sandbox and return what it printed.

        No network, no access to the node's files, a fresh temporary working
        directory, limited time, memory and output. Print the values you need.

        Args:
            code: A complete Python program; use print() for results.
        """
        run = await run_sandboxed(code, deny=denied, limits=chosen)
        return describe(run, chosen)

    return python
