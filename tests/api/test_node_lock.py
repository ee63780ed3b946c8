"""The node's claim on its home (`NodeLock`) and the thin client facing a node that dies.

The lock is held by real processes and dropped by a real SIGKILL; the dying node is a
real socket server that takes the request and closes the connection part-way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.api.client import NodeApiError, NodeClient
from agent.api.discovery import NodeLock, SharedUse, lock_holder
from tests.conftest import Cli

HOLDER = """
import sys, time
from pathlib import Path
from agent.api.discovery import NodeLock
lock = NodeLock.acquire(Path(sys.argv[1]))
print("held" if lock is not None else "refused", flush=True)
time.sleep(600)
"""


def holder(home: Path) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_held_home_is_refused_until_its_holder_is_killed(tmp_path: Path) -> None:
    first = holder(tmp_path)
    try:
        assert NodeLock.acquire(tmp_path) is None
        assert lock_holder(tmp_path) == first.pid
        first.send_signal(signal.SIGSTOP)  # a stopped holder still holds
        assert NodeLock.acquire(tmp_path) is None
        first.kill()
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        assert first.stdout is not None
        first.stdout.close()
    # The kernel dropped the dead holder's lock; its pid left in the file changes nothing.
    lock = NodeLock.acquire(tmp_path)
    assert lock is not None
    with lock:
        assert lock_holder(tmp_path) == os.getpid()
        assert NodeLock.acquire(tmp_path) is None  # another open of the file is refused too
    again = NodeLock.acquire(tmp_path)  # released on leaving the block
    assert again is not None
    again.release()
    again.release()  # idempotent


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
EVENT = b'event: tool_call\ndata: {"name": "ask_peer"}\n\n'


@contextmanager
def dying_node(reply: bytes) -> Iterator[NodeClient]:
    """A 'node' that reads one request, sends `reply`, and closes the connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1 << 16)
            connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield NodeClient(f"http://127.0.0.1:{server.getsockname()[1]}", "t" * 32)
    finally:
        thread.join(10)
        server.close()


def test_a_stream_cut_before_its_report_is_an_error_not_a_short_answer() -> None:
    chunk = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)
    with dying_node(SSE_HEAD + chunk) as client:
        stream = client.ask_stream("who?")
        assert next(stream) == ("tool_call", {"name": "ask_peer"})  # shown before the cut
        with pytest.raises(NodeApiError, match="went away in the middle of its answer"):
            next(stream)


@pytest.mark.parametrize(
    ("reply", "when"),
    [
        (b"", "before answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", "in the middle of its answer"),
    ],
)
def test_a_node_that_closes_the_connection_is_reported_in_one_line(reply: bytes, when: str) -> None:
    with dying_node(reply) as client, pytest.raises(NodeApiError) as caught:
        client.search("anything")
    assert str(caught.value) == f"the node at {client.url} went away {when}: did it stop?"


def test_a_headless_node_without_an_api_still_keeps_in_process_commands_off_its_index(
    cli: Cli,
) -> None:
    """`serve` without `--api-port` writes no node.json: only its lock says it runs."""
    assert cli("init").returncode == 0
    node = holder(cli.home)  # holds node.lock as a running node does
    try:
        assert not (cli.home / "node.json").exists()
        for args in (["--no-node", "search", "anything"], ["--no-node", "ingest", __file__]):
            refused = cli(*args)
            assert refused.returncode != 0, refused.stdout
            assert f"a node is running for {cli.home} (pid {node.pid})" in refused.stderr
            assert "Traceback" not in refused.stderr
    finally:
        node.kill()
        node.wait()
        assert node.stdout is not None
        node.stdout.close()
    assert not (cli.home / "data").exists() or not any((cli.home / "data").rglob("*.wal"))


def test_a_node_does_not_start_while_a_command_works_on_its_index(cli: Cli) -> None:
    assert cli("init").returncode == 0
    use = SharedUse.acquire(cli.home)  # what an in-process `--no-node ingest` holds
    assert use is not None
    try:
        assert NodeLock.acquire(cli.home) is None
        other = SharedUse.acquire(cli.home)  # other commands may share it
        assert other is not None
        other.release()
        started = cli("node", "--no-api", timeout=60)
        assert started.returncode != 0
        assert "another noosphere command is working on" in started.stderr
        assert "Traceback" not in started.stderr
    finally:
        use.release()
    lock = NodeLock.acquire(cli.home)  # the command is done: a node may start
    assert lock is not None
    try:
        assert SharedUse.acquire(cli.home) is None  # and commands now stay off
    finally:
        lock.release()
