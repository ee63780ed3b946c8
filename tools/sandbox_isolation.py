"""The python tool's boundary: a bubblewrap sandbox built from kernel namespaces.

`Isolation` turns "run this interpreter" into a `bwrap` command line whose child
lives in fresh user, mount, pid, network, ipc, uts and cgroup namespaces:

- the file system holds only `/usr` and the interpreter's own installation (read
  only, at their real paths), a fresh `/proc` for the new pid namespace, a minimal
  `/dev`, and `/work`, a size-capped tmpfs that is the only writable place (`/tmp`
  points at it). The node home, the repository and the rest of the host are
  simply absent; a denied path that lies inside a bound tree is masked;
- the network namespace has only a loopback interface, and it is down;
- the code runs as uid/gid 65534 with no capabilities, no way to create further
  user namespaces, a new session (no terminal to inject input into) and an empty
  environment; it dies with its parent;
- the child is pid 1's only child in its pid namespace: when that init process
  dies the kernel kills everything left in the namespace, `setsid` or not.

Run as root, the sandbox must not map to uid 0 on the host (the kernel exempts
uid 0 from RLIMIT_NPROC and it owns most files), so bubblewrap itself runs as
65534: an outer, privileged `bwrap` (no namespaces but mount) makes the
interpreter reachable for that uid, `setpriv` drops to it, and the inner `bwrap`
builds the sandbox. Run as anyone else, the inner `bwrap` runs directly.

Fail closed: `Isolation.ready()` runs a probe sandbox once and caches the verdict;
when bubblewrap is missing or the kernel refuses a namespace it raises
`SandboxUnavailableError` naming the fix, and nothing runs with less.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.base import ToolError

log = logging.getLogger(__name__)

SANDBOX_UID = 65534  # "nobody": owns nothing on the host
WORK_DIR = "/work"  # the sandbox's working directory, a tmpfs
SHM_BYTES = 16 * 1024 * 1024  # size of the /dev/shm tmpfs
PROBE_TIMEOUT_S = 20.0
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # merged-/usr symlinks
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")  # read-only, when present
FIX = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; "
    "./scripts/bootstrap does this when run as root) and allow unprivileged user "
    "namespaces (`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04 and later "
    "`sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor profile for bwrap)"
)


class SandboxUnavailableError(ToolError):
    """Kernel isolation cannot be set up here, so the python tool refuses to run."""


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs inside: its real executable and the trees it needs."""

    executable: str
    roots: tuple[str, ...]  # bound read-only at their real paths

    @classmethod
    def current(cls) -> Interpreter:
        """This process's base interpreter (a venv's python resolved to the real one)."""
        executable = os.path.realpath(sys.executable)
        prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
        roots = sorted(p for p in prefixes if p != "/usr" and not p.startswith("/usr/"))
        if not any(executable.startswith(os.path.join(p, "")) for p in [*roots, "/usr"]):
            roots.append(os.path.dirname(executable))
        return cls(executable=executable, roots=tuple(roots))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(os.path.join(root, ""))


