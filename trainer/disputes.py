"""The worker's side of a dispute about one of its own jobs.

A challenged trainer loses if its log or a checkpoint is not retrievable when the
committee looks, so while a job of ours is Disputed, `DisputeDefence.answer`:

1. checks that the run manifest, the step log, every checkpoint and the adapter
   can be fetched from Swarm and hash to their references, and re-uploads from
   the worker's local copy (`trainer.localrun`) whatever cannot: when the
   dispute is first seen and again once its committee is drawn (the moment the
   committee members fetch);
2. reports the dispute (step, challenger, bond) and the committee's progress
   (drawn, votes so far) whenever it changes;
3. draws the committee once its seed block is mined, and calls ``resolve`` as
   soon as the contract can settle (a majority voted, or the voting or drawing
   period ended): any party may, and the worker does not wait for the others.

Withdrawing what the outcome pays, and removing the job's local state once it is
settled, are the worker loop's business (`trainer.worker`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from chain.errors import ChainError
from chain.market import MarketClient
from chain.records import Dispute, JobId, MarketParams, TrainingJob
from chain.units import format_ether
from swarm_vectordb.bee import BatchId, BeeClient
from trainer.errors import TrainerError
from trainer.jobspec import fetch_blob, put_blob
from trainer.localrun import LocalRun, job_folder
from trainer.steplog import RunManifest

__all__ = ["DisputeDefence"]

logger = logging.getLogger(__name__)


@dataclass
class _Seen:
    """What this worker has done about one dispute so far."""

    challenged_at: int
    checked_undrawn: bool = False
    checked_drawn: bool = False
    progress: tuple[int, ...] = ()


class DisputeDefence:
    """Keeps a disputed job's data on Swarm and moves the dispute to its end."""

    def __init__(
        self,
        market: MarketClient,
        swarm: BeeClient,
        batch: BatchId,
        state_dir: Path,
        *,
        say: Callable[[str], None],
        time_limit: float = 120.0,
    ) -> None:
        self.market = market
        self.swarm = swarm
        self.batch = batch
        self.state_dir = state_dir
        self.say = say
        self.time_limit = time_limit
        self._seen: dict[int, _Seen] = {}
        self._params: MarketParams | None = None

    async def answer(self, job: TrainingJob) -> None:
        """One pass over a Disputed job of ours (see the module docstring)."""
        dispute = await self.market.dispute(job.job_id)
        seen = self._seen.get(job.job_id)
        if seen is None or seen.challenged_at != dispute.challenged_at:
            seen = self._seen[job.job_id] = _Seen(dispute.challenged_at)
            self.say(
                f"job {job.job_id}: step {dispute.step} challenged by {dispute.challenger} "
                f"(bond {format_ether(dispute.bond)})"
            )
        if not seen.checked_undrawn or (dispute.drawn and not seen.checked_drawn):
            try:
                await self.ensure_available(job)
            except TrainerError as exc:  # checked again at the next pass
                self.say(f"job {job.job_id}: could not make the run retrievable: {exc}")
            else:
                seen.checked_undrawn = True
                seen.checked_drawn = dispute.drawn
        progress = (
            len(dispute.committee),
            dispute.votes_trainer_correct,
            dispute.votes_trainer_wrong,
            dispute.votes_data_unavailable,
        )
        if dispute.drawn and progress != seen.progress:
            seen.progress = progress
            self.say(
                f"job {job.job_id}: committee of {progress[0]}, votes: {progress[1]} correct, "
                f"{progress[2]} wrong, {progress[3]} data unavailable"
            )
        await self._advance(job.job_id, dispute)

    async def ensure_available(self, job: TrainingJob) -> list[str]:
        """Fetch every piece of the job's run; re-upload the missing ones. Returns what was."""
        if job.adapter_ref is None:
            return []
        folder = job_folder(self.state_dir, job)
        local: dict[bytes, bytes] = {}
        if folder.exists():
            local = await asyncio.to_thread(LocalRun(folder).run_blobs)
        else:
            self.say(f"job {job.job_id}: no local copy of the run in {folder}")
        repaired: list[str] = []
        manifest_ref = bytes(job.adapter_ref)
        data = await self._available(job.job_id, manifest_ref, "run manifest", local, repaired)
        if data is None:
            return repaired
        manifest = RunManifest.decode(data)
        pieces = [(manifest.log_reference, "step log"), (manifest.adapter_reference, "adapter")]
        pieces += [(c.reference, f"checkpoint of step {c.step}") for c in manifest.checkpoints]
        for reference, what in pieces:
            await self._available(job.job_id, reference, what, local, repaired)
        return repaired

    async def _available(
        self,
        job_id: int,
        reference: bytes,
        what: str,
        local: dict[bytes, bytes],
        repaired: list[str],
    ) -> bytes | None:
        """The bytes under `reference`, from Swarm or else re-uploaded from `local`."""
        try:
            return await fetch_blob(self.swarm, reference, what, self.time_limit)
        except TrainerError as exc:
            data = local.get(reference)
            if data is None:
                self.say(f"job {job_id}: {what} is not retrievable and not kept locally ({exc})")
                return None
            logger.info("job %s: %s not retrievable (%s); re-uploading", job_id, what, exc)
        await put_blob(self.swarm, self.batch, data)
        repaired.append(what)
        self.say(f"job {job_id}: re-uploaded the {what} ({reference.hex()[:16]}...)")
        return data

    async def _advance(self, job_id: JobId, dispute: Dispute) -> None:
        """Draw the committee when due; resolve as soon as the contract can settle."""
        params = self._params = self._params or await self.market.params()
        block = await self.market.tx.rpc(self.market.tx.w3.eth.get_block("latest"))
        now = int(block["timestamp"])
        draw_by = dispute.challenged_at + params.voting_period
        if not dispute.drawn:
            due = await self.market.drawable_at(job_id)
            if now > draw_by:
                await self._resolve(job_id, "no committee was drawn in time")
            elif (
                due is not None
                and int(block["number"]) >= due
                and await self._try(self.market.draw_committee(job_id), "draw")
            ):
                self.say(f"job {job_id}: drew the dispute's committee")
            return
        majority = len(dispute.committee) // 2 + 1
        against = dispute.votes_trainer_wrong + dispute.votes_data_unavailable
        if against >= majority or dispute.votes_trainer_correct >= majority:
            await self._resolve(job_id, "a majority voted")
        elif now > dispute.vote_end:
            await self._resolve(job_id, "the voting period ended")

    async def _resolve(self, job_id: JobId, why: str) -> None:
        if await self._try(self.market.resolve(job_id), "resolve"):
            job = await self.market.job(job_id)
            self.say(f"job {job_id}: resolved the dispute ({why}): {job.status.name.lower()}")

    @staticmethod
    async def _try(action: Awaitable[object], what: str) -> bool:
        try:
            await action
        except ChainError as exc:  # another party got there first, or the node is behind
            logger.info("%s: %s", what, exc)
            return False
        return True
