"""`noosphere status` and `--log-json`, through the installed command.

`status` must stay fast and never load the model or the embedder; every endpoint it
cannot reach is one line saying so, with exit status 0.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.devchain import find_anvil, free_port
from tests.conftest import Cli, stop_process

pytestmark = pytest.mark.e2e

HEAVY = ("torch", "llama_cpp", "sentence_transformers", "faiss", "web3")


def test_status_on_an_empty_home_says_no_node_and_embedded_swarm_and_exits_0(cli: Cli) -> None:
    started = time.monotonic()
    result = cli("status")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "node:      no node running" in out
    assert "swarm:     embedded dev node" in out
    assert "chain:     not configured" in out
    assert "address:   none (run `noosphere init`)" in out
    assert "adapters:  none registered" in out
    assert "Traceback" not in result.stderr
    assert took < 10, f"status took {took:.1f}s"


def test_status_imports_no_model_embedder_or_chain_library(cli: Cli) -> None:
    probe = (
        "import sys\n"
        "from agent.cli import main\n"
        "try:\n"
        "    main(['status', '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung endpoint)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_endpoints_that_refuse_or_never_answer_are_reported_unreachable(
    cli: Cli, silent_port: int
) -> None:
    assert cli("init").returncode == 0
    refused = free_port()
    started = time.monotonic()
    result = cli(
        "--set", f"network.bee_url=http://127.0.0.1:{silent_port}",
        "--set", f"network.eth_rpc_url=http://127.0.0.1:{refused}",
        "status",
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    swarm = next(line for line in lines if line.startswith("swarm:"))
    chain = next(line for line in lines if line.startswith("chain:"))
    assert f"http://127.0.0.1:{silent_port} unreachable" in swarm
    assert "timed out" in swarm
    assert f"http://127.0.0.1:{refused} unreachable" in chain
    assert "refused" in chain.lower()
    assert not any(line.startswith("stake:") for line in lines)
    assert "Traceback" not in result.stderr
    assert took < 15, f"status waited {took:.1f}s on a silent endpoint (2 s timeout)"


def test_status_json_parses_and_carries_every_part(cli: Cli) -> None:
    assert cli("init").returncode == 0
    address = json.loads(cli("id", "--json").stdout)["address"]
    unreachable = f"http://127.0.0.1:{free_port()}"
    result = cli("--set", f"network.bee_url={unreachable}", "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["home"]["path"] == str(cli.home)
    assert report["home"]["address"] == address
    assert report["node"] == {"running": False}
    assert report["swarm"]["reachable"] is False
    assert report["chain"] == {"url": None}
    assert report["peers"] == {"configured": 0}
    assert report["index"]["present"] is False
    assert report["adapters"] == {"registered": []}


def test_log_json_makes_every_log_line_a_json_object(cli: Cli) -> None:
    result = cli("-v", "--log-json", "search", "x")
    assert result.returncode == 0, result.stderr
    *lines, notice = result.stderr.splitlines()
    assert notice.startswith("no results"), notice  # the command's own message, not a log
    assert lines, "-v search logs at least the embedder load"
    for line in lines:
        entry = json.loads(line)
        assert set(entry) >= {"ts", "level", "logger", "message"}, entry
        assert entry["ts"].endswith("Z")
        assert entry["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert any(json.loads(line)["logger"] == "swarm_vectordb.embedding" for line in lines)


def test_without_log_json_the_log_stays_human(cli: Cli) -> None:
    result = cli("-v", "search", "x")
    assert result.returncode == 0, result.stderr
    assert any(
        line.startswith("INFO swarm_vectordb.embedding: ") for line in result.stderr.splitlines()
    )


def _spawn(cli: Cli, *args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("noosphere")
    return subprocess.Popen(
        [str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=cli.env,
    )  # fmt: skip


def _first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"exited with {process.poll()} before printing"
    return line


def _stop(process: subprocess.Popen[str]) -> None:
    stop_process(process, grace_s=30)


def test_status_reports_the_running_node_from_its_api(cli: Cli) -> None:
    assert cli("init").returncode == 0
    node = _spawn(cli, "node", "--api-port", "0")
    try:
        address = _first_line(node).strip()  # printed once the node serves
        assert address == json.loads(cli("id", "--json").stdout)["address"]
        result = cli("status", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)["node"]
        assert report["running"] is True
        url = json.loads((cli.home / "node.json").read_text())["url"]
        assert report["url"] == url
        assert report["pid"] == node.pid
        assert report["model"]
        assert report["index_size"] == 0
        assert report["uptime_s"] >= 0
        text = cli("status").stdout
        assert f"node:      running at {url}, pid {node.pid}" in text
        assert "index:" not in text  # the node owns the index; its count is on the node line
    finally:
        _stop(node)
    after = cli("status")
    assert "node:      no node running" in after.stdout


@pytest.mark.skipif(find_anvil() is None, reason="anvil missing: npm install --prefix chain")
def test_status_shows_stake_and_the_job_this_address_posted(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    bee = _spawn(cli, "swarm", "dev", "--port", str(free_port()))
    chain = _spawn(cli, "chain", "dev", "--port", str(free_port()))
    try:
        bee_url = _first_line(bee).strip()
        rpc = json.loads(_first_line(chain))["rpc_url"]
        net = ["--set", f"network.eth_rpc_url={rpc}", "--set", f"network.bee_url={bee_url}"]
        assert cli(*net, "stake", "1.5", "--yes").returncode == 0
        assert cli(*net, "swarm", "stamp", "buy", "100000000", "22", "--yes").returncode == 0
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        (corpus / "a.txt").write_text("Glaciers grind the rock beneath them as they move.")
        built = cli(*net, "dataset", "build", str(corpus), "--shard-tokens", "64", "--json")
        assert built.returncode == 0, built.stderr
        dataset = json.loads(built.stdout)
        created = cli(*net, "dataset", "create", dataset["root"], dataset["manifest"], "--yes")
        assert created.returncode == 0, created.stderr
        dao = created.stdout.strip().splitlines()[-1]
        posted = cli(*net, "job", "post", "--dao", dao, "--steps", "3", "--reward", "0.5", "--yes")
        assert posted.returncode == 0, posted.stderr

        result = cli(*net, "status", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["swarm"]["reachable"] is True
        chain_part = report["chain"]
        assert chain_part["reachable"] is True
        assert chain_part["chain_id"] == 31337
        market = chain_part["market"]
        assert market["staked_wei"] == 1_500_000_000_000_000_000
        assert market["jobs_total"] == 1
        assert market["jobs"] == [
            {
                "id": 1,
                "status": "posted",
                "reward_wei": 500_000_000_000_000_000,
                "roles": ["requester"],
            }
        ]
        text = cli(*net, "status").stdout
        assert "stake:     1.5 ETH staked, 0 ETH locked" in text
        assert "#1 posted, 0.5 ETH, as requester" in text
    finally:
        _stop(chain)
        _stop(bee)
