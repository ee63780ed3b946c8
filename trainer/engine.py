"""The step engine: a job's plan, its verified shards and the LoRA model, stepping and logging.

`JobPlan` is what trainer and verifiers agree on before any step runs (dataset
manifest and root, hyperparameters, seed, step count, execution-profile hash).
`StepEngine` owns the model for one plan; `step` runs one step on a state and
returns its `StepRecord`; `train` runs a range, keeping a checkpoint of the state
before every K-th step and after the last. Trainer (`train`) and verifier
(`trainer.replay`) share this one code path, so what is replayed is what was run.

The engine runs on the device the plan's profile names: on ``cuda`` it moves the
model and every batch to the GPU and keeps the state there between steps; state
hashes and checkpoints are always made from CPU copies (`TrainerState.encode`),
so the bytes mean the same on both devices.

`load_shards` fetches the plan's shards from Swarm, each checked against its
reference and its inclusion proof to the dataset root, before anything trains on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from trainer.dataset import DatasetManifest, Shard, ShardSource, fetch_shard
from trainer.errors import DatasetError
from trainer.model import LoraModel
from trainer.profile import ExecutionProfile, require_profile
from trainer.state import TrainerState
from trainer.step import Hyperparams, batch_plan, build_batch, loss_of, run_step
from trainer.steplog import BatchEntry, StepLog, StepRecord

__all__ = ["JobPlan", "StepEngine", "StepTiming", "TrainingRun", "load_shards"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPlan:
    """Everything a step depends on besides the base weights and the state."""

    manifest: DatasetManifest
    hyperparams: Hyperparams
    seed: int
    steps: int
    profile: ExecutionProfile

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("a job has at least one step")
        if not 0 <= self.seed < 2**64:
            raise ValueError("the seed is a uint64")


@dataclass
class StepTiming:
    """Wall seconds spent per part of the last step (for the benchmark and progress)."""

    compute: float = 0.0
    commit: float = 0.0


@dataclass
class TrainingRun:
    """What `train` produced: the log, the checkpoints (state bytes by step), the final state."""

    log: StepLog
    checkpoints: dict[int, bytes]
    final_state: TrainerState
    seconds: list[float] = field(default_factory=list)  # wall time per step, all included
    timings: list[StepTiming] = field(default_factory=list)  # compute vs commitments per step


async def load_shards(
    source: ShardSource,
    manifest: DatasetManifest,
    dataset_root: bytes,
    indices: Iterable[int] | None = None,
) -> dict[int, Shard]:
    """The manifest's shards (or those at `indices`), each proven and hash-checked."""
    if manifest.root != dataset_root:
        raise DatasetError(
            f"manifest root {manifest.root.hex()} is not the dataset root {dataset_root.hex()}"
        )
    wanted = sorted(set(range(len(manifest.shards)) if indices is None else indices))
    shards = {}
    for index in wanted:
        shards[index] = await fetch_shard(
            source,
            manifest.shards[index].reference,
            index=index,
            proof=manifest.proof(index),
            root=dataset_root,
        )
    return shards


