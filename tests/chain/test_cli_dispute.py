"""`noosphere job show|draw|vote|resolve` on a real dispute, through the installed script,
against `noosphere chain dev` (anvil); the other parties act through their own clients."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from web3.types import RPCEndpoint

from chain.client import ChainClient
from chain.compile import NPM_INSTALL
from chain.deploy import Deployment
from chain.devchain import dev_account, find_anvil, free_port
from chain.market import MarketClient
from chain.merkle import StepLogTree
from chain.records import JobId, JobSpec, MarketParams, Verdict, Wei
from tests.conftest import Cli

from .conftest import ref, step_records
from .test_cli import start_dev_chain

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.asyncio,
    pytest.mark.skipif(find_anvil() is None, reason=f"anvil not installed: run `{NPM_INSTALL}`"),
]
ETHER = 10**18
ROLES = {"requester": 1, "trainer": 2, "challenger": 3, "v1": 4, "v2": 5, "v3": 6}


@dataclass
class DevNet:
    cli: Cli
    url: list[str]  # the CLI's --set for the RPC URL
    clients: dict[str, ChainClient]

    def market(self, role: str) -> MarketClient:
        return self.clients[role].market

    async def mine(self, blocks: int) -> None:
        provider = self.clients["requester"].tx.w3.provider
        await provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])


@pytest_asyncio.fixture
async def devnet(cli: Cli) -> AsyncIterator[DevNet]:
    assert cli("init").returncode == 0
    process, info = start_dev_chain(cli, free_port())
    clients: dict[str, ChainClient] = {}
    try:
        deployment = Deployment.load(Path(str(info["deployment_file"])))
        for role, index in ROLES.items():
            account = dev_account(index)
            clients[role] = await ChainClient.connect(str(info["rpc_url"]), account, deployment)
        yield DevNet(cli, ["--set", f"network.eth_rpc_url={info['rpc_url']}"], clients)
    finally:
        for client in clients.values():
            await client.aclose()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


async def disputed_job(net: DevNet) -> JobId:
    """Job 1, submitted by `trainer` and challenged at step 3 by `challenger`."""
    requester = net.clients["requester"]
    members = [requester.tx.address]
    dao = await requester.datasets.create(ref(0x01), ref(0x02), members, quorum_bps=5000)
    await net.market("trainer").stake(Wei(2 * ETHER))
    for role in ("v1", "v2", "v3"):
        await net.market(role).stake(Wei(ETHER))
        await net.market(role).register_validator()
    block = await requester.tx.rpc(requester.tx.w3.eth.get_block("latest"))
    spec = JobSpec(
        dao.address, ref(0x01), bytes(ref(0xB0)), ref(0xC0), 8, 7, block["timestamp"] + 3600, 600
    )
    job_id, _ = await net.market("requester").post_job(spec, Wei(ETHER // 2))
    records = step_records()
    await net.market("trainer").claim(job_id)
    await net.market("trainer").submit(job_id, StepLogTree(records).root, ref(0xAD))
    bond = MarketParams().min_challenge_bond
    await net.market("challenger").challenge_log(job_id, 3, records, bond)
    return job_id


async def test_dispute_commands_show_draw_vote_and_resolve(devnet: DevNet) -> None:
    cli, url = devnet.cli, devnet.url
    job_id = await disputed_job(devnet)

    shown = json.loads(cli(*url, "job", "show", str(job_id), "--json").stdout)
    assert shown["dispute"]["step"] == 3
    assert shown["dispute"]["committee"] == []
    assert shown["dispute"]["prev_record_hash"] is not None

    early = cli(*url, "job", "draw", str(job_id), "--yes")
    assert early.returncode == 1
    assert "DrawTooEarly" in early.stderr
    await devnet.mine(MarketParams().draw_delay + 1)
    drawn = cli(*url, "job", "draw", str(job_id), "--yes")
    assert drawn.returncode == 0, drawn.stderr
    committee = drawn.stdout.split()
    validators = {devnet.clients[r].tx.address for r in ("v1", "v2", "v3")}
    assert set(committee) == validators

    outsider = cli(*url, "job", "vote", str(job_id), "wrong", "--yes")  # the node is no member
    assert outsider.returncode == 1
    assert "NotCommitteeMember" in outsider.stderr
    roles = {str(devnet.clients[r].tx.address): r for r in ("v1", "v2", "v3")}
    for address in committee[:2]:
        await devnet.market(roles[address]).vote(job_id, Verdict.TRAINER_WRONG)

    resolved = cli(*url, "job", "resolve", str(job_id), "--yes")
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip() == "challenger_won"
    final = json.loads(cli(*url, "job", "show", str(job_id), "--json").stdout)
    assert final["status"] == 6  # SLASHED
    assert final["dispute"]["votes_trainer_wrong"] == 2
    again = cli(*url, "job", "resolve", str(job_id), "--yes")
    assert again.returncode == 1
    assert "JobAlreadySettled" in again.stderr
