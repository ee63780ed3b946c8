"""A job's local folder: what it keeps for disputes, and that discarding leaves nothing."""

from __future__ import annotations

from pathlib import Path

from eth_typing import ChecksumAddress

from chain.records import JobId, JobStatus, TrainingJob, Wei
from trainer.dataset import swarm_reference
from trainer.localrun import LocalRun, job_folder


def job(job_id: int, spec_hash: bytes) -> TrainingJob:
    return TrainingJob(
        job_id=JobId(job_id),
        requester=ChecksumAddress("0x" + "11" * 20),
        reward=Wei(1),
        status=JobStatus.SUBMITTED,
        trainer=None,
        expires_at=0,
        challenge_window=0,
        steps=4,
        spec_hash=spec_hash,
        log_root=None,
        adapter_ref=None,
    )


def test_job_folders_differ_by_id_and_by_spec(tmp_path: Path) -> None:
    a = job_folder(tmp_path, job(1, b"\x01" * 32))
    assert a.parent == tmp_path
    assert a != job_folder(tmp_path, job(2, b"\x01" * 32))
    # A restarted dev chain reuses job ids: another spec never shares a folder.
    assert a != job_folder(tmp_path, job(1, b"\x02" * 32))


def test_run_blobs_map_every_kept_piece_to_its_swarm_reference(tmp_path: Path) -> None:
    local = LocalRun(tmp_path / "job")
    pieces = {
        "manifest": b"manifest bytes",
        "log": b"log bytes" * 1000,  # spans several chunks: the tree root, not one chunk
        "adapter": b"GGUF" + bytes(9000),
        "ckpt0": b"state before step 0",
        "ckpt4": b"final state",
    }
    local.save_checkpoint(0, pieces["ckpt0"])
    local.save_checkpoint(4, pieces["ckpt4"])
    local.save_run(pieces["manifest"], pieces["log"], pieces["adapter"])
    blobs = local.run_blobs()
    assert blobs == {swarm_reference(data): data for data in pieces.values()}
    assert not list(local.folder.glob(".*.tmp"))  # every write was renamed into place


def test_discard_removes_the_folder_and_is_idempotent(tmp_path: Path) -> None:
    local = LocalRun(tmp_path / "job")
    local.save_checkpoint(0, b"state")
    local.save_run(b"m", b"l", b"a")
    local.discard()
    assert not local.folder.exists()
    assert list(tmp_path.iterdir()) == []
    local.discard()
