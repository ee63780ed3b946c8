"""Checking another node's run on chain: the verifier (`verify_job`) and the committee
member (`judge`, `Validator`).

Both start from what the chain holds for a submitted job: the spec (resolved into
a plan by `trainer.jobspec`), ``logRoot`` and ``adapterRef`` (the run manifest's
Swarm reference, which names the log, the checkpoints and the adapter).

- `verify_job` fetches the run, checks the log against ``logRoot``, replays
  sampled steps (`trainer.verify.verify_run`) and returns the verdict, whose
  ``challenge`` holds what `MarketClient.challenge` takes.
- `judge` re-executes the disputed step from the committed pre-state (the nearest
  checkpoint, replayed forward) and returns the committee vote:
  TRAINER_CORRECT when the step's recomputed record equals the committed one,
  TRAINER_WRONG when the disputed step itself differs, DATA_UNAVAILABLE when the
  run, its log or a checkpoint cannot be fetched (or is not what was committed),
  or when an earlier step already differs (the committed pre-state cannot be
  rebuilt from the trainer's own data). A disputed step whose record names
  another execution profile than the job pins is TRAINER_WRONG (the trainer broke
  the job's terms). A `ProfileMismatch` (this process cannot run the job's
  profile) propagates: a member under another profile abstains rather than vote.
- `Validator.watch_once` draws committees that are due, votes where this account
  sits on one and has not voted, and resolves disputes whose committee all voted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from torch import nn

from chain.errors import ChainError
from chain.market import MarketClient
from chain.merkle import StepLogTree
from chain.records import JobId, JobStatus
from chain.records import Verdict as Vote
from swarm_vectordb.bee import BeeClient, keccak256
from trainer.engine import StepEngine
from trainer.errors import (
    CheckpointError,
    DatasetError,
    DeviceUnavailable,
    MalformedLogError,
    MalformedRecordError,
    ProfileMismatch,
    StepLogError,
    StorageError,
    TrainerError,
)
from trainer.execution import engine_for_job
from trainer.jobspec import fetch_blob, resolve_job
from trainer.profile import current_profile, pin_profile
from trainer.replay import replay
from trainer.steplog import RunManifest, StepLog, fetch_checkpoint, fetch_run, raw_records
from trainer.verify import Verdict, malformed_verdict, profile_break, verify_run

__all__ = [
    "JobRun",
    "Validator",
    "fetch_job_adapter",
    "fetch_job_records",
    "fetch_job_run",
    "judge",
    "verify_job",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRun:
    """A submitted job's run as fetched: manifest, log (checked against logRoot)."""

    job_id: JobId
    manifest: RunManifest
    log: StepLog


async def fetch_job_run(
    market: MarketClient, swarm: BeeClient, job_id: JobId, *, time_limit: float = 120.0
) -> JobRun:
    """The job's run manifest and log; `StepLogError` unless the log is the committed one."""
    job = await market.job(job_id)
    if job.log_root is None or job.adapter_ref is None:
        raise StepLogError(f"job {job_id} has no submitted result ({job.status.name.lower()})")
    manifest, log = await fetch_run(swarm, bytes(job.adapter_ref), time_limit=time_limit)
    if log.root != bytes(job.log_root):
        raise StepLogError(
            f"the run on Swarm has log root {log.root.hex()}, the chain {bytes(job.log_root).hex()}"
        )
    return JobRun(job_id, manifest, log)


async def fetch_job_records(
    market: MarketClient, swarm: BeeClient, job_id: JobId, *, time_limit: float = 120.0
) -> list[bytes]:
    """The job's committed log records as bytes, undecoded (checked against logRoot)."""
    job = await market.job(job_id)
    if job.log_root is None or job.adapter_ref is None:
        raise StepLogError(f"job {job_id} has no submitted result ({job.status.name.lower()})")
    manifest_bytes = await fetch_blob(swarm, bytes(job.adapter_ref), "run manifest", time_limit)
    manifest = RunManifest.decode(manifest_bytes)
    records = raw_records(await fetch_blob(swarm, manifest.log_reference, "step log", time_limit))
    if not records or StepLogTree(records).root != bytes(job.log_root):
        raise StepLogError(f"the step log of job {job_id} on Swarm is not the committed one")
    return records


async def _engine(
    market: MarketClient, swarm: BeeClient, base: nn.Module, job_id: JobId
) -> StepEngine:
    spec = await market.job_spec(job_id)
    resolved = await resolve_job(swarm, spec)
    pinned = resolved.plan.profile
    try:
        if current_profile(pinned.device).hash != pinned.hash:
            # threads, determinism and CUDA's settings are all a process can change
            pin_profile(pinned.threads, pinned.device)
    except DeviceUnavailable:
        pass  # the engine refuses with a ProfileMismatch naming the device
    return await engine_for_job(base, swarm, resolved)


async def fetch_job_adapter(
    market: MarketClient, swarm: BeeClient, job_id: JobId, *, time_limit: float = 120.0
) -> tuple[bytes, RunManifest]:
    """The job's adapter GGUF bytes, checked against the hash its run manifest commits."""
    run = await fetch_job_run(market, swarm, job_id, time_limit=time_limit)
    data = await fetch_blob(swarm, run.manifest.adapter_reference, "adapter", time_limit)
    if keccak256(data) != run.manifest.adapter_hash:
        raise StepLogError(f"the adapter of job {job_id} does not hash to its committed hash")
    return data, run.manifest


