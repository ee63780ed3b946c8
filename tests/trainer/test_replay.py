"""Deterministic steps on the bundled model: replay is bit-exact, and every lie is located."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import msgpack
import pytest
import torch
from torch import nn

from tests.trainer.conftest import Swarm, write_corpus
from tests.trainer.helpers import CORPUS, HP, THREADS, engine_for
from trainer.engine import StepEngine, TrainingRun
from trainer.errors import CheckpointError, CheckpointMissing, ProfileMismatch, StepLogError
from trainer.replay import replay, replay_from
from trainer.state import TrainerState
from trainer.steplog import RunManifest, StepLog, fetch_run, upload_run
from trainer.tokenizer import GgufTokenizer
from trainer.verify import log_breaks, verify_run

pytestmark = pytest.mark.integration

STEPS = 5


@pytest.fixture(scope="module")
def trained(
    base_model: nn.Module, tokenizer: GgufTokenizer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StepEngine, TrainingRun]:
    folder = tmp_path_factory.mktemp("corpus")
    paths = write_corpus(folder, CORPUS)
    engine, _ = engine_for(base_model, tokenizer, paths, HP, seed=7, steps=STEPS, shard_tokens=64)
    return engine, engine.train()


@pytest.fixture
def threads_restored() -> Iterator[None]:
    yield
    torch.set_num_threads(THREADS)


def test_training_changes_the_state_and_chains_the_hashes(
    trained: tuple[StepEngine, TrainingRun],
) -> None:
    _, run = trained
    records = run.log.records
    assert len(records) == STEPS
    for before, after in itertools.pairwise(records):
        assert after.pre_state == before.post_state
    assert all(r.pre_state != r.post_state for r in records)
    assert sorted(run.checkpoints) == [0, 2, 4, STEPS]
    assert TrainerState.decode(run.checkpoints[STEPS]).hash == records[-1].post_state
    assert run.final_state.updates == STEPS


def test_replaying_any_step_twice_gives_the_logged_hashes_bit_for_bit(
    trained: tuple[StepEngine, TrainingRun],
) -> None:
    engine, run = trained
    # Replaying 1, 3 and 4 from their checkpoints (0, 2, 4) re-runs and checks every step.
    for step in (1, 3, 4):
        first = replay_from(engine, run.log, run.checkpoints, step)
        second = replay_from(engine, run.log, run.checkpoints, step)
        assert first.matches
        assert second.matches
        assert first.post_state == second.post_state == run.log.records[step].post_state
        assert first.loss_bits == run.log.records[step].loss_bits


def test_replay_under_another_thread_count_is_refused_not_judged(
    trained: tuple[StepEngine, TrainingRun], threads_restored: None
) -> None:
    engine, run = trained
    torch.set_num_threads(1)
    with pytest.raises(ProfileMismatch, match=r"threads: 1 here, 2 pinned") as caught:
        replay_from(engine, run.log, run.checkpoints, 1)
    assert "not evidence" in str(caught.value)


def test_replay_refuses_a_record_made_under_another_profile(
    trained: tuple[StepEngine, TrainingRun],
) -> None:
    engine, run = trained
    records = list(run.log.records)
    records[1] = dataclasses.replace(records[1], profile=bytes(32))
    with pytest.raises(ProfileMismatch):
        replay_from(engine, StepLog(records), run.checkpoints, 1)


def test_a_corrupted_update_is_found_at_its_step_with_a_distance(
    trained: tuple[StepEngine, TrainingRun],
) -> None:
    engine, run = trained
    # A dishonest trainer nudges step 3's update; its later steps and checkpoints follow
    # honestly from the nudged state.
    state = TrainerState.decode(run.checkpoints[2])
    records = list(run.log.records[:2])
    checkpoints = {0: run.checkpoints[0], 2: run.checkpoints[2]}
    pre = records[-1].post_state
    corrupted_post = b""
    for step in range(2, STEPS):
        if step % HP.checkpoint_every == 0:
            checkpoints[step] = state.encode()
        record = engine.step(state, step, pre_hash=pre)
        if step == 3:
            first = next(iter(state.tensors.values()))
            first.value.add_(1e-3)
            corrupted_post = state.encode()
            record = dataclasses.replace(record, post_state=state.hash)
        records.append(record)
        pre = record.post_state
    log = StepLog(records)
    result = replay_from(engine, log, checkpoints, 3)
    assert result.mismatch is not None
    assert result.mismatch.step == 3
    assert result.mismatch.fields == ("post_state",)
    detailed = replay(engine, log, 2, checkpoints[2], 3, claimed_post={3: corrupted_post})
    assert detailed.mismatch is not None
    assert detailed.mismatch.distance == pytest.approx(1e-3, rel=0.01)
    # The steps around it replay clean: only step 3 is wrong.
    assert replay_from(engine, log, checkpoints, 4).matches
    assert replay(engine, log, 2, checkpoints[2], 2).matches


def test_a_skipped_batch_is_found(trained: tuple[StepEngine, TrainingRun]) -> None:
    engine, run = trained
    # A lazy trainer reuses step 0's batch for step 1 (and logs it honestly as such).
    records = list(run.log.records)
    records[1] = dataclasses.replace(records[1], batch=records[0].batch)
    result = replay_from(engine, StepLog(records), run.checkpoints, 1)
    assert result.mismatch is not None
    assert result.mismatch.step == 1
    assert "batch" in result.mismatch.fields


def test_missing_or_wrong_checkpoints_are_clear_errors(
    trained: tuple[StepEngine, TrainingRun],
) -> None:
    engine, run = trained
    with pytest.raises(CheckpointMissing, match="no checkpoint at or before step 1"):
        replay_from(engine, run.log, {4: run.checkpoints[4]}, 1)
    with pytest.raises(CheckpointError, match="does not hash to the pre-state"):
        replay(engine, run.log, 2, run.checkpoints[0], 3)
    with pytest.raises(CheckpointError):
        replay(engine, run.log, 2, b"\x80", 3)


@pytest.mark.asyncio
async def test_verifier_passes_an_honest_run_fetched_from_swarm(
    trained: tuple[StepEngine, TrainingRun], swarm: Swarm
) -> None:
    engine, run = trained
    ref, _, _ = await upload_run(swarm.client, swarm.batch, run.log, run.checkpoints, b"adapter")
    manifest, log = await fetch_run(swarm.client, ref)
    verdict = await verify_run(engine, swarm.client, manifest, log, samples=2, seed=b"verifier")
    assert verdict.honest, verdict.reason
    assert len(verdict.sampled) == 2
    assert all(r.matches for r in verdict.replays)


@pytest.mark.asyncio
async def test_verifier_challenges_a_broken_chain_of_states_with_both_records(
    trained: tuple[StepEngine, TrainingRun], swarm: Swarm
) -> None:
    engine, run = trained
    records = list(run.log.records)
    records[3] = dataclasses.replace(records[3], pre_state=bytes(32))
    log = StepLog(records)
    ref, _, _ = await upload_run(swarm.client, swarm.batch, log, run.checkpoints, b"adapter")
    manifest, fetched = await fetch_run(swarm.client, ref)
    verdict = await verify_run(engine, swarm.client, manifest, fetched, samples=1)
    assert verdict.wrong_step == 3
    assert "pre-state" in verdict.reason
    challenge = verdict.challenge
    assert challenge is not None
    assert challenge.previous_record is not None
    assert challenge.previous_proof is not None
    assert StepLog.verify_record(challenge.record, 3, challenge.proof, log.root) == records[3]
    assert (
        StepLog.verify_record(challenge.previous_record, 2, challenge.previous_proof, log.root)
        == records[2]
    )


@pytest.mark.asyncio
async def test_a_log_made_under_another_profile_is_a_break_named_field_by_field(
    trained: tuple[StepEngine, TrainingRun], swarm: Swarm
) -> None:
    engine, run = trained
    elsewhere = dataclasses.replace(engine.plan.profile, threads=7, cpu_capability="SVE256")
    records = [dataclasses.replace(r, profile=elsewhere.hash) for r in run.log.records]
    log = StepLog(records)
    ref, _, _ = await upload_run(
        swarm.client, swarm.batch, log, run.checkpoints, b"adapter", profile=elsewhere
    )
    manifest, fetched = await fetch_run(swarm.client, ref)
    assert manifest.profile == elsewhere  # published in full: a verifier reads it here
    verdict = await verify_run(engine, swarm.client, manifest, fetched, samples=1)
    # Not a refusal: the trainer broke the job's terms, and the reason says how.
    assert verdict.wrong_step == 0
    assert verdict.challenge is not None
    assert "another execution profile than the job pins" in verdict.reason
    assert "cpu_capability: 'SVE256' in the log" in verdict.reason
    assert f"threads: 7 in the log, {THREADS} pinned" in verdict.reason
    assert "torch_version" not in verdict.reason
    # A record naming a profile that is neither the job's nor the manifest's is a break too.
    honest = list(run.log.records)
    honest[2] = dataclasses.replace(honest[2], profile=bytes(32))
    pinned = dataclasses.replace(manifest, profile=engine.plan.profile)
    odd = await verify_run(engine, swarm.client, pinned, StepLog(honest), samples=1)
    assert odd.wrong_step == 2
    assert "neither the job's nor its manifest's" in odd.reason


def format_1_manifest(manifest: RunManifest) -> bytes:
    """A run manifest as nodes wrote it before the profile was added (format 1), in msgpack
    written out here: sorted keys, no profile."""
    document = {
        "adapter_hash": manifest.adapter_hash,
        "adapter_reference": manifest.adapter_reference,
        "checkpoints": [[c.step, c.state_hash, c.reference] for c in manifest.checkpoints],
        "log_reference": manifest.log_reference,
        "log_root": manifest.log_root,
        "steps": manifest.steps,
        "version": 1,
    }
    return bytes(msgpack.packb(document, use_bin_type=True))


@pytest.mark.asyncio
async def test_a_format_1_run_manifest_is_read_with_an_unknown_profile_and_verified(
    trained: tuple[StepEngine, TrainingRun], swarm: Swarm
) -> None:
    engine, run = trained
    _, current, _ = await upload_run(swarm.client, swarm.batch, run.log, run.checkpoints, b"a")
    old = format_1_manifest(current)
    decoded = RunManifest.decode(old)
    assert decoded.profile is None
    assert decoded.checkpoints == current.checkpoints
    assert decoded.encode() == old  # read-only in spirit: it re-encodes to the same bytes
    ref = await swarm.client.upload_bytes(old, swarm.batch)
    manifest, log = await fetch_run(swarm.client, bytes(ref))
    verdict = await verify_run(engine, swarm.client, manifest, log, samples=2, seed=b"old")
    assert verdict.honest, verdict.reason
    foreign = StepLog([dataclasses.replace(r, profile=bytes(32)) for r in run.log.records])
    assert log_breaks(engine, foreign, decoded) == (
        0,
        "the record names another execution profile than the job pins",
    )
    with pytest.raises(StepLogError, match=r"missing fields \['profile'\]"):
        RunManifest.decode(old.replace(b"\xa7version\x01", b"\xa7version\x03"))
