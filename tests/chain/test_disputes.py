"""The dispute path on py-evm and on anvil: challenge with the previous record, a committee
drawn from a later block hash, staked votes (with data unavailability), and every ending
with its exact payouts to the parties and the committee."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from chain.client import ChainClient
from chain.devchain import dev_account
from chain.event_records import CommitteeDrawn, CommitteeReanchored, JobChallenged
from chain.merkle import leaf_hash
from chain.records import JobId, JobStatus, Outcome, Verdict, Wei
from chain.reverts import (
    CommitteeNotDrawn,
    DrawTooEarly,
    NoEligibleValidators,
    VotingClosed,
    VotingStillOpen,
)

from .conftest import ETHER, PARAMS, REWARD, VALIDATORS, World

pytestmark = pytest.mark.asyncio

BOND = PARAMS.min_challenge_bond
SLASHED = REWARD  # trainerStakeFor(REWARD) == REWARD above the floor
PENALTY = PARAMS.min_validator_stake * PARAMS.absent_penalty_bps // 10_000


def share_of(forfeit: int) -> int:
    return forfeit * PARAMS.validator_reward_bps // 10_000


async def drawn(world: World, step: int = 5) -> tuple[JobId, list[str]]:
    """A disputed job with its committee drawn; returns the committee's roles in seat order."""
    job_id, _ = await world.disputed(step)
    dispute = await world.draw(job_id)
    assert set(dispute.committee) == {world.address(r) for r in VALIDATORS}
    for role in VALIDATORS:  # each seat locks min_validator_stake
        assert (await world.market(role).account(world.address(role))).locked == (
            PARAMS.min_validator_stake
        )
    await world.assert_solvent()
    return job_id, [world.role_of(a) for a in dispute.committee]


async def pending(world: World, role: str) -> int:
    return await world.market("outsider").pending_withdrawal(world.address(role))


async def staked(world: World, role: str) -> int:
    return (await world.market("outsider").account(world.address(role))).staked


async def outcome_of(world: World, job_id: JobId) -> Outcome:
    (resolved,) = await world.market("outsider").events("DisputeResolved", jobId=job_id)
    return resolved.outcome  # type: ignore[attr-defined, no-any-return]


async def test_challenge_commits_both_records_and_waits_for_the_draw(world: World) -> None:
    job_id, records = await world.disputed(step=5)
    market = world.market("outsider")
    dispute = await market.dispute(job_id)
    assert (dispute.step, dispute.bond) == (5, BOND)
    assert dispute.challenger == world.address("challenger")
    assert dispute.record_hash == leaf_hash(records[5])
    assert dispute.prev_record_hash == leaf_hash(records[4])
    assert dispute.committee == ()
    assert not dispute.drawn
    (challenged,) = await market.events("JobChallenged", jobId=job_id)
    assert isinstance(challenged, JobChallenged)
    assert (challenged.prev_record, challenged.record) == (records[4], records[5])
    assert challenged.seed_block == challenged.block_number + PARAMS.draw_delay
    assert await market.drawable_at(job_id) == challenged.seed_block + 1
    with pytest.raises(CommitteeNotDrawn):
        await world.market("v1").vote(job_id, Verdict.TRAINER_WRONG)
    for validator in VALIDATORS:  # nothing is locked before the draw
        assert (await market.account(world.address(validator))).locked == 0
    await world.assert_solvent()


async def test_step_zero_is_challenged_without_a_previous_record(world: World) -> None:
    job_id, records = await world.disputed(step=0)
    dispute = await world.market("outsider").dispute(job_id)
    assert dispute.step == 0
    assert dispute.prev_record_hash is None
    assert dispute.record_hash == leaf_hash(records[0])


async def test_draw_waits_for_the_seed_block_and_uses_its_hash(world: World) -> None:
    # Six more validators, so that the draw really chooses 3 of 9.
    for i in range(6):
        role, account = f"x{i}", dev_account(20 + i)
        world.accounts[role] = account
        await world.chain.fund(account.address, 10 * ETHER)
        client = await ChainClient.connect(world.chain.endpoint, account, world.deployment)
        world.clients[role] = client
        await client.market.stake(Wei(ETHER))
        await client.market.register_validator()
        world.contracts.append(world.accounts[role].address)
    job_id, _ = await world.disputed()
    market = world.market("outsider")
    (challenged,) = await market.events("JobChallenged", jobId=job_id)
    assert isinstance(challenged, JobChallenged)
    seed_block = challenged.seed_block
    validators = await market.validators()
    minimum = PARAMS.min_validator_stake
    eligible = {v for v in validators if (await market.account(v)).free >= minimum}
    refused = 0
    while await market.block_number() < seed_block:  # the seed block is not mined yet
        with pytest.raises(DrawTooEarly) as early:
            await market.draw_committee(job_id)
        assert early.value.args_by_name["drawableAtBlock"] == seed_block + 1
        refused += 1
        await world.mine(1)
    assert refused == PARAMS.draw_delay
    await world.mine(1)  # anvil estimates gas against the head block, py-evm the next one
    receipt = await market.draw_committee(job_id)
    assert receipt["blockNumber"] > seed_block

    block = await market.tx.rpc(market.tx.w3.eth.get_block(seed_block))
    seed = keccak(abi_encode(["bytes32", "uint256"], [bytes(block["hash"]), job_id]))
    expected = expected_committee(seed, validators, eligible, PARAMS.committee_size)
    dispute = await market.dispute(job_id)
    assert list(dispute.committee) == expected
    (event,) = await market.events("CommitteeDrawn", jobId=job_id)
    assert isinstance(event, CommitteeDrawn)
    assert (event.committee, event.seed_block) == (dispute.committee, seed_block)
    await world.assert_solvent()


