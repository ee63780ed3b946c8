"""`noosphere chain dev` and the chain commands, end to end through the installed script."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chain.compile import NPM_INSTALL
from chain.devchain import find_anvil, free_port
from tests.conftest import Cli

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`"),
]
START_TIMEOUT_S = 60


def start_dev_chain(cli: Cli, port: int) -> tuple[subprocess.Popen[str], dict[str, object]]:
    exe = Path(sys.executable).with_name("noosphere")
    process = subprocess.Popen(
        [str(exe), "chain", "dev", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    if not ready:
        process.kill()
        pytest.fail("noosphere chain dev printed nothing")
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail(f"chain dev exited: {process.stderr.read() if process.stderr else ''}")
    return process, json.loads(line)


def test_dev_chain_and_chain_commands(cli: Cli) -> None:
    assert cli("init").returncode == 0
    address = cli("id", "--json")
    node = json.loads(address.stdout)["address"]

    missing = cli("stake", "1", "--yes")
    assert missing.returncode == 2
    assert "noosphere chain dev" in missing.stderr

    process, info = start_dev_chain(cli, free_port())
    try:
        assert node in info["funded"]  # type: ignore[operator]
        assert Path(str(info["deployment_file"])).is_file()
        url = ["--set", f"network.eth_rpc_url={info['rpc_url']}"]

        refused = cli(*url, "stake", "1")  # stdin is not a terminal, no --yes
        assert refused.returncode == 1
        assert "--yes" in refused.stderr
        staked = cli(*url, "stake", "1.5", "--yes")
        assert staked.returncode == 0, staked.stderr
        assert "total 1.5 ETH" in staked.stdout

        root = "11" * 32
        created = cli(*url, "dataset", "create", root, "22" * 32, "--yes")
        assert created.returncode == 0, created.stderr
        dao = created.stdout.strip()
        shown = cli(*url, "dataset", "show", dao, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["root"] == "0x" + root
        assert json.loads(shown.stdout)["members"] == [node]

        posted = cli(
            *url, "job", "post", "--dao", dao, "--base-model", "33" * 32,
            "--hyperparams", "44" * 32, "--steps", "16", "--reward", "0.25", "--yes",
        )  # fmt: skip
        assert posted.returncode == 0, posted.stderr
        assert posted.stdout.strip() == "1"
        listed = json.loads(cli(*url, "job", "list", "--json").stdout)
        assert [(j["job_id"], j["status"], j["reward"]) for j in listed] == [(1, 1, 25 * 10**16)]
        detail = cli(*url, "job", "show", "1", "--json")
        assert json.loads(detail.stdout)["spec"]["steps"] == 16

        unknown = cli(*url, "job", "show", "7")
        assert unknown.returncode == 1
        assert "JobNotFound" in unknown.stderr
        assert json.loads(cli(*url, "registry", "show", "--json").stdout) == []
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
    assert os.path.exists(str(info["deployment_file"]))
