"""Each attack reverts with its own named custom error (decoded into chain.reverts),
on py-evm and on anvil."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak

from chain.artifacts import contract_factory
from chain.merkle import StepLogTree
from chain.records import JobId, JobStatus, Verdict, Wei
from chain.reverts import (
    AlreadyVoted,
    BondTooSmall,
    CannotChallengeOwnJob,
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    CommitteeAlreadyDrawn,
    DatasetRootMismatch,
    InsufficientFreeStake,
    InvalidProof,
    InvalidVerdict,
    JobAlreadyClaimed,
    JobAlreadySettled,
    JobNotFound,
    NoPreviousStep,
    NotCommitteeMember,
    NothingToWithdraw,
    NotTrainer,
    QuorumNotReached,
    Reentrancy,
    StepOutOfRange,
    WrongStatus,
)

from .conftest import ETHER, PARAMS, REWARD, VALIDATORS, WINDOW_S, World, ref, step_records

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
    job_id, _ = await world.submitted()
    await world.chain.advance_time(WINDOW_S + 1)
    with pytest.raises(ChallengeWindowClosed):
        await world.market("challenger").challenge_log(
            job_id, 0, step_records(), PARAMS.min_challenge_bond
        )


async def test_finalize_before_the_window_ends(world: World) -> None:
    job_id, _ = await world.submitted()
    with pytest.raises(ChallengeWindowOpen):
        await world.market("outsider").finalize(job_id)


async def test_challenge_needs_a_valid_proof_bond_and_step(world: World) -> None:
    job_id, tree = await world.submitted()
    records = step_records()
    challenger = world.market("challenger")
    bond = PARAMS.min_challenge_bond

    async def challenge(step: int, prev: bytes, prev_proof: list[bytes], record: bytes,
                        proof: list[bytes], value: int = bond) -> None:  # fmt: skip
        await challenger.challenge(job_id, step, prev, prev_proof, record, proof, Wei(value))

    with pytest.raises(InvalidProof) as caught:  # a forged disputed record
        await challenge(3, records[2], tree.proof(2), b"forged record", tree.proof(3))
    assert caught.value.args_by_name == {"jobId": job_id, "step": 3}
    with pytest.raises(InvalidProof) as caught:  # a forged previous record
        await challenge(3, b"forged previous", tree.proof(2), records[3], tree.proof(3))
    assert caught.value.args_by_name == {"jobId": job_id, "step": 2}
    with pytest.raises(InvalidProof) as caught:  # the right previous record, the wrong path
        await challenge(3, records[2], tree.proof(1), records[3], tree.proof(3))
    assert caught.value.args_by_name == {"jobId": job_id, "step": 2}
    with pytest.raises(InvalidProof):  # a record that is not its predecessor
        await challenge(3, records[1], tree.proof(1), records[3], tree.proof(3))
    with pytest.raises(InvalidProof):  # a real record under the wrong index
        await challenge(2, records[0], tree.proof(0), records[1], tree.proof(1))
    with pytest.raises(InvalidProof) as caught:  # step > 0 needs its previous record
        await challenge(3, b"", [], records[3], tree.proof(3))
    assert caught.value.args_by_name == {"jobId": job_id, "step": 2}
    with pytest.raises(NoPreviousStep):  # step 0's pre-state is the job's initial state
        await challenge(0, records[0], tree.proof(0), records[0], tree.proof(0))
    with pytest.raises(StepOutOfRange):
        await challenge(8, records[7], tree.proof(7), b"x", tree.proof(0))
    with pytest.raises(BondTooSmall):
        await challenge(1, records[0], tree.proof(0), records[1], tree.proof(1), value=1)
    with pytest.raises(CannotChallengeOwnJob):
        await world.market("trainer").challenge_log(job_id, 1, records, bond)
    assert (await challenger.job(job_id)).status == JobStatus.SUBMITTED
    await world.assert_solvent()


async def test_records_from_another_job_are_refused(world: World) -> None:
    other = [b"other job " + r for r in step_records()]
    await world.submitted(other)
    job_id, _ = await world.submitted()
    with pytest.raises(InvalidProof):  # valid proofs, but to the other job's root
        await world.market("challenger").challenge_log(job_id, 4, other, PARAMS.min_challenge_bond)
    mixed = step_records()[:3] + other[3:]  # own previous record, foreign disputed one
    tree = StepLogTree(step_records())
    with pytest.raises(InvalidProof):
        await world.market("challenger").challenge(
            job_id, 3, mixed[2], tree.proof(2), mixed[3], StepLogTree(other).proof(3),
            PARAMS.min_challenge_bond,
        )  # fmt: skip


async def test_replayed_challenge(world: World) -> None:
    job_id, records = await world.disputed(step=3)
    bond = PARAMS.min_challenge_bond
    with pytest.raises(WrongStatus):  # the same challenge again, while disputed
        await world.market("challenger").challenge_log(job_id, 3, records, bond)
    with pytest.raises(WrongStatus):  # or by someone else
        await world.market("outsider").challenge_log(job_id, 3, records, bond)
    await _slash(world, job_id)
    with pytest.raises(JobAlreadySettled):  # and once it is settled
        await world.market("challenger").challenge_log(job_id, 3, records, bond)
    await world.assert_solvent()


async def _slash(world: World, job_id: JobId) -> None:
    committee = (await world.draw(job_id)).committee
    for address in committee[:2]:
        await world.market(world.role_of(address)).vote(job_id, Verdict.TRAINER_WRONG)
    await world.market("outsider").resolve(job_id)


async def test_second_slash(world: World) -> None:
    job_id, _ = await world.disputed(step=3)
    await _slash(world, job_id)
    assert (await world.market("outsider").job(job_id)).status == JobStatus.SLASHED
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").resolve(job_id)
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").draw_committee(job_id)
    with pytest.raises(JobAlreadySettled):
        await world.market("v1").vote(job_id, Verdict.TRAINER_WRONG)
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").expire(job_id)
    # The expiry path slashes once as well.
    second = await world.post()
    await world.market("trainer").claim(second)
    await world.chain.advance_time(24 * 3600 + 1)
    await world.market("outsider").expire(second)
    with pytest.raises(JobAlreadySettled):
        await world.market("outsider").expire(second)
    # Everyone paid withdraws once; a second withdrawal finds nothing.
    for role in ("challenger", "requester", *VALIDATORS[:1]):
        market = world.market(role)
        if await market.pending_withdrawal(world.address(role)):
            await market.withdraw()
            with pytest.raises(NothingToWithdraw):
                await market.withdraw()
    await world.assert_solvent()


async def test_vote_rules(world: World) -> None:
    job_id, _ = await world.disputed(step=0)
    committee = (await world.draw(job_id)).committee
    with pytest.raises(CommitteeAlreadyDrawn):
        await world.market("outsider").draw_committee(job_id)
    with pytest.raises(NotCommitteeMember):
        await world.market("outsider").vote(job_id, Verdict.TRAINER_CORRECT)
    with pytest.raises(NotCommitteeMember):  # the parties are never on the committee
        await world.market("challenger").vote(job_id, Verdict.TRAINER_WRONG)
    member = world.market(world.role_of(committee[0]))
    with pytest.raises(InvalidVerdict):
        await member.vote(job_id, Verdict.NONE)
    await member.vote(job_id, Verdict.TRAINER_CORRECT)
    with pytest.raises(AlreadyVoted):
        await member.vote(job_id, Verdict.TRAINER_WRONG)
    with pytest.raises(AlreadyVoted):  # the same verdict again counts no more
        await member.vote(job_id, Verdict.TRAINER_CORRECT)
    dispute = await world.market("outsider").dispute(job_id)
    assert (dispute.votes_trainer_correct, dispute.votes_trainer_wrong) == (1, 0)
    assert await world.market("outsider").verdict_of(job_id, committee[0]) == (
        Verdict.TRAINER_CORRECT
    )


async def test_validators_joining_after_the_challenge_are_not_drawn(world: World) -> None:
    await world.market("v3").unstake(Wei(ETHER))  # v3 stays registered but has no stake
    job_id, _ = await world.disputed()
    latecomer = world.market("outsider")
    await latecomer.stake(Wei(ETHER))
    await latecomer.register_validator()
    dispute = await world.draw(job_id)
    assert set(dispute.committee) == {world.address("v1"), world.address("v2")}
    await world.assert_solvent()


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
