"""Containment of the python tool: every escape must fail and leave this machine unchanged.

Real child processes, a real TCP server, real files. Each case runs with the
network namespace (when the kernel grants it) and with the audit hook alone.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

from tools import SandboxLimits, ToolContext, ToolResult, make_python_tool
from tools.python_sandbox import session_members

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

OWNER = ToolContext(local_owner=True)
FAST = SandboxLimits(timeout_s=5, cpu_s=5)
MODES = [pytest.param(True, id="namespace+hook"), pytest.param(False, id="hook-only")]


async def run(
    code: str, *, deny: tuple[Path, ...] = (), limits: SandboxLimits = FAST
) -> ToolResult:
    return await make_python_tool(deny=deny, limits=limits)({"code": code}, OWNER)


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def child_pid(result: ToolResult) -> int:
    first = result.output.splitlines()[0]
    assert first.startswith("pid "), result.output
    return int(first.split()[1])


@pytest.mark.asyncio
async def test_normal_computation_prints_result() -> None:
    result = await run("import math\nprint(sum(range(10)), math.comb(10, 3))")
    assert result.ok, result.error
    assert result.output == "45 120\n"
    assert result.data == {"exit_code": 0, "timed_out": False, "truncated": False}


@pytest.mark.asyncio
async def test_remote_peer_is_refused_without_running() -> None:
    marker = "remote-ran-" + os.urandom(4).hex()
    tool = make_python_tool(limits=FAST)
    result = await tool({"code": f"import time\ntime.sleep(30)  # {marker}"}, ToolContext(False))
    assert not result.ok
    assert result.error == "the python tool never runs for a remote peer"
    assert processes_with(marker) == []


@pytest.mark.asyncio
async def test_errors_come_back_as_observations() -> None:
    result = await run("print('before')\nraise ValueError('bad value')")
    assert not result.ok
    assert result.error == "exited with status 1"
    assert "before" in result.output
    assert "ValueError: bad value" in result.output
    assert "sandbox_launcher" not in result.output.splitlines()[1]


@pytest.mark.asyncio
@pytest.mark.parametrize("namespaces", MODES)
async def test_network_is_unreachable(namespaces: bool) -> None:
    connections = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    attempts = [
        f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)",
        f"import _socket; s = _socket.socket(); s.connect(('127.0.0.1', {port}))",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)",
        f"import asyncio; asyncio.run(asyncio.open_connection('127.0.0.1', {port}))",
    ]
    try:
        for attempt in attempts:
            code = f"{attempt}\nprint('CONNECTED')"
            result = await run(code, limits=SandboxLimits(timeout_s=5, namespaces=namespaces))
            assert not result.ok, attempt
            assert "CONNECTED" not in result.output
        await asyncio.sleep(0.1)
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 0


@pytest.mark.asyncio
async def test_writing_outside_the_work_directory_fails(tmp_path: Path) -> None:
    targets = [tmp_path / f"escape{i}.txt" for i in range(4)]
    attempts = [
        f"open({str(targets[0])!r}, 'w').write('x')",
        f"import os; os.open({str(targets[1])!r}, os.O_WRONLY | os.O_CREAT)",
        f"import os; os.symlink({str(targets[2])!r}, 'link'); open('link', 'w').write('x')",
        f"import pathlib; pathlib.Path('../' * 20 + {str(targets[3])!r}).write_text('x')",
    ]
    for attempt in attempts:
        result = await run(f"{attempt}\nprint('WROTE')")
        assert not result.ok, attempt
        assert "WROTE" not in result.output
        assert "PermissionError" in result.output
    assert [t for t in targets if t.exists() or t.is_symlink()] == []


@pytest.mark.asyncio
async def test_dir_fd_and_chdir_cannot_redirect_writes(tmp_path: Path) -> None:
    outside = Path(sys.prefix)  # readable by the sandbox, so the tempting target
    name = "escape-" + os.urandom(4).hex()
    attempts = [
        f"import os\nfd = os.open({str(outside)!r}, os.O_RDONLY)\n"
        f"os.open({name!r}, os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
        f"import os\nos.chdir({str(outside)!r})\nopen({name!r}, 'w').write('x')",
        f"import os\nos.makedirs('a/b')\nfd = os.open('a/b', os.O_RDONLY)\n"
        f"os.open('../../../{name}', os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
    ]
    for attempt in attempts:
        result = await run(f"{attempt}\nprint('WROTE')")
        assert not result.ok, attempt
        assert "WROTE" not in result.output
        assert "PermissionError: sandbox:" in result.output
    assert not (outside / name).exists()
    assert not Path(tempfile.gettempdir(), name).exists()


@pytest.mark.asyncio
async def test_work_directory_is_writable_and_removed() -> None:
    code = (
        "import os, tempfile\n"
        "open('data.txt', 'w').write('kept')\n"
        "print(open('data.txt').read(), os.getcwd())\n"
        "print(tempfile.mkstemp()[1].startswith(os.getcwd()))"
    )
    result = await run(code)
    assert result.ok, result.output
    words = result.output.split()
    assert words[0] == "kept"
    assert words[2] == "True"
    assert not Path(words[1]).exists()


@pytest.mark.asyncio
async def test_node_home_cannot_be_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    secret = "node-secret-" + os.urandom(8).hex()
    (home / "keystore.json").write_text(secret)
    attempts = [
        f"print(open({str(home / 'keystore.json')!r}).read())",
        f"import os; print(os.listdir({str(home)!r}))",
        f"import pathlib; print(pathlib.Path({str(home)!r}).joinpath('keystore.json').read_text())",
        "print(open('/etc/hostname').read())",
    ]
    for attempt in attempts:
        result = await run(attempt, deny=(home,))
        assert not result.ok, attempt
        assert secret not in result.output
    denied = await run(f"open({str(home / 'keystore.json')!r})", deny=(home,))
    assert "is denied" in denied.output


@pytest.mark.asyncio
async def test_environment_secrets_do_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "env-secret-" + os.urandom(8).hex()
    monkeypatch.setenv("NOOSPHERE_TEST_SECRET", secret)
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for path in ('/proc/self/environ', f'/proc/{os.getppid()}/environ'):\n"
        "    try:\n"
        "        print(open(path, 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print('refused', exc)\n"
    )
    result = await run(code)
    assert result.ok, result.output
    assert secret not in result.output
    assert "NOOSPHERE_TEST_SECRET" not in result.output
    assert result.output.count("refused") == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("namespaces", MODES)
async def test_fork_bomb_is_bounded(namespaces: bool) -> None:
    code = "import os\nprint('pid', os.getpid(), flush=True)\nwhile True:\n    os.fork()\n"
    limits = SandboxLimits(timeout_s=5, cpu_s=5, namespaces=namespaces)
    result = await run(code, limits=limits)
    assert not result.ok
    assert "os.fork is not allowed" in result.output
    assert session_members(child_pid(result)) == []


@pytest.mark.asyncio
async def test_multiprocessing_is_refused() -> None:
    code = (
        "import os\n"
        "print('pid', os.getpid(), flush=True)\n"
        "import multiprocessing\n"
        "p = multiprocessing.Process(target=print, args=('CHILD',))\n"
        "p.start(); p.join()\n"
    )
    result = await run(code)
    assert not result.ok
    assert "CHILD" not in result.output
    assert session_members(child_pid(result)) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("namespaces", MODES)
async def test_detached_children_do_not_survive(namespaces: bool) -> None:
    seconds = (
        f"1000.{os.getpid()}{os.urandom(2).hex().translate(str.maketrans('abcdef', '123456'))}"
    )
    attempts = [
        f"import subprocess; subprocess.Popen(['sleep', '{seconds}'], start_new_session=True)",
        f"import os; os.posix_spawn('/bin/sleep', ['sleep', '{seconds}'], {{}})",
        f"import os; os.system('setsid sleep {seconds} &')",
        "import os\nif os.fork() == 0:\n"
        f"    os.setsid(); os.execv('/bin/sleep', ['sleep', '{seconds}'])",
        f"import pty; pty.spawn(['sleep', '{seconds}'])",
    ]
    limits = SandboxLimits(timeout_s=5, cpu_s=5, namespaces=namespaces)
    for attempt in attempts:
        result = await run(f"{attempt}\nprint('SPAWNED')", limits=limits)
        assert not result.ok, attempt
        assert "SPAWNED" not in result.output
        assert "not allowed" in result.output or "not available" in result.output
    assert processes_with(f"sleep {seconds}") == []


@pytest.mark.asyncio
async def test_memory_bomb_is_stopped() -> None:
    code = "hog = []\nwhile True:\n    hog.append(bytearray(10**7))\n"
    limits = SandboxLimits(timeout_s=10, memory_bytes=256 * 1024 * 1024)
    result = await run(code, limits=limits)
    assert not result.ok
    assert result.error == "ran out of memory (limit 256 MB)"
    single = await run("x = ' ' * 10**11")
    assert single.error == "ran out of memory (limit 512 MB)"


@pytest.mark.asyncio
async def test_infinite_loop_times_out_and_is_gone() -> None:
    code = "import os\nprint('pid', os.getpid(), flush=True)\nwhile True:\n    pass\n"
    limits = SandboxLimits(timeout_s=1.0, cpu_s=30)
    result = await run(code, limits=limits)
    assert not result.ok
    assert result.error == "timed out after 1 s; the process was killed"
    assert result.data is not None
    assert result.data["timed_out"] is True
    assert not Path(f"/proc/{child_pid(result)}").exists()


@pytest.mark.asyncio
async def test_cpu_limit_kills_busy_code() -> None:
    code = "while True:\n    pass\n"
    result = await run(code, limits=SandboxLimits(timeout_s=20, cpu_s=1))
    assert not result.ok
    assert result.error == "killed by the CPU limit (1 s)"


@pytest.mark.asyncio
async def test_huge_output_is_truncated() -> None:
    limits = SandboxLimits(timeout_s=10, max_output_bytes=64 * 1024)
    result = await run("import sys\nfor _ in range(200):\n    print('x' * 10**5)\n", limits=limits)
    assert result.ok
    assert result.data is not None
    assert result.data["truncated"] is True
    assert result.output.endswith("\n[output truncated at 65536 bytes]")
    assert len(result.output) < 64 * 1024 + 100


@pytest.mark.asyncio
async def test_big_files_are_capped() -> None:
    code = (
        "try:\n"
        "    open('big', 'wb').write(b'x' * (2 * 1024 * 1024))\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
    )
    result = await run(code, limits=SandboxLimits(timeout_s=5, file_bytes=1024 * 1024))
    assert result.ok, result.output
    assert result.output == "refused 27\n"  # EFBIG
