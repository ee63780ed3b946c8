"""The job document: how an on-chain `JobSpec` binds to a trainer `JobPlan`.

A `JobSpec` holds only 32-byte commitments. Its ``hyperparams`` field is the Swarm
reference of a `JobDocument`, the canonical bytes of:

- the `Hyperparams` (their hash goes into every step record),
- the pinned `ExecutionProfile` (every step must run under it),
- the dataset manifest's Swarm reference, and the dataset root it must have.

Mapping spec -> plan (`resolve_job`): fetch the document by ``spec.hyperparams``
(content-addressed, so its bytes are what the requester posted), check that it
names ``spec.dataset_root``, fetch the manifest it names and check that the
manifest's Merkle root is ``spec.dataset_root``; the plan is then (manifest,
hyperparameters, ``spec.seed``, ``spec.steps``, profile). ``spec.base_model`` is
keccak256 of the base GGUF file (`trainer.model.base_model_hash`).

`runnable` says why a worker cannot take a job (model, profile, memory), as text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swarm_vectordb.bee import BatchId
from trainer import codec
from trainer.blobs import fetch_blob, put_blob
from trainer.dataset import (
    DatasetManifest,
    ShardSink,
    ShardSource,
    fetch_manifest,
)
from trainer.engine import JobPlan
from trainer.errors import TrainerError
from trainer.profile import ExecutionProfile
from trainer.step import Hyperparams

if TYPE_CHECKING:
    from chain.records import JobSpec

__all__ = [
    "JOB_DOCUMENT_VERSION",
    "JobDocument",
    "JobSpecError",
    "ResolvedJob",
    "estimate_memory",
    "fetch_blob",
    "put_blob",
    "resolve_job",
    "runnable",
    "upload_job_document",
]

logger = logging.getLogger(__name__)

JOB_DOCUMENT_VERSION = 1
MAX_DOCUMENT = 64 * 1024


class JobSpecError(TrainerError):
    """A job's spec and the documents it references do not fit together."""


