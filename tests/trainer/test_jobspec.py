"""The job document binds a chain JobSpec to a trainer JobPlan: round trip, every mismatch
between spec, document and manifest refused, and a worker's reasons to skip a job."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from chain.records import JobSpec, SwarmRef
from tests.trainer.conftest import Swarm, write_corpus
from trainer import codec
from trainer.dataset import build_dataset, upload_dataset
from trainer.errors import DatasetError, ShardReferenceMismatch, StorageError
from trainer.jobspec import (
    JobDocument,
    JobSpecError,
    estimate_memory,
    resolve_job,
    runnable,
    upload_job_document,
)
from trainer.profile import current_profile
from trainer.step import Hyperparams
from trainer.tokenizer import GgufTokenizer

HP = Hyperparams(rank=4, alpha=8.0, batch_size=2, seq_len=24, checkpoint_every=2)


def spec_for(root: bytes, doc_ref: bytes, *, steps: int = 3, seed: int = 9) -> JobSpec:
    return JobSpec(
        dao=to_checksum_address("0x" + "11" * 20),
        dataset_root=SwarmRef(root),
        base_model=bytes(32),
        hyperparams=SwarmRef(doc_ref),
        steps=steps,
        seed=seed,
        deadline=10**10,
        challenge_window=600,
    )


@pytest.fixture
def document() -> JobDocument:
    return JobDocument(HP, current_profile(), b"\x01" * 32, b"\x02" * 32)


def test_document_round_trips_canonically(document: JobDocument) -> None:
    encoded = document.encode()
    assert JobDocument.decode(encoded) == document
    assert JobDocument.decode(encoded).encode() == encoded


def test_malformed_documents_are_refused(document: JobDocument) -> None:
    with pytest.raises(JobSpecError):
        JobDocument.decode(b"\x00garbage")
    body = codec.unpack(
        document.encode(),
        what="doc",
        version=1,
        keys=frozenset({"hyperparams", "profile", "manifest", "dataset_root"}),
        error=JobSpecError,
    )
    raw = {"version": 1, **{k: body.raw(k) for k in ("hyperparams", "manifest", "dataset_root")}}
    bad_profile = {**body.raw("profile"), "threads": "two"}
    with pytest.raises(JobSpecError, match=r"profile: threads must be of type int"):
        JobDocument.decode(codec.pack({**raw, "profile": bad_profile}))
    with pytest.raises(JobSpecError, match="hyperparameters"):
        JobDocument.decode(codec.pack({**raw, "profile": body.raw("profile"), "hyperparams": b"x"}))


@pytest.mark.asyncio
async def test_resolve_maps_spec_to_plan_and_refuses_every_mismatch(
    swarm: Swarm, tokenizer: GgufTokenizer, tmp_path: Path
) -> None:
    paths = write_corpus(tmp_path, {"a.txt": "Tiny corpus about owls and moons. " * 10})
    built = build_dataset(paths, tokenizer, shard_tokens=32)
    upload = await upload_dataset(swarm.client, swarm.batch, built)
    root = built.manifest.root
    document = JobDocument(HP, current_profile(), upload.manifest_reference, root)
    doc_ref = await upload_job_document(swarm.client, swarm.batch, document)

    resolved = await resolve_job(swarm.client, spec_for(root, doc_ref))
    assert resolved.plan.manifest == built.manifest
    assert resolved.plan.hyperparams == HP
    assert (resolved.plan.seed, resolved.plan.steps) == (9, 3)
    assert resolved.plan.profile.hash == current_profile().hash

    with pytest.raises(JobSpecError, match="names dataset root"):  # spec on another root
        await resolve_job(swarm.client, spec_for(b"\x07" * 32, doc_ref))
    lying = dataclasses.replace(document, dataset_root=b"\x07" * 32)
    lying_ref = await upload_job_document(swarm.client, swarm.batch, lying)
    with pytest.raises(JobSpecError, match="not the job's"):  # manifest on another root
        await resolve_job(swarm.client, spec_for(b"\x07" * 32, lying_ref))
    with pytest.raises((StorageError, DatasetError)):  # a document nobody uploaded
        await resolve_job(swarm.client, spec_for(root, b"\x05" * 32), time_limit=2)
    assert issubclass(ShardReferenceMismatch, DatasetError)


def test_runnable_names_every_reason_to_skip(document: JobDocument, model_path: Path) -> None:
    spec = spec_for(document.dataset_root, b"\x03" * 32)
    here = current_profile()
    assert (
        runnable(
            spec, document, model_hash=bytes(32), profile=here, memory_needed=10, memory_limit=None
        )
        == []
    )
    other = dataclasses.replace(here, threads=here.threads + 1)
    reasons = runnable(
        spec,
        document,
        model_hash=b"\x09" * 32,
        profile=other,
        memory_needed=2**31,
        memory_limit=2**30,
    )
    assert len(reasons) == 3
    assert "base model" in reasons[0]
    assert "threads" in reasons[1]
    assert "GiB" in reasons[2]
    needed = estimate_memory(model_path, HP)
    assert 2 * 134_000_000 * 4 < needed < 4 * 2**30  # two fp32 copies of SmolLM2-135M


def test_job_post_defaults_match_the_trainer_hyperparameter_defaults() -> None:
    """`job post` must not silently post other defaults than the trainer's own."""
    from agent.cli.market import job_post
    from trainer.step import Hyperparams

    cli = {p.name: p.default for p in job_post.params}
    trainer = Hyperparams()
    assert cli["checkpoint_every"] == trainer.checkpoint_every
    assert cli["rank"] == trainer.rank
    assert cli["lr"] == trainer.learning_rate
    assert cli["batch_size"] == trainer.batch_size
    assert cli["seq_len"] == trainer.seq_len