class StepEngine:
    """One job's model and data; runs steps deterministically under the pinned profile.

    Takes ownership of `base` (peft injects the LoRA layers into it): pass a freshly
    loaded model or a deep copy. `shards` must already be verified (`load_shards`).
    """

    def __init__(self, base: nn.Module, plan: JobPlan, shards: Mapping[int, Shard]) -> None:
        require_profile(plan.profile)
        self.plan = plan
        self.shards = dict(shards)
        self.device = torch.device(plan.profile.device)
        self.model = LoraModel(base, plan.hyperparams.lora, seed=plan.seed)
        self._initial = TrainerState.initial(self.model.parameters)  # on the CPU, as initialised
        if self.device.type != "cpu":
            self.model.module.to(self.device)
        self.hyperparams_hash = plan.hyperparams.hash
        self.profile_hash = plan.profile.hash
        self.timing = StepTiming()

    def initial_state(self) -> TrainerState:
        """The state before step 0: LoRA initialised from the job seed, zero moments."""
        return self._initial.clone()

    def batch_entries(self, step: int) -> tuple[BatchEntry, ...]:
        manifest = self.plan.manifest
        return tuple(
            BatchEntry(
                manifest.shards[item.shard].reference,
                item.shard,
                item.offset,
                tuple(manifest.proof(item.shard)),
            )
            for item in batch_plan(self.plan.seed, step, manifest, self.plan.hyperparams)
        )

    def compute(self, state: TrainerState, step: int) -> int:
        """Run step `step` on `state` in place, with no commitments; the loss's float32 bits."""
        if not 0 <= step < self.plan.steps:
            raise ValueError(f"step {step} outside the job's {self.plan.steps} steps")
        require_profile(self.plan.profile)
        hp = self.plan.hyperparams
        plan = batch_plan(self.plan.seed, step, self.plan.manifest, hp)
        ids, mask = self._on_device(build_batch(plan, self.shards, hp, self.model.vocab_size))
        state.move_to(self.device)
        outcome = run_step(self.model, state, ids, mask, hp, seed=self.plan.seed, step=step)
        return outcome.loss_bits

    def _on_device(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.device.type == "cpu":
            return batch
        return batch[0].to(self.device), batch[1].to(self.device)

    def step(self, state: TrainerState, step: int, *, pre_hash: bytes | None = None) -> StepRecord:
        """Run step `step` on `state` in place and return its record (`pre_hash`: if known)."""
        started = time.perf_counter()
        before = state.hash if pre_hash is None else pre_hash
        committed = time.perf_counter() - started
        started = time.perf_counter()
        loss_bits = self.compute(state, step)
        computed = time.perf_counter() - started
        started = time.perf_counter()
        record = StepRecord(
            index=step,
            batch=self.batch_entries(step),
            seed=self.plan.seed,
            hyperparams=self.hyperparams_hash,
            pre_state=before,
            post_state=state.hash,
            loss_bits=loss_bits,
            profile=self.profile_hash,
        )
        self.timing = StepTiming(computed, committed + time.perf_counter() - started)
        return record

    def train(
        self,
        state: TrainerState | None = None,
        *,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> TrainingRun:
        """All the job's steps from the initial state (or `state`, before step 0)."""
        state = self.initial_state() if state is None else state
        every = self.plan.hyperparams.checkpoint_every
        checkpoints: dict[int, bytes] = {}
        records: list[StepRecord] = []
        seconds: list[float] = []
        timings: list[StepTiming] = []
        pre_hash: bytes | None = None
        for step in range(self.plan.steps):
            started = time.perf_counter()
            if step % every == 0:
                checkpoints[step] = state.encode()
            checkpointed = time.perf_counter() - started
            record = self.step(state, step, pre_hash=pre_hash)
            pre_hash = record.post_state
            records.append(record)
            seconds.append(time.perf_counter() - started)
            timings.append(StepTiming(self.timing.compute, self.timing.commit + checkpointed))
            logger.debug("step %d: loss bits %08x", step, record.loss_bits)
            if on_step is not None:
                on_step(record)
        checkpoints[self.plan.steps] = state.encode()
        return TrainingRun(StepLog(records), checkpoints, state, seconds, timings)

    @torch.no_grad()
    def eval_loss(self, state: TrainerState, step: int) -> float:
        """Loss of step `step`'s batch under `state`, without training (dropout off)."""
        hp = self.plan.hyperparams
        state.load_into(self.model.parameters)
        self.model.train(False)
        plan = batch_plan(self.plan.seed, step, self.plan.manifest, hp)
        ids, mask = self._on_device(build_batch(plan, self.shards, hp, self.model.vocab_size))
        return float(loss_of(self.model, ids, mask).item())
