"""The training market through the installed `noosphere` command, every role its own process:
`chain dev` (anvil), `swarm dev`, a requester node that builds a dataset, creates a DAO on
its root and posts a job, a worker node (`train worker --opt-in`) that trains and submits,
and `verify` replaying the steps; after the window the worker finalizes and is paid. Then
`adapter fetch` stores the adapter in the requester's home, checked against its hash.
A worker that corrupts one update is caught by `verify`, which files the challenge; the
committee (validators re-executing the step) votes it wrong and the worker is slashed."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gguf
import pytest
from eth_typing import ChecksumAddress
from torch import nn
from web3 import Web3
from web3.types import RPCEndpoint

from chain.client import ChainClient
from chain.compile import NPM_INSTALL
from chain.deploy import Deployment
from chain.devchain import dev_account, find_anvil, free_port
from chain.records import JobId, JobStatus, Wei
from chain.records import Verdict as Vote
from swarm_vectordb.bee import BeeClient
from tests.chain.test_cli import start_dev_chain
from tests.conftest import Cli, stop_process
from tests.trainer.test_profile_file import A_GPU_FIELDS
from trainer.validator import Validator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`"),
]
ETHER = 10**18
WINDOW = 600
CORPUS = {
    "a.txt": "Rivers carry water from mountains to the sea. " * 12,
    "b.txt": "Bees collect nectar and make honey in their hives. " * 12,
}


def _stop(process: subprocess.Popen[str]) -> None:
    stop_process(process, grace_s=20)


def _spawn(cli: Cli, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("noosphere")
    return subprocess.Popen(
        [str(exe), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**cli.env, **(env or {})},
    )


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if marker in line:
            return lines
    pytest.fail(f"no {marker!r} within {timeout}s: {lines[-20:]}")


@pytest.fixture(scope="module")
def base_model(model_path: Path) -> nn.Module:
    from trainer.model import load_base_model

    return load_base_model(model_path)


@pytest.fixture
def swarm_url(cli: Cli) -> Iterator[str]:
    process = _spawn(cli, "swarm", "dev", "--port", str(free_port()))
    try:
        url = _read_until(process, "http", 60)[-1].strip()
        yield url
    finally:
        _stop(process)


@dataclass
class Market:
    """A dev chain and Swarm node with a dataset DAO and job 1 posted by the `cli` node."""

    requester: Cli
    worker: Cli
    net: list[str]  # --set flags for the chain and Swarm URLs
    w3: Web3
    rpc: str
    deployment: str
    worker_address: ChecksumAddress
    job_id: str

    def spawn_worker(self, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return _spawn(
            self.worker,
            *self.net,
            "train", "worker", "--opt-in", "--max-jobs", "1", "--yes", "--poll", "0.5",
            "--deployment", self.deployment,
            env=env,
        )  # fmt: skip


@contextmanager
def market(
    cli: Cli, swarm_url: str, tmp_path: Path, *, gpu_job_first: bool = False
) -> Iterator[Market]:
    """`gpu_job_first`: job 1 is posted with `--profile` for a GPU worker's profile (from
    this machine's `train profile --json` plus a GPU stack), the CPU job is job 2."""
    worker = Cli(tmp_path / "wh", {**cli.env, "NOOSPHERE_HOME": str(tmp_path / "wh")})
    assert cli("init").returncode == 0
    assert worker("init").returncode == 0
    chain, info = start_dev_chain(cli, free_port())
    try:
        rpc = str(info["rpc_url"])
        net = ["--set", f"network.eth_rpc_url={rpc}", "--set", f"network.bee_url={swarm_url}"]
        w3 = Web3(Web3.HTTPProvider(rpc))
        worker_address = Web3.to_checksum_address(
            json.loads(worker("id", "--json").stdout)["address"]
        )
        w3.provider.make_request(
            RPCEndpoint("anvil_setBalance"), [worker_address, hex(100 * ETHER)]
        )
        bought = cli(*net, "swarm", "stamp", "buy", "100000000", "22", "--yes")
        assert bought.returncode == 0, bought.stderr

        corpus = tmp_path / "corpus"
        corpus.mkdir()
        for name, text in CORPUS.items():
            (corpus / name).write_text(text)
        built = cli(*net, "dataset", "build", str(corpus), "--shard-tokens", "64", "--json")
        assert built.returncode == 0, built.stderr
        dataset = json.loads(built.stdout)
        created = cli(*net, "dataset", "create", dataset["root"], dataset["manifest"], "--yes")
        assert created.returncode == 0, created.stderr
        dao = created.stdout.strip().splitlines()[-1]
        post = [
            *net,
            "job", "post", "--dao", dao, "--steps", "3", "--reward", "0.5", "--rank", "4",
            "--batch-size", "2", "--seq-len", "24", "--checkpoint-every", "2",
            "--challenge-window", str(WINDOW), "--seed", "3", "--yes",
        ]  # fmt: skip
        if gpu_job_first:
            printed = cli("train", "profile", "--json")
            assert printed.returncode == 0, printed.stderr
            gpu = json.loads(printed.stdout)["profile"] | A_GPU_FIELDS
            (tmp_path / "gpu.json").write_text(json.dumps(gpu))
            posted = cli(*post, "--profile", str(tmp_path / "gpu.json"))
            assert posted.returncode == 0, posted.stderr
            assert "NVIDIA H200, CUDA 13.0" in posted.stderr  # the profile it pinned
            assert posted.stdout.strip().splitlines()[-1] == "1"
        posted = cli(*post)
        assert posted.returncode == 0, posted.stderr
        job_id = posted.stdout.strip().splitlines()[-1]
        assert job_id == ("2" if gpu_job_first else "1")
        yield Market(
            cli, worker, net, w3, rpc, str(info["deployment_file"]), worker_address, job_id
        )
    finally:
        _stop(chain)