async def verify_job(
    market: MarketClient,
    swarm: BeeClient,
    base: nn.Module,
    job_id: JobId,
    *,
    samples: int,
    seed: bytes | None = None,
) -> tuple[JobRun, Verdict]:
    """Fetch the job's run and replay `samples` random steps (`ProfileMismatch`: refused).

    A committed log with a malformed record raises `MalformedLogError`, whose
    ``verdict`` holds the challenge of that step.
    """
    engine = await _engine(market, swarm, base, job_id)  # a foreign profile refuses first
    try:
        run = await fetch_job_run(market, swarm, job_id)
    except MalformedRecordError as exc:
        malformed = malformed_verdict(await fetch_job_records(market, swarm, job_id))
        if malformed is None:
            raise
        raise MalformedLogError(
            f"step {malformed.wrong_step} of job {job_id}: {malformed.reason}", malformed
        ) from exc
    verdict = await verify_run(engine, swarm, run.manifest, run.log, samples=samples, seed=seed)
    return run, verdict


async def judge(
    market: MarketClient, swarm: BeeClient, base: nn.Module, job_id: JobId, step: int
) -> tuple[Vote, str]:
    """The committee vote on `step` of `job_id`, with the reason in words."""
    try:
        run = await fetch_job_run(market, swarm, job_id)
        entry = run.manifest.nearest_checkpoint(step)
        checkpoint = await fetch_checkpoint(swarm, entry)
    except (StorageError, CheckpointError, StepLogError, DatasetError) as exc:
        return Vote.DATA_UNAVAILABLE, str(exc)
    engine = await _engine(market, swarm, base, job_id)
    for index in range(entry.step, step + 1):
        foreign = profile_break(engine, run.manifest, run.log.records[index])
        if foreign is None:
            continue
        if index == step:
            return Vote.TRAINER_WRONG, f"step {step}: {foreign}"
        return (
            Vote.DATA_UNAVAILABLE,
            f"step {index} before the disputed one: {foreign}; the committed pre-state "
            "cannot be rebuilt",
        )
    try:
        result = await asyncio.to_thread(replay, engine, run.log, entry.step, checkpoint, step)
    except ProfileMismatch:
        raise
    except CheckpointError as exc:
        return Vote.DATA_UNAVAILABLE, str(exc)
    if result.mismatch is None:
        return Vote.TRAINER_CORRECT, f"step {step} replays bit-exactly"
    if result.mismatch.step == step:
        fields = ", ".join(result.mismatch.fields)
        return Vote.TRAINER_WRONG, f"step {step}: recomputed {fields} differ from the record"
    return (
        Vote.DATA_UNAVAILABLE,
        f"step {result.mismatch.step} before the disputed one already differs: "
        "the committed pre-state cannot be rebuilt from the trainer's checkpoints",
    )


class Validator:
    """A registered validator's duties on one market."""

    def __init__(
        self,
        market: MarketClient,
        swarm: BeeClient,
        base: nn.Module | None,
        *,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.market = market
        self.swarm = swarm
        self.base = base
        self.say = say or (lambda text: logger.info("%s", text))
        self.voted: dict[int, Vote] = {}

    @property
    def me(self) -> str:
        return str(self.market.tx.address)

    async def ensure_registered(self, stake: int) -> None:
        """Stake `stake` wei more if the free stake is below it; register if not yet."""
        account = await self.market.account(self.me)
        if account.staked - account.locked < stake:
            from chain.records import Wei

            await self.market.stake(Wei(stake - (account.staked - account.locked)))
        if self.me not in await self.market.validators():
            await self.market.register_validator()
            self.say(f"registered {self.me} as a validator")

    async def disputes_to_judge(self) -> bool:
        """Whether any dispute is open (drawn or not yet): the model is needed only then."""
        return any(j.status == JobStatus.DISPUTED for j in await self.market.jobs(0, 10_000))

    async def watch_once(self) -> list[tuple[int, Vote]]:
        """One pass over disputed jobs; the votes cast in it."""
        cast: list[tuple[int, Vote]] = []
        for job in await self.market.jobs(0, 10_000):
            if job.status != JobStatus.DISPUTED:
                continue
            dispute = await self.market.dispute(job.job_id)
            if not dispute.drawn:
                due = await self.market.drawable_at(job.job_id)
                if due is not None and await self.market.block_number() >= due:
                    await self._try(self.market.draw_committee(job.job_id), "draw")
                    dispute = await self.market.dispute(job.job_id)
            if not dispute.drawn:
                continue
            if self.me in dispute.committee and not await self.market.has_voted(
                job.job_id, self.me
            ):
                if self.base is None:
                    raise TrainerError("the validator has no base model loaded")
                try:
                    vote, reason = await judge(
                        self.market, self.swarm, self.base, job.job_id, dispute.step
                    )
                except ProfileMismatch as exc:
                    self.say(f"job {job.job_id}: not voting, profile differs ({exc})")
                    continue
                except TrainerError as exc:
                    self.say(f"job {job.job_id}: cannot judge ({exc})")
                    continue
                await self.market.vote(job.job_id, vote)
                self.voted[job.job_id] = vote
                cast.append((job.job_id, vote))
                self.say(f"job {job.job_id} step {dispute.step}: voted {vote.name} ({reason})")
                dispute = await self.market.dispute(job.job_id)
            votes = (
                dispute.votes_trainer_correct
                + dispute.votes_trainer_wrong
                + dispute.votes_data_unavailable
            )
            if votes == len(dispute.committee):
                await self._try(self.market.resolve(job.job_id), "resolve")
        return cast

    async def _try(self, action: Awaitable[object], what: str) -> None:
        try:
            await action
        except ChainError as exc:  # another validator got there first, or too early
            logger.info("%s: %s", what, exc)
