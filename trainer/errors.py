"""The trainer package's one error tree.

    TrainerError                     anything this package raises on purpose
    ├── DatasetError                 a dataset cannot be built, fetched or trusted
    │   ├── ShardReferenceMismatch   shard bytes that do not hash to the reference asked for
    │   ├── InclusionProofError      a shard reference whose proof does not reach the root
    │   └── MalformedShardError      bytes that are not a canonical shard or manifest
    ├── BaseModelError               the base GGUF cannot be loaded for training
    ├── ProfileMismatch              this process's execution profile is not the job's
    ├── DeviceUnavailable            the device a profile names (CUDA) is not usable here
    ├── StepLogError                 a step log that cannot be trusted or used
    │   └── MalformedRecordError     a record that is not canonical (fields, sizes, version)
    │       └── MalformedLogError    ... inside a committed log: disputable (`verdict`)
    ├── CheckpointError              a checkpoint that is missing, malformed or wrong
    │   └── CheckpointMissing        no checkpoint at or before the step to replay
    ├── StorageError                 Swarm failed while uploading or fetching trainer data
    └── ExportError                  the trained adapter cannot be written as a GGUF adapter

A `ProfileMismatch` is a refusal, never an accusation: a replay under another
profile proves nothing about the trainer. Errors from Swarm, torch, transformers and
msgpack are translated where they enter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.verify import Verdict

__all__ = [
    "BaseModelError",
    "CheckpointError",
    "CheckpointMissing",
    "DatasetError",
    "DeviceUnavailable",
    "ExportError",
    "InclusionProofError",
    "MalformedLogError",
    "MalformedRecordError",
    "MalformedShardError",
    "ProfileMismatch",
    "ShardReferenceMismatch",
    "StepLogError",
    "StorageError",
    "TrainerError",
]


class TrainerError(Exception):
    """Base class for every error raised by the trainer package."""


class DatasetError(TrainerError):
    """A dataset cannot be built, fetched or trusted."""


class ShardReferenceMismatch(DatasetError):
    """Bytes served for a shard do not hash to the shard's Swarm reference."""

    def __init__(self, expected: bytes, actual: bytes) -> None:
        super().__init__(
            f"shard bytes hash to {actual.hex()}, not to the reference asked for {expected.hex()}"
        )
        self.expected = expected
        self.actual = actual


class InclusionProofError(DatasetError):
    """A shard reference whose Merkle proof does not lead to the dataset root."""


class MalformedShardError(DatasetError):
    """Bytes that are not a canonical shard or dataset manifest."""


class BaseModelError(TrainerError):
    """The base model GGUF cannot be loaded (missing, unsupported type, bad tensors)."""


class ProfileMismatch(TrainerError):
    """The running process's execution profile differs from the one a job pins.

    Replay is promised bit-exact only under the same profile, so this is a refusal
    to judge, not evidence against anybody.
    """

    def __init__(self, expected: bytes, actual: bytes, differences: list[str]) -> None:
        detail = "; ".join(differences) if differences else "profile hashes differ"
        super().__init__(
            f"refusing to replay: this process runs execution profile {actual.hex()[:16]}, "
            f"the job pins {expected.hex()[:16]} ({detail}); a replay under another profile "
            "is not evidence either way"
        )
        self.expected = expected
        self.actual = actual
        self.differences = differences


class DeviceUnavailable(TrainerError):
    """The device a profile or the owner asks for (CUDA) cannot be used by this process.

    Like `ProfileMismatch`, a reason not to run or judge, never evidence.
    """


class StepLogError(TrainerError):
    """A step log that cannot be trusted or used."""


class MalformedRecordError(StepLogError):
    """A step record that is not canonical: wrong fields, sizes, types or version."""


class MalformedLogError(MalformedRecordError):
    """A committed step log holds a record that is not canonical.

    The log cannot be replayed, but it can be disputed: `verdict` names the first
    malformed step and carries the challenge (records i-1 and i with their proofs).
    """

    def __init__(self, message: str, verdict: Verdict) -> None:
        super().__init__(message)
        self.verdict = verdict


class CheckpointError(TrainerError):
    """A checkpoint that is malformed or does not match the log."""


class CheckpointMissing(CheckpointError):
    """No checkpoint is available at or before the step to replay."""


class StorageError(TrainerError):
    """Swarm failed while uploading or fetching trainer data."""


class ExportError(TrainerError):
    """The trained adapter cannot be written as a GGUF LoRA adapter."""