def test_requester_worker_and_verifier_as_processes_end_with_the_worker_paid(
    cli: Cli, swarm_url: str, tmp_path: Path
) -> None:
    """Job 1 is for a GPU worker (`job post --profile`): this CPU worker skips it, saying
    why, and trains job 2."""
    with market(cli, swarm_url, tmp_path, gpu_job_first=True) as m:
        refused = m.worker(*m.net, "train", "worker", "--deployment", m.deployment)
        assert refused.returncode != 0
        assert "--opt-in" in refused.stderr

        before = m.w3.eth.get_balance(m.worker_address)
        process = m.spawn_worker()
        try:
            lines = _read_until(process, "submitted log root", 400)
            skipped = [line for line in lines if line.startswith("job 1: skipped")]
            assert skipped, lines
            assert "device: 'cpu' here, 'cuda' pinned" in skipped[0]
            assert any("step 3/3" in line for line in lines), lines
            verified = cli(*m.net, "verify", m.job_id, "--samples", "3", "--no-challenge")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert verified.stdout.count(": match") == 3
            m.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [WINDOW + 1])
            m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            lines += _read_until(process, "withdrew", 120)
            assert process.wait(timeout=60) == 0, lines
        finally:
            _stop(process)
        assert "withdrew 0.5 ETH" in lines  # the reward
        # It staked 0.5 (trainerStakeFor(0.5 reward), kept staked) and withdrew the 0.5 reward.
        assert m.w3.eth.get_balance(m.worker_address) > before - ETHER // 100

        shown = cli(*m.net, "job", "show", m.job_id, "--json")
        assert json.loads(shown.stdout)["status"] == JobStatus.FINALIZED
        gpu_job = cli(*m.net, "job", "show", "1", "--json")
        assert json.loads(gpu_job.stdout)["status"] == JobStatus.POSTED  # still waits for a GPU
        fetched = cli(*m.net, "adapter", "fetch", m.job_id)
        assert fetched.returncode == 0, fetched.stderr
        path = Path(fetched.stdout.strip())
        assert path == cli.home / "adapters" / f"job-{m.job_id}.gguf"
        reader = gguf.GGUFReader(path)
        kind = reader.fields["general.type"]
        assert bytes(kind.parts[kind.data[0]]).decode() == "adapter"
        assert any(t.name.endswith(".lora_b") for t in reader.tensors)


