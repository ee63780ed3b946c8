"""Verifiable LoRA training: datasets on Swarm, deterministic steps, step logs, replay, export.

Nobody has to trust the trainer: every step's batch, state hashes and loss are
committed in a Merkle tree the `TrainingMarket` contract verifies, and any step
can be re-run bit for bit from the nearest checkpoint under the job's pinned
execution profile. Depends on `chain` and `swarm_vectordb.bee` only (never on
`agent`: the base GGUF's path is passed in).

Modules and what each owns:

- ``errors``: the ``TrainerError`` tree (drawn in its docstring).
- ``codec``: canonical msgpack (sorted keys, strict bounded decoding) for
  everything that is hashed.
- ``tokenizer``: ``GgufTokenizer``, the base GGUF's own vocabulary via llama.cpp.
- ``dataset``: files -> tokenized ``Shard``s -> ``DatasetManifest`` (Merkle root a
  DatasetDAO stores); upload to Swarm, fetch with reference and proof checks.
- ``blobs``: ``put_blob`` / ``fetch_blob``, any other bytes on Swarm with the
  reference recomputed here (job documents, step logs, checkpoints, adapters).
- ``profile``: ``ExecutionProfile`` (torch version, CPU capability, threads,
  dtype, determinism; on CUDA the GPU, CUDA/cuDNN versions, cuBLAS workspace,
  TF32), its hash, ``pin_profile``, ``cuda_unavailable``.
- ``model``: ``load_base_model`` (GGUF -> fp32 transformers Llama),
  ``LoraModel`` (peft LoRA on attention projections, canonical tensor names).
- ``basecache``: those fp32 weights cached as safetensors (keyed by the GGUF's hash
  and the torch/transformers versions, SHA-256 checked) so a process starts in seconds.
- ``state``: ``TrainerState``, LoRA tensors and Adam moments as canonical bytes
  (its keccak is the committed state hash; its bytes the checkpoint).
- ``step``: ``Hyperparams``, the batch plan and dropout seed from (seed, step),
  ``run_step`` (forward, backward, Adam).
- ``steplog``: ``StepRecord``, ``StepLog`` (Merkle tree as the contract checks
  it), ``RunManifest``; uploading and fetching runs and checkpoints.
- ``engine``: ``JobPlan``, ``StepEngine`` (step, train with checkpoints),
  ``load_shards``.
- ``replay``: ``replay`` a step from a checkpoint and compare with its record.
- ``export``: the trained LoRA as a GGUF adapter llama.cpp loads (q/k permuted).
- ``verify``: the verifier's library: sample steps, replay, first wrong step,
  challenge arguments (records i-1 and i with proofs).
- ``jobspec``: the job document on Swarm (hyperparameters, pinned profile, dataset
  manifest) and how an on-chain ``JobSpec`` becomes a ``JobPlan``.
- ``control``: ``WorkerControl`` (pause and stop at step boundaries), ``Stopped``,
  the test-only ``Dishonesty``.
- ``localrun``: ``LocalRun``, one job's state on local disk (resume after a kill;
  the uploaded run kept for disputes; removed once the job is settled).
- ``execution``: ``train_job`` (resumable training of one job) and
  ``upload_and_describe`` (adapter export, run upload).
- ``disputes``: ``DisputeDefence``, the trainer's side of a dispute about its own
  job (keep the data on Swarm, report progress, draw, resolve).
- ``worker``: the market loop of ``noosphere train worker`` and of a node's
  in-process worker (``Worker.run``, ``Worker.run_until``): claim, train, submit,
  defend, finalize, withdraw, clean up.
- ``validator``: the committee member's side of a dispute: re-execute the step, vote.
"""

from __future__ import annotations

from trainer.dataset import (
    DEFAULT_SHARD_TOKENS,
    BuiltDataset,
    DatasetManifest,
    DatasetUpload,
    Shard,
    ShardEntry,
    build_dataset,
    fetch_manifest,
    fetch_shard,
    swarm_reference,
    upload_dataset,
)
from trainer.engine import JobPlan, StepEngine, TrainingRun, load_shards
from trainer.errors import (
    BaseModelError,
    CheckpointError,
    CheckpointMissing,
    DatasetError,
    DeviceUnavailable,
    ExportError,
    InclusionProofError,
    MalformedLogError,
    MalformedRecordError,
    MalformedShardError,
    ProfileMismatch,
    ShardReferenceMismatch,
    StepLogError,
    StorageError,
    TrainerError,
)
from trainer.export import adapter_bytes, export_adapter
from trainer.model import LoraModel, LoraSpec, base_model_hash, load_base_model
from trainer.profile import ExecutionProfile, cuda_unavailable, current_profile, pin_profile
from trainer.replay import ReplayResult, StepMismatch, replay, replay_from
from trainer.state import TrainerState
from trainer.step import Hyperparams
from trainer.steplog import (
    CheckpointEntry,
    RunManifest,
    StepLog,
    StepRecord,
    fetch_checkpoint,
    fetch_run,
    upload_run,
)
from trainer.tokenizer import GgufTokenizer
from trainer.verify import ChallengeArgs, Verdict, challenge_args, sample_steps, verify_run

__all__ = [
    "DEFAULT_SHARD_TOKENS",
    "BaseModelError",
    "BuiltDataset",
    "ChallengeArgs",
    "CheckpointEntry",
    "CheckpointError",
    "CheckpointMissing",
    "DatasetError",
    "DatasetManifest",
    "DatasetUpload",
    "DeviceUnavailable",
    "ExecutionProfile",
    "ExportError",
    "GgufTokenizer",
    "Hyperparams",
    "InclusionProofError",
    "JobPlan",
    "LoraModel",
    "LoraSpec",
    "MalformedLogError",
    "MalformedRecordError",
    "MalformedShardError",
    "ProfileMismatch",
    "ReplayResult",
    "RunManifest",
    "Shard",
    "ShardEntry",
    "ShardReferenceMismatch",
    "StepEngine",
    "StepLog",
    "StepLogError",
    "StepMismatch",
    "StepRecord",
    "StorageError",
    "TrainerError",
    "TrainerState",
    "TrainingRun",
    "Verdict",
    "adapter_bytes",
    "base_model_hash",
    "build_dataset",
    "challenge_args",
    "cuda_unavailable",
    "current_profile",
    "export_adapter",
    "fetch_checkpoint",
    "fetch_manifest",
    "fetch_run",
    "fetch_shard",
    "load_base_model",
    "load_shards",
    "pin_profile",
    "replay",
    "replay_from",
    "sample_steps",
    "swarm_reference",
    "upload_dataset",
    "upload_run",
    "verify_run",
]