@dataclass(frozen=True)
class JobDocument:
    """What ``JobSpec.hyperparams`` references on Swarm."""

    hyperparams: Hyperparams
    profile: ExecutionProfile
    manifest_reference: bytes
    dataset_root: bytes

    def encode(self) -> bytes:
        return codec.pack(
            {
                "version": JOB_DOCUMENT_VERSION,
                "hyperparams": self.hyperparams.encode(),
                "profile": self.profile.as_document(),
                "manifest": self.manifest_reference,
                "dataset_root": self.dataset_root,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> JobDocument:
        doc = codec.unpack(
            data,
            what="job document",
            version=JOB_DOCUMENT_VERSION,
            keys=frozenset({"hyperparams", "profile", "manifest", "dataset_root"}),
            error=JobSpecError,
            max_bytes=MAX_DOCUMENT,
        )
        try:
            hyperparams = Hyperparams.decode(doc.blob("hyperparams"))
        except TrainerError as exc:
            raise doc.fail(f"hyperparameters: {exc}") from exc
        return cls(
            hyperparams=hyperparams,
            profile=doc.parsed("profile", ExecutionProfile.from_document),
            manifest_reference=doc.blob("manifest", size=32),
            dataset_root=doc.blob("dataset_root", size=32),
        )


@dataclass(frozen=True)
class ResolvedJob:
    """A spec's documents, fetched and checked, and the plan they make."""

    document: JobDocument
    manifest: DatasetManifest
    plan: JobPlan


async def upload_job_document(sink: ShardSink, batch: BatchId, document: JobDocument) -> bytes:
    """Upload the document; its reference (what ``JobSpec.hyperparams`` holds)."""
    return await put_blob(sink, batch, document.encode())


async def resolve_job(
    source: ShardSource, spec: JobSpec, *, time_limit: float = 120.0
) -> ResolvedJob:
    """Fetch and check the spec's job document and dataset manifest; the job's plan.

    `JobSpecError` when the documents contradict the spec; `StorageError` /
    `DatasetError` when they cannot be fetched or do not match their references.
    """
    data = await fetch_blob(source, bytes(spec.hyperparams), "job document", time_limit)
    document = JobDocument.decode(data)
    root = bytes(spec.dataset_root)
    if document.dataset_root != root:
        raise JobSpecError(
            f"the job document names dataset root {document.dataset_root.hex()}, "
            f"the job {root.hex()}"
        )
    manifest = await fetch_manifest(source, document.manifest_reference, time_limit=time_limit)
    if manifest.root != root:
        raise JobSpecError(
            f"dataset manifest {document.manifest_reference.hex()} has root "
            f"{manifest.root.hex()}, not the job's {root.hex()}"
        )
    try:
        plan = JobPlan(manifest, document.hyperparams, spec.seed, spec.steps, document.profile)
    except ValueError as exc:
        raise JobSpecError(f"the job cannot be planned: {exc}") from exc
    return ResolvedJob(document, manifest, plan)


# estimate_memory's terms, measured on SmolLM2-135M (torch 2.13, CPU) with peak RSS (VmHWM)
# of a process that does what a worker does: load, deep-copy, train (tests/trainer/memory_probe).
RUNTIME_BYTES = 800 * 2**20  # torch, transformers and peft imported: 0.53-0.75 GB measured
WEIGHT_COPIES = 2.5  # loaded model + the engine's deep copy + loader leftovers (2.44 measured)
LOGIT_BUFFERS = 8  # logits-sized fp32 buffers alive around the loss and its backward
VALUES_PER_HIDDEN = 24  # fp32 values kept for backward per hidden unit, layer and token
ATTENTION_BUFFERS = 3  # eager attention: scores, probabilities, dropout, per head and key
MEMORY_MARGIN = 1.1  # on top of the modelled need, which alone covers every measured peak


def estimate_memory(model_path: Path, hyperparams: Hyperparams) -> int:
    """Bytes a training run of this model needs at its peak: an upper bound, not a guess.

    The modelled need is the Python runtime with torch, the fp32 weights (loaded
    once, deep-copied for the job), and per token of a batch the logits-sized
    buffers of the loss, the activations kept for backward and the eager attention
    matrices (which grow with ``seq_len``); the estimate is that times
    `MEMORY_MARGIN`. On SmolLM2-135M the measured peak was 0.79x the estimate at
    rank 8, batch 2 x 64 tokens, and 0.70x at rank 8, batch 4 x 128
    (``bench/trainer.py`` reports both numbers for its configuration).
    """
    import gguf

    try:
        reader = gguf.GGUFReader(model_path)
    except (OSError, ValueError) as exc:
        raise JobSpecError(f"{model_path}: cannot read the GGUF ({exc})") from exc
    params = sum(int(t.n_elements) for t in reader.tensors)
    hidden = _field_int(reader, "llama.embedding_length", 1024)
    layers = _field_int(reader, "llama.block_count", 32)
    heads = _field_int(reader, "llama.attention.head_count", 32)
    vocab = _field_int(reader, "llama.vocab_size", 0) or max(
        (int(t.shape[-1]) for t in reader.tensors if t.name == "token_embd.weight"), default=50_000
    )
    tokens = hyperparams.batch_size * hyperparams.seq_len
    per_token = LOGIT_BUFFERS * vocab + layers * (
        VALUES_PER_HIDDEN * hidden + ATTENTION_BUFFERS * heads * hyperparams.seq_len
    )
    need = RUNTIME_BYTES + WEIGHT_COPIES * params * 4 + tokens * per_token * 4
    return int(MEMORY_MARGIN * need)


def _field_int(reader: object, key: str, default: int) -> int:
    field = reader.fields.get(key)  # type: ignore[attr-defined]
    if field is None:
        return default
    return int(field.parts[field.data[0]][0])


def runnable(
    spec: JobSpec,
    document: JobDocument,
    *,
    model_hash: bytes,
    profile: ExecutionProfile,
    memory_needed: int,
    memory_limit: int | None,
) -> list[str]:
    """Why this worker cannot run the job (empty: it can)."""
    reasons = []
    if bytes(spec.base_model) != model_hash:
        reasons.append(
            f"base model {bytes(spec.base_model).hex()[:16]}... is not this node's GGUF "
            f"({model_hash.hex()[:16]}...)"
        )
    if document.profile.hash != profile.hash:
        reasons.append(
            "execution profile differs: " + "; ".join(document.profile.differences(profile))
        )
    if memory_limit is not None and memory_needed > memory_limit:
        reasons.append(
            f"needs about {memory_needed / 2**30:.2f} GiB, the limit is "
            f"{memory_limit / 2**30:.2f} GiB"
        )
    return reasons
