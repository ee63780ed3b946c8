"""Graceful shutdown of every long-running command, each a real process in steady state.

The rule (README, "Stopping"): a service (`node`, `serve`, `swarm dev`, `chain dev`,
`train worker`, `train validator`) runs until it is told to stop, so SIGTERM and SIGINT
(Ctrl-C) are its normal end: it exits with status 0 within seconds, prints one line
saying it stopped (on stderr; stdout keeps only its machine-readable output), shows no
traceback, leaves no child process behind (anvil under `chain dev`), removes what only
a live process may hold (`node.json`) and keeps its data (keystore, index, deployment).
`chat` ends at end of input (Ctrl-D) or on SIGTERM with "bye" and status 0; its Ctrl-C
only cancels the answer in progress.

Logging runs with `--log-json`, so a log record is a JSON line and anything else on
stderr is the command's own words: exactly one of those may follow the signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chain.compile import NPM_INSTALL
from chain.devchain import find_anvil, free_port
from tests.conftest import PASSWORD, Cli

pytestmark = [pytest.mark.e2e]

EXIT_WITHIN_S = 10.0
START_WITHIN_S = 180.0
needs_anvil = pytest.mark.skipif(
    find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`"
)


def home_cli(root: Path, name: str) -> Cli:
    home = root / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
    env.update(
        NOOSPHERE_HOME=str(home), NOOSPHERE_PASSWORD=PASSWORD,
        HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return Cli(home=home, env=env)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Service:
    """One `noosphere` process: stdout read as it comes, stderr into a file."""

    process: subprocess.Popen[bytes]
    stderr_file: Path
    stdout: str = ""
    marks: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, cli: Cli, *args: str, stdin: int = subprocess.DEVNULL) -> Service:
        exe = Path(sys.executable).with_name("noosphere")
        log = cli.home.parent / f"{cli.home.name}-{'-'.join(args[:2])}-{time.time_ns()}.err"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(exe), "--log-json", *args],
                env=cli.env, stdin=stdin, stdout=subprocess.PIPE, stderr=sink,
            )  # fmt: skip
        return cls(process, log)

    def read_until(self, marker: str, timeout: float = START_WITHIN_S) -> str:
        """stdout up to and including `marker` (prompts end without a newline)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while marker not in self.stdout:
            fd = self.process.stdout.fileno()
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                self.process.kill()
                raise AssertionError(
                    f"no {marker!r} on stdout (exit {self.process.poll()}): "
                    f"{self.stdout[-500:]!r}\n{self.stderr[-3000:]}"
                )
            self.stdout += chunk.decode(errors="replace")
        return self.stdout

    def wait_log(self, marker: str, timeout: float = START_WITHIN_S) -> None:
        """Wait until stderr holds `marker` (a log record's message)."""
        deadline = time.monotonic() + timeout
        while marker not in self.stderr:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r} on stderr: {self.stderr[-3000:]}")
            time.sleep(0.2)

    @property
    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def stop(self, signum: int) -> tuple[int, float, list[str]]:
        """Send `signum`; (exit status, seconds to exit, stderr lines that are not logs)."""
        before = len(self.stderr_file.read_bytes())
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            status = self.process.wait(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running {EXIT_WITHIN_S} s after {signum!r}") from None
        elapsed = time.monotonic() - started
        assert self.process.stdout is not None
        self.stdout += self.process.stdout.read().decode(errors="replace")
        self.process.stdout.close()
        after = self.stderr_file.read_bytes()[before:].decode(errors="replace")
        said = [line for line in after.splitlines() if line.strip() and not _is_log(line)]
        return status, elapsed, said

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _is_log(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and {"ts", "level", "logger", "message"} <= set(record)


def assert_no_traceback(service: Service) -> None:
    text = service.stderr
    assert "Traceback" not in text, text[-4000:]
    for line in text.splitlines():
        if _is_log(line):
            assert "exc_info" not in json.loads(line), line[:2000]


def assert_stopped_cleanly(
    service: Service, signum: int, children: set[int], said_line: str
) -> None:
    status, elapsed, said = service.stop(signum)
    assert status == 0, (status, service.stderr[-3000:])
    assert elapsed < EXIT_WITHIN_S
    assert len(said) == 1, said
    assert said_line in said[0], said
    assert_no_traceback(service)
    deadline = time.monotonic() + 5  # an orphan would be adopted and stay alive
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "child processes left running"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


# ---------------------------------------------------------------- the dev services


@pytest.mark.parametrize("signum", SIGNALS)
def test_swarm_dev_stops_with_status_0_and_one_line(signum: int, tmp_path: Path) -> None:
    cli = home_cli(tmp_path, "swarm")
    data = tmp_path / "chunks"
    service = Service.start(cli, "swarm", "dev", "--port", "0", "--data-dir", str(data))
    try:
        url = service.read_until("http").strip()
        bought = cli("--set", f"network.bee_url={url}", "swarm", "stamp", "buy", "1000000",
                     "20", "--yes")  # fmt: skip
        assert bought.returncode == 0, bought.stderr
        kept = snapshot(data)
        assert kept
        assert_stopped_cleanly(service, signum, descendants(service.process.pid), "stopped")
        assert snapshot(data) == kept  # what it stored stays
    finally:
        service.kill()


@needs_anvil
@pytest.mark.parametrize("signum", SIGNALS)
def test_chain_dev_stops_anvil_with_it(signum: int, tmp_path: Path) -> None:
    cli = home_cli(tmp_path, "chain")
    service = Service.start(cli, "chain", "dev", "--port", str(free_port()))
    try:
        info = json.loads(service.read_until("\n").splitlines()[0])
        children = descendants(service.process.pid)
        assert children, "anvil should run under chain dev"
        deployment = Path(info["deployment_file"]).read_bytes()
        assert_stopped_cleanly(service, signum, children, "stopped")
        assert Path(info["deployment_file"]).read_bytes() == deployment
    finally:
        service.kill()


# ---------------------------------------------------------------- the node and its workers


@dataclass
class Network:
    root: Path
    bee_url: str
    rpc_url: str
    deployment: str
    node: Cli  # a home with a key, funded on the chain


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """`swarm dev` with a postage batch and `chain dev`, shared by the tests below."""
    if find_anvil() is None:
        pytest.skip(f"anvil not installed: run `{NPM_INSTALL}`")
    root = tmp_path_factory.mktemp("shutdown")
    node = home_cli(root, "node")
    assert node("init").returncode == 0
    swarm = Service.start(home_cli(root, "swarm"), "swarm", "dev", "--port", "0")
    chain = Service.start(node, "chain", "dev", "--port", str(free_port()))  # funds node's key
    try:
        bee_url = swarm.read_until("http").strip()
        info = json.loads(chain.read_until("\n").splitlines()[0])
        node.env["NOOSPHERE_NETWORK_BEE_URL"] = bee_url
        node.env["NOOSPHERE_NETWORK_ETH_RPC_URL"] = info["rpc_url"]
        bought = node("swarm", "stamp", "buy", "10000000", "22", "--yes")
        assert bought.returncode == 0, bought.stderr
        yield Network(root, bee_url, info["rpc_url"], info["deployment_file"], node)
    finally:
        for service in (chain, swarm):
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    service.process.wait(timeout=30)
            service.kill()


@pytest.mark.parametrize("command", ["node", "serve"])
@pytest.mark.parametrize("signum", SIGNALS)
def test_the_node_stops_removes_node_json_and_keeps_its_data(
    network: Network, command: str, signum: int
) -> None:
    cli = network.node
    service = Service.start(cli, command, "--api-port", "0")
    try:
        assert service.read_until("\n").startswith("0x")  # the address: it answers peers
        service.wait_log("model loaded")  # steady state: everything is up
        node_file = cli.home / "node.json"
        deadline = time.monotonic() + 30
        while not node_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node_file.exists()
        kept = snapshot(cli.home)
        assert "keystore.json" in kept
        children = descendants(service.process.pid)
        assert_stopped_cleanly(service, signum, children, "stopped")
        assert not node_file.exists()
        after = snapshot(cli.home)
        assert set(kept) - set(after) == {"node.json"}  # the index, key and token stay
        assert after["keystore.json"] == kept["keystore.json"]
    finally:
        service.kill()


# The worker and the validator install one handler for both signals, and each case costs
# a torch start-up: each takes one signal here, together they cover both.
@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_the_training_worker_stops_while_waiting_for_jobs(network: Network, signum: int) -> None:
    service = Service.start(
        network.node, "train", "worker", "--opt-in", "--yes", "--poll", "0.5",
        "--deployment", network.deployment,
    )  # fmt: skip
    try:
        service.read_until("worker 0x")
        service.read_until("waiting for jobs")
        assert_stopped_cleanly(service, signum, descendants(service.process.pid), "stopped")
    finally:
        service.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT])