class Isolation:
    """Builds the bubblewrap command line and knows whether it works on this machine."""

    def __init__(self, bwrap: str | None = None, interpreter: Interpreter | None = None) -> None:
        """`bwrap`: path of the bubblewrap binary; None looks it up on PATH."""
        self.bwrap_setting = bwrap
        self.interpreter = interpreter or Interpreter.current()
        self._verdict: str | None = None  # "" once the probe passed, else why it failed
        self.block_nested_userns = True  # --disable-userns; bubblewrap < 0.8 lacks it
        self._probing = asyncio.Lock()

    def _tools(self) -> tuple[str, str | None]:
        """The bwrap binary and, when running as root, setpriv; or why they are missing."""
        bwrap = self.bwrap_setting or shutil.which("bwrap")
        if not bwrap or not os.access(bwrap, os.X_OK):
            where = f"at {bwrap}" if bwrap else "on PATH"
            raise SandboxUnavailableError(f"python sandbox unavailable: no bwrap {where}; {FIX}")
        if os.geteuid() != 0:
            return bwrap, None
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise SandboxUnavailableError(
                "python sandbox unavailable: running as root needs setpriv (util-linux) "
                "to drop to an unprivileged uid; install util-linux"
            )
        return bwrap, setpriv

    def _bound_trees(self) -> list[str]:
        """Host paths visible (read-only) inside, besides /usr."""
        return [p for p in (*self.interpreter.roots, *SYSTEM_FILES) if os.path.exists(p)]

    def _system_layout(self) -> list[str]:
        """/usr plus the top-level links (or directories) of a merged-/usr system."""
        args = ["--ro-bind", "/usr", "/usr"]
        for name in SYSTEM_LINKS:
            path = "/" + name
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        return args

    def inner_args(
        self,
        argv: Sequence[str],
        *,
        work_bytes: int,
        deny: Sequence[str] = (),
        code_fd: int | None = None,
        info_fd: int | None = None,
    ) -> list[str]:
        """The sandbox itself: `argv` runs in /work; `code_fd`'s bytes become /work/main.py."""
        uid = str(SANDBOX_UID)
        args = ["--unshare-all", "--unshare-user", "--uid", uid, "--gid", uid]
        if self.block_nested_userns:
            args.append("--disable-userns")
        args += ["--hostname", "sandbox", "--die-with-parent", "--new-session"]
        args += self._system_layout()
        trees = self._bound_trees()
        for tree in trees:
            args += ["--ro-bind", tree, tree]
        for raw in deny:  # a denied path inside a bound tree is masked, not just unlisted
            path = os.path.realpath(raw)
            if any(_under(path, tree) for tree in [*trees, "/usr"]) and os.path.exists(path):
                if os.path.isdir(path):
                    args += ["--tmpfs", path, "--remount-ro", path]
                else:
                    args += ["--ro-bind", "/dev/null", path]
        # A fresh /dev, read-only but for /dev/shm (POSIX semaphores, multiprocessing).
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES)]
        args += ["--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        args += ["--size", str(work_bytes), "--tmpfs", WORK_DIR, "--symlink", WORK_DIR, "/tmp"]
        if code_fd is not None:
            args += ["--file", str(code_fd), f"{WORK_DIR}/main.py"]
        args += ["--remount-ro", "/", "--chdir", WORK_DIR, "--clearenv"]
        for key, value in (
            ("HOME", WORK_DIR),
            ("TMPDIR", WORK_DIR),
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("LANG", "C.UTF-8"),
        ):
            args += ["--setenv", key, value]
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        return [*args, "--", *argv]

    def _outer_args(self, bwrap: str, setpriv: str) -> list[str]:
        """Root only: a mount namespace where uid 65534 can reach the bound trees."""
        args = ["--die-with-parent", *self._system_layout()]
        made: set[str] = {"/", "/usr"}
        helpers = [p for p in (bwrap, setpriv) if not _under(os.path.realpath(p), "/usr")]
        for tree in [*self._bound_trees(), *helpers]:
            parents = list(reversed(Path(tree).parents))
            for parent in map(str, parents):
                if parent not in made and not _under(parent, "/usr"):
                    args += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
            args += ["--ro-bind", tree, tree]
        # The inner bwrap mounts a fresh procfs, which the kernel allows only where an
        # unobstructed one is already visible; it also needs a /tmp to stage its root.
        args += ["--bind", "/proc", "/proc", "--dev", "/dev", "--dir", "/tmp"]
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
        uid = str(SANDBOX_UID)
        return [*args, setpriv, "--reuid", uid, "--regid", uid, "--clear-groups", "--"]

    def command(
        self,
        argv: Sequence[str],
        *,
        work_bytes: int,
        deny: Sequence[str] = (),
        code_fd: int | None = None,
        info_fd: int | None = None,
    ) -> list[str]:
        """The full command line that runs `argv` inside the sandbox."""
        bwrap, setpriv = self._tools()
        inner = self.inner_args(
            argv, work_bytes=work_bytes, deny=deny, code_fd=code_fd, info_fd=info_fd
        )
        if setpriv is None:
            return [bwrap, *inner]
        return [bwrap, *self._outer_args(bwrap, setpriv), bwrap, *inner]

    async def ready(self) -> None:
        """Raise `SandboxUnavailableError` unless a sandbox works here (probed once)."""
        self._tools()  # cheap, and catches a binary removed since the probe
        if self._verdict is None:
            async with self._probing:
                if self._verdict is None:
                    self._verdict = await self._probe()
        if self._verdict:
            raise SandboxUnavailableError(self._verdict)

    async def _probe(self) -> str:
        """Run a trivial sandbox; "" when it reports the sandbox uid, else the reason."""
        bwrap, _ = self._tools()
        usage, _, _ = await _run_briefly([bwrap, "--help"])
        self.block_nested_userns = b"--disable-userns" in usage
        check = "import os; print(os.getuid(), os.path.exists('/proc/1'))"
        argv = [self.interpreter.executable, "-I", "-S", "-c", check]
        out, err, status = await _run_briefly(self.command(argv, work_bytes=1024 * 1024))
        if status == 0 and out.split() == [str(SANDBOX_UID).encode(), b"True"]:
            if not self.block_nested_userns:
                log.warning("python sandbox: bubblewrap < 0.8 cannot forbid nested namespaces")
            return ""
        detail = (err or out).decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        log.warning("python sandbox: isolation probe failed: %s", detail[0])
        return f"python sandbox unavailable: bubblewrap failed ({detail[0]}); {FIX}"


async def _run_briefly(command: Sequence[str]) -> tuple[bytes, bytes, int | None]:
    """Run `command` with an empty environment; stdout, stderr and exit status."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError as exc:
        proc.kill()  # a sandbox inside dies with it (--die-with-parent)
        await proc.wait()
        # Not cached by the caller: a loaded machine may be slow once.
        raise SandboxUnavailableError(
            f"python sandbox unavailable: the isolation probe took over {PROBE_TIMEOUT_S:g} s"
        ) from exc
    return out, err, proc.returncode
