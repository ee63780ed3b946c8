"""Running one job: train every step resumably, then export and upload the result.

`train_job` is blocking (run it in a thread): it resumes from the job's `LocalRun`,
checks `WorkerControl` at every step boundary and saves the state after every step,
so a worker killed at any moment (even `kill -9`) resumes from the last finished
step and produces the same log root as an uninterrupted run. `upload_and_describe`
exports the adapter GGUF and uploads log, checkpoints, adapter and the run manifest
(which names the execution profile the steps ran under), keeping a local copy of
each for disputes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial

import torch
from torch import nn

from swarm_vectordb.bee import BatchId
from trainer.control import Dishonesty, WorkerControl
from trainer.dataset import ShardSink, ShardSource
from trainer.engine import StepEngine, load_shards
from trainer.errors import TrainerError
from trainer.export import adapter_bytes
from trainer.jobspec import ResolvedJob
from trainer.localrun import LocalRun
from trainer.profile import current_profile
from trainer.state import TrainerState
from trainer.steplog import RunManifest, StepLog, StepRecord, upload_run

__all__ = ["build_engine", "engine_for_job", "train_job", "upload_and_describe"]

logger = logging.getLogger(__name__)


def build_engine(
    base: nn.Module, resolved: ResolvedJob, shards: Mapping[int, object]
) -> StepEngine:
    return StepEngine(copy.deepcopy(base), resolved.plan, shards)  # type: ignore[arg-type]


async def engine_for_job(base: nn.Module, source: ShardSource, resolved: ResolvedJob) -> StepEngine:
    """Fetch and verify the job's shards; a fresh engine on a copy of `base`."""
    shards = await load_shards(source, resolved.manifest, resolved.manifest.root)
    return await asyncio.to_thread(build_engine, base, resolved, shards)


def _corrupt(state: TrainerState) -> None:
    name = next(iter(state.tensors))
    with torch.no_grad():
        state.tensors[name].value.view(-1)[0] += 1e-3


def _skipped_step(engine: StepEngine, step: int, pre_hash: bytes) -> StepRecord:
    """A record claiming `step` ran while the state was left untouched (test-only)."""
    return StepRecord(
        index=step,
        batch=engine.batch_entries(step),
        seed=engine.plan.seed,
        hyperparams=engine.hyperparams_hash,
        pre_state=pre_hash,
        post_state=pre_hash,
        loss_bits=0,
        profile=engine.profile_hash,
    )


def train_job(
    engine: StepEngine,
    local: LocalRun,
    *,
    control: WorkerControl | None = None,
    dishonesty: Dishonesty | None = None,
    progress: Callable[[StepRecord, int], None] | None = None,
) -> tuple[StepLog, dict[int, bytes], TrainerState]:
    """Train every step of the engine's plan, resuming from `local`; blocking (run in a thread).

    Returns the log, the checkpoints (state bytes by step) and the final state.
    """
    control = control or WorkerControl()
    steps = engine.plan.steps
    every = engine.plan.hyperparams.checkpoint_every
    saved = local.load_progress()
    if saved is None:
        records: list[StepRecord] = []
        state = engine.initial_state()
    else:
        records, state = saved
        if len(records) > steps:
            raise TrainerError(f"local run holds {len(records)} records for a {steps}-step job")
        if records:
            logger.info("resuming at step %d from %s", len(records), local.folder)
    for step in range(len(records), steps):
        control.boundary(partial(logger.info, "paused before step %d", step))
        if step % every == 0:
            local.save_checkpoint(step, state.encode())
        pre_hash = records[-1].post_state if records else state.hash
        if dishonesty is not None and dishonesty.kind == "skip" and dishonesty.step == step:
            record = _skipped_step(engine, step, pre_hash)
        else:
            record = engine.step(state, step, pre_hash=pre_hash)
            if dishonesty is not None and dishonesty.kind == "corrupt" and dishonesty.step == step:
                _corrupt(state)
                record = replace(record, post_state=state.hash)
        records.append(record)
        local.save_progress(records, state)
        if progress is not None:
            progress(record, steps)
    checkpoints = local.checkpoints()
    checkpoints = {s: c for s, c in checkpoints.items() if s < steps and s % every == 0}
    checkpoints[steps] = state.encode()
    local.save_checkpoint(steps, checkpoints[steps])
    return StepLog(records), checkpoints, state


async def upload_and_describe(
    sink: ShardSink,
    batch: BatchId,
    engine: StepEngine,
    log: StepLog,
    checkpoints: Mapping[int, bytes],
    final_state: TrainerState,
    *,
    local: LocalRun | None = None,
) -> tuple[bytes, RunManifest]:
    """Export the adapter GGUF and upload the run; (run manifest reference, manifest).

    With `local`, the uploaded manifest, log and adapter are kept there too.
    """
    adapter = await asyncio.to_thread(
        adapter_bytes,
        final_state,
        engine.plan.hyperparams.lora,
        n_heads=engine.model.n_heads,
        n_kv_heads=engine.model.n_kv_heads,
    )
    reference, manifest, sent = await upload_run(
        sink, batch, log, checkpoints, adapter, profile=current_profile(engine.device.type)
    )
    if local is not None:
        await asyncio.to_thread(local.save_run, manifest.encode(), log.encode(), adapter)
    logger.info("uploaded run %s (%d bytes)", reference.hex(), sent)
    return reference, manifest
