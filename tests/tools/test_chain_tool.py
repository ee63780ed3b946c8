"""The chain tools on an in-process py-evm chain with the real contracts deployed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from chain.client import ChainClient, close_web3, make_web3
from chain.datasets import DatasetDAOClient
from chain.deploy import deploy_all
from chain.devchain import EmbeddedChain, dev_account
from chain.records import JobId, JobSpec, MarketParams, SwarmRef, Wei, swarm_ref
from chain.transactor import Transactor
from tools import Tool, ToolContext, ToolRegistry, ToolResult
from tools.chain_tool import format_ether, make_chain_tools, parse_ether

ETHER = 10**18
REF = "ab" * 32
MODEL = "cd" * 32


def ref(tag: int) -> SwarmRef:
    return swarm_ref(bytes([tag]) * 32)


@dataclass
class Confirmer:
    """Records what the owner was asked and answers `answer`."""

    answer: bool
    asked: list[str] = field(default_factory=list)

    async def __call__(self, summary: str) -> bool:
        self.asked.append(summary)
        return self.answer


@dataclass
class Setup:
    chain: EmbeddedChain
    owner: ChainClient
    other: ChainClient
    dao: DatasetDAOClient
    tools: ToolRegistry

    async def call(
        self, name: str, arguments: Any, context: ToolContext | None = None
    ) -> ToolResult:
        return await self.tools.call(name, arguments, context or ToolContext(local_owner=True))

    async def nonce(self) -> int:
        return await self.owner.tx.w3.eth.get_transaction_count(self.owner.tx.address)

    async def balance(self) -> int:
        return await self.owner.tx.balance(self.owner.tx.address)

    async def staked(self) -> int:
        return (await self.owner.market.account(self.owner.tx.address)).staked


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[Setup]:
    chain = EmbeddedChain()
    owner_key, other_key = dev_account(0), dev_account(1)
    for account in (owner_key, other_key):
        await chain.fund(account.address, 100 * ETHER)
    w3 = make_web3(chain.endpoint, timeout_s=30)
    try:
        deployer = await Transactor.create(w3, owner_key, timeout_s=30)
        deployment = await deploy_all(deployer, MarketParams(), fork_join_window_s=3600)
    finally:
        await close_web3(w3)
    owner = await ChainClient.connect(chain.endpoint, owner_key, deployment)
    other = await ChainClient.connect(chain.endpoint, other_key, deployment)
    members = [owner_key.address, other_key.address]
    dao = await other.datasets.create(ref(1), ref(2), members, quorum_bps=5000)
    tools = ToolRegistry(make_chain_tools(owner, max_ether=Decimal(10)))
    try:
        yield Setup(chain, owner, other, dao, tools)
    finally:
        await owner.aclose()
        await other.aclose()


async def post_job(s: Setup, client: ChainClient, reward: int) -> JobId:
    now = await s.chain.timestamp()
    spec = JobSpec(s.dao.address, ref(1), bytes(ref(3)), ref(4), 8, 7, now + 3600, 600)
    job_id, _ = await client.market.post_job(spec, Wei(reward))
    return job_id


# ---------------------------------------------------------------- schemas and units


def test_parse_ether_is_exact_and_bounded() -> None:
    assert parse_ether("1.5") == 15 * 10**17
    assert parse_ether("0.000000000000000001") == 1
    assert parse_ether(" 10 ", max_ether=Decimal(10)) == 10 * ETHER
    assert parse_ether("2.500000000000000000000") == 25 * 10**17  # trailing zeros are exact
    assert format_ether(15 * 10**17) == "1.5 ETH"
    assert format_ether(1) == "0.000000000000000001 ETH"
    assert format_ether(3 * ETHER) == "3 ETH"


@pytest.mark.asyncio
async def test_writes_are_destructive_and_local_only(setup: Setup) -> None:
    by_name = {t.name: t for t in setup.tools.list()}
    assert all(isinstance(t, Tool) for t in by_name.values())
    for name in ("chain_stake", "chain_post_job", "chain_dataset_vote"):
        assert by_name[name].annotations.destructive
        assert by_name[name].annotations.local_only
        assert not by_name[name].annotations.read_only
    for name in ("chain_status", "chain_balance", "chain_job", "chain_jobs", "chain_dataset"):
        assert by_name[name].annotations.read_only
        assert not by_name[name].annotations.destructive
    assert by_name["chain_stake"].input_schema["required"] == ["amount_ether"]


# ---------------------------------------------------------------- reads


@pytest.mark.asyncio
async def test_status_and_balance(setup: Setup) -> None:
    status = await setup.call("chain_status", {})
    assert status.ok, status.error
    assert status.data is not None
    assert status.data["account"] == setup.owner.tx.address
    assert int(status.data["balance_wei"]) == await setup.balance()
    assert status.data["block"] == await setup.owner.tx.w3.eth.block_number
    other = setup.other.tx.address
    await setup.other.market.stake(Wei(ETHER // 4))
    balance = await setup.call("chain_balance", {"address": other.lower()})
    assert balance.ok, balance.error
    assert "staked 0.25 ETH" in balance.output
    assert balance.data is not None
    assert int(balance.data["balance_wei"]) == await setup.other.tx.balance(other)


@pytest.mark.asyncio
async def test_reads_are_open_to_remote_peers(setup: Setup) -> None:
    remote = ToolContext(local_owner=False)
    status = await setup.call("chain_status", {}, remote)
    assert status.ok, status.error
    jobs = await setup.call("chain_jobs", {}, remote)
    assert jobs.ok, jobs.error
    assert "0 job(s) in total" in jobs.output


@pytest.mark.asyncio
async def test_jobs_and_job(setup: Setup) -> None:
    first = await post_job(setup, setup.other, ETHER // 2)
    await post_job(setup, setup.other, ETHER)
    job = await setup.call("chain_job", {"job_id": first})
    assert job.ok, job.error
    assert "POSTED" in job.output
    assert "0.5 ETH" in job.output
    assert job.data is not None
    assert job.data["requester"] == setup.other.tx.address
    page = await setup.call("chain_jobs", {"offset": 1, "limit": 5})
    assert page.ok, page.error
    assert page.data is not None
    assert page.data["count"] == 2
    assert [j["job_id"] for j in page.data["jobs"]] == [2]
    missing = await setup.call("chain_job", {"job_id": 99})
    assert not missing.ok
    assert "JobNotFound" in missing.error


@pytest.mark.asyncio
async def test_dataset_and_peer(setup: Setup) -> None:
    pid, _ = await setup.dao.propose(ref(9), ref(10))
    result = await setup.call("chain_dataset", {"dao": setup.dao.address})
    assert result.ok, result.error
    assert result.data is not None
    assert result.data["root"] == "0x" + "01" * 32
    assert [p["proposal_id"] for p in result.data["proposals"]] == [pid]
    assert len(result.data["history"]) == 1
    not_dao = await setup.call("chain_dataset", {"dao": setup.other.tx.address})
    assert not not_dao.ok
    assert "not a dataset DAO" in not_dao.error
    peer = await setup.call("chain_peer", {"address": setup.other.tx.address})
    assert peer.ok
    assert "not registered" in peer.output
    public_key: bytes = setup.other.tx.account._key_obj.public_key.to_bytes()
    await setup.other.registry.register(ref(5), public_key, ref(6))
    peer = await setup.call("chain_peer", {"address": setup.other.tx.address})
    assert peer.ok, peer.error
    assert peer.data is not None
    assert peer.data["inbox"] == "0x" + "05" * 32


# ---------------------------------------------------------------- writes


@pytest.mark.asyncio
async def test_stake_confirmed_changes_the_chain(setup: Setup) -> None:
    confirm = Confirmer(True)
    before = await setup.staked()
    result = await setup.call(
        "chain_stake", {"amount_ether": "1.25"}, ToolContext(local_owner=True, confirm=confirm)
    )
    assert result.ok, result.error
    assert await setup.staked() == before + 125 * 10**16
    (summary,) = confirm.asked
    assert "1.25 ETH" in summary
    assert "1250000000000000000 wei" in summary
    assert setup.owner.market.address in summary
    assert setup.owner.tx.address in summary


@pytest.mark.asyncio
async def test_declined_write_sends_nothing(setup: Setup) -> None:
    confirm = Confirmer(False)
    context = ToolContext(local_owner=True, confirm=confirm)
    nonce, balance, staked = await setup.nonce(), await setup.balance(), await setup.staked()
    result = await setup.call("chain_stake", {"amount_ether": "1"}, context)
    assert not result.ok
    assert "nothing was sent" in result.error
    pid, _ = await setup.dao.as_account(setup.other.tx).propose(ref(9), ref(10))
    vote = await setup.call(
        "chain_dataset_vote",
        {"dao": setup.dao.address, "proposal_id": pid, "support": True},
        context,
    )
    assert not vote.ok
    assert "nothing was sent" in vote.error
    assert len(confirm.asked) == 2
    assert (await setup.nonce(), await setup.balance(), await setup.staked()) == (
        nonce,
        balance,
        staked,
    )
    assert (await setup.dao.proposal(pid)).yes == 0


@pytest.mark.asyncio
async def test_remote_peer_is_refused_without_asking(setup: Setup) -> None:
    confirm = Confirmer(True)
    context = ToolContext(local_owner=False, confirm=confirm)
    nonce, staked = await setup.nonce(), await setup.staked()
    for name, arguments in [
        ("chain_stake", {"amount_ether": "1"}),
        ("chain_dataset_vote", {"dao": setup.dao.address, "proposal_id": 0, "support": True}),
        (
            "chain_post_job",
            {
                "dao": setup.dao.address,
                "base_model": MODEL,
                "hyperparams": REF,
                "steps": 8,
                "reward_ether": "1",
            },
        ),
    ]:
        result = await setup.call(name, arguments, context)
        assert not result.ok
        assert "remote peer" in result.error
    assert confirm.asked == []
    assert (await setup.nonce(), await setup.staked()) == (nonce, staked)


@pytest.mark.asyncio
async def test_no_confirmer_means_nothing_sent(setup: Setup) -> None:
    nonce = await setup.nonce()
    result = await setup.call("chain_stake", {"amount_ether": "1"}, ToolContext(local_owner=True))
    assert not result.ok
    assert "nothing was sent" in result.error
    assert await setup.nonce() == nonce


@pytest.mark.asyncio
async def test_post_job_and_vote(setup: Setup) -> None:
    confirm = Confirmer(True)
    context = ToolContext(local_owner=True, confirm=confirm)
    posted = await setup.call(
        "chain_post_job",
        {
            "dao": setup.dao.address,
            "base_model": MODEL,
            "hyperparams": "0x" + REF,
            "steps": 16,
            "reward_ether": "0.5",
            "seed": 42,
        },
        context,
    )
    assert posted.ok, posted.error
    assert posted.data is not None
    job = await setup.owner.market.job(JobId(posted.data["job_id"]))
    assert job.reward == ETHER // 2
    assert job.steps == 16
    assert "0.5 ETH" in confirm.asked[0]
    assert "0x" + "01" * 32 in confirm.asked[0]

    pid, _ = await setup.dao.as_account(setup.other.tx).propose(ref(9), ref(10))
    vote = await setup.call(
        "chain_dataset_vote",
        {"dao": setup.dao.address, "proposal_id": pid, "support": True},
        context,
    )
    assert vote.ok, vote.error
    assert (await setup.dao.proposal(pid)).yes == 1
    again = await setup.call(
        "chain_dataset_vote",
        {"dao": setup.dao.address, "proposal_id": pid, "support": True},
        context,
    )
    assert not again.ok
    assert "AlreadyVoted" in again.error
    assert again.data is not None
    assert again.data["revert"] == "AlreadyVoted"


# ---------------------------------------------------------------- hostile arguments


HUGE = "1" * 1_000_000


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("chain_stake", {"amount_ether": "-1"}, "must be positive"),
        ("chain_stake", {"amount_ether": "0"}, "must be positive"),
        ("chain_stake", {"amount_ether": "11"}, "above this node's limit of 10"),
        ("chain_stake", {"amount_ether": "1e400"}, "above this node's limit"),
        ("chain_stake", {"amount_ether": "NaN"}, "finite"),
        ("chain_stake", {"amount_ether": "Infinity"}, "finite"),
        ("chain_stake", {"amount_ether": "one ether"}, "not a decimal number"),
        ("chain_stake", {"amount_ether": "0.0000000000000000001"}, "less than 1 wei"),
        ("chain_stake", {"amount_ether": "1.0000000000000000001"}, "18 decimal places"),
        ("chain_stake", {"amount_ether": "1e-999999999"}, "less than 1 wei"),
        ("chain_stake", {"amount_ether": "9" * 60}, "1 to 40 characters"),
        ("chain_stake", {"amount_ether": HUGE}, "too long"),
        ("chain_stake", {"amount_ether": 1}, "must be a string"),
        ("chain_stake", {"amount_ether": None}, "must be a string"),
        ("chain_stake", {}, "missing required argument"),
        ("chain_stake", ["1"], "JSON object"),
        ("chain_stake", "1 ether", "JSON object"),
        ("chain_stake", {"amount_ether": "1", "to": "0x"}, "unknown argument"),
        ("chain_balance", {"address": "0x1234"}, "40 hex digits"),
        ("chain_balance", {"address": "0x" + "Z" * 40}, "40 hex digits"),
        ("chain_balance", {"address": "0x52908400098527886e0F7030069857D2E4169EE7"}, "checksum"),
        ("chain_balance", {"address": HUGE}, "too long"),
        ("chain_balance", {"address": ["0x"]}, "must be a string"),
        ("chain_job", {"job_id": "1"}, "must be an integer"),
        ("chain_job", {"job_id": True}, "must be an integer"),
        ("chain_job", {"job_id": 0}, "job_id must be from 1"),
        ("chain_job", {"job_id": 2**300}, "job_id must be from 1"),
        ("chain_jobs", {"limit": 10**9}, "limit must be from 1 to 50"),
        ("chain_jobs", {"offset": -1}, "offset must be from 0"),
        ("chain_dataset", {"dao": "not an address"}, "dao must be 0x"),
        ("chain_dataset_vote", {"dao": "0x", "proposal_id": 0, "support": True}, "dao must be"),
        ("chain_dataset_vote", {"proposal_id": 0, "support": True}, "missing required"),
        ("chain_post_job", {"dao": "0x" + "0" * 40}, "missing required"),
    ],
)
@pytest.mark.asyncio
async def test_hostile_arguments_fail_clearly(
    setup: Setup, name: str, arguments: Any, message: str
) -> None:
    confirm = Confirmer(True)
    nonce = await setup.nonce()
    result = await setup.call(name, arguments, ToolContext(local_owner=True, confirm=confirm))
    assert not result.ok
    assert message in result.error
    assert confirm.asked == []
    assert await setup.nonce() == nonce


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"base_model": "12"}, "base_model must be 64 hex digits"),
        ({"hyperparams": "g" * 64}, "hyperparams must be 64 hex digits"),
        ({"steps": 0}, "steps must be from 1"),
        ({"steps": 2**40}, "steps must be from 1"),
        ({"seed": -5}, "seed must be from 0"),
        ({"deadline_s": 10**12}, "deadline_s must be from 60"),
        ({"challenge_window_s": 0}, "challenge_window_s must be from 1"),
        ({"reward_ether": "-0.5"}, "must be positive"),
        ({"reward_ether": "5000"}, "above this node's limit"),
    ],
)
@pytest.mark.asyncio
async def test_hostile_post_job(setup: Setup, override: dict[str, Any], message: str) -> None:
    confirm = Confirmer(True)
    arguments = {
        "dao": setup.dao.address,
        "base_model": MODEL,
        "hyperparams": REF,
        "steps": 8,
        "reward_ether": "1",
        **override,
    }
    nonce = await setup.nonce()
    result = await setup.call("chain_post_job", arguments, ToolContext(True, confirm))
    assert not result.ok
    assert message in result.error
    assert confirm.asked == []
    assert await setup.nonce() == nonce


@pytest.mark.asyncio
async def test_revert_is_reported_by_name(setup: Setup) -> None:
    """Voting on a proposal that does not exist reverts; the failure names the error."""
    confirm = Confirmer(True)
    nonce = await setup.nonce()
    result = await setup.call(
        "chain_dataset_vote",
        {"dao": setup.dao.address, "proposal_id": 77, "support": False},
        ToolContext(True, confirm),
    )
    assert not result.ok
    assert "ProposalNotFound" in result.error
    assert "nothing was sent" in result.error
    assert await setup.nonce() == nonce