def test_a_running_node_opted_in_to_training_trains_and_is_paid(
    cli: Cli, swarm_url: str, tmp_path: Path
) -> None:
    """`noosphere node --train`: the worker runs inside the long-running node, beside
    its peers' listener and local API, and keeps running after the job is settled."""
    with market(cli, swarm_url, tmp_path) as m:
        process = _spawn(
            m.worker,
            *m.net,
            "node", "--api-port", "0", "--train", "--yes", "--deployment", m.deployment,
        )  # fmt: skip
        try:
            lines = _read_until(process, "submitted log root", 400)
            assert any("training worker: profile" in line for line in lines), lines
            assert any("step 3/3" in line for line in lines), lines
            assert (m.worker.home / "node.json").exists()  # the API serves meanwhile
            m.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [WINDOW + 1])
            m.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            lines += _read_until(process, "withdrew", 120)
            assert process.poll() is None  # the node goes on after the job
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            _stop(process)
        assert "withdrew 0.5 ETH" in lines
        shown = cli(*m.net, "job", "show", m.job_id, "--json")
        assert json.loads(shown.stdout)["status"] == JobStatus.FINALIZED


@pytest.mark.asyncio
async def test_corrupt_worker_is_challenged_by_verify_and_slashed_by_the_committee(
    cli: Cli, swarm_url: str, tmp_path: Path, base_model: nn.Module
) -> None:
    with market(cli, swarm_url, tmp_path) as m:
        deployment = Deployment.load(Path(m.deployment))
        clients = [await ChainClient.connect(m.rpc, dev_account(i), deployment) for i in (4, 5)]
        # The third committee member is a node running `noosphere train validator`.
        home = tmp_path / "vh"
        member = Cli(home, {**cli.env, "NOOSPHERE_HOME": str(home)})
        assert member("init").returncode == 0
        member_address = Web3.to_checksum_address(
            json.loads(member("id", "--json").stdout)["address"]
        )
        fund = [member_address, hex(10 * ETHER)]
        m.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), fund)
        validate = [*m.net, "train", "validator", "--once", "--yes", "--deployment", m.deployment]
        try:
            for client in clients:  # validators registered before the challenge
                await client.market.stake(Wei(ETHER))
                await client.market.register_validator()
            registered = member(*validate)
            assert registered.returncode == 0, registered.stderr
            assert f"registered {member_address} as a validator" in registered.stdout
            dishonest = {"NOOSPHERE_TEST_MODE": "1", "NOOSPHERE_TEST_DISHONEST": "corrupt:1"}
            process = m.spawn_worker(dishonest)
            try:
                _read_until(process, "submitted log root", 400)
            finally:
                _stop(process)
            verified = cli(*m.net, "verify", m.job_id, "--samples", "3", "--yes")
            assert verified.returncode == 1, verified.stdout + verified.stderr
            assert "step 1: DIFFERS in post_state" in verified.stdout
            assert f"challenged step 1 of job {m.job_id}" in verified.stdout
            job_id = JobId(int(m.job_id))
            market_view = clients[0].market
            assert (await market_view.job(job_id)).status == JobStatus.DISPUTED

            params = await market_view.params()
            m.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(params.draw_delay + 1)])
            swarm = await BeeClient.create(swarm_url, timeout=20)
            try:
                votes = []
                for client in clients:
                    validator = Validator(client.market, swarm, base_model)
                    votes += [vote for _, vote in await validator.watch_once()]
            finally:
                await swarm.aclose()
            voted = member(*validate)
            assert voted.returncode == 0, voted.stderr
            assert "voted TRAINER_WRONG" in voted.stdout
            assert votes == [Vote.TRAINER_WRONG] * 2
            assert (await market_view.job(job_id)).status == JobStatus.SLASHED
            requester = json.loads(cli("id", "--json").stdout)["address"]
            assert await market_view.pending_withdrawal(requester) > 0  # reward refunded
            assert await market_view.pending_withdrawal(m.worker_address) == 0
            for address in [c.tx.address for c in clients] + [member_address]:
                assert await market_view.pending_withdrawal(address) > 0  # majority share
        finally:
            for client in clients:
                await client.aclose()
