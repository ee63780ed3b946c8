"""Replaying committed steps from the nearest checkpoint, bit for bit.

`replay` restores a checkpoint, checks it against the log, and re-runs every step
from there to the target, comparing each recomputed record (batch, hashes, loss
bits, profile) with the committed one. The result says which step first differed
and how; the caller (a verifier, a committee member) decides what that means.

Refusals come before any judgement: a record made under another execution
profile, or a process whose profile is not the job's, raises `ProfileMismatch`
(nothing was shown either way); a checkpoint that is absent raises
`CheckpointMissing`; one whose bytes do not hash to the committed pre-state
raises `CheckpointError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from trainer.engine import StepEngine
from trainer.errors import CheckpointError, CheckpointMissing, ProfileMismatch, StepLogError
from trainer.profile import require_profile
from trainer.state import TrainerState
from trainer.steplog import StepLog, StepRecord

__all__ = [
    "ReplayResult",
    "StepMismatch",
    "nearest_checkpoint",
    "replay",
    "replay_from",
    "state_distance",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepMismatch:
    """The first step whose recomputation differs from its record, and what differs."""

    step: int
    fields: tuple[str, ...]  # names of the record fields that differ
    claimed: StepRecord
    recomputed: StepRecord
    distance: float  # max |difference| of LoRA values vs the claimed post-state, if known


@dataclass(frozen=True)
class ReplayResult:
    target: int
    checkpoint: int  # the step whose pre-state the replay started from
    post_state: bytes  # recomputed hash after the target step
    loss_bits: int
    mismatch: StepMismatch | None  # None: every replayed step equals its record
    seconds: float

    @property
    def matches(self) -> bool:
        return self.mismatch is None


def nearest_checkpoint(available: Mapping[int, object] | set[int], step: int) -> int:
    """The latest checkpointed step at or before `step`; `CheckpointMissing` if none."""
    before = [s for s in available if s <= step]
    if not before:
        raise CheckpointMissing(f"no checkpoint at or before step {step}")
    return max(before)


def state_distance(a: TrainerState, b: TrainerState) -> float:
    """Largest absolute difference between the LoRA values of two states."""
    if set(a.tensors) != set(b.tensors):
        return float("inf")
    return max(
        float((a.tensors[n].value.cpu() - b.tensors[n].value.cpu()).abs().max()) for n in a.tensors
    )


def _require_profile(engine: StepEngine, record: StepRecord) -> None:
    if record.profile != engine.profile_hash:
        raise ProfileMismatch(record.profile, engine.profile_hash, ["the record's profile hash"])
    require_profile(engine.plan.profile)


def replay(
    engine: StepEngine,
    log: StepLog,
    checkpoint_step: int,
    checkpoint: bytes,
    target: int,
    *,
    claimed_post: Mapping[int, bytes] | None = None,
) -> ReplayResult:
    """Re-run steps `checkpoint_step..target` from `checkpoint` (the state before
    `checkpoint_step`); compare each with its record.

    `claimed_post` optionally maps a step to the claimed post-state bytes (a
    checkpoint of the state after it), used only to report a numeric distance.
    """
    if not 0 <= target < len(log):
        raise StepLogError(f"step {target} is not in a log of {len(log)} steps")
    if not 0 <= checkpoint_step <= target:
        raise CheckpointMissing(f"a checkpoint at step {checkpoint_step} cannot replay {target}")
    for step in range(checkpoint_step, target + 1):
        _require_profile(engine, log.records[step])
    started = time.perf_counter()
    state = TrainerState.decode(checkpoint)
    if state.hash != log.records[checkpoint_step].pre_state:
        raise CheckpointError(
            f"checkpoint for step {checkpoint_step} does not hash to the pre-state its record "
            "commits"
        )
    mismatch = None
    pre_hash = log.records[checkpoint_step].pre_state
    recomputed = log.records[checkpoint_step]
    for step in range(checkpoint_step, target + 1):
        claimed = log.records[step]
        recomputed = engine.step(state, step, pre_hash=pre_hash)
        pre_hash = recomputed.post_state
        differing = tuple(
            name
            for name in ("batch", "seed", "hyperparams", "pre_state", "post_state", "loss_bits")
            if getattr(claimed, name) != getattr(recomputed, name)
        )
        if differing:
            distance = float("nan")
            if claimed_post and step in claimed_post:
                distance = state_distance(state, TrainerState.decode(claimed_post[step]))
            mismatch = StepMismatch(step, differing, claimed, recomputed, distance)
            logger.info("step %d differs from its record in %s", step, ", ".join(differing))
            break
    return ReplayResult(
        target=target,
        checkpoint=checkpoint_step,
        post_state=recomputed.post_state,
        loss_bits=recomputed.loss_bits,
        mismatch=mismatch,
        seconds=time.perf_counter() - started,
    )


def replay_from(
    engine: StepEngine, log: StepLog, checkpoints: Mapping[int, bytes], target: int
) -> ReplayResult:
    """`replay` from the nearest of `checkpoints` (state bytes by step)."""
    start = nearest_checkpoint(checkpoints, target)
    return replay(engine, log, start, checkpoints[start], target)
