"""The opt-in training worker: claim runnable jobs, train them resumably, submit, get paid.

`Worker.run` loops until `max_jobs` jobs are trained and paid or it is told to stop:

1. stakes what a claim locks, if the account lacks it (through the `approve`
   callback, which the CLI turns into the owner's confirmation);
2. for each posted job: resolves its spec (`trainer.jobspec`), skips it unless the
   base model is this node's GGUF, the profile is the one this process runs and
   the memory estimate fits; claims it;
3. trains it with `train_job`: a local state folder keeps the state after the last
   finished step, the records so far and every K-th checkpoint, so a worker killed
   at any moment (even `kill -9`) resumes from the last finished step and produces
   the same log root as an uninterrupted run;
4. uploads log, checkpoints, adapter GGUF and the run manifest; submits
   ``(logRoot, runManifestRef)`` (the job's ``adapterRef`` is the run manifest,
   which names the adapter and its hash);
5. finalizes the job once its challenge window has passed and withdraws.

`WorkerControl` is checked at every step boundary: pause (SIGUSR1 toggles it) and
stop (SIGINT/SIGTERM). `Dishonesty` exists for tests only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import struct
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

from chain.market import MarketClient
from chain.records import JobId, JobSpec, JobStatus, SwarmRef, TrainingJob, Wei
from swarm_vectordb.bee import BatchId, BeeClient
from trainer.dataset import ShardSink, ShardSource
from trainer.engine import StepEngine, load_shards
from trainer.errors import TrainerError
from trainer.export import adapter_bytes
from trainer.jobspec import ResolvedJob, estimate_memory, resolve_job, runnable
from trainer.model import base_model_hash
from trainer.profile import current_profile
from trainer.state import TrainerState
from trainer.steplog import RunManifest, StepLog, StepRecord, upload_run

__all__ = [
    "Dishonesty",
    "JobOutcome",
    "LocalRun",
    "Stopped",
    "Worker",
    "WorkerControl",
    "WorkerSettings",
    "build_engine",
    "engine_for_job",
    "train_job",
    "upload_and_describe",
]

logger = logging.getLogger(__name__)


class Stopped(TrainerError):
    """Training stopped at a step boundary on request; the local state is saved."""


@dataclass(frozen=True)
class Dishonesty:
    """Test-only misbehaviour: corrupt one step's update, or skip one step's batch."""

    kind: str  # "corrupt" | "skip"
    step: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Dishonesty | None:
        """From NOOSPHERE_TEST_DISHONEST=corrupt:STEP|skip:STEP; refused unless the test
        switch is on: NOOSPHERE_TEST=1 or NOOSPHERE_TEST_MODE=1 (the CLI's configuration
        loader rejects the former: only NOOSPHERE_TEST_* names are left to tests)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOOSPHERE_TEST_DISHONEST")
        if not raw:
            return None
        if "1" not in (env.get("NOOSPHERE_TEST"), env.get("NOOSPHERE_TEST_MODE")):
            raise TrainerError(
                "NOOSPHERE_TEST_DISHONEST is test-only: it needs NOOSPHERE_TEST=1 "
                "(or NOOSPHERE_TEST_MODE=1)"
            )
        kind, _, step = raw.partition(":")
        if kind not in ("corrupt", "skip") or not step.isdigit():
            raise TrainerError(f"NOOSPHERE_TEST_DISHONEST={raw!r}: expected corrupt:N or skip:N")
        return cls(kind, int(step))


class WorkerControl:
    """Pause and stop requests, honoured at step boundaries (thread-safe)."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def toggle_pause(self) -> None:
        if self._running.is_set():
            self._running.clear()
        else:
            self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def boundary(self, on_pause: Callable[[], None] | None = None) -> None:
        """Block while paused; raise `Stopped` when a stop was asked for."""
        if self.paused and on_pause is not None:
            on_pause()
        while not self._running.wait(0.2):
            pass
        if self._stop.is_set():
            raise Stopped("stopped at a step boundary")


class LocalRun:
    """A job's training state on local disk: resumable after any interruption.

    Files (each written to a temporary name and renamed, so a kill never leaves a
    half-written one): ``ckpt-<S>.bin`` the state before step S (every K-th step, and
    the final state), ``records.bin`` the records of the finished steps, ``state.bin``
    the state after the last finished step.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _write(self, name: str, data: bytes) -> None:
        tmp = self.folder / f".{name}.tmp"
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.folder / name)

    def save_checkpoint(self, step: int, state: bytes) -> None:
        self._write(f"ckpt-{step}.bin", state)

    def checkpoints(self) -> dict[int, bytes]:
        found = {}
        for path in self.folder.glob("ckpt-*.bin"):
            found[int(path.stem.removeprefix("ckpt-"))] = path.read_bytes()
        return found

    def save_progress(self, records: list[StepRecord], state: TrainerState) -> None:
        """Records first, then the state: a state file never runs ahead of the records."""
        from trainer import codec

        self._write(
            "records.bin", codec.pack({"version": 1, "records": [r.encode() for r in records]})
        )
        self._write("state.bin", state.encode())

    def load_progress(self) -> tuple[list[StepRecord], TrainerState] | None:
        """The finished records and the state after the last one; None if nothing was saved."""
        from trainer import codec
        from trainer.errors import MalformedRecordError

        records_path, state_path = self.folder / "records.bin", self.folder / "state.bin"
        if not records_path.exists() or not state_path.exists():
            return None
        doc = codec.unpack(
            records_path.read_bytes(),
            what="local records",
            version=1,
            keys=frozenset({"records"}),
            error=MalformedRecordError,
        )
        records = [StepRecord.decode(r) for r in doc.items("records")]
        state = TrainerState.decode(state_path.read_bytes())
        if records and records[-1].post_state != state.hash:
            # Killed between the two writes: the state is one step behind; drop the record.
            records = records[:-1]
            if records and records[-1].post_state != state.hash:
                raise TrainerError(f"local state in {self.folder} does not match its records")
        return records, state


