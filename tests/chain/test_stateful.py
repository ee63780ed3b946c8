"""Random call sequences by several actors keep the market solvent and pay once.

After every step: the contract balance equals stakes + open escrows + open bonds +
pending withdrawals; every account's locked stake equals what its open claims and drawn
committee seats lock; a settled job (and its dispute) never changes again; and the
events show each stake slashed or penalised at most once per job and each job, and each
validator's share of it, paid at most once. Disputes go through the whole path: the
challenge with the previous record, blocks passing (past the 256-block window too), the
draw, votes of every verdict, and resolution. Reverts are expected along the way and
must leave those invariants.
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
from chain.records import Dispute, JobId, JobStatus, TrainingJob, Verdict, Wei

from .conftest import ETHER, PARAMS, World, build_world, close_world, ref, step_records

T = TypeVar("T")
ACTORS = ("requester", "trainer", "challenger", "outsider")
VALIDATORS = ("v1", "v2", "v3")
REWARDS = st.sampled_from([Wei(ETHER // 20), Wei(ETHER // 5), Wei(ETHER)])
AMOUNTS = st.sampled_from([Wei(ETHER // 10), Wei(ETHER // 2), Wei(2 * ETHER)])
STEP_TIMEOUT_S = 30.0
CLAIMER = "<the job's trainer>"
SEATS = ("<committee seat 0>", "<committee seat 1>", "<committee seat 2>", "<committee seat 3>")
ACTIONS = (
    "claim", "submit", "challenge", "draw", "vote", "resolve", "finalize", "expire", "cancel",
)  # fmt: skip
VERDICTS = st.sampled_from(list(Verdict))
STATUSES_SEEN: set[JobStatus] = set()
EVENTS_SEEN: set[str] = set()  # dispute events some run emitted (to check the exploration)
ONCE_PER_JOB = {  # event: the arguments that may occur together at most once
    "JobSlashed": ("job_id", "trainer"),
    "ValidatorPenalized": ("job_id", "validator"),
    "ValidatorRewarded": ("job_id", "validator"),
    "JobFinalized": ("job_id",),
    "DisputeResolved": ("job_id",),
    "CommitteeDrawn": ("job_id",),
}


class MarketMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.world: World = self.run(build_world(EmbeddedChain()))
        self.logs: dict[int, list[bytes]] = {}
        self.settled: dict[int, tuple[TrainingJob, Dispute]] = {}
        self.once: dict[str, set[tuple[Any, ...]]] = {name: set() for name in ONCE_PER_JOB}
        self.next_block = 0  # events before this block were checked already
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
        STATUSES_SEEN.update(job.status for job, _ in self.settled.values())
        EVENTS_SEEN.update(name for name, keys in self.once.items() if keys)
        if self.run(self.world.market("outsider").events("CommitteeReanchored")):
            EVENTS_SEEN.add("CommitteeReanchored")
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

    @rule(job=jobs, data=st.data())
    def dispute_path(self, job: JobId, data: st.DataObject) -> None:
        """Drive a job by the right parties through a whole dispute, with random verdicts."""
        for _ in range(6):
            if not self.run(self.world.market("outsider").job(job)).status.is_open:
                return
            actor = data.draw(st.sampled_from(ACTORS), label="actor")
            self.step(job, True, actor, data, challenge=True)

    def step(
        self, job: JobId, honest: bool, actor: str, data: st.DataObject, *, challenge: bool = False
    ) -> None:
        status = self.run(self.world.market("outsider").job(job)).status
        if status == JobStatus.POSTED:
            self.act(job, "claim", "trainer" if honest else actor)
        elif status == JobStatus.CLAIMED:
            self.act(job, "submit", CLAIMER if honest else actor)
        elif status == JobStatus.SUBMITTED:
            if challenge or data.draw(st.booleans(), label="challenge instead of waiting"):
                step = data.draw(st.integers(0, 7), label="step")
                self.act(job, "challenge", "challenger" if honest else actor, step=step)
            else:
                self.time_passes(700)
                self.act(job, "finalize", actor)
        elif status == JobStatus.DISPUTED:
            if not self.run(self.world.market("outsider").dispute(job)).drawn:
                self.run(self.world.mine(data.draw(st.integers(0, 3), label="blocks")))
                if not self.act(job, "draw", actor):
                    return
            for seat in range(data.draw(st.integers(0, 3), label="votes")):
                verdict = data.draw(VERDICTS, label="verdict")
                self.act(job, "vote", SEATS[seat], verdict=verdict)
            self.act(job, "resolve", actor)

    @rule(
        job=jobs,
        action=st.sampled_from(ACTIONS),
        actor=st.sampled_from((*ACTORS, *VALIDATORS, CLAIMER, *SEATS[:2])),
        step=st.integers(0, 7),
        verdict=VERDICTS,
    )
    def meddle(self, job: JobId, action: str, actor: str, step: int, verdict: Verdict) -> None:
        """Any action on any job by anyone, in or out of turn."""
        self.act(job, action, actor, step=step, verdict=verdict, forged=step % 2 == 1)

    @rule(seconds=st.sampled_from([60, 700, 3700, 90_000]))
    def time_passes(self, seconds: int) -> None:
        self.run(self.world.chain.advance_time(seconds))

    @rule(blocks=st.sampled_from([1, 2, 300]))
    def blocks_pass(self, blocks: int) -> None:
        self.run(self.world.mine(blocks))

    def act(
        self,
        job: JobId,
        action: str,
        actor: str,
        *,
        step: int = 0,
        verdict: Verdict = Verdict.TRAINER_CORRECT,
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
            records = [b"job %d " % job + r for r in step_records()]
            submitted = self.attempt(market.submit(job, StepLogTree(records).root, ref(0xAD)))
            if submitted:
                self.logs[job] = records
            return submitted
        if action == "challenge":
            records = self.logs.get(job) or step_records()
            tree = StepLogTree(records)
            record = b"forged" if forged else records[step]
            prev, prev_proof = (records[step - 1], tree.proof(step - 1)) if step else (b"", [])
            bond = PARAMS.min_challenge_bond
            call = market.challenge(job, step, prev, prev_proof, record, tree.proof(step), bond)
            return self.attempt(call)
        if action == "vote":
            return self.attempt(market.vote(job, verdict))
        calls = {
            "draw": market.draw_committee,
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
            dispute = await market.dispute(JobId(i))
            if i in self.settled:
                assert (job, dispute) == self.settled[i], f"settled job {i} changed"
            elif not job.status.is_open:
                self.settled[i] = (job, dispute)
            if job.status in (JobStatus.CLAIMED, JobStatus.SUBMITTED, JobStatus.DISPUTED):
                assert job.trainer is not None
                locked[job.trainer] += await market.trainer_stake_for(job.reward)
            if job.status == JobStatus.DISPUTED:
                for member in dispute.committee:
                    locked[member] += PARAMS.min_validator_stake
        for address, expected in locked.items():
            assert (await market.account(address)).locked == expected, address
        head = await market.block_number()
        for name, key in ONCE_PER_JOB.items():
            for event in await market.events(name, from_block=self.next_block):
                if event.block_number > head:
                    continue  # read again next time, with the rest of its block
                seen = tuple(getattr(event, k) for k in key)
                assert seen not in self.once[name], f"{name} twice for the same {key}: {seen}"
                self.once[name].add(seen)
        self.next_block = head + 1


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
    assert {"CommitteeDrawn", "DisputeResolved"} <= EVENTS_SEEN, EVENTS_SEEN
