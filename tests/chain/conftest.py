"""Chain fixtures: a fresh dev chain per test (py-evm, and anvil under `e2e`), with
every contract deployed and a cast of funded actors holding their own clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from eth_account.signers.local import LocalAccount
from web3.types import RPCEndpoint

from chain.client import ChainClient, close_web3, make_web3
from chain.compile import NPM_INSTALL
from chain.datasets import DatasetDAOClient
from chain.deploy import Deployment, deploy_all
from chain.devchain import AnvilChain, EmbeddedChain, dev_account, find_anvil
from chain.market import MarketClient
from chain.merkle import StepLogTree
from chain.records import (
    Dispute,
    JobId,
    JobSpec,
    JobStatus,
    MarketParams,
    SwarmRef,
    Wei,
    swarm_ref,
)
from chain.transactor import Transactor

ETHER = 10**18
PARAMS = MarketParams(
    min_trainer_stake=Wei(ETHER // 10),
    min_validator_stake=Wei(ETHER // 10),
    min_challenge_bond=Wei(ETHER // 100),
    voting_period=3600,
    committee_size=3,
    draw_delay=2,
    validator_reward_bps=2000,
    absent_penalty_bps=5000,
)
REWARD = Wei(ETHER // 2)
STEPS = 8
DEADLINE_S = 24 * 3600
WINDOW_S = 600
ROLES = ("deployer", "requester", "trainer", "challenger", "v1", "v2", "v3", "outsider")
VALIDATORS = ("v1", "v2", "v3")

DevChain = EmbeddedChain | AnvilChain


def ref(tag: int) -> SwarmRef:
    return swarm_ref(bytes([tag]) * 32)


def step_records(steps: int = STEPS) -> list[bytes]:
    return [f"step {i}: loss {1.0 / (i + 1):.4f}".encode() for i in range(steps)]


@dataclass
class World:
    """A deployed system and the people acting on it."""

    chain: DevChain
    deployment: Deployment
    accounts: dict[str, LocalAccount]
    clients: dict[str, ChainClient]
    dao: DatasetDAOClient
    root: SwarmRef
    contracts: list[str] = field(default_factory=list)  # non-actor accounts the market may owe

    def market(self, role: str) -> MarketClient:
        return self.clients[role].market

    def address(self, role: str) -> str:
        return str(self.accounts[role].address)

    async def spec(self, *, steps: int = STEPS, window: int = WINDOW_S) -> JobSpec:
        now = await self.chain.timestamp()
        return JobSpec(
            dao=self.dao.address,
            dataset_root=self.root,
            base_model=bytes(ref(0xB0)),
            hyperparams=ref(0xC0),
            steps=steps,
            seed=1234,
            deadline=now + DEADLINE_S,
            challenge_window=window,
        )

    async def post(self, reward: Wei = REWARD) -> JobId:
        job_id, _ = await self.market("requester").post_job(await self.spec(), reward)
        return job_id

    async def submitted(self, records: list[bytes] | None = None) -> tuple[JobId, StepLogTree]:
        """A job posted, claimed and submitted by `trainer` with a real step log."""
        tree = StepLogTree(records or step_records())
        job_id = await self.post()
        await self.market("trainer").claim(job_id)
        await self.market("trainer").submit(job_id, tree.root, ref(0xAD))
        return job_id, tree

    async def mine(self, blocks: int) -> None:
        """Mine `blocks` empty blocks (fast on both backends, for the 256-block window)."""
        if isinstance(self.chain, EmbeddedChain):
            self.chain.tester.mine_blocks(blocks)
            return
        provider = self.clients["deployer"].tx.w3.provider
        response = await provider.make_request(RPCEndpoint("anvil_mine"), [hex(blocks)])
        assert "error" not in response, response

    async def disputed(
        self, step: int = 5, records: list[bytes] | None = None
    ) -> tuple[JobId, list[bytes]]:
        """A submitted job whose step `step` `challenger` disputed with the minimum bond."""
        records = records or step_records()
        job_id, _ = await self.submitted(records)
        await self.market("challenger").challenge_log(
            job_id, step, records, PARAMS.min_challenge_bond
        )
        return job_id, records

    async def draw(self, job_id: JobId) -> Dispute:
        """Wait out the draw delay, draw the committee, and return the dispute."""
        market = self.market("outsider")
        drawable = await market.drawable_at(job_id)
        assert drawable is not None
        head = await market.block_number()
        if head < drawable:  # anvil estimates gas against the head block itself
            await self.mine(drawable - head)
        await market.draw_committee(job_id)
        return await market.dispute(job_id)

    def role_of(self, address: str) -> str:
        return next(role for role, account in self.accounts.items() if account.address == address)

    async def owed(self) -> int:
        """What the market owes: stakes + open escrows + open bonds + pending withdrawals."""
        market = self.market("deployer")
        total = 0
        for holder in [self.address(role) for role in ROLES] + self.contracts:
            account = await market.account(holder)
            total += account.staked + await market.pending_withdrawal(holder)
        for i in range(1, await market.job_count() + 1):
            job = await market.job(JobId(i))
            if job.status.is_open:
                total += job.reward
            if job.status == JobStatus.DISPUTED:
                total += (await market.dispute(JobId(i))).bond
        return total

    async def assert_solvent(self) -> None:
        market = self.market("deployer")
        assert await market.balance() == await self.owed()


async def _start(backend: str) -> DevChain:
    if backend == "pyevm":
        return EmbeddedChain()
    if find_anvil() is None:
        pytest.skip(f"anvil binary not installed: run `{NPM_INSTALL}`")
    return await AnvilChain.start()


async def build_world(chain: DevChain, params: MarketParams = PARAMS) -> World:
    accounts = {role: dev_account(i) for i, role in enumerate(ROLES)}
    for account in accounts.values():
        await chain.fund(account.address, 100 * ETHER)
    clients: dict[str, ChainClient] = {}
    w3 = make_web3(chain.endpoint, timeout_s=30)
    try:
        deployer = await Transactor.create(w3, accounts["deployer"], timeout_s=30)
        deployment = await deploy_all(deployer, params, fork_join_window_s=3600)
    finally:
        await close_web3(w3)
    for role, account in accounts.items():
        clients[role] = await ChainClient.connect(chain.endpoint, account, deployment)
    members = [accounts[r].address for r in ("requester", "trainer", "challenger")]
    root = ref(0x01)
    dao = await clients["requester"].datasets.create(root, ref(0x02), members, quorum_bps=5000)
    # Validators and the trainer stake up front; tests start from a ready market.
    await clients["trainer"].market.stake(Wei(2 * ETHER))
    for role in ("v1", "v2", "v3"):
        await clients[role].market.stake(Wei(ETHER))
        await clients[role].market.register_validator()
    return World(chain, deployment, accounts, clients, dao, root)


async def close_world(world: World) -> None:
    for client in world.clients.values():
        await client.aclose()


@pytest_asyncio.fixture(
    params=["pyevm", pytest.param("anvil", marks=pytest.mark.e2e)],
)
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """The conformance fixture: every test using it runs on py-evm and on anvil."""
    chain = await _start(request.param)
    try:
        built = await build_world(chain)
        try:
            yield built
        finally:
            await close_world(built)
    finally:
        await chain.aclose()


@pytest_asyncio.fixture
async def pyevm_world() -> AsyncIterator[World]:
    """py-evm only, for the adversarial and unit-level tests."""
    chain = EmbeddedChain()
    built = await build_world(chain)
    try:
        yield built
    finally:
        await close_world(built)