def expected_committee(
    seed: bytes, validators: Sequence[str], eligible: AbstractSet[str], k: int
) -> list[str]:
    """The contract's draw, computed independently: 2k random probes, then a sweep."""
    chosen: list[str] = []
    n = len(validators)
    for attempt in range(2 * k + n):
        if len(chosen) == k:
            break
        if attempt < 2 * k:
            probe = keccak(abi_encode(["bytes32", "uint256"], [seed, attempt]))
            index = int.from_bytes(probe, "big") % n
        else:
            index = attempt - 2 * k
        candidate = validators[index]
        if candidate in eligible and candidate not in chosen:
            chosen.append(candidate)
    return chosen


async def test_a_seed_hash_out_of_reach_re_anchors_the_draw(world: World) -> None:
    job_id, _ = await world.disputed()
    market = world.market("outsider")
    old_seed = (await market.dispute(job_id)).seed_block
    await world.mine(300)  # blockhash only reaches 256 blocks back
    receipt = await market.draw_committee(job_id)
    (reanchored,) = await market.events("CommitteeReanchored", jobId=job_id)
    assert isinstance(reanchored, CommitteeReanchored)
    assert reanchored.seed_block == receipt["blockNumber"] + PARAMS.draw_delay > old_seed
    dispute = await market.dispute(job_id)
    assert not dispute.drawn
    assert dispute.seed_block == reanchored.seed_block
    dispute = await world.draw(job_id)
    assert len(dispute.committee) == 3
    await world.assert_solvent()


async def test_dishonest_trainer_is_slashed_challenger_and_majority_paid(world: World) -> None:
    job_id, committee = await drawn(world)
    trainer_stake = await staked(world, "trainer")
    for role in committee[:2]:
        await world.market(role).vote(job_id, Verdict.TRAINER_WRONG)
    await world.market("outsider").resolve(job_id)  # a majority ends it before the period

    assert (await world.market("outsider").job(job_id)).status == JobStatus.SLASHED
    assert await outcome_of(world, job_id) == Outcome.CHALLENGER_WON
    assert await staked(world, "trainer") == trainer_stake - SLASHED
    assert await pending(world, "challenger") == SLASHED - share_of(SLASHED) + BOND
    assert await pending(world, "requester") == REWARD
    assert await pending(world, "trainer") == 0
    for role in committee[:2]:
        assert await pending(world, role) == share_of(SLASHED) // 2
    late = committee[2]  # had not voted yet, but the period was still open: no penalty
    assert (await pending(world, late), await staked(world, late)) == (0, ETHER)
    for role in VALIDATORS:
        assert (await world.market(role).account(world.address(role))).locked == 0
    await world.assert_solvent()


async def test_honest_trainer_wins_a_frivolous_challenge(world: World) -> None:
    job_id, committee = await drawn(world)
    market = world.market("outsider")
    await world.market(committee[0]).vote(job_id, Verdict.TRAINER_CORRECT)
    await world.market(committee[1]).vote(job_id, Verdict.TRAINER_WRONG)
    with pytest.raises(VotingStillOpen):  # one vote each way is no majority yet
        await market.resolve(job_id)
    await world.market(committee[2]).vote(job_id, Verdict.TRAINER_CORRECT)
    await market.resolve(job_id)

    assert (await market.job(job_id)).status == JobStatus.FINALIZED
    assert await outcome_of(world, job_id) == Outcome.TRAINER_WON
    assert await pending(world, "trainer") == REWARD + BOND - share_of(BOND)
    assert await pending(world, "challenger") == 0  # the bond is lost
    assert await pending(world, committee[0]) == share_of(BOND) // 2
    assert await pending(world, committee[2]) == share_of(BOND) // 2
    assert await pending(world, committee[1]) == 0  # the minority is not paid
    assert await staked(world, committee[1]) == ETHER  # nor penalised
    await world.assert_solvent()


