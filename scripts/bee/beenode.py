"""Child processes of the local network: a Bee node, and anything else it runs.

``ChildProcess`` starts a program in its own process group with its output in a
log file, and with the kernel's parent-death signal set so it dies with the
script even when the script is killed outright. ``BeeProcess`` adds what the
local network needs from a full Bee node: its addresses, readiness, peers,
buying a batch and waiting until an upload goes through. Plain ``urllib``
without proxies: this runs before the project's async client matters.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

PASSWORD = "bee-localnet"  # the throwaway nodes' key password; their keys die with the run
HTTP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def die_with_parent() -> None:
    """(In a child before exec.) SIGKILL this process when the script dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_environment() -> dict[str, str]:
    """No proxies (Bee's chain client honours them) and none of the node's own settings."""
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in drop and not k.startswith("NOOSPHERE_")
    }


def http_json(
    method: str,
    url: str,
    body: bytes | None = None,
    *,
    timeout: float = HTTP_TIMEOUT_S,
    **headers: str,
) -> Any:
    """The JSON body of a 2xx reply; ``urllib.error.HTTPError`` for other statuses."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with _OPENER.open(request, timeout=timeout) as reply:
        return json.loads(reply.read() or b"null")


def wait_for(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.5) -> None:
    """Poll ``check`` until it is true; errors while polling count as "not yet"."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as error:
            last_error = error
        time.sleep(poll)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s (last error: {last_error})")


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @classmethod
    def start(cls, name: str, argv: list[str], log_path: Path) -> ChildProcess:
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        return cls(name, process, log_path, log_file)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self.process.returncode}")

    def stop(self, *, show_log: bool = False) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_file.close()
        if show_log:
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            log.error("last lines of %s:\n%s", self.name, "\n".join(lines))


class BeeApi:
    """What bringing a network up needs from one Bee node's HTTP API.

    ``alive`` is called before each request, so a node that died fails the wait
    at once instead of at its deadline.
    """

    def __init__(self, name: str, url: str, alive: Callable[[], None] | None = None) -> None:
        self.name, self.url = name, url.rstrip("/")
        self._alive = alive

    def get(self, path: str) -> Any:
        if self._alive is not None:
            self._alive()
        return http_json("GET", self.url + path)

    def wait_for_addresses(self, timeout: float = 60.0) -> str:
        """Wait for the API; the node's Ethereum address."""
        found: dict[str, Any] = {}

        def answered() -> bool:
            found.update(self.get("/addresses"))
            return bool(found.get("ethereum"))

        wait_for(f"{self.name} API", answered, timeout)
        return str(found["ethereum"])

    def underlay(self, timeout: float = 60.0) -> str:
        """The node's libp2p address on a non-loopback IPv4 address (its bootnode form).

        Waits for it: the API answers before libp2p has listed its addresses.
        """
        found: list[str] = []

        def listed() -> bool:
            found[:] = [
                str(u)
                for u in self.get("/addresses").get("underlay") or []
                if str(u).startswith("/ip4/") and not str(u).startswith("/ip4/127.")
            ]
            return bool(found)

        wait_for(f"{self.name} underlay", listed, timeout)
        return found[0]

    def wait_ready(self, timeout: float, *, peers: int) -> None:
        """Wait until the node says it is ready and is connected to ``peers`` others."""

        def ready() -> bool:
            self.get("/readiness")
            return int(self.get("/topology").get("connected", 0)) >= peers

        wait_for(f"{self.name} ready with {peers} peer(s)", ready, timeout, poll=1.0)
        log.info("%s: ready, %d peer(s)", self.name, peers)

    def buy_batch(self, amount: int, depth: int) -> str:
        """Buy a *mutable* batch: each GSOC message to one inbox takes a new stamp slot
        in the inbox address's bucket (2^(depth-16) slots), and an immutable batch
        refuses the message after that ("bucket full"); a mutable one reuses slots."""
        reply = http_json(
            "POST", f"{self.url}/stamps/{amount}/{depth}?label=localnet", Immutable="false"
        )
        return str(reply["batchID"])

    def wait_usable(self, batch: str, timeout: float) -> None:
        wait_for(
            f"{self.name} batch usable",
            lambda: bool(self.get(f"/stamps/{batch}").get("usable")),
            timeout,
            poll=1.0,
        )
        log.info("%s: batch %s... usable", self.name, batch[:12])

    def wait_upload_works(self, batch: str, timeout: float) -> None:
        """Wait until a direct (not deferred) chunk upload gets a receipt from a peer.

        ``POST /chunks`` without a tag pushes at once and waits for the storer's
        receipt, and a storer answers only after its health check has learnt the
        network's storage radius (after warm-up, then with a growing back-off):
        until then such uploads hang. This retries one, with a short limit each.
        """

        def upload() -> bool:
            if self._alive is not None:
                self._alive()
            payload = os.urandom(64)
            reply = http_json(
                "POST",
                f"{self.url}/chunks",
                len(payload).to_bytes(8, "little") + payload,
                timeout=5.0,
                **{
                    "Swarm-Postage-Batch-Id": batch,
                    "Content-Type": "application/octet-stream",
                },
            )
            return bool(reply.get("reference"))

        started = time.monotonic()
        wait_for(f"{self.name} first direct upload", upload, timeout, poll=1.0)
        log.info("%s: direct uploads work (after %.0f s)", self.name, time.monotonic() - started)


@dataclass
class BeeProcess(ChildProcess):
    """A ``bee start`` child process and its API."""

    api: BeeApi | None = None

    @classmethod
    def start_node(
        cls,
        binary: Path,
        name: str,
        address: str,
        ports: tuple[int, int],
        workdir: Path,
        flags: list[str],
    ) -> BeeProcess:
        """Start ``bee start`` with its data in ``workdir/name``; ``ports`` are (API, p2p)."""
        data_dir = workdir / name
        data_dir.mkdir(parents=True)
        argv = [
            str(binary),
            "start",
            f"--data-dir={data_dir}",
            f"--password={PASSWORD}",
            f"--api-addr={address}:{ports[0]}",
            f"--p2p-addr={address}:{ports[1]}",
            *bee_flags(),
            *flags,
        ]
        child = ChildProcess.start(name, argv, workdir / f"{name}.log")
        node = cls(child.name, child.process, child.log_path, child.log_file)
        node.api = BeeApi(name, f"http://{address}:{ports[0]}", node.check_alive)
        return node

    @property
    def node_api(self) -> BeeApi:
        if self.api is None:
            raise RuntimeError(f"{self.name} has no API")
        return self.api


def bee_flags() -> list[str]:
    """The flags every node of the local network shares (the contract flags come apart)."""
    return [
        "--full-node",
        "--mainnet=false",
        "--block-time=1",
        "--swap-enable=false",
        "--chequebook-enable=false",
        "--storage-incentives-enable=false",
        "--skip-postage-snapshot",
        "--allow-private-cidrs",
        "--warmup-time=2s",
        "--verbosity=info",
    ]
