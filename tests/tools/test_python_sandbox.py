"""Containment of the python tool: every escape must fail and leave this machine unchanged.

Real bubblewrap sandboxes, real child processes, a real TCP server, real files. The
kernel is the boundary, so most attacks run twice: in the sandboxed interpreter
(audit hook in place) and in a fresh interpreter the code starts itself, which has
no hook at all (`unguarded`). Processes are found from the host side by a marker
in their command line, never by pids printed inside the sandbox's pid namespace.
"""

from __future__ import annotations

import ast
import asyncio
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tools import SandboxLimits, ToolContext, ToolResult, make_python_tool
from tools.sandbox_isolation import SANDBOX_UID

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

OWNER = ToolContext(local_owner=True)
FAST = SandboxLimits(timeout_s=10, cpu_s=5)
REPO = Path(__file__).resolve().parents[2]


async def run(
    code: str, *, deny: tuple[Path, ...] = (), limits: SandboxLimits = FAST
) -> ToolResult:
    return await make_python_tool(deny=deny, limits=limits)({"code": code}, OWNER)


def unguarded(code: str) -> str:
    """Sandboxed code that runs `code` in a fresh interpreter, where no audit hook exists."""
    return (
        "import subprocess, sys\n"
        f"r = subprocess.run([sys.executable, '-I', '-c', {code!r}], capture_output=True, "
        "text=True)\n"
        "print(r.stdout + r.stderr)\n"
    )


def marker() -> str:
    return "marker-" + os.urandom(6).hex()