async def test_absent_members_lose_stake_to_those_who_voted(world: World) -> None:
    job_id, committee = await drawn(world)
    for role in committee[:2]:
        await world.market(role).vote(job_id, Verdict.TRAINER_WRONG)
    await world.chain.advance_time(PARAMS.voting_period + 1)
    await world.market("outsider").resolve(job_id)

    absent = committee[2]
    assert await staked(world, absent) == ETHER - PENALTY
    assert (await world.market(absent).account(world.address(absent))).locked == 0
    pool = share_of(SLASHED) + PENALTY
    for role in committee[:2]:
        assert await pending(world, role) == pool // 2
    assert await pending(world, "challenger") == SLASHED - share_of(SLASHED) + BOND
    (penalized,) = await world.market("outsider").events("ValidatorPenalized", jobId=job_id)
    assert penalized.validator == world.address(absent)  # type: ignore[attr-defined]
    await world.assert_solvent()


async def test_without_a_majority_the_timeout_pays_the_trainer(world: World) -> None:
    job_id, committee = await drawn(world)
    market = world.market("outsider")
    await world.market(committee[0]).vote(job_id, Verdict.TRAINER_WRONG)
    await world.chain.advance_time(PARAMS.voting_period + 1)
    with pytest.raises(VotingClosed):
        await world.market(committee[1]).vote(job_id, Verdict.TRAINER_WRONG)
    await market.resolve(job_id)

    assert (await market.job(job_id)).status == JobStatus.FINALIZED
    assert await outcome_of(world, job_id) == Outcome.TIMED_OUT
    assert await pending(world, "trainer") == REWARD
    assert await pending(world, "challenger") == BOND
    assert await pending(world, committee[0]) == 2 * PENALTY  # the two absent members' stake
    for role in committee[1:]:
        assert await staked(world, role) == ETHER - PENALTY
    await world.assert_solvent()


async def test_unavailable_data_counts_against_the_trainer(world: World) -> None:
    job_id, committee = await drawn(world)
    await world.market(committee[0]).vote(job_id, Verdict.DATA_UNAVAILABLE)
    await world.market(committee[1]).vote(job_id, Verdict.TRAINER_CORRECT)
    await world.market(committee[2]).vote(job_id, Verdict.DATA_UNAVAILABLE)
    await world.market("outsider").resolve(job_id)

    assert (await world.market("outsider").job(job_id)).status == JobStatus.SLASHED
    assert await outcome_of(world, job_id) == Outcome.DATA_UNAVAILABLE
    assert await pending(world, "challenger") == SLASHED - share_of(SLASHED) + BOND
    assert await pending(world, committee[0]) == share_of(SLASHED) // 2
    assert await pending(world, committee[2]) == share_of(SLASHED) // 2
    assert await pending(world, committee[1]) == 0
    await world.assert_solvent()


async def test_wrong_and_unavailable_votes_together_form_a_majority(world: World) -> None:
    job_id, committee = await drawn(world)
    await world.market(committee[0]).vote(job_id, Verdict.TRAINER_WRONG)
    await world.market(committee[1]).vote(job_id, Verdict.DATA_UNAVAILABLE)
    await world.market("outsider").resolve(job_id)
    assert await outcome_of(world, job_id) == Outcome.CHALLENGER_WON
    for role in committee[:2]:
        assert await pending(world, role) == share_of(SLASHED) // 2
    await world.assert_solvent()


async def test_an_undrawn_dispute_ends_after_the_voting_period(world: World) -> None:
    job_id, _ = await world.disputed()
    market = world.market("outsider")
    with pytest.raises(VotingStillOpen):
        await market.resolve(job_id)
    await world.chain.advance_time(PARAMS.voting_period + 1)
    with pytest.raises(VotingClosed):  # too late to draw: the timeout decides
        await market.draw_committee(job_id)
    await market.resolve(job_id)
    assert (await market.job(job_id)).status == JobStatus.FINALIZED
    assert await outcome_of(world, job_id) == Outcome.TIMED_OUT
    assert await pending(world, "trainer") == REWARD
    assert await pending(world, "challenger") == BOND
    await world.assert_solvent()


async def test_no_eligible_validator_still_ends_by_timeout(world: World) -> None:
    job_id, _ = await world.disputed()
    for role in VALIDATORS:  # every validator leaves after the challenge
        await world.market(role).unstake(Wei(ETHER))
    market = world.market("outsider")
    await world.mine(PARAMS.draw_delay)
    with pytest.raises(NoEligibleValidators):
        await market.draw_committee(job_id)
    await world.chain.advance_time(PARAMS.voting_period + 1)
    await market.resolve(job_id)
    assert await outcome_of(world, job_id) == Outcome.TIMED_OUT
    await world.assert_solvent()
