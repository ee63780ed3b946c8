"""A job's training state on local disk: resumable after any interruption, kept for disputes.

A worker keeps one folder per job (`job_folder`) from the claim until the job is
settled on chain (finalized, slashed or expired), then `discard` removes it. Files,
each written to a temporary name and renamed, so a kill never leaves a half-written
one:

- ``ckpt-<S>.bin``: the trainable state before step S (every K-th step, and the
  final state after the last step);
- ``records.bin``: the records of the finished steps; ``state.bin``: the state
  after the last finished step (together: where a restarted run resumes);
- ``run-manifest.bin``, ``log.bin``, ``adapter.gguf``: the exact bytes uploaded
  at submission, so that a dispute can re-upload whatever Swarm no longer serves
  (`run_blobs` maps each Swarm reference to its bytes, checkpoints included).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from chain.records import TrainingJob
from trainer import codec
from trainer.dataset import swarm_reference
from trainer.errors import MalformedRecordError, TrainerError
from trainer.state import TrainerState
from trainer.steplog import StepRecord

__all__ = ["LocalRun", "job_folder"]

logger = logging.getLogger(__name__)

_RUN_FILES = ("run-manifest.bin", "log.bin", "adapter.gguf")


def job_folder(state_dir: Path, job: TrainingJob) -> Path:
    """The local folder of `job` under `state_dir`.

    Named by the spec hash too: a restarted dev chain reuses job ids.
    """
    return state_dir / f"job-{job.job_id}-{job.spec_hash.hex()[:16]}"


class LocalRun:
    """One job's files under `folder` (created if absent); see the module docstring."""

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
        self._write(
            "records.bin", codec.pack({"version": 1, "records": [r.encode() for r in records]})
        )
        self._write("state.bin", state.encode())

    def load_progress(self) -> tuple[list[StepRecord], TrainerState] | None:
        """The finished records and the state after the last one; None if nothing was saved."""
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

    def save_run(self, manifest: bytes, log: bytes, adapter: bytes) -> None:
        """Keep the uploaded run manifest, log and adapter for re-uploads during a dispute."""
        for name, data in zip(_RUN_FILES, (manifest, log, adapter), strict=True):
            self._write(name, data)

    def run_blobs(self) -> dict[bytes, bytes]:
        """Every uploaded piece kept here, by Swarm reference (blocking: hashes each)."""
        pieces = [p.read_bytes() for p in (self.folder / n for n in _RUN_FILES) if p.exists()]
        pieces += self.checkpoints().values()
        return {swarm_reference(data): data for data in pieces}

    def discard(self) -> None:
        """Remove the folder and everything in it; idempotent."""
        shutil.rmtree(self.folder, ignore_errors=True)
        logger.info("removed the local state in %s", self.folder)
