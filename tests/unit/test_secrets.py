"""The keystore password leaves the environment at once and never reaches a child process.

The children are real: anvil started by `AnvilChain` in this process, and anvil started
by the installed `noosphere chain dev` command; their `/proc/<pid>/environ` is what
the kernel handed them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.cli.common import CliState, read_password
from agent.home import NodeHome
from agent.owner import PASSWORD_ENV, child_environment, take_env_password
from chain.devchain import AnvilChain, find_anvil, free_port
from tests.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-do-not-leak"
needs_anvil = pytest.mark.skipif(find_anvil() is None, reason="anvil is not installed")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_reading_the_password_takes_it_out_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    assert read_password(confirm=False) == SECRET
    assert PASSWORD_ENV not in os.environ
    assert os.getenv(PASSWORD_ENV) is None  # the C environment too (what children inherit)


def test_the_root_command_takes_it_before_any_subcommand_and_keeps_it_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent.cli import main

    seen: dict[str, object] = {}

    @main.command("probe-password", hidden=True)
    def probe() -> None:
        seen["environment"] = os.environ.get(PASSWORD_ENV)
        seen["password"] = read_password(confirm=False)
        seen["again"] = read_password(confirm=False)  # a second read still works

    try:
        result = CliRunner().invoke(
            main, ["--home", str(tmp_path), "probe-password"], env={PASSWORD_ENV: SECRET}
        )
    finally:
        main.commands.pop("probe-password")
    assert result.exit_code == 0, result.output
    assert seen == {"environment": None, "password": SECRET, "again": SECRET}
    assert PASSWORD_ENV not in os.environ


def test_state_keeps_the_value_out_of_its_repr() -> None:
    state = CliState(home=NodeHome(Path("/nowhere")), env_password=SECRET)
    assert SECRET not in repr(state)
    ctx = click.Context(click.Command("x"), obj=state)
    with ctx:
        assert read_password(confirm=False) == SECRET


def test_child_environment_drops_every_node_variable() -> None:
    env = {"PATH": "/bin", PASSWORD_ENV: SECRET, "NOOSPHERE_HOME": "/h", "HOME": "/root"}
    assert child_environment(env) == {"PATH": "/bin", "HOME": "/root"}
    assert take_env_password(env) == SECRET
    assert PASSWORD_ENV not in env


@needs_anvil
@pytest.mark.integration
@pytest.mark.asyncio
async def test_anvil_never_inherits_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)  # still set in this process, as in a library use
    chain = await AnvilChain.start()
    try:
        env = environ_of(chain.process.pid)
    finally:
        await chain.aclose()
    assert env.get("PATH") == os.environ["PATH"]  # a real environment was read
    assert PASSWORD_ENV not in env
    assert SECRET not in "".join(env.values())


@pytest.fixture
def chain_dev(cli: Cli) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    exe = Path(sys.executable).with_name("noosphere")
    env = dict(cli.env, **{PASSWORD_ENV: SECRET})
    proc = subprocess.Popen(
        [str(exe), "chain", "dev", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc, port
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


@needs_anvil
@pytest.mark.e2e
def test_noosphere_chain_dev_gives_anvil_no_password(
    chain_dev: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = chain_dev
    deadline = time.monotonic() + 60
    anvil: list[int] = []
    while not anvil and time.monotonic() < deadline:
        assert proc.poll() is None, "noosphere chain dev exited early"
        anvil = [p for p in children_of(proc.pid) if str(port) in _cmdline(p)]
        time.sleep(0.2)
    assert anvil, "anvil never started"
    env = environ_of(anvil[0])
    assert "PATH" in env
    assert PASSWORD_ENV not in env
    assert SECRET not in "".join(env.values())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# ---------------------------------------------------------------- container files


def test_the_image_runs_as_an_unprivileged_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the Dockerfile never switches away from root"
    assert users[-1] not in ("root", "0", "0:0")
    assert lines.index(next(x for x in lines if x.startswith("USER "))) < lines.index(
        next(x for x in lines if x.startswith("ENTRYPOINT"))
    )
    assert re.search(r"install -d -o noosphere .* /data", (ROOT / "Dockerfile").read_text())


def test_compose_has_no_default_password() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"NOOSPHERE_PASSWORD: \$\{NOOSPHERE_PASSWORD:\?[^}]+\}", text)
    assert ":-" not in text  # no fallback value for any variable


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose missing")
def test_compose_refuses_to_start_without_a_password() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert PASSWORD_ENV in required
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env.update({name: "x" for name in required - {PASSWORD_ENV}})  # only ours is missing
    missing = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert missing.returncode != 0
    assert "set NOOSPHERE_PASSWORD" in missing.stderr
    given = subprocess.run(
        ["docker-compose", "config", "-q"],
        cwd=ROOT, env=dict(env, **{PASSWORD_ENV: SECRET}), capture_output=True, text=True,
    )  # fmt: skip
    assert given.returncode == 0, given.stderr
