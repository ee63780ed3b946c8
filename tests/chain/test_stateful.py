"""Random call sequences by several actors keep the market solvent and pay once.

After every step: the contract balance equals stakes + open escrows + open bonds +
pending withdrawals; every account's locked stake equals what its open claims and
committee seats lock; and a settled job never changes again (so nothing is paid or
slashed twice). Reverts are expected along the way and must leave those invariants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import eth  # noqa: F401 - py-evm raises the recursion limit on import; do it before hypothesis runs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from chain.devchain import EmbeddedChain
from chain.errors import ContractRevert
from chain.merkle import StepLogTree
from chain.records import JobId, JobStatus, Wei

from .conftest import ETHER, PARAMS, World, build_world, close_world, ref, step_records

T = TypeVar("T")
ACTORS = ("requester", "trainer", "challenger", "outsider")
VALIDATORS = ("v1", "v2", "v3")
REWARDS = st.sampled_from([Wei(ETHER // 20), Wei(ETHER // 5), Wei(ETHER)])
AMOUNTS = st.sampled_from([Wei(ETHER // 10), Wei(ETHER // 2), Wei(2 * ETHER)])
STEP_TIMEOUT_S = 30.0
CLAIMER = "<the job's trainer>"
SEATS = ("<committee seat 0>", "<committee seat 1>", "<committee seat 2>", "<committee seat 3>")
ACTIONS = ("claim", "submit", "challenge", "vote", "resolve", "finalize", "expire", "cancel")
STATUSES_SEEN: set[JobStatus] = set()


class MarketMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.world: World = self.run(build_world(EmbeddedChain()))
        self.trees: dict[int, StepLogTree] = {}
        self.settled: dict[int, JobStatus] = {}
        self.reverts = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(STEP_TIMEOUT_S):
                return await coro

        return self.runner.run(bounded())

    def attempt(self, coro: Coroutine[Any, Any, Any]) -> bool:
        try:
            self.run(coro)
        except ContractRevert:
            self.reverts += 1
            return False
        return True

    def role_of(self, address: str | None) -> str:
        for role in ACTORS + VALIDATORS:
            if self.world.address(role) == address:
                return role
        return "outsider"

    def teardown(self) -> None:
        STATUSES_SEEN.update(self.settled.values())
        self.run(close_world(self.world))
        self.runner.close()

    # ------------------------------------------------------------ rules

    @rule(
        actor=st.sampled_from(ACTORS + VALIDATORS),
        action=st.sampled_from(("stake", "unstake", "withdraw")),
        amount=AMOUNTS,
    )
    def money(self, actor: str, action: str, amount: Wei) -> None:
        market = self.world.market(actor)
        if action == "stake":
            self.attempt(market.stake(amount))
        elif action == "unstake":
            self.attempt(market.unstake(amount))
        else:
            self.attempt(market.withdraw())

    @rule(target=jobs, actor=st.sampled_from(("requester", "outsider")), reward=REWARDS)
    def post(self, actor: str, reward: Wei) -> JobId:
        async def go() -> JobId:
            job_id, _ = await self.world.market(actor).post_job(await self.world.spec(), reward)
            return job_id

        return self.run(go())

    @initialize(target=jobs)
    def first_job(self) -> JobId:
        return self.post("requester", Wei(ETHER // 5))

    @rule(job=jobs, hops=st.integers(1, 4), data=st.data())
    def progress(self, job: JobId, hops: int, data: st.DataObject) -> None:
        """Move a job up to `hops` steps along its lifecycle (mostly by the right party)."""
        for _ in range(hops):
            honest = data.draw(st.integers(0, 3), label="honest") > 0
            actor = data.draw(st.sampled_from(ACTORS), label="actor")
            self.step(job, honest, actor, data)

    def step(self, job: JobId, honest: bool, actor: str, data: st.DataObject) -> None:
        status = self.run(self.world.market("outsider").job(job)).status
        if status == JobStatus.POSTED:
            self.act(job, "claim", "trainer" if honest else actor)
        elif status == JobStatus.CLAIMED:
            self.act(job, "submit", CLAIMER if honest else actor)
        elif status == JobStatus.SUBMITTED:
            if data.draw(st.booleans(), label="challenge instead of waiting"):
                step = data.draw(st.integers(0, 7), label="step")
                self.act(job, "challenge", "challenger" if honest else actor, step=step)
            else:
                self.time_passes(700)
                self.act(job, "finalize", actor)
        elif status == JobStatus.DISPUTED:
            for seat in range(data.draw(st.integers(0, 3), label="votes")):
                verdict = data.draw(st.booleans(), label="verdict")
                self.act(job, "vote", SEATS[seat], verdict=verdict)
            self.act(job, "resolve", actor)

    @rule(
        job=jobs,
        action=st.sampled_from(ACTIONS),
        actor=st.sampled_from((*ACTORS, *VALIDATORS, CLAIMER, *SEATS[:2])),
        step=st.integers(0, 7),
        verdict=st.booleans(),
    )
    def meddle(self, job: JobId, action: str, actor: str, step: int, verdict: bool) -> None:
        """Any action on any job by anyone, in or out of turn."""
        self.act(job, action, actor, step=step, verdict=verdict, forged=step % 2 == 1)

    @rule(seconds=st.sampled_from([60, 700, 3700, 90_000]))
    def time_passes(self, seconds: int) -> None:
        self.run(self.world.chain.advance_time(seconds))

    def act(
        self,
        job: JobId,
        action: str,
        actor: str,
        *,
        step: int = 0,
        verdict: bool = True,
        forged: bool = False,
    ) -> bool:
        market = self.world.market("outsider")
        if actor == CLAIMER:
            actor = self.role_of(self.run(market.job(job)).trainer)
        elif actor in SEATS:
            committee = self.run(market.dispute(job)).committee
            seat = SEATS.index(actor)
            actor = self.role_of(committee[seat]) if seat < len(committee) else "outsider"
        market = self.world.market(actor)
        if action == "submit":
            tree = StepLogTree(step_records())
            submitted = self.attempt(market.submit(job, tree.root, ref(0xAD)))
            if submitted:
                self.trees[job] = tree
            return submitted
        if action == "challenge":
            tree = self.trees.get(job) or StepLogTree(step_records())
            record = b"forged" if forged else step_records()[step]
            bond = PARAMS.min_challenge_bond
            return self.attempt(market.challenge(job, step, record, tree.proof(step), bond))
        if action == "vote":
            return self.attempt(market.vote(job, trainer_correct=verdict))
        calls = {
            "claim": market.claim,
            "finalize": market.finalize,
            "resolve": market.resolve,
            "expire": market.expire,
            "cancel": market.cancel,
        }
        return self.attempt(calls[action](job))

    # ------------------------------------------------------------ invariants

    @invariant()
    def solvent_and_settled_once(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        world = self.world
        market = world.market("deployer")
        assert await market.balance() == await world.owed()
        locked: dict[str, int] = {world.address(r): 0 for r in ACTORS + VALIDATORS}
        for i in range(1, await market.job_count() + 1):
            job = await market.job(JobId(i))
            if i in self.settled:
                assert job.status == self.settled[i], f"settled job {i} changed"
            elif not job.status.is_open:
                self.settled[i] = job.status
            if job.status in (JobStatus.CLAIMED, JobStatus.SUBMITTED, JobStatus.DISPUTED):
                assert job.trainer is not None
                locked[job.trainer] += await market.trainer_stake_for(job.reward)
            if job.status == JobStatus.DISPUTED:
                for member in (await market.dispute(JobId(i))).committee:
                    locked[member] += PARAMS.min_validator_stake
        for address, expected in locked.items():
            assert (await market.account(address)).locked == expected, address


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_market_invariants_under_random_calls() -> None:
    MarketMachine.TestCase.settings = settings(
        max_examples=6,
        stateful_step_count=20,
        derandomize=True,  # the same bounded set of sequences on every run
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    MarketMachine.TestCase().runTest()
    reached = STATUSES_SEEN & {JobStatus.FINALIZED, JobStatus.SLASHED}
    assert reached, f"only {STATUSES_SEEN} reached: the machine explores too little"
