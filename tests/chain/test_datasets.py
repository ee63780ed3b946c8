"""Dataset DAO governance and forking (py-evm)."""

from __future__ import annotations

import pytest

from chain.datasets import DatasetDAOClient
from chain.reverts import (
    JoinWindowClosed,
    NotMember,
    NotParentMember,
    ProposalAlreadyExecuted,
    ProposalVotingOpen,
    StaleProposal,
    VotingClosed,
)

from .conftest import World, ref

pytestmark = pytest.mark.asyncio


def as_role(world: World, dao: DatasetDAOClient, role: str) -> DatasetDAOClient:
    return dao.as_account(world.clients[role].tx)


async def test_proposal_executes_after_deadline_with_quorum(pyevm_world: World) -> None:
    world = pyevm_world
    dao = world.dao
    proposal, _ = await dao.propose(ref(0x40), ref(0x41))
    await dao.vote(proposal, support=True)
    await as_role(world, dao, "trainer").vote(proposal, support=True)
    await as_role(world, dao, "challenger").vote(proposal, support=False)
    await dao.execute(proposal)  # 2 of 3 yes: a strict majority decides early
    with pytest.raises(ProposalAlreadyExecuted):
        await dao.execute(proposal)
    history = await dao.history()
    assert [h.root for h in history] == [world.root, ref(0x40)]
    assert history[1].proposal_id == proposal
    assert history[0].proposal_id is None
    assert (await dao.proposal(proposal)).yes == 2


async def test_quorum_without_majority_waits_for_the_deadline(pyevm_world: World) -> None:
    world = pyevm_world
    dao = world.dao
    members = [world.address("outsider")]
    small = await world.clients["requester"].datasets.create(
        world.root, ref(0x02), [*members, world.address("requester")], quorum_bps=5000
    )
    proposal, _ = await as_role(world, small, "outsider").propose(ref(0x50), ref(0x51))
    await as_role(world, small, "outsider").vote(proposal, support=True)
    with pytest.raises(ProposalVotingOpen):  # 1 of 2: quorum met, but not a majority of all
        await small.execute(proposal)
    await world.chain.advance_time(3 * 24 * 3600 + 1)
    with pytest.raises(VotingClosed):
        await small.vote(proposal, support=False)
    await small.execute(proposal)
    assert await small.current_root() == ref(0x50)
    assert await dao.current_root() == world.root


async def test_stale_proposal_cannot_overwrite_a_newer_root(pyevm_world: World) -> None:
    world = pyevm_world
    dao = world.dao
    first, _ = await dao.propose(ref(0x60), ref(0x61))
    second, _ = await dao.propose(ref(0x70), ref(0x71))
    for role in ("requester", "trainer"):
        await as_role(world, dao, role).vote(first, support=True)
        await as_role(world, dao, role).vote(second, support=True)
    await dao.execute(first)
    with pytest.raises(StaleProposal):
        await dao.execute(second)


async def test_fork_keeps_root_links_parent_and_lets_members_opt_in(pyevm_world: World) -> None:
    world = pyevm_world
    dao = world.dao
    with pytest.raises(NotMember):
        await as_role(world, dao, "outsider").fork()
    child = await as_role(world, dao, "challenger").fork()
    assert await child.current_root() == world.root
    assert await child.parent() == dao.address
    assert await child.lineage() == [child.address, dao.address]
    assert await child.members() == [world.address("challenger")]
    assert await world.clients["requester"].datasets.is_dao(child.address)

    await as_role(world, child, "trainer").join()
    with pytest.raises(NotParentMember):
        await as_role(world, child, "outsider").join()
    await world.chain.advance_time(3601)
    with pytest.raises(JoinWindowClosed):
        await as_role(world, child, "requester").join()
    assert set(await child.members()) == {world.address("challenger"), world.address("trainer")}

    # The fork governs itself; the parent is untouched.
    proposal, _ = await as_role(world, child, "trainer").propose(ref(0x80), ref(0x81))
    await as_role(world, child, "trainer").vote(proposal, support=True)
    await as_role(world, child, "challenger").vote(proposal, support=True)
    await child.execute(proposal)
    assert [h.root for h in await child.history()] == [world.root, ref(0x80)]
    assert await dao.current_root() == world.root
    with pytest.raises(JoinWindowClosed):
        await as_role(world, dao, "outsider").join()  # not a fork
