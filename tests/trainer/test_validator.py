"""Committee members judge disputes by re-executing the step, and the chain pays accordingly:
a false challenge of an honest run is voted correct (the challenger loses the bond, the
trainer is paid), and a run whose checkpoint is not on Swarm is voted unavailable (the
trainer is slashed, although every step it did was right)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from torch import nn

from chain.event_records import DisputeResolved
from chain.records import JobId, JobStatus, Outcome, SwarmRef, Wei
from chain.records import Verdict as Vote
from tests.chain.conftest import PARAMS, World
from tests.trainer.conftest import Swarm
from tests.trainer.market import (
    post_job,
    train_once,
    worker_for,
    world,
)
from trainer.errors import ProfileMismatch
from trainer.jobspec import put_blob, resolve_job
from trainer.profile import cuda_unavailable, current_profile
from trainer.steplog import CheckpointEntry, fetch_run
from trainer.tokenizer import GgufTokenizer
from trainer.validator import Validator, verify_job
from trainer.worker import LocalRun, engine_for_job, train_job, upload_and_describe

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
__all__ = ["world"]  # the py-evm world fixture, shared with the worker flow


async def challenge(world: World, job_id: JobId, step: int, records: list[bytes]) -> None:
    """`challenger` disputes `step` of the submitted log `records`."""
    market = world.market("challenger")
    await market.challenge_log(job_id, step, records, Wei(PARAMS.min_challenge_bond))


async def committee_votes(world: World, swarm: Swarm, base: nn.Module) -> list[Vote]:
    await world.mine(PARAMS.draw_delay + 1)
    votes: list[Vote] = []
    for role in ("v1", "v2", "v3"):
        cast = await Validator(world.market(role), swarm.client, base).watch_once()
        votes += [vote for _, vote in cast]
    return votes


async def outcome_of(world: World, job_id: JobId) -> Outcome:
    (event,) = await world.market("outsider").events("DisputeResolved", jobId=job_id)
    assert isinstance(event, DisputeResolved)
    return event.outcome


async def test_false_challenge_of_an_honest_run_is_voted_correct_and_the_trainer_paid(
    world: World,
    swarm: Swarm,
    tokenizer: GgufTokenizer,
    base_model: nn.Module,
    model_path: Path,
    tmp_path: Path,
) -> None:
    posted = await post_job(world, swarm, tokenizer, model_path, tmp_path / "data")
    await train_once(worker_for(world, swarm, base_model, model_path, tmp_path / "w"))
    job = await world.market("outsider").job(posted.job_id)
    assert job.adapter_ref is not None
    _, log = await fetch_run(swarm.client, bytes(job.adapter_ref))
    challenger = world.address("challenger")
    await challenge(world, posted.job_id, 1, log.encoded)

    assert await committee_votes(world, swarm, base_model) == [Vote.TRAINER_CORRECT] * 3
    assert await outcome_of(world, posted.job_id) == Outcome.TRAINER_WON
    market = world.market("outsider")
    assert (await market.job(posted.job_id)).status == JobStatus.FINALIZED
    assert await market.pending_withdrawal(world.address("trainer")) >= job.reward
    assert await market.pending_withdrawal(challenger) == 0  # the bond is lost
    await world.assert_solvent()


async def test_missing_checkpoint_is_voted_unavailable_and_the_trainer_slashed(
    world: World,
    swarm: Swarm,
    tokenizer: GgufTokenizer,
    base_model: nn.Module,
    model_path: Path,
    tmp_path: Path,
) -> None:
    posted = await post_job(world, swarm, tokenizer, model_path, tmp_path / "data")
    trainer = world.market("trainer")
    await trainer.claim(posted.job_id)
    resolved = await resolve_job(swarm.client, posted.spec)
    engine = await engine_for_job(base_model, swarm.client, resolved)
    log, checkpoints, final = train_job(engine, LocalRun(tmp_path / "local"))
    _, manifest = await upload_and_describe(
        swarm.client, swarm.batch, engine, log, checkpoints, final
    )
    # The trainer publishes a manifest naming a checkpoint it never uploaded.
    missing = tuple(
        CheckpointEntry(c.step, c.state_hash, b"\x5a" * 32) if c.step == 0 else c
        for c in manifest.checkpoints
    )
    lying = dataclasses.replace(manifest, checkpoints=missing)
    reference = await put_blob(swarm.client, swarm.batch, lying.encode())
    await trainer.submit(posted.job_id, log.root, SwarmRef(reference))
    await challenge(world, posted.job_id, 1, log.encoded)

    assert await committee_votes(world, swarm, base_model) == [Vote.DATA_UNAVAILABLE] * 3
    assert await outcome_of(world, posted.job_id) == Outcome.DATA_UNAVAILABLE
    market = world.market("outsider")
    assert (await market.job(posted.job_id)).status == JobStatus.SLASHED
    assert await market.pending_withdrawal(world.address("trainer")) == 0
    assert await market.pending_withdrawal(world.address("challenger")) > (
        PARAMS.min_challenge_bond
    )
    await world.assert_solvent()


FOREIGN = {
    "cpu": ({"cpu_capability": "AVX512_ELSEWHERE"}, "cpu_capability", "AVX512_ELSEWHERE"),
    "cuda": (  # a CUDA job seen from this CPU-only process
        {"device": "cuda", "gpu": "NVIDIA H200", "cuda_version": "13.0", "cudnn_version": "1"},
        "device",
        "'cuda' pinned",
    ),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
async def test_foreign_profile_job_is_skipped_by_workers_and_refused_by_verifiers(
    world: World,
    swarm: Swarm,
    tokenizer: GgufTokenizer,
    base_model: nn.Module,
    model_path: Path,
    tmp_path: Path,
    kind: str,
) -> None:
    changes, field, shown = FOREIGN[kind]
    if kind == "cuda" and cuda_unavailable() is None:
        pytest.skip("this machine has a usable GPU: a CUDA job is not foreign here")
    foreign = dataclasses.replace(current_profile(), **changes)  # type: ignore[arg-type]
    posted = await post_job(world, swarm, tokenizer, model_path, tmp_path / "data", foreign)
    worker = worker_for(world, swarm, base_model, model_path, tmp_path / "w")
    (job, spec), *_ = await worker.candidates()
    assert await worker.check(job, spec) is None
    assert any(field in reason for reason in worker.skipped[posted.job_id])
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.POSTED

    # Someone else claims and submits under that profile; this verifier cannot judge it.
    await world.market("trainer").claim(posted.job_id)
    await world.market("trainer").submit(posted.job_id, b"\x01" * 32, SwarmRef(b"\x02" * 32))
    with pytest.raises(ProfileMismatch, match=shown):
        await verify_job(
            world.market("challenger"), swarm.client, base_model, posted.job_id, samples=2
        )
    assert (await world.market("outsider").job(posted.job_id)).status == JobStatus.SUBMITTED
