"""The verifier's library: sample steps, replay them, find the first wrong one, build a challenge.

A verifier holds the job (plan, dataset root, log root), fetches the run manifest
and log from Swarm, and:

1. checks the log as a whole, cheaply: every record's pre-state is its
   predecessor's post-state, and every record names the job's seed,
   hyperparameters and profile, and proves its shards under the dataset root (a
   break is a wrong step without any replay; a log made under another profile
   than the job pins is named field by field from the run manifest's profile);
2. replays `samples` randomly drawn steps from their nearest checkpoints (each
   checkpoint fetched and checked against its committed hash); a replay re-runs
   and compares every step between the checkpoint and the target, so the first
   mismatch it meets is the first wrong step after a committed state;
3. returns the challenge arguments for that step: its record and proof, and the
   previous record and proof (which commit the pre-state the committee starts from).

No chain calls here: the caller files `challenge` with what `Verdict.challenge` holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from chain.merkle import StepLogTree
from swarm_vectordb.bee import keccak256
from trainer.dataset import ShardSource
from trainer.engine import StepEngine
from trainer.errors import InclusionProofError
from trainer.replay import ReplayResult, StepMismatch, replay
from trainer.steplog import RunManifest, StepLog, StepRecord, fetch_checkpoint, first_malformed

__all__ = [
    "ChallengeArgs",
    "Verdict",
    "challenge_args",
    "log_breaks",
    "malformed_verdict",
    "profile_break",
    "sample_steps",
    "verify_run",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengeArgs:
    """What a challenge of `step` carries: record i and i-1 (if any) with Merkle proofs."""

    step: int
    record: bytes
    proof: list[bytes]
    previous_record: bytes | None
    previous_proof: list[bytes] | None


@dataclass(frozen=True)
class Verdict:
    sampled: tuple[int, ...]
    replays: tuple[ReplayResult, ...]
    wrong_step: int | None  # None: every check passed
    reason: str  # human-readable: what was wrong (or "all sampled steps replay bit-exactly")
    mismatch: StepMismatch | None
    challenge: ChallengeArgs | None

    @property
    def honest(self) -> bool:
        return self.wrong_step is None


def sample_steps(steps: int, samples: int, seed: bytes | None = None) -> list[int]:
    """`samples` distinct steps (all if fewer), from the verifier's own randomness."""
    if samples >= steps:
        return list(range(steps))
    seed = os.urandom(32) if seed is None else seed
    chosen: list[int] = []
    counter = 0
    while len(chosen) < samples:
        step = int.from_bytes(keccak256(seed + counter.to_bytes(8, "big"))[:8], "big") % steps
        counter += 1
        if step not in chosen:
            chosen.append(step)
    return sorted(chosen)


def challenge_args(log: StepLog | Sequence[bytes], step: int) -> ChallengeArgs:
    """The challenge of `step` for a decoded log or for its committed record bytes."""
    encoded = log.encoded if isinstance(log, StepLog) else list(log)
    tree = StepLogTree(encoded)
    previous = step - 1 if step > 0 else None
    return ChallengeArgs(
        step=step,
        record=encoded[step],
        proof=tree.proof(step),
        previous_record=encoded[previous] if previous is not None else None,
        previous_proof=tree.proof(previous) if previous is not None else None,
    )


def malformed_verdict(records: Sequence[bytes]) -> Verdict | None:
    """A verdict against the first committed record that is not a canonical step record."""
    found = first_malformed(records)
    if found is None:
        return None
    step, reason = found
    logger.info("step %d is malformed: %s", step, reason)
    return Verdict((), (), step, f"malformed record: {reason}", None, challenge_args(records, step))


def profile_break(engine: StepEngine, manifest: RunManifest, record: StepRecord) -> str | None:
    """Why `record` breaks the job's pinned profile (naming the fields), or None.

    A step made under another profile than the job pins is a breach by the
    trainer, not a reason for the verifier to refuse: nobody can replay it.
    """
    if record.profile == engine.profile_hash:
        return None
    pinned = engine.plan.profile
    if manifest.profile is None:  # a format-1 manifest does not say which profile it was
        return "the record names another execution profile than the job pins"
    if record.profile == manifest.profile.hash:
        fields = "; ".join(pinned.differences(manifest.profile, here="in the log"))
        return f"the step ran under another execution profile than the job pins ({fields})"
    return "the record names an execution profile that is neither the job's nor its manifest's"


def log_breaks(
    engine: StepEngine, log: StepLog, manifest: RunManifest | None = None
) -> tuple[int, str] | None:
    """The first record that contradicts the job or its predecessor, without replaying."""
    for record in log.records:
        if record.seed != engine.plan.seed:
            return record.index, "the record names another seed"
        if record.hyperparams != engine.hyperparams_hash:
            return record.index, "the record names other hyperparameters"
        for row, entry in enumerate(record.batch):
            try:
                entry.check(engine.plan.manifest.root)
            except InclusionProofError:
                return record.index, f"batch row {row}: the shard is not proven under the dataset"
        if manifest is not None:
            foreign = profile_break(engine, manifest, record)
            if foreign is not None:
                return record.index, foreign
        if record.index > 0 and record.pre_state != log.records[record.index - 1].post_state:
            return record.index, "pre-state is not the previous step's post-state"
    return None


async def verify_run(
    engine: StepEngine,
    source: ShardSource,
    manifest: RunManifest,
    log: StepLog,
    *,
    samples: int,
    seed: bytes | None = None,
) -> Verdict:
    """Check the log, replay sampled steps (off the event loop), stop at the first wrong step."""
    broken = log_breaks(engine, log, manifest)
    if broken is not None:
        step, reason = broken
        return Verdict((), (), step, reason, None, challenge_args(log, step))
    sampled = sample_steps(len(log), samples, seed)
    results: list[ReplayResult] = []
    for step in sampled:
        entry = manifest.nearest_checkpoint(step)
        checkpoint = await fetch_checkpoint(source, entry)
        result = await asyncio.to_thread(replay, engine, log, entry.step, checkpoint, step)
        results.append(result)
        if result.mismatch is not None:
            wrong = result.mismatch.step
            reason = "recomputed " + ", ".join(result.mismatch.fields) + " differ from the record"
            logger.info("step %d is wrong: %s", wrong, reason)
            return Verdict(
                tuple(sampled),
                tuple(results),
                wrong,
                reason,
                result.mismatch,
                challenge_args(log, wrong),
            )
    return Verdict(
        tuple(sampled), tuple(results), None, "all sampled steps replay bit-exactly", None, None
    )
