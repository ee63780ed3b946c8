"""The training-job lifecycle, every ending but disputes (test_disputes.py), on py-evm and
on anvil (conformance)."""

from __future__ import annotations

import pytest

from chain.event_records import JobPosted
from chain.events import EventPoller
from chain.records import JobStatus

from .conftest import ETHER, REWARD, WINDOW_S, World, ref

pytestmark = pytest.mark.asyncio


async def test_happy_path_finalizes_and_pays_the_trainer(world: World) -> None:
    trainer = world.address("trainer")
    market = world.market("trainer")
    before = await market.account(trainer)
    job_id, tree = await world.submitted()

    job = await market.job(job_id)
    assert job.status == JobStatus.SUBMITTED
    assert job.trainer == trainer
    assert job.log_root == tree.root
    assert (await market.account(trainer)).locked == before.locked + REWARD  # reward > floor
    assert await market.job_spec(job_id) == await _spec_of(world, job_id)
    await world.assert_solvent()

    await world.chain.advance_time(WINDOW_S + 1)
    await world.market("outsider").finalize(job_id)  # anyone may finalize

    assert (await market.job(job_id)).status == JobStatus.FINALIZED
    assert (await market.account(trainer)).locked == before.locked
    assert await market.pending_withdrawal(trainer) == REWARD
    await world.assert_solvent()

    balance = await market.tx.balance(trainer)
    receipt = await market.withdraw()
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await market.tx.balance(trainer) == balance + REWARD - fee
    assert await market.pending_withdrawal(trainer) == 0
    await world.assert_solvent()


async def _spec_of(world: World, job_id: int) -> object:
    (posted,) = await world.market("outsider").events("JobPosted", jobId=job_id)
    assert isinstance(posted, JobPosted)
    assert posted.reward == REWARD
    assert posted.requester == world.address("requester")
    return posted.spec


async def test_claimed_job_past_deadline_refunds_requester_and_slashes(world: World) -> None:
    market = world.market("outsider")
    job_id = await world.post()
    await world.market("trainer").claim(job_id)
    staked = (await market.account(world.address("trainer"))).staked
    await world.chain.advance_time(24 * 3600 + 1)
    await market.expire(job_id)
    assert (await market.job(job_id)).status == JobStatus.EXPIRED
    assert (await market.account(world.address("trainer"))).staked == staked - REWARD
    assert await market.pending_withdrawal(world.address("requester")) == 2 * REWARD
    await world.assert_solvent()


async def test_unclaimed_job_expires_or_is_cancelled(world: World) -> None:
    market = world.market("requester")
    first = await world.post()
    second = await world.post()
    await market.cancel(first)
    await world.chain.advance_time(24 * 3600 + 1)
    await world.market("outsider").expire(second)
    assert (await market.job(first)).status == JobStatus.CANCELLED
    assert (await market.job(second)).status == JobStatus.EXPIRED
    assert await market.pending_withdrawal(world.address("requester")) == 2 * REWARD
    await world.assert_solvent()


async def test_stake_unstake_withdraw_round_trip(world: World) -> None:
    market = world.market("outsider")
    await market.stake(ETHER)
    await market.unstake(ETHER // 4)
    account = await market.account(world.address("outsider"))
    assert (account.staked, account.locked) == (ETHER - ETHER // 4, 0)
    assert await market.pending_withdrawal(world.address("outsider")) == ETHER // 4
    await world.assert_solvent()
    await market.withdraw()
    await world.assert_solvent()


async def test_registry_and_dao_through_the_same_client(world: World) -> None:
    client = world.clients["trainer"]
    public_key = world.accounts["trainer"]._key_obj.public_key.to_bytes()
    await client.registry.register(ref(0x10), public_key, ref(0x11))
    peer = await client.registry.peer(world.address("trainer"))
    assert (peer.inbox, peer.capabilities, peer.public_key) == (ref(0x10), ref(0x11), public_key)
    proposal, _ = await world.dao.as_account(client.tx).propose(ref(0x20), ref(0x21))
    await world.dao.as_account(client.tx).vote(proposal, support=True)
    await world.dao.vote(proposal, support=True)  # requester: 2 of 3 is a strict majority
    await world.dao.execute(proposal)
    assert await world.dao.current_root() == ref(0x20)


async def test_event_poller_waits_for_confirmations_and_delivers_once(world: World) -> None:
    market = world.market("outsider")
    start = await market.tx.rpc(market.tx.w3.eth.block_number)
    poller = EventPoller(market.tx, market.contract, "JobPosted", from_block=start, confirmations=2)
    first = await world.post()
    assert await poller.poll() == []  # one block deep: not yet
    second = await world.post()  # the second job's block confirms the first
    assert [e.job_id for e in await poller.poll() if isinstance(e, JobPosted)] == [first]
    await world.chain.advance_time(1)  # mines an empty block
    assert [e.job_id for e in await poller.poll() if isinstance(e, JobPosted)] == [second]
    assert await poller.poll() == []
