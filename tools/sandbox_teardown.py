"""Stopping a python-tool sandbox early, so that nothing it started survives.

A sandbox (`tools.sandbox_isolation`) is a tree of processes: `bwrap` (twice when
running as root), started in a new session, then the init of a fresh pid namespace
(in a session of its own), then the code and whatever it spawned. When the code
ends by itself the tree unwinds on its own: the init exits with it, the kernel
kills the rest of the namespace, and each `bwrap` exits after its child. When the
call has to stop it (timeout, cancellation), `stop_sandbox`:

1. SIGKILLs the namespace init, found from bwrap's `--info-fd` report and held
   through a pidfd after checking that its parent still belongs to our session
   (so a recycled pid is never signalled);
2. SIGKILLs every process of the bwrap session (they pass `--die-with-parent`
   down, which would take the init along even if step 1 was impossible);
3. waits for bwrap to exit and for the init to be gone: an init exits only once
   every other process in its namespace has, `setsid` or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INFO_CAP = 64 * 1024  # bytes of bwrap's report read at most


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def session_members(sid: int) -> list[int]:
    """Pids of live processes in session `sid` (read from /proc; no psutil)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
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


def read_info(fd: int) -> dict[str, Any]:
    """bwrap's `--info-fd` report from a non-blocking pipe: {"child-pid": ...} or {}."""
    data = b""
    with contextlib.suppress(OSError):  # BlockingIOError: nothing (more) written yet
        while len(data) < INFO_CAP and (chunk := os.read(fd, 4096)):
            data += chunk
    try:
        info, _ = json.JSONDecoder().raw_decode(data.decode("utf-8", "replace").lstrip())
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _open_init(info: dict[str, Any], sid: int) -> int | None:
    """A pidfd for the namespace init bwrap reported, if it is still the one we started."""
    pid = info.get("child-pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None  # gone already
    fields = _stat_fields(pid)  # read after the pidfd exists: same process, or it is dead
    parent = _stat_fields(int(fields[1])) if len(fields) > 3 else []
    if len(parent) > 3 and int(parent[3]) == sid:
        return pidfd
    os.close(pidfd)
    return None


async def _exited(pidfd: int, timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_reader(pidfd, done.set)  # a pidfd reads ready once its process has exited
    try:
        async with asyncio.timeout(timeout_s):
            await done.wait()
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)


async def stop_sandbox(
    proc: asyncio.subprocess.Process, info: dict[str, Any], timeout_s: float = 5.0
) -> None:
    """Kill a running sandbox and everything in it; return once it is all gone."""
    pidfd = _open_init(info, proc.pid)
    try:
        if pidfd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        kill_session(proc.pid)
        await proc.wait()
        if pidfd is not None and not await _exited(pidfd, timeout_s):
            log.warning("python sandbox: its pid namespace outlived SIGKILL by %s s", timeout_s)
    finally:
        if pidfd is not None:
            os.close(pidfd)
