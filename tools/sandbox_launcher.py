"""Runs inside the sandbox child: confine this process, then run the user's code.

Started by `tools.python_sandbox` as `python -I -B sandbox_launcher.py CONFIG`;
it imports nothing from this package. In order, it:

1. leaves the network: `unshare(CLONE_NEWUSER | CLONE_NEWNET)` (or plain
   `CLONE_NEWNET` as root) through libc, when the kernel allows it; the new
   namespace has only a loopback interface, and it is down;
2. lowers resource limits (CPU seconds, address space, file size, open files,
   processes, no core dumps);
3. installs an audit hook (always, namespace or not) that refuses sockets,
   new processes, signals to others, ctypes, changing limits, reading outside
   the work directory and Python's own installation, writing outside the work
   directory, and anything under the denied paths (the node home);
4. executes `main.py` from the work directory as `__main__`.

Linux only. Audit hooks cannot be removed once added, but they are a
defense-in-depth layer rather than a security boundary on their own.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from typing import Any

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

BLOCKED_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "signal.pthread_kill",
        "resource.setrlimit",
        "resource.prlimit",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "sys.remote_exec",
        "pty.spawn",
        "webbrowser.open",
    }
)
BLOCKED_PREFIXES = ("socket.", "ctypes.", "_ctypes.", "winreg.", "urllib.", "http.", "ftplib.")
BLOCKED_MODULES = frozenset(
    {"_posixsubprocess", "_ctypes", "ctypes", "_socket", "socket", "_ssl", "ssl", "mmap"}
)
WRITE_EVENTS = frozenset(
    {
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
        "os.chflags",
        "os.lchflags",
        "os.setxattr",
        "os.removexattr",
        "shutil.rmtree",
    }
)
READ_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "os.listxattr"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def leave_network() -> bool:
    """Move into a fresh network namespace; True if it worked."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    try:
        return any(
            libc.unshare(flags) == 0 for flags in (CLONE_NEWUSER | CLONE_NEWNET, CLONE_NEWNET)
        )
    finally:
        del libc


def tasks_of_this_user() -> int:
    """Threads currently running under this real uid (RLIMIT_NPROC counts them)."""
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
    # Counted per user, so allow what the user already runs plus a few threads.
    cap(resource.RLIMIT_NPROC, tasks_of_this_user() + int(cfg["max_processes"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write raises OSError instead


def install_audit_hook(workdir: str, deny: list[str]) -> None:
    realpath, join, fsdecode = os.path.realpath, os.path.join, os.fsdecode
    readable_roots = tuple(
        {realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    )
    readable_files = frozenset({"/dev/null", "/dev/urandom", "/dev/zero", "/etc/localtime"})
    denied = tuple(realpath(p) for p in deny)

    def under(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == r or path.startswith(join(r, "")) for r in roots)

    def resolve(raw: Any) -> str | None:
        if isinstance(raw, int) or raw is None:
            return None  # an already open descriptor
        text = fsdecode(raw)
        if not os.path.isabs(text) and ".." in text.replace("\\", "/").split("/"):
            # With dir_fd, a relative path is not relative to the working directory;
            # without "..", one inside the work directory cannot climb out of it.
            raise PermissionError("sandbox: '..' in a relative path is not allowed")
        return realpath(text)

    def check_path(raw: Any, write: bool, opening: bool = False) -> None:
        path = resolve(raw)
        if path is None:
            return
        if under(path, denied):
            raise PermissionError(f"sandbox: access to {path} is denied")
        if under(path, (workdir,)):
            return
        if write:
            raise PermissionError(f"sandbox: writing outside the work directory ({path})")
        if path not in readable_files and not under(path, readable_roots):
            raise PermissionError(f"sandbox: reading {path} is not allowed")
        if opening and os.path.isdir(path):  # a dir_fd there would make writes relative to it
            raise PermissionError(f"sandbox: opening the directory {path} is not allowed")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = (*args, None, None)[:3]
            writing = bool(mode and any(c in str(mode) for c in "wax+")) or bool(
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            check_path(path, writing, opening=True)
        elif event == "os.chdir":
            if not args or resolve(args[0]) != workdir:
                raise PermissionError("sandbox: changing the working directory is not allowed")
        elif event == "import":
            if args and str(args[0]).split(".")[0] in BLOCKED_MODULES:
                raise ImportError(f"sandbox: the module {args[0]} is not available")
        elif event in BLOCKED_EVENTS or event.startswith(BLOCKED_PREFIXES):
            raise PermissionError(f"sandbox: {event} is not allowed")
        elif event in WRITE_EVENTS:
            for raw in args[:2] if event in ("os.rename", "os.link") else args[:1]:
                check_path(raw, write=True)
        elif event in READ_EVENTS and args:
            check_path(args[0], write=False)

    # Forget modules that would let code reach around the hook through a cached import.
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED_MODULES or name == "subprocess":
            del sys.modules[name]
    sys.addaudithook(hook)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    workdir = os.path.realpath(cfg["workdir"])
    if cfg["namespaces"]:
        leave_network()
    limit_resources(cfg)
    os.environ.clear()
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    os.chdir(workdir)
    with open(os.path.join(workdir, "main.py"), encoding="utf-8") as source:
        code = compile(source.read(), "main.py", "exec")
    install_audit_hook(workdir, list(cfg["deny"]))
    sys.argv = ["main.py"]
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except SystemExit:
        raise
    except BaseException as exc:  # show the user's frames, not this launcher's
        traceback.print_exception(type(exc), exc, exc.__traceback__ and exc.__traceback__.tb_next)
        sys.exit(1)


if __name__ == "__main__":
    main()
