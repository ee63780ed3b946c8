"""The opt-in training worker: claim runnable jobs, train them, submit, defend, get paid.

`Worker.run` (the CLI) and `Worker.run_until` (a long-running node) loop over
the market; each pass:

1. if fewer than `max_jobs` jobs were trained here: takes this account's claimed
   jobs first (to resume them), then posted ones; resolves each spec
   (`trainer.jobspec`), skips it unless the base model is this node's GGUF, the
   profile is the one this process runs and the memory estimate fits; stakes
   what a claim locks if the account lacks it (through the `approve` callback,
   which the CLI turns into the owner's confirmation); claims, trains
   (`trainer.execution.train_job`, resumable after any kill), uploads and
   submits ``(logRoot, runManifestRef)``;
2. settles every job this account trains: finalizes it once its challenge window
   has passed, answers disputes about it (`trainer.disputes`: keep the data on
   Swarm, draw, resolve), removes its local state once it is finalized, slashed
   or expired, and withdraws whatever the market owes.

`WorkerControl` (pause, stop) is honoured at step boundaries; `Dishonesty` is
for tests only. Both live in `trainer.control`, the local state in
`trainer.localrun`, and the training itself in `trainer.execution`; their names
are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from chain.errors import ChainError
from chain.market import MarketClient
from chain.records import JobSpec, JobStatus, SwarmRef, TrainingJob, Wei
from chain.units import format_ether
from swarm_vectordb.bee import BatchId, BeeClient
from trainer.control import Dishonesty, Stopped, WorkerControl
from trainer.disputes import DisputeDefence
from trainer.errors import TrainerError
from trainer.execution import build_engine, engine_for_job, train_job, upload_and_describe
from trainer.jobspec import ResolvedJob, estimate_memory, resolve_job, runnable
from trainer.localrun import LocalRun, job_folder
from trainer.model import base_model_hash
from trainer.profile import current_profile
from trainer.steplog import StepRecord

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

Approve = Callable[[str], Awaitable[bool]]
Say = Callable[[str], None]

SETTLED = (JobStatus.FINALIZED, JobStatus.SLASHED, JobStatus.EXPIRED)


@dataclass
class WorkerSettings:
    model_path: Path  # the base GGUF this node runs (jobs must name its hash)
    state_dir: Path  # one LocalRun folder per job under it
    max_jobs: int | None = 1  # jobs to train in this process; None: no limit (run_until)
    max_memory: int | None = None  # bytes; None: no limit
    poll_s: float = 2.0  # seconds between passes over the market
    swarm_time_limit: float = 120.0  # for each fetch from Swarm
    dishonesty: Dishonesty | None = None  # tests only
    device: str = "cpu"  # "cuda": pinned by the caller first (`pin_profile(threads, "cuda")`)


@dataclass
class JobOutcome:
    job_id: int
    log_root: bytes = b""
    run_reference: bytes = b""
    finalized: bool = False  # settled: finalized, slashed or expired (see notes)
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
        self.profile = current_profile(settings.device)
        self.skipped: dict[int, list[str]] = {}
        self.defence = DisputeDefence(
            market,
            swarm,
            batch,
            settings.state_dir,
            say=self.say,
            time_limit=settings.swarm_time_limit,
        )

    @property
    def me(self) -> str:
        return str(self.market.tx.address)

    def local_run(self, job: TrainingJob) -> LocalRun:
        """The job's local state folder (created if absent)."""
        return LocalRun(job_folder(self.settings.state_dir, job))

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
        action = f"stake {format_ether(missing)} to claim"
        if self.approve is not None and not await self.approve(action):
            return False
        await self.market.stake(missing)
        self.say(f"staked {format_ether(missing)}")
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
        local = self.local_run(job)

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
            self.swarm, self.batch, engine, log, checkpoints, final, local=local
        )
        await self.market.submit(job.job_id, log.root, SwarmRef(reference))
        self.say(f"job {job.job_id}: submitted log root {log.root.hex()} run {reference.hex()}")
        outcome.log_root, outcome.run_reference = log.root, reference
        return outcome

    async def settle(self, outcomes: Mapping[int, JobOutcome]) -> None:
        """Finalize, defend and clean up every job this account trains; withdraw.

        `outcomes` (this process's jobs) are marked once their job is settled.
        """
        now = await self.chain_time()
        for job in await self.market.jobs(0, 10_000):
            if job.trainer != self.me:
                continue
            if job.status == JobStatus.SUBMITTED and now >= job.expires_at:
                try:
                    await self.market.finalize(job.job_id)
                except ChainError as exc:  # finalized by someone else meanwhile
                    logger.info("finalize %s: %s", job.job_id, exc)
                job = await self.market.job(job.job_id)
            elif job.status == JobStatus.DISPUTED:
                await self.defence.answer(job)
                job = await self.market.job(job.job_id)
            if job.status not in SETTLED:
                continue
            folder = job_folder(self.settings.state_dir, job)
            if folder.exists():
                await asyncio.to_thread(LocalRun(folder).discard)
            outcome = outcomes.get(job.job_id)
            if outcome is not None and not outcome.finalized:
                outcome.finalized = True
                outcome.notes.append(job.status.name.lower())
                self.say(f"job {job.job_id}: {job.status.name.lower()}")
        owed = await self.market.pending_withdrawal(self.me)
        if owed:
            await self.market.withdraw()
            self.say(f"withdrew {format_ether(owed)}")

    async def _take_one(self, outcomes: dict[int, JobOutcome]) -> None:
        """Train the first runnable job, if this process may take more."""
        limit = self.settings.max_jobs
        if limit is not None and len(outcomes) >= limit:
            return
        for job, spec in await self.candidates():
            resolved = await self.check(job, spec)
            if resolved is not None:
                outcomes[job.job_id] = await self.work(job, resolved)
                return

    def _done(self, outcomes: Mapping[int, JobOutcome]) -> bool:
        limit = self.settings.max_jobs
        trained_all = limit is not None and len(outcomes) >= limit
        return trained_all and all(o.finalized for o in outcomes.values())

    async def run(self) -> list[JobOutcome]:
        """Train up to `max_jobs` jobs, then wait until each is settled; stop on request."""
        outcomes: dict[int, JobOutcome] = {}
        try:
            while not self.control.stopping:
                await self._take_one(outcomes)
                await self.settle(outcomes)
                if self._done(outcomes):
                    break
                await asyncio.sleep(self.settings.poll_s)
        except Stopped:
            self.say("stopped at a step boundary; state saved, rerun to resume")
        return list(outcomes.values())

    async def run_until(self, stop: asyncio.Event) -> list[JobOutcome]:
        """Work until `stop` is set: the in-process worker of a long-running node.

        Takes up to `max_jobs` jobs (None: any number), settles and defends them, and
        keeps going after they are settled; a pass that fails on the chain or on Swarm
        is reported and retried at the next poll. Setting `stop` ends a running
        training at its next step boundary (the local state is kept, so the next run
        resumes). Returns this run's outcomes.
        """
        outcomes: dict[int, JobOutcome] = {}

        async def relay() -> None:
            await stop.wait()
            self.control.stop()

        async with asyncio.TaskGroup() as group:
            relay_task = group.create_task(relay())
            try:
                while not stop.is_set() and not self.control.stopping:
                    try:
                        await self._take_one(outcomes)
                        await self.settle(outcomes)
                    except Stopped:
                        break
                    except (ChainError, TrainerError) as exc:
                        self.say(f"worker pass failed, retrying: {exc}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.poll_s)
            finally:
                relay_task.cancel()
        return list(outcomes.values())