def test_the_validator_stops_between_polls(network: Network, signum: int) -> None:
    service = Service.start(
        network.node, "train", "validator", "--yes", "--poll", "0.5",
        "--deployment", network.deployment,
    )  # fmt: skip
    try:
        service.read_until("watching disputes")
        assert_stopped_cleanly(service, signum, descendants(service.process.pid), "stopped")
    finally:
        service.kill()


@pytest.mark.parametrize("how", ["EOF", "SIGTERM"])
def test_chat_ends_at_end_of_input_and_on_sigterm(tmp_path: Path, how: str) -> None:
    cli = home_cli(tmp_path, "chat")
    service = Service.start(cli, "chat", stdin=subprocess.PIPE)
    assert service.process.stdin is not None
    try:
        service.read_until("you> ")
        children = descendants(service.process.pid)
        if how == "EOF":
            service.process.stdin.close()
            status = service.process.wait(timeout=EXIT_WITHIN_S)
        else:
            status, _, said = service.stop(signal.SIGTERM)
            assert said == [], said  # "bye" goes to the conversation, on stdout
        assert status == 0, service.stderr[-3000:]
        assert service.read_until("bye").rstrip().endswith("bye")
        assert_no_traceback(service)
        assert not [pid for pid in children if alive(pid)]
    finally:
        if service.process.stdin is not None and not service.process.stdin.closed:
            service.process.stdin.close()
        service.kill()