def processes_with(text: str) -> list[int]:
    """Host pids whose command line contains `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(entry))
    return found


def sleep_marker() -> str:
    """A `sleep` duration unique to this test, to find that sleep from the host."""
    digits = "".join(str(b % 10) for b in os.urandom(8))
    return f"300.{digits}"


@pytest.mark.asyncio
async def test_normal_computation_prints_result() -> None:
    result = await run("import math\nprint(sum(range(10)), math.comb(10, 3), 'é✓')")
    assert result.ok, result.error
    assert result.output == "45 120 é✓\n"
    assert result.data == {"exit_code": 0, "timed_out": False, "truncated": False}


@pytest.mark.asyncio
async def test_remote_peer_is_refused_without_running() -> None:
    seconds = sleep_marker()
    tool = make_python_tool(limits=FAST)
    code = f"import subprocess\nsubprocess.run(['sleep', '{seconds}'])"
    result = await tool({"code": code}, ToolContext(False))
    assert not result.ok
    assert result.error == "the python tool never runs for a remote peer"
    assert processes_with(f"sleep {seconds}") == []


@pytest.mark.asyncio
async def test_errors_come_back_as_observations() -> None:
    result = await run("print('before')\nraise ValueError('bad value')")
    assert not result.ok
    assert result.error == "exited with status 1"
    assert "before" in result.output
    assert "ValueError: bad value" in result.output
    assert 'File "main.py", line 2' in result.output
    assert 'File "<string>"' not in result.output  # no launcher frames


@pytest.mark.asyncio
async def test_isolation_is_in_force(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import os, socket\n"
        "print(os.getuid(), os.getgid(), os.getpid(), socket.gethostname())\n"
        f"print([os.path.exists(p) for p in ({str(home)!r}, {str(REPO)!r}, '/etc/hostname', "
        "'/root/.ssh', '/home', '/var')])\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(sorted(name for _, name in socket.if_nameindex()), os.getcwd(), "
        "os.path.realpath('/tmp'))\n"
    )
    result = await run(unguarded(code), deny=(home,))
    assert result.ok, result.output
    ids, exists, pids, net = result.output.splitlines()[:4]
    uid, gid, pid, hostname = ids.split()
    assert (int(uid), int(gid)) == (SANDBOX_UID, SANDBOX_UID)
    assert int(uid) != 0
    assert hostname == "sandbox" != socket.gethostname()
    assert int(pid) < 10  # a fresh pid namespace: init, launcher, this child
    assert exists == "[False, False, False, False, False, False]"
    assert len(ast.literal_eval(pids)) <= 4  # only the sandbox's own processes are visible
    assert net == "['lo'] /work /work"


@pytest.mark.asyncio
async def test_no_privileges_can_be_regained_inside() -> None:
    code = (
        "import subprocess\n"
        "for cmd in (['unshare', '--user', '--map-root-user', 'id', '-u'], ['su', '-c', 'id']):\n"
        "    r = subprocess.run(cmd, capture_output=True, text=True)\n"
        "    print(r.returncode != 0, repr(r.stdout))\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
    )
    result = await run(code)
    assert result.ok, result.output
    assert result.output == "True ''\nTrue ''\n0000000000000000\n"


@pytest.mark.asyncio
async def test_guard_disabling_trick_then_reading_the_home_fails(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    secret = "node-secret-" + os.urandom(8).hex()
    keystore = home / "keystore.json"
    keystore.write_text(secret)
    trick = (
        "import sys\n"
        "launcher = sys._getframe(1).f_globals  # the launcher's module globals\n"
        "for name, value in list(launcher.items()):\n"
        "    if name.isupper() and isinstance(value, (tuple, frozenset)):\n"
        "        launcher[name] = type(value)()\n"
        "main = sys.modules['__main__']\n"
        "main.BLOCKED_EVENTS = main.BLOCKED_PREFIXES = main.BLOCKED_MODULES = frozenset()\n"
        "print('emptied', sorted(k for k in launcher if k.isupper()))\n"
    )
    in_process = (
        f"try:\n    print(open({str(keystore)!r}).read())\n"
        "except OSError as exc:\n    print('refused', type(exc).__name__, exc)\n"
        "import socket\n"
        "try:\n    socket.socket()\n    print('SOCKET MADE')\n"
        "except OSError as exc:\n    print('refused', exc)\n"
    )
    fresh = f"import os; print('exists', os.path.exists({str(home)!r})); open({str(keystore)!r})"
    result = await run(trick + in_process + unguarded(fresh), deny=(home,))
    assert "emptied ['NAME_LOOKUPS'" in result.output  # the trick did run
    assert secret not in result.output
    assert "refused PermissionError sandbox: access to" in result.output  # the hook held
    assert "refused sandbox: the network is not available" in result.output
    assert "SOCKET MADE" not in result.output
    assert "exists False" in result.output  # and without any hook: no such path
    assert "FileNotFoundError" in result.output


@pytest.mark.asyncio
async def test_sqlite_and_mkfifo_outside_the_work_directory_fail(tmp_path: Path) -> None:
    outside = [str(tmp_path / "db.sqlite"), "/usr/db.sqlite", "/db.sqlite", "/proc/db.sqlite"]
    fifos = [str(tmp_path / "fifo"), "/usr/fifo", "/fifo", "/dev/fifo"]
    code = (
        "import os, sqlite3\n"
        f"for target in {outside!r}:\n"
        "    try:\n"
        "        sqlite3.connect(target).execute('create table t(x)')\n"
        "        print('CREATED', target)\n"
        "    except (sqlite3.Error, OSError) as exc:\n"
        "        print('refused', target, exc)\n"
        f"for target in {fifos!r}:\n"
        "    try:\n"
        "        os.mkfifo(target)\n"
        "        print('CREATED', target)\n"
        "    except OSError as exc:\n"
        "        print('refused', target, exc)\n"
        "sqlite3.connect('inside.db').execute('create table t(x)')\n"
        "os.mkfifo('inside.fifo')\n"
        "print('inside ok')\n"
    )
    for attempt in (code, unguarded(code)):
        result = await run(attempt)
        assert "CREATED" not in result.output
        assert result.output.count("refused") == len(outside) + len(fifos), result.output
        assert "inside ok" in result.output
    assert list(tmp_path.iterdir()) == []
    assert not Path("/db.sqlite").exists()
    assert not Path("/fifo").exists()


@pytest.mark.asyncio
async def test_setsid_grandchildren_are_gone_when_the_call_returns() -> None:
    first, second = sleep_marker(), sleep_marker()
    code = (
        "import os, subprocess, time\n"
        f"subprocess.Popen(['setsid', 'sleep', '{first}'])\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{second}'])\n"
        "    os._exit(0)\n"
        "time.sleep(1.5)\n"
        "print('SPAWNED')\n"
    )
    seen: set[str] = set()
    call = asyncio.create_task(run(code))
    while not call.done():  # watch from the host while the call runs
        seen.update(m for m in (first, second) if processes_with(f"sleep {m}"))
        await asyncio.sleep(0.05)
    result = await call
    assert result.ok, result.output
    assert result.output == "SPAWNED\n"
    assert seen == {first, second}  # they really ran, outside the sandbox's own session
    assert processes_with(f"sleep {first}") == []
    assert processes_with(f"sleep {second}") == []


@pytest.mark.asyncio
async def test_timed_out_call_takes_its_detached_children_along() -> None:
    seconds = sleep_marker()
    code = (
        f"import subprocess\nsubprocess.Popen(['setsid', 'sleep', '{seconds}'])\n"
        "while True:\n    pass\n"
    )
    started = time.monotonic()
    result = await run(code, limits=SandboxLimits(timeout_s=1.5, cpu_s=30))
    assert time.monotonic() - started < 5
    assert result.error == "timed out after 1.5 s; the process was killed"
    assert result.data is not None
    assert result.data["timed_out"] is True
    assert processes_with(f"sleep {seconds}") == []


@pytest.mark.asyncio
async def test_parent_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "env-secret-" + os.urandom(8).hex()
    monkeypatch.setenv("NOOSPHERE_TEST_SECRET", secret)
    code = (
        "import os\n"
        "print(sorted(os.environ))\n"
        "for pid in sorted({'self', str(os.getppid()), '1'} | "
        "{p for p in os.listdir('/proc') if p.isdigit()}):\n"
        "    try:\n"
        "        print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as exc:\n"
        "        print(pid, 'refused', exc)\n"
    )
    for attempt in (code, unguarded(code)):
        result = await run(attempt)
        assert result.ok, result.output
        assert secret not in result.output
        assert "NOOSPHERE_TEST_SECRET" not in result.output
        assert "['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']" in result.output


@pytest.mark.asyncio
async def test_loopback_network_is_unreachable() -> None:
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
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2)",
        f"import asyncio; asyncio.run(asyncio.open_connection('127.0.0.1', {port}))",
    ]
    raw = (
        f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))"
        "\nprint('CONNECTED')"
    )
    try:
        for attempt in attempts:
            result = await run(f"{attempt}\nprint('CONNECTED')")
            assert not result.ok, attempt
            assert "sandbox: the network is not available" in result.output
        fresh = await run(unguarded(raw))
        assert "CONNECTED" not in fresh.output
        # The host port is listening: a refusal means a different, empty loopback.
        assert "ConnectionRefusedError" in fresh.output
        await asyncio.sleep(0.1)
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 0


@pytest.mark.asyncio
async def test_fork_bomb_reaches_the_process_limit(tmp_path: Path) -> None:
    tag = marker()  # every sandboxed python carries its deny list, so this, in argv
    counting = (
        "import os, time\n"
        "n = 0\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "print('forked', n)\n"
    )
    limits = SandboxLimits(timeout_s=20, cpu_s=10, max_processes=6)
    result = await run(counting, deny=(tmp_path / tag,), limits=limits)
    assert result.output == "forked 6\n"  # exactly the limit, enforced by the kernel
    assert processes_with(tag) == []

    bomb = "import os\nwhile True:\n    os.fork()\n"
    started = time.monotonic()
    result = await run(bomb, deny=(tmp_path / tag,), limits=limits)
    assert time.monotonic() - started < 15
    assert not result.ok
    assert "BlockingIOError: [Errno 11] Resource temporarily unavailable" in result.output
    assert processes_with(tag) == []
    after = await run("print('still fine')")  # the host and the tool are unharmed
    assert after.output == "still fine\n"


@pytest.mark.asyncio
async def test_without_isolation_the_tool_refuses_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seconds = sleep_marker()
    code = f"import subprocess\nsubprocess.run(['sleep', '{seconds}'])"
    missing = make_python_tool(limits=FAST, bwrap=str(tmp_path / "no-such-bwrap"))
    result = await missing({"code": code}, OWNER)
    assert not result.ok
    assert result.error.startswith(f"python sandbox unavailable: no bwrap at {tmp_path}")
    assert "apt-get install bubblewrap" in result.error

    broken = make_python_tool(limits=FAST, bwrap="/bin/false")  # present, but cannot isolate
    result = await broken({"code": code}, OWNER)
    assert not result.ok
    assert result.error.startswith("python sandbox unavailable: bubblewrap failed")
    assert "user namespaces" in result.error

    monkeypatch.setenv("PATH", str(tmp_path))
    unfound = make_python_tool(limits=FAST)
    result = await unfound({"code": code}, OWNER)
    assert result.error.startswith("python sandbox unavailable: no bwrap on PATH")
    assert processes_with(f"sleep {seconds}") == []


@pytest.mark.asyncio
async def test_writing_outside_the_work_directory_fails(tmp_path: Path) -> None:
    targets = [tmp_path / f"escape{i}.txt" for i in range(4)]
    attempts = [
        f"open({str(targets[0])!r}, 'w').write('x')",
        f"import os; os.open({str(targets[1])!r}, os.O_WRONLY | os.O_CREAT)",
        f"import os; os.symlink({str(targets[2])!r}, 'link'); open('link', 'w').write('x')",
        f"import pathlib; pathlib.Path('../' * 20 + {str(targets[3])!r}).write_text('x')",
        "open('/usr/escape.txt', 'w').write('x')",
    ]
    for attempt in attempts:
        attempt = f"{attempt}\nprint('WROTE')"
        for code in (attempt, unguarded(attempt)):
            result = await run(code)
            assert "WROTE" not in result.output, code
            assert "Error" in result.output
    assert list(tmp_path.iterdir()) == []
    assert not Path("/usr/escape.txt").exists()


@pytest.mark.asyncio
async def test_dir_fd_and_chdir_cannot_redirect_writes() -> None:
    outside = Path(sys.base_prefix)  # bound read-only inside, so the tempting target
    name = "escape-" + os.urandom(4).hex()
    attempts = [
        f"import os\nfd = os.open({str(outside)!r}, os.O_RDONLY)\n"
        f"os.open({name!r}, os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
        f"import os\nos.chdir({str(outside)!r})\nopen({name!r}, 'w').write('x')",
        f"import os\nos.makedirs('a/b')\nfd = os.open('a/b', os.O_RDONLY)\n"
        f"os.open('../../../{outside}/{name}', os.O_WRONLY | os.O_CREAT, dir_fd=fd)",
    ]
    for attempt in attempts:
        guarded = await run(f"{attempt}\nprint('WROTE')")
        assert not guarded.ok, attempt
        # The hook resolves dir_fd-relative names against /work; the kernel catches those.
        assert (
            "PermissionError: sandbox: writing outside the work directory" in guarded.output
            or "OSError: [Errno 30] Read-only file system" in guarded.output
        )
        fresh = await run(unguarded(f"{attempt}\nprint('WROTE')"))
        assert "WROTE" not in fresh.output
        assert "OSError: [Errno 30] Read-only file system" in fresh.output, attempt
    assert not (outside / name).exists()


@pytest.mark.asyncio
async def test_each_call_gets_a_fresh_work_directory_that_leaves_no_trace() -> None:
    name = "trace-" + os.urandom(4).hex()
    code = (
        "import os, tempfile\n"
        "print(sorted(os.listdir('.')))\n"
        f"open({name!r}, 'w').write('kept')\n"
        f"print(open({name!r}).read(), os.getcwd(), tempfile.mkstemp()[1].startswith('/work/'))\n"
    )
    first = await run(code)
    second = await run(code)
    assert first.ok, first.output
    assert first.output == second.output == "['main.py']\nkept /work True\n"
    assert not list(Path("/tmp").glob(f"**/{name}"))


@pytest.mark.asyncio
async def test_work_directory_size_is_capped() -> None:
    code = (
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        open(f'part{n}', 'wb').write(b'x' * 2**20)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('stopped', n, exc.errno)\n"
    )
    limits = SandboxLimits(timeout_s=10, work_bytes=8 * 2**20)
    result = await run(code, limits=limits)
    assert result.ok, result.output
    stopped, files, errno = result.output.split()
    assert stopped == "stopped"
    assert 6 <= int(files) <= 8
    assert errno == "28"  # ENOSPC


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
async def test_denied_path_inside_a_bound_tree_is_masked() -> None:
    hidden = Path(sys.base_prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    hidden = hidden / "xmlrpc"
    assert list(hidden.iterdir())  # on the host it has files
    code = f"import os; print(os.listdir({str(hidden)!r}))"
    result = await run(unguarded(code), deny=(hidden,))
    assert result.output.strip() == "[]"


@pytest.mark.asyncio
async def test_multiprocessing_runs_inside_the_sandbox() -> None:
    code = (
        "import multiprocessing as mp\n"
        "def square(x):\n"
        "    return x * x\n"
        "if __name__ == '__main__':\n"
        "    with mp.Pool(2) as pool:\n"
        "        print(pool.map(square, range(6)))\n"
    )
    result = await run(code)
    assert result.ok, result.output
    assert result.output == "[0, 1, 4, 9, 16, 25]\n"


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
