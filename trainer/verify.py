"""The verifier's library: sample steps, replay them, find the first wrong one, build a challenge.

A verifier holds the job (plan, dataset root, log root), fetches the run manifest
and log from Swarm, and:

1. checks the log as a whole, cheaply: every record's pre-state is its
   predecessor's post-state, and every record names the job's seed,
   hyperparameters and profile (a break is a wrong step without any replay);
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
from dataclasses import dataclass

from swarm_vectordb.bee import keccak256
from trainer.dataset import ShardSource
from trainer.engine import StepEngine
from trainer.replay import ReplayResult, StepMismatch, replay
from trainer.steplog import RunManifest, StepLog, fetch_checkpoint

__all__ = ["ChallengeArgs", "Verdict", "challenge_args", "log_breaks", "sample_steps", "verify_run"]

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


def challenge_args(log: StepLog, step: int) -> ChallengeArgs:
    previous = step - 1 if step > 0 else None
    return ChallengeArgs(
        step=step,
        record=log.encoded[step],
        proof=log.proof(step),
        previous_record=log.encoded[previous] if previous is not None else None,
        previous_proof=log.proof(previous) if previous is not None else None,
    )


def log_breaks(engine: StepEngine, log: StepLog) -> tuple[int, str] | None:
    """The first record that contradicts the job or its predecessor, without replaying."""
    for record in log.records:
        if record.seed != engine.plan.seed:
            return record.index, "the record names another seed"
        if record.hyperparams != engine.hyperparams_hash:
            return record.index, "the record names other hyperparameters"
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
    broken = log_breaks(engine, log)
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