def build_engine(
    base: nn.Module, resolved: ResolvedJob, shards: Mapping[int, object]
) -> StepEngine:
    return StepEngine(copy.deepcopy(base), resolved.plan, shards)  # type: ignore[arg-type]


def _corrupt(state: TrainerState) -> None:
    name = next(iter(state.tensors))
    with torch.no_grad():
        state.tensors[name].value.view(-1)[0] += 1e-3


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
            record = StepRecord(
                index=step,
                batch=engine.batch_entries(step),
                seed=engine.plan.seed,
                hyperparams=engine.hyperparams_hash,
                pre_state=pre_hash,
                post_state=pre_hash,
                loss_bits=0,
                profile=engine.profile_hash,
            )
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
) -> tuple[bytes, RunManifest]:
    """Export the adapter GGUF and upload the run; (run manifest reference, manifest)."""
    adapter = await asyncio.to_thread(
        adapter_bytes,
        final_state,
        engine.plan.hyperparams.lora,
        n_heads=engine.model.n_heads,
        n_kv_heads=engine.model.n_kv_heads,
    )
    reference, manifest, sent = await upload_run(sink, batch, log, checkpoints, adapter)
    logger.info("uploaded run %s (%d bytes)", reference.hex(), sent)
    return reference, manifest


async def engine_for_job(base: nn.Module, source: ShardSource, resolved: ResolvedJob) -> StepEngine:
    """Fetch and verify the job's shards; a fresh engine on a copy of `base`."""
    shards = await load_shards(source, resolved.manifest, resolved.manifest.root)
    return await asyncio.to_thread(build_engine, base, resolved, shards)


Approve = Callable[[str], Awaitable[bool]]
Say = Callable[[str], None]


@dataclass
class WorkerSettings:
    model_path: Path
    state_dir: Path  # one LocalRun folder per job under it
    max_jobs: int = 1
    max_memory: int | None = None  # bytes; None: no limit
    poll_s: float = 2.0
    swarm_time_limit: float = 120.0
    dishonesty: Dishonesty | None = None


@dataclass
class JobOutcome:
    job_id: int
    log_root: bytes = b""
    run_reference: bytes = b""
    finalized: bool = False
    notes: list[str] = field(default_factory=list)


