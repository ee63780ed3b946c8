"""Each attack reverts with its own named custom error (decoded into chain.reverts),
on py-evm and on anvil."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from chain.artifacts import contract_factory
from chain.records import JobId, JobStatus, Wei
from chain.reverts import (
    AlreadyVoted,
    BondTooSmall,
    CannotChallengeOwnJob,
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    DatasetRootMismatch,
    InsufficientFreeStake,
    InvalidProof,
    JobAlreadyClaimed,
    JobAlreadySettled,
    JobNotFound,
    NotCommitteeMember,
    NothingToWithdraw,
    NotTrainer,
    QuorumNotReached,
    Reentrancy,
    StepOutOfRange,
)

from .conftest import ETHER, PARAMS, REWARD, WINDOW_S, World, ref

pytestmark = pytest.mark.asyncio


async def test_double_claim(world: World) -> None:
    job_id = await world.post()
    await world.market("trainer").claim(job_id)
    await world.market("outsider").stake(Wei(ETHER))
    with pytest.raises(JobAlreadyClaimed) as caught:
        await world.market("outsider").claim(job_id)
    assert caught.value.args_by_name == {"jobId": job_id}
    with pytest.raises(JobAlreadyClaimed):
        await world.market("trainer").claim(job_id)


async def test_claim_needs_free_stake(world: World) -> None:
    job_id = await world.post()
    with pytest.raises(InsufficientFreeStake):
        await world.market("outsider").claim(job_id)


async def test_submit_by_non_claimer(world: World) -> None:
    job_id = await world.post()
    await world.market("trainer").claim(job_id)
    with pytest.raises(NotTrainer):
        await world.market("challenger").submit(job_id, bytes(ref(1)), ref(2))


async def test_challenge_after_the_window(world: World) -> None:
    job_id, tree = await world.submitted()
    await world.chain.advance_time(WINDOW_S + 1)
    with pytest.raises(ChallengeWindowClosed):
        await world.market("challenger").challenge(
            job_id, 0, b"step 0: loss 1.0000", tree.proof(0), PARAMS.min_challenge_bond
        )


async def test_finalize_before_the_window_ends(world: World) -> None:
    job_id, _ = await world.submitted()
    with pytest.raises(ChallengeWindowOpen):
        await world.market("outsider").finalize(job_id)


async def test_challenge_needs_a_valid_proof_bond_and_step(world: World) -> None:
    job_id, tree = await world.submitted()
    challenger = world.market("challenger")
    bond = PARAMS.min_challenge_bond
    with pytest.raises(InvalidProof):
        await challenger.challenge(job_id, 1, b"forged record", tree.proof(1), bond)
    with pytest.raises(InvalidProof):  # a real record under the wrong index
        await challenger.challenge(job_id, 2, b"step 1: loss 0.5000", tree.proof(1), bond)
    with pytest.raises(StepOutOfRange):
        await challenger.challenge(job_id, 8, b"x", tree.proof(0), bond)
    with pytest.raises(BondTooSmall):
        await challenger.challenge(job_id, 1, b"step 1: loss 0.5000", tree.proof(1), Wei(1))
    with pytest.raises(CannotChallengeOwnJob):
        await world.market("trainer").challenge(
            job_id, 1, b"step 1: loss 0.5000", tree.proof(1), bond
        )


async def test_second_slash(world: World) -> None:
    job_id, tree = await world.submitted()
    await world.market("challenger").challenge(
        job_id, 3, b"step 3: loss 0.2500", tree.proof(3), PARAMS.min_challenge_bond
    )
    committee = (await world.market("outsider").dispute(job_id)).committee
    voters = [world.market(r) for r in ("v1", "v2", "v3")]
    for market in voters:
        if market.tx.address in committee[:2]:
            await market.vote(job_id, trainer_correct=False)
    await world.market("outsider").resolve(job_id)
    assert (await world.market("outsider").job(job_id)).status == JobStatus.SLASHED
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").resolve(job_id)
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").expire(job_id)
    # The expiry path slashes once as well.
    second = await world.post()
    await world.market("trainer").claim(second)
    await world.chain.advance_time(24 * 3600 + 1)
    await world.market("outsider").expire(second)
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").expire(second)
    await world.assert_solvent()


async def test_vote_rules(world: World) -> None:
    job_id, tree = await world.submitted()
    await world.market("challenger").challenge(
        job_id, 0, b"step 0: loss 1.0000", tree.proof(0), PARAMS.min_challenge_bond
    )
    with pytest.raises(NotCommitteeMember):
        await world.market("outsider").vote(job_id, trainer_correct=True)
    await world.market("v1").vote(job_id, trainer_correct=True)
    with pytest.raises(AlreadyVoted):
        await world.market("v1").vote(job_id, trainer_correct=False)


async def test_reentrant_withdraw_is_refused(world: World) -> None:
    attacker_tx = world.clients["outsider"].tx
    receipt = await attacker_tx.transact(
        contract_factory(attacker_tx.w3, "MaliciousReceiver").constructor(world.deployment.market)
    )
    attacker = attacker_tx.w3.eth.contract(
        address=receipt["contractAddress"],
        abi=contract_factory(attacker_tx.w3, "MaliciousReceiver").abi,
    )
    world.contracts.append(attacker.address)
    await attacker_tx.transact(attacker.functions.stakeAndUnstake(), value=ETHER)
    market = world.market("outsider")
    assert await market.pending_withdrawal(attacker.address) == ETHER
    with pytest.raises(Reentrancy):
        await attacker_tx.transact(attacker.functions.attack())
    assert await market.pending_withdrawal(attacker.address) == ETHER  # nothing moved
    assert await attacker_tx.call(attacker.functions.reentries()) == 0
    await world.assert_solvent()


async def test_double_withdraw(world: World) -> None:
    job_id, _ = await world.submitted()
    await world.chain.advance_time(WINDOW_S + 1)
    market = world.market("trainer")
    await market.finalize(job_id)
    await market.withdraw()
    with pytest.raises(NothingToWithdraw):
        await market.withdraw()
    await world.assert_solvent()


async def test_double_dao_vote_and_execute_without_quorum(world: World) -> None:
    dao = world.dao
    proposal, _ = await dao.propose(ref(0x30), ref(0x31))
    await dao.vote(proposal, support=True)
    with pytest.raises(AlreadyVoted):
        await dao.vote(proposal, support=False)
    with pytest.raises(QuorumNotReached):  # 1 yes of 3 members, quorum 50% = 2
        await dao.execute(proposal)
    await world.chain.advance_time(4 * 24 * 3600)
    with pytest.raises(QuorumNotReached):  # the deadline does not lower the bar
        await dao.execute(proposal)


async def test_post_with_a_root_the_dao_does_not_hold(world: World) -> None:
    spec = await world.spec()
    forged = type(spec)(**{**spec.__dict__, "dataset_root": ref(0x99)})
    with pytest.raises(DatasetRootMismatch):
        await world.market("requester").post_job(forged, REWARD)


async def test_unknown_job(world: World) -> None:
    with pytest.raises(JobNotFound):
        await world.market("trainer").claim(JobId(42))
    assert keccak(b"")  # the world fixture itself must have deployed cleanly
