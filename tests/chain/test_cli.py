"""`noosphere chain dev` and the chain commands, end to end through the installed script."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from chain.compile import NPM_INSTALL
from chain.devchain import find_anvil, free_port
from tests.conftest import Cli

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`"),
]
START_TIMEOUT_S = 60


def start_dev_chain(
    cli: Cli, port: int, *extra: str
) -> tuple[subprocess.Popen[str], dict[str, object]]:
    """`chain dev`; mining only on transactions unless `extra` sets `--block-time`: these
    tests move the chain's clock themselves (a challenge window must not pass by itself)."""
    exe = Path(sys.executable).with_name("noosphere")
    if "--block-time" not in extra:
        extra = (*extra, "--block-time", "0")
    process = subprocess.Popen(
        [str(exe), "chain", "dev", "--port", str(port), *extra],
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
        shown_text = cli(*url, "job", "show", "1").stdout.splitlines()
        assert "status           POSTED" in shown_text  # names and ether for people
        assert "reward           0.25 ETH" in shown_text

        unknown = cli(*url, "job", "show", "7")
        assert unknown.returncode == 1
        assert "JobNotFound" in unknown.stderr
        assert json.loads(cli(*url, "registry", "show", "--json").stdout) == []
    finally:
        assert stop_dev_chain(process) == 0
    assert os.path.exists(str(info["deployment_file"]))


def stop_dev_chain(process: subprocess.Popen[str]) -> int:
    """SIGTERM, then SIGKILL if it is still there after 20 s; its exit status."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _rpc(url: str, method: str, params: list[object]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer = json.load(reply)
    assert "error" not in answer, answer
    return answer["result"]


def _head(url: str) -> int:
    return int(_rpc(url, "eth_blockNumber", []), 16)


def _receipt_within(url: str, tx: str, seconds: float) -> Any:
    """Poll for the receipt: anvil mines in its own task, a moment after accepting the tx."""
    deadline = time.monotonic() + seconds
    while True:
        receipt = _rpc(url, "eth_getTransactionReceipt", [tx])
        if receipt is not None or time.monotonic() > deadline:
            return receipt
        time.sleep(0.05)


def _send_one_wei(url: str, dev: dict[str, str]) -> str:
    signed = Account.sign_transaction(
        {
            "to": dev["address"],
            "value": 1,
            "gas": 21_000,
            "gasPrice": int(_rpc(url, "eth_gasPrice", []), 16),
            "nonce": int(_rpc(url, "eth_getTransactionCount", [dev["address"], "pending"]), 16),
            "chainId": int(_rpc(url, "eth_chainId", []), 16),
        },
        dev["private_key"],
    )
    return str(_rpc(url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()]))


@pytest.mark.parametrize(("block_time", "idle_blocks"), [(1, "some"), (60, "none"), (0, "none")])
def test_chain_dev_time_passes_while_idle_and_transactions_mine_at_once(
    cli: Cli, block_time: int, idle_blocks: str
) -> None:
    """A challenge window must end on an idle dev chain, as on a real one (`--block-time`),
    and a transaction still mines at once: with a block every 60 s, a receipt within 15 s
    can only come from mining on arrival (`--mixed-mining`)."""
    process, info = start_dev_chain(cli, free_port(), "--block-time", str(block_time))
    try:
        url = str(info["rpc_url"])
        dev = info["dev_accounts"][0]  # type: ignore[index]
        before = _head(url)
        time.sleep(3.5)
        idle = _head(url) - before
        if idle_blocks == "some":
            assert idle >= 2  # about one block a second with nobody sending anything
        else:
            assert idle == 0  # no block yet: mined only on transactions (or after 60 s)
        tx = _send_one_wei(url, dev)
        receipt = _receipt_within(url, tx, 15.0)
        assert receipt is not None
        assert int(receipt["status"], 16) == 1
    finally:
        stop_dev_chain(process)