class Worker:
    """One account's worker on one market, training with one base model."""

    def __init__(
        self,
        market: MarketClient,
        swarm: BeeClient,
        batch: BatchId,
        base: nn.Module,
        settings: WorkerSettings,
        *,
        control: WorkerControl | None = None,
        approve: Approve | None = None,
        say: Say | None = None,
    ) -> None:
        self.market = market
        self.swarm = swarm
        self.batch = batch
        self.base = base
        self.settings = settings
        self.control = control or WorkerControl()
        self.approve = approve
        self.say = say or (lambda text: logger.info("%s", text))
        self.model_hash = base_model_hash(settings.model_path)
        self.profile = current_profile()
        self.skipped: dict[int, list[str]] = {}

    @property
    def me(self) -> str:
        return str(self.market.tx.address)

    async def chain_time(self) -> int:
        block = await self.market.tx.rpc(self.market.tx.w3.eth.get_block("latest"))
        return int(block["timestamp"])

    async def ensure_stake(self, reward: Wei) -> bool:
        """Stake what claiming a job of `reward` locks, with approval; False if refused."""
        need = await self.market.trainer_stake_for(reward)
        account = await self.market.account(self.me)
        free = account.staked - account.locked
        if free >= need:
            return True
        missing = Wei(need - free)
        if self.approve is not None and not await self.approve(f"stake {missing} wei to claim"):
            return False
        await self.market.stake(missing)
        self.say(f"staked {missing} wei")
        return True

    async def candidates(self) -> list[tuple[TrainingJob, JobSpec]]:
        """Jobs claimed by this account (to resume) first, then posted ones."""
        mine, posted = [], []
        for job in await self.market.jobs(0, 10_000):
            if job.status == JobStatus.CLAIMED and job.trainer == self.me:
                mine.append(job)
            elif job.status == JobStatus.POSTED and job.job_id not in self.skipped:
                posted.append(job)
        found = []
        for job in mine + posted:
            found.append((job, await self.market.job_spec(job.job_id)))
        return found

    async def check(self, job: TrainingJob, spec: JobSpec) -> ResolvedJob | None:
        """The resolved job if this worker can run it; records why not otherwise."""
        try:
            resolved = await resolve_job(
                self.swarm, spec, time_limit=self.settings.swarm_time_limit
            )
        except TrainerError as exc:
            self.skipped[job.job_id] = [str(exc)]
            self.say(f"job {job.job_id}: skipped ({exc})")
            return None
        needed = await asyncio.to_thread(
            estimate_memory, self.settings.model_path, resolved.plan.hyperparams
        )
        reasons = runnable(
            spec,
            resolved.document,
            model_hash=self.model_hash,
            profile=self.profile,
            memory_needed=needed,
            memory_limit=self.settings.max_memory,
        )
        if reasons:
            self.skipped[job.job_id] = reasons
            self.say(f"job {job.job_id}: skipped ({'; '.join(reasons)})")
            return None
        return resolved

    async def work(self, job: TrainingJob, resolved: ResolvedJob) -> JobOutcome:
        """Claim (unless already ours), train, upload, submit."""
        outcome = JobOutcome(job.job_id)
        if job.status == JobStatus.POSTED:
            if not await self.ensure_stake(job.reward):
                outcome.notes.append("stake refused")
                return outcome
            await self.market.claim(job.job_id)
            self.say(f"job {job.job_id}: claimed ({job.steps} steps)")
        engine = await engine_for_job(self.base, self.swarm, resolved)
        # Named by the spec hash too: a restarted dev chain reuses job ids.
        local = LocalRun(self.settings.state_dir / f"job-{job.job_id}-{job.spec_hash.hex()[:16]}")

        def progress(record: StepRecord, steps: int) -> None:
            loss = struct.unpack("<f", struct.pack("<I", record.loss_bits))[0]
            self.say(f"job {job.job_id}: step {record.index + 1}/{steps} loss {loss:.4f}")

        log, checkpoints, final = await asyncio.to_thread(
            train_job,
            engine,
            local,
            control=self.control,
            dishonesty=self.settings.dishonesty,
            progress=progress,
        )
        reference, _ = await upload_and_describe(
            self.swarm, self.batch, engine, log, checkpoints, final
        )
        await self.market.submit(job.job_id, log.root, SwarmRef(reference))
        self.say(f"job {job.job_id}: submitted log root {log.root.hex()} run {reference.hex()}")
        outcome.log_root, outcome.run_reference = log.root, reference
        return outcome

    async def settle(self, outcomes: Mapping[int, JobOutcome]) -> None:
        """Finalize this worker's submitted jobs whose window has passed; withdraw."""
        now = await self.chain_time()
        for job_id, outcome in outcomes.items():
            job = await self.market.job(JobId(job_id))
            if job.status == JobStatus.SUBMITTED and now >= job.expires_at:
                await self.market.finalize(JobId(job_id))
                job = await self.market.job(JobId(job_id))
            if job.status in (JobStatus.FINALIZED, JobStatus.SLASHED) and not outcome.finalized:
                outcome.finalized = True
                outcome.notes.append(job.status.name.lower())
                self.say(f"job {job_id}: {job.status.name.lower()}")
        owed = await self.market.pending_withdrawal(self.me)
        if owed:
            await self.market.withdraw()
            self.say(f"withdrew {owed} wei")

    async def run(self) -> list[JobOutcome]:
        """Train up to `max_jobs` jobs, then wait until each is settled; stop on request."""
        outcomes: dict[int, JobOutcome] = {}
        try:
            while not self.control.stopping:
                if len(outcomes) < self.settings.max_jobs:
                    for job, spec in await self.candidates():
                        resolved = await self.check(job, spec)
                        if resolved is not None:
                            outcomes[job.job_id] = await self.work(job, resolved)
                            break
                await self.settle(outcomes)
                if len(outcomes) >= self.settings.max_jobs and all(
                    o.finalized for o in outcomes.values()
                ):
                    break
                await asyncio.sleep(self.settings.poll_s)
        except Stopped:
            self.say("stopped at a step boundary; state saved, rerun to resume")
        return list(outcomes.values())
