"""Runs inside the sandbox, before the user's code: limits, a guard, then the code.

`tools.python_sandbox` starts it as `python -I -B -c <this source> CONFIG` inside the
bubblewrap sandbox of `tools.sandbox_isolation`, which is the security boundary. This
script imports nothing from the package. In order, it:

1. closes every inherited descriptor above stderr;
2. lowers resource limits: CPU seconds, address space, file size, open files,
   processes (counted inside the sandbox's own user namespace) and core dumps;
3. installs an audit hook, defence in depth only: it refuses network sockets and
   name lookups, touching the denied paths, and writes (files, SQLite databases)
   outside the work directory. Its rules live in the hook's closure, built from
   fresh frozen values; nothing it reads later is reachable from user code, and
   the globals of this script can be rewritten without effect;
4. runs `/work/main.py` as a brand-new `__main__` module (not this script's).

Processes are allowed: the kernel bounds them (RLIMIT_NPROC, the pid namespace).
Linux only.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

NAME_LOOKUPS = (
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyname_ex",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
)
SOCKET_USES = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")
WRITE_EVENTS = (
    "os.mkdir",
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.utime",
    "os.setxattr",
    "os.removexattr",
    "shutil.rmtree",
)
WRITABLE_FILES = ("/dev/null",)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def tasks_of_this_user() -> int:
    """Threads running under this uid; inside the pid namespace, only the sandbox's."""
    uid, total = str(os.getuid()), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [uid]:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


def limit_resources(cfg: dict[str, Any]) -> None:
    def cap(which: int, value: int) -> None:
        resource.setrlimit(which, (value, value))

    cpu_s = int(cfg["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL
    cap(resource.RLIMIT_AS, int(cfg["memory_bytes"]))
    cap(resource.RLIMIT_FSIZE, int(cfg["file_bytes"]))
    cap(resource.RLIMIT_NOFILE, 64)
    cap(resource.RLIMIT_CORE, 0)
    # Counted per (user namespace, uid): this sandbox's tasks only, so `max_processes`
    # more than the init and this process.
    cap(resource.RLIMIT_NPROC, tasks_of_this_user() + int(cfg["max_processes"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write raises OSError instead


def make_audit_hook(workdir: str, deny: list[str]) -> Callable[[str, tuple[Any, ...]], None]:
    """The guard; everything it consults is bound here, in its closure, immutable."""
    realpath, fsdecode, join = os.path.realpath, os.fsdecode, os.path.join
    denied = tuple(realpath(p) for p in deny)
    work = (realpath(workdir),)
    writable = frozenset(WRITABLE_FILES)
    lookups, socket_uses = frozenset(NAME_LOOKUPS), frozenset(SOCKET_USES)
    write_events = frozenset(WRITE_EVENTS)
    local_family, any_family = int(socket.AF_UNIX), -1
    write_flags = WRITE_FLAGS

    def under(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == r or path.startswith(join(r, "")) for r in roots)

    def check_path(raw: Any, write: bool) -> None:
        if raw is None or isinstance(raw, int):
            return  # an open descriptor: the kernel already decided
        path = realpath(fsdecode(raw))
        if under(path, denied):
            raise PermissionError(f"sandbox: access to {path} is denied")
        if write and path not in writable and not under(path, work):
            raise PermissionError(f"sandbox: writing outside the work directory ({path})")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = (*args, None, None)[:3]
            writing = bool(mode and any(c in str(mode) for c in "wax+")) or bool(
                isinstance(flags, int) and flags & write_flags
            )
            check_path(path, writing)
        elif event in write_events:
            for raw in args[:2] if event in ("os.rename", "os.link") else args[:1]:
                check_path(raw, write=True)
        elif event in ("os.listdir", "os.scandir") and args:
            check_path(args[0], write=False)
        elif event == "sqlite3.connect" and args:
            name = fsdecode(args[0]) if isinstance(args[0], str | bytes) else ""
            if name.startswith("file:"):
                name = name[5:].split("?", 1)[0]
            if name and name != ":memory:":
                check_path(name, write=True)
        elif event == "socket.__new__":
            if len(args) > 1 and args[1] not in (local_family, any_family):
                raise PermissionError("sandbox: the network is not available")
        elif event in socket_uses:
            if args and getattr(args[0], "family", None) != local_family:
                raise PermissionError("sandbox: the network is not available")
        elif event in lookups:
            raise PermissionError("sandbox: the network is not available")

    return hook


def main() -> None:
    os.closerange(3, 1 << 16)
    cfg = json.loads(sys.argv[1])
    workdir = str(cfg["workdir"])
    limit_resources(cfg)
    main_py = os.path.join(workdir, "main.py")
    with open(main_py, encoding="utf-8") as source:
        code = compile(source.read(), "main.py", "exec")
    sys.addaudithook(make_audit_hook(workdir, list(cfg["deny"])))
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=main_py, __builtins__=__builtins__)
    sys.modules["__main__"] = module
    sys.argv = ["main.py"]
    try:
        exec(code, module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:  # show the user's frames, not this launcher's
        traceback.print_exception(type(exc), exc, exc.__traceback__ and exc.__traceback__.tb_next)
        sys.exit(1)


if __name__ == "__main__":
    main()
