"""The training market end to end in one process: a real dataset on the dev Swarm node, a
DAO holding its root on py-evm, a worker training the bundled model, a verifier replaying,
and a committee of validators re-executing a disputed step.

Honest: the verifier finds every step right, the window passes, the worker is paid.
Dishonest (a corrupted update, a skipped batch): the verifier names the wrong step, the
challenge carries records i-1 and i, the committee votes it wrong, the worker is slashed,
the challenger and the committee are paid, and the market stays solvent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from chain.event_records import DisputeResolved
from chain.records import JobStatus, Outcome, Wei
from chain.records import Verdict as Vote
from tests.chain.conftest import ETHER, PARAMS, REWARD, World
from tests.trainer.conftest import Swarm
from tests.trainer.market import STEPS, WINDOW, post_job, train_once, worker_for, world
from trainer.tokenizer import GgufTokenizer
from trainer.validator import Validator, verify_job
from trainer.worker import Dishonesty

__all__ = ["world"]  # the fixture, imported

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_honest_worker_is_verified_and_paid_after_the_window(
    world: World,
    swarm: Swarm,
    tokenizer: GgufTokenizer,
    base_model: nn.Module,
    model_path: Path,
    tmp_path: Path,
) -> None:
    posted = await post_job(world, swarm, tokenizer, model_path, tmp_path / "data")
    worker = worker_for(world, swarm, base_model, model_path, tmp_path / "worker")
    outcome = await train_once(worker)
    job = await world.market("outsider").job(posted.job_id)
    assert job.status == JobStatus.SUBMITTED
    assert job.log_root == outcome.log_root

    run, verdict = await verify_job(
        world.market("challenger"), swarm.client, base_model, posted.job_id, samples=STEPS
    )
    assert verdict.honest, verdict.reason
    assert verdict.sampled == tuple(range(STEPS))
    assert len(run.log) == STEPS

    await worker.settle({posted.job_id: outcome})  # window still open: nothing happens
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.SUBMITTED
    before = await world.clients["trainer"].tx.balance(world.address("trainer"))
    await world.chain.advance_time(WINDOW + 1)
    await worker.settle({posted.job_id: outcome})
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.FINALIZED
    assert outcome.finalized
    after = await world.clients["trainer"].tx.balance(world.address("trainer"))
    assert after - before > REWARD - ETHER // 100  # the reward, less gas
    assert await world.market("outsider").pending_withdrawal(world.address("trainer")) == 0
    await world.assert_solvent()


@pytest.mark.parametrize("kind", ["corrupt", "skip"])
async def test_dishonest_worker_is_caught_voted_wrong_and_slashed(
    kind: str,
    world: World,
    swarm: Swarm,
    tokenizer: GgufTokenizer,
    base_model: nn.Module,
    model_path: Path,
    tmp_path: Path,
) -> None:
    bad_step = 2
    posted = await post_job(world, swarm, tokenizer, model_path, tmp_path / "data")
    worker = worker_for(
        world, swarm, base_model, model_path, tmp_path / "worker", Dishonesty(kind, bad_step)
    )
    await train_once(worker)
    trainer_staked = (await world.market("outsider").account(world.address("trainer"))).staked

    _, verdict = await verify_job(
        world.market("challenger"), swarm.client, base_model, posted.job_id, samples=STEPS
    )
    assert verdict.wrong_step == bad_step, verdict.reason
    assert verdict.mismatch is not None
    assert "post_state" in verdict.mismatch.fields
    args = verdict.challenge
    assert args is not None
    assert args.previous_record is not None
    assert args.previous_proof is not None
    await world.market("challenger").challenge(
        posted.job_id,
        args.step,
        args.previous_record,
        args.previous_proof,
        args.record,
        args.proof,
        Wei(PARAMS.min_challenge_bond),
    )
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.DISPUTED

    await world.mine(PARAMS.draw_delay + 1)
    validators = [
        Validator(world.market(role), swarm.client, base_model) for role in ("v1", "v2", "v3")
    ]
    votes = []
    for validator in validators:
        votes += await validator.watch_once()
    assert [vote for _, vote in votes] == [Vote.TRAINER_WRONG] * 3

    job = await world.market("outsider").job(posted.job_id)
    assert job.status == JobStatus.SLASHED
    resolved = await world.market("outsider").events("DisputeResolved", jobId=posted.job_id)
    assert len(resolved) == 1
    event = resolved[0]
    assert isinstance(event, DisputeResolved)
    assert event.outcome == Outcome.CHALLENGER_WON
    staked_after = (await world.market("outsider").account(world.address("trainer"))).staked
    assert staked_after < trainer_staked
    assert await world.market("outsider").pending_withdrawal(world.address("challenger")) > (
        PARAMS.min_challenge_bond
    )
    for role in ("v1", "v2", "v3"):
        assert await world.market("outsider").pending_withdrawal(world.address(role)) > 0
    assert await world.market("outsider").pending_withdrawal(world.address("trainer")) == 0
    await world.assert_solvent()
