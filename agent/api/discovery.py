"""The files through which clients find a running node: its token and its address.

Both live in the node home and are private to its owner::

    <home>/api-token    the bearer token, created once (O_EXCL, mode 0600), then reused
    <home>/node.json    {"url", "pid", "started", "version"}, written atomically (0600)
                        once the API listens, removed when it closes
    <home>/node.lock    held (flock) by the running node for its whole life; it holds
                        the node's pid, for messages only. Commands that work on the
                        home's index in their own process hold it shared meanwhile.

`node.json` only tells clients where to go; whether a node runs is the lock's to say.
The kernel drops a flock when its process dies, however it dies (`kill -9`
included), so a crashed node leaves no stale lock, and a recycled pid or a node
too busy to answer cannot fool the check the way a pid or a ping could.

A token file that others can read (or that is not a regular file owned by this
user) is refused rather than used or repaired: it may already have leaked.

Standard library only: the CLI's thin clients import this before deciding whether
to start anything heavy.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.api.errors import ApiSetupError
from swarm_vectordb.bee.durable import atomic_write

TOKEN_FILE_NAME = "api-token"
NODE_FILE_NAME = "node.json"
LOCK_FILE_NAME = "node.lock"
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 512


def token_path(home: Path) -> Path:
    return home / TOKEN_FILE_NAME


def node_file_path(home: Path) -> Path:
    return home / NODE_FILE_NAME


def load_or_create_token(home: Path) -> str:
    """The node's API token, created on first use; refuses an unsafe token file."""
    path = token_path(home)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return read_token(path)
    with open(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token


def read_token(path: Path) -> str:
    """Read an existing token file, checking it is private to this user."""
    try:
        info = path.lstat()
    except OSError as exc:
        raise ApiSetupError(f"cannot read the API token {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ApiSetupError(f"the API token {path} is not a regular file; remove it")
    if info.st_uid != os.getuid():
        raise ApiSetupError(f"the API token {path} belongs to another user; remove it")
    if info.st_mode & 0o077:
        raise ApiSetupError(
            f"the API token {path} has mode {stat.S_IMODE(info.st_mode):04o}: others may "
            "have read it. Remove the file (a new token is created) or `chmod 600` it "
            "if you are sure it has not leaked"
        )
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiSetupError(f"cannot read the API token {path}: {exc}") from None
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS or not token.isprintable():
        raise ApiSetupError(f"the API token {path} is malformed; remove it to create a new one")
    return token


@dataclass(frozen=True)
class NodeAddress:
    """What `node.json` says about the running node."""

    url: str
    pid: int
    started: float  # Unix time
    version: str

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "pid": self.pid, "started": self.started, "version": self.version}


def write_node_file(home: Path, address: NodeAddress) -> None:
    data = json.dumps(address.to_json(), indent=2).encode() + b"\n"
    atomic_write(node_file_path(home), data, mode=0o600)


def read_node_file(home: Path) -> NodeAddress | None:
    """The running node's address, or None when the file is absent or malformed."""
    try:
        raw = json.loads(node_file_path(home).read_text(encoding="utf-8"))
        return NodeAddress(
            url=_typed(raw, "url", str),
            pid=_typed(raw, "pid", int),
            started=float(_typed(raw, "started", (int, float))),
            version=_typed(raw, "version", str),
        )
    except (OSError, ValueError, TypeError):
        return None


def remove_node_file(home: Path, address: NodeAddress) -> None:
    """Remove `node.json` if it still describes `address` (not a newer node's)."""
    if read_node_file(home) == address:
        node_file_path(home).unlink(missing_ok=True)


class NodeLock:
    """The running node's claim on its home: an exclusive flock on `<home>/node.lock`.

    `acquire` returns None when another process holds it. The lock lives as long as
    the open file: `release` (idempotent) or the process's end, crash included.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, home: Path) -> NodeLock | None:
        path = home / LOCK_FILE_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> NodeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SharedUse:
    """A shared flock on `<home>/node.lock`: an in-process command using the home's index.

    Any number of commands may share it; a node cannot start while one does, and none
    can take it while a node runs. Held until `release` or the process's end.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, home: Path) -> SharedUse | None:
        """The shared lock, or None when a node holds the home."""
        fd = os.open(
            home / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __del__(self) -> None:  # dropped, not released: the command is done with the home
        self.release()


def used_by_commands(home: Path) -> bool:
    """Whether what keeps a node from locking `home` is only commands sharing it (a node
    holding it would refuse the shared lock too). Takes the shared lock for an instant."""
    try:
        use = SharedUse.acquire(home)
    except OSError:
        return False
    if use is None:
        return False
    use.release()
    return True


def lock_holder(home: Path) -> int | None:
    """The pid written in `<home>/node.lock` (for messages; the lock itself decides)."""
    try:
        text = (home / LOCK_FILE_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _typed(raw: Any, key: str, kind: type[Any] | tuple[type[Any], ...]) -> Any:
    value = raw[key] if isinstance(raw, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"node.json: {key} missing or of the wrong type")
    return value
