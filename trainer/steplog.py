"""The step log: one canonical record per step, a Merkle root over them, checkpoints on Swarm.

A `StepRecord` is what `TrainingMarket.challenge` receives as `record`: its leaf
is keccak256(0x00 || record bytes) in `chain.merkle.StepLogTree`, whose root the
trainer submits as `logRoot`. A record carries its index, the batch (per row: shard
reference, shard index, offset and the shard's inclusion proof to the dataset
root), the seed, the hyperparameters hash, the trainable-state hash before and
after, the loss as float32 bits and the execution-profile hash.

`RunManifest` is the job result document on Swarm: the log's reference, the
checkpoints (state before every K-th step and after the last, by reference and
state hash), the adapter's reference and hash, and the full `ExecutionProfile` the
steps ran under (every record names its hash; a verifier reads the torch version,
CPU capability, threads and dtype here). Format-1 manifests, written before the
profile was added, are still read, with the profile unknown (None): replay needs
only the job's pinned profile and the records' hashes, so nothing is lost but the
field-by-field explanation when a record names another profile. `upload_run` / `fetch_run` move it;
`fetch_checkpoint` brings back one checkpoint and checks it against its hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chain.merkle import StepLogTree, verify_proof
from swarm_vectordb.bee import BatchId, keccak256
from trainer import codec
from trainer.blobs import fetch_blob, put_blob
from trainer.dataset import ShardSink, ShardSource, check_inclusion
from trainer.errors import (
    CheckpointError,
    CheckpointMissing,
    InclusionProofError,
    MalformedRecordError,
    StepLogError,
    StorageError,
)
from trainer.profile import ExecutionProfile, current_profile

__all__ = [
    "RECORD_VERSION",
    "BatchEntry",
    "CheckpointEntry",
    "RunManifest",
    "StepLog",
    "StepRecord",
    "fetch_checkpoint",
    "fetch_run",
    "first_malformed",
    "raw_records",
    "upload_run",
]

RECORD_VERSION = 1
LOG_VERSION = 1
RUN_VERSION = 2  # 2: the manifest carries the full execution profile
RUN_VERSION_NO_PROFILE = 1  # still read: its profile is unknown (records carry its hash)
MAX_RECORD = 64 * 1024
MAX_PROOF_DEPTH = 40


@dataclass(frozen=True)
class BatchEntry:
    """One batch row: the shard it reads (reference, leaf index, proof) and the offset."""

    reference: bytes
    shard: int
    offset: int
    proof: tuple[bytes, ...]

    def check(self, dataset_root: bytes) -> None:
        """`InclusionProofError` unless the shard is leaf `shard` under `dataset_root`."""
        check_inclusion(self.reference, self.shard, self.proof, dataset_root)


@dataclass(frozen=True)
class StepRecord:
    """The committed account of one training step."""

    index: int
    batch: tuple[BatchEntry, ...]
    seed: int
    hyperparams: bytes  # keccak of the hyperparameter document
    pre_state: bytes  # keccak of the trainable state before the step
    post_state: bytes  # ... and after it
    loss_bits: int  # float32 bits of the step's loss
    profile: bytes  # execution-profile hash the step ran under

    def encode(self) -> bytes:
        return codec.pack(
            {
                "version": RECORD_VERSION,
                "index": self.index,
                "batch": [[b.reference, b.shard, b.offset, list(b.proof)] for b in self.batch],
                "seed": self.seed,
                "hyperparams": self.hyperparams,
                "pre_state": self.pre_state,
                "post_state": self.post_state,
                "loss_bits": self.loss_bits,
                "profile": self.profile,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> StepRecord:
        doc = codec.unpack(
            data,
            what="step record",
            version=RECORD_VERSION,
            keys=frozenset(
                {
                    "index",
                    "batch",
                    "seed",
                    "hyperparams",
                    "pre_state",
                    "post_state",
                    "loss_bits",
                    "profile",
                }
            ),
            error=MalformedRecordError,
            max_bytes=MAX_RECORD,
        )
        batch = []
        for row in doc.items("batch", max_len=4096):
            if (
                not isinstance(row, list)
                or len(row) != 4
                or not isinstance(row[0], bytes)
                or len(row[0]) != 32
                or type(row[1]) is not int
                or type(row[2]) is not int
                or row[1] < 0
                or row[2] < 0
                or not isinstance(row[3], list)
                or len(row[3]) > MAX_PROOF_DEPTH
                or not all(isinstance(p, bytes) and len(p) == 32 for p in row[3])
            ):
                raise doc.fail(f"malformed batch row {str(row)[:80]}")
            batch.append(BatchEntry(row[0], row[1], row[2], tuple(row[3])))
        if not batch:
            raise doc.fail("empty batch")
        return cls(
            index=doc.integer("index", high=2**32 - 1),
            batch=tuple(batch),
            seed=doc.integer("seed"),
            hyperparams=doc.blob("hyperparams", size=32),
            pre_state=doc.blob("pre_state", size=32),
            post_state=doc.blob("post_state", size=32),
            loss_bits=doc.integer("loss_bits", high=2**32 - 1),
            profile=doc.blob("profile", size=32),
        )


class StepLog:
    """Records in step order and the Merkle tree the chain verifies."""

    def __init__(self, records: Sequence[StepRecord]) -> None:
        if not records:
            raise StepLogError("a step log needs at least one record")
        for position, record in enumerate(records):
            if record.index != position:
                raise StepLogError(f"record at position {position} claims step {record.index}")
        self.records = list(records)
        self.encoded = [r.encode() for r in records]
        self._tree = StepLogTree(self.encoded)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def root(self) -> bytes:
        return self._tree.root

    def proof(self, step: int) -> list[bytes]:
        return self._tree.proof(step)

    def challenge_args(self, step: int) -> tuple[int, bytes, list[bytes]]:
        """(step, record bytes, proof): what `TrainingMarket.challenge` takes for `step`."""
        return step, self.encoded[step], self.proof(step)

    @staticmethod
    def verify_record(record: bytes, step: int, proof: Sequence[bytes], root: bytes) -> StepRecord:
        """A record received with a proof, trusted only if it is leaf `step` under `root`."""
        if not verify_proof(record, step, proof, root):
            raise InclusionProofError(f"record is not step {step} of log root {root.hex()}")
        decoded = StepRecord.decode(record)
        if decoded.index != step:
            raise MalformedRecordError(f"record claims step {decoded.index}, proven at {step}")
        return decoded

    def encode(self) -> bytes:
        return codec.pack({"version": LOG_VERSION, "records": self.encoded})

    @classmethod
    def decode(cls, data: bytes) -> StepLog:
        return cls([StepRecord.decode(r) for r in raw_records(data)])


def raw_records(data: bytes) -> list[bytes]:
    """The log document's records as committed bytes, not decoded yet.

    A log whose document is sound but one of whose records is not can still be
    disputed: the Merkle root is over these bytes (`first_malformed` finds which).
    """
    doc = codec.unpack(
        data,
        what="step log",
        version=LOG_VERSION,
        keys=frozenset({"records"}),
        error=MalformedRecordError,
    )
    raw = doc.items("records", max_len=10_000_000)
    if not all(isinstance(r, bytes) for r in raw):
        raise doc.fail("records must be byte strings")
    return list(raw)


def first_malformed(records: Sequence[bytes]) -> tuple[int, str] | None:
    """The first record that does not decode, or claims another position; with the reason."""
    for position, raw in enumerate(records):
        try:
            record = StepRecord.decode(raw)
        except MalformedRecordError as exc:
            return position, str(exc)
        if record.index != position:
            return position, f"record at position {position} claims step {record.index}"
    return None


@dataclass(frozen=True)
class CheckpointEntry:
    step: int  # the state before this step (== steps: the final state)
    state_hash: bytes
    reference: bytes


@dataclass(frozen=True)
class RunManifest:
    """The job result on Swarm: where the log, checkpoints and adapter are."""

    log_root: bytes
    log_reference: bytes
    steps: int
    checkpoints: tuple[CheckpointEntry, ...]
    adapter_reference: bytes
    adapter_hash: bytes
    # What every step ran under (records carry its hash). None: a format-1 manifest,
    # written before manifests named the profile; it encodes as format 1 again.
    profile: ExecutionProfile | None

    def encode(self) -> bytes:
        body = (
            {"version": RUN_VERSION_NO_PROFILE}
            if self.profile is None
            else {"version": RUN_VERSION, "profile": self.profile.as_document()}
        )
        return codec.pack(
            {
                **body,
                "log_root": self.log_root,
                "log_reference": self.log_reference,
                "steps": self.steps,
                "checkpoints": [[c.step, c.state_hash, c.reference] for c in self.checkpoints],
                "adapter_reference": self.adapter_reference,
                "adapter_hash": self.adapter_hash,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> RunManifest:
        """Format 2, or format 1 (profile None); a format-2 error if it is neither."""
        keys = frozenset(
            {
                "log_root",
                "log_reference",
                "steps",
                "checkpoints",
                "adapter_reference",
                "adapter_hash",
            }
        )
        profile: ExecutionProfile | None
        try:
            doc = codec.unpack(
                data,
                what="run manifest",
                version=RUN_VERSION,
                keys=keys | {"profile"},
                error=StepLogError,
            )
            profile = doc.parsed("profile", ExecutionProfile.from_document)
        except StepLogError as exc:
            try:
                doc = codec.unpack(
                    data,
                    what="run manifest (format 1)",
                    version=RUN_VERSION_NO_PROFILE,
                    keys=keys,
                    error=StepLogError,
                )
            except StepLogError:
                raise exc from None
            profile = None
        entries = []
        for item in doc.items("checkpoints", max_len=1_000_000):
            if (
                not isinstance(item, list)
                or len(item) != 3
                or type(item[0]) is not int
                or not all(isinstance(x, bytes) and len(x) == 32 for x in item[1:])
            ):
                raise doc.fail(f"malformed checkpoint entry {str(item)[:80]}")
            entries.append(CheckpointEntry(item[0], item[1], item[2]))
        return cls(
            log_root=doc.blob("log_root", size=32),
            log_reference=doc.blob("log_reference", size=32),
            steps=doc.integer("steps", low=1, high=2**32 - 1),
            checkpoints=tuple(entries),
            adapter_reference=doc.blob("adapter_reference", size=32),
            adapter_hash=doc.blob("adapter_hash", size=32),
            profile=profile,
        )

    def nearest_checkpoint(self, step: int) -> CheckpointEntry:
        """The latest checkpoint at or before `step`; `CheckpointMissing` if none."""
        before = [c for c in self.checkpoints if c.step <= step]
        if not before:
            raise CheckpointMissing(f"no checkpoint at or before step {step}")
        return max(before, key=lambda c: c.step)


async def upload_run(
    sink: ShardSink,
    batch: BatchId,
    log: StepLog,
    checkpoints: Mapping[int, bytes],
    adapter: bytes,
    *,
    profile: ExecutionProfile | None = None,
) -> tuple[bytes, RunManifest, int]:
    """Upload log, checkpoints (state bytes by step), adapter and the run manifest.

    `profile` is what the steps ran under (default: this process's). Returns
    (manifest reference, manifest, bytes uploaded).
    """
    log_bytes = log.encode()
    steps = sorted(checkpoints)
    log_ref, adapter_ref, *refs = await asyncio.gather(
        put_blob(sink, batch, log_bytes),
        put_blob(sink, batch, adapter),
        *(put_blob(sink, batch, checkpoints[s]) for s in steps),
    )
    manifest = RunManifest(
        log_root=log.root,
        log_reference=log_ref,
        steps=len(log),
        checkpoints=tuple(
            CheckpointEntry(s, keccak256(checkpoints[s]), r)
            for s, r in zip(steps, refs, strict=True)
        ),
        adapter_reference=adapter_ref,
        adapter_hash=keccak256(adapter),
        profile=current_profile() if profile is None else profile,
    )
    encoded = manifest.encode()
    reference = await put_blob(sink, batch, encoded)
    sent = len(log_bytes) + len(adapter) + sum(len(c) for c in checkpoints.values()) + len(encoded)
    return reference, manifest, sent


async def fetch_run(
    source: ShardSource, reference: bytes, *, time_limit: float = 120.0
) -> tuple[RunManifest, StepLog]:
    """The run manifest and its step log, the log checked against the manifest's root."""
    manifest = RunManifest.decode(await fetch_blob(source, reference, "run manifest", time_limit))
    log = StepLog.decode(await fetch_blob(source, manifest.log_reference, "step log", time_limit))
    if log.root != manifest.log_root or len(log) != manifest.steps:
        raise StepLogError("the step log on Swarm does not match the run manifest's root")
    return manifest, log


async def fetch_checkpoint(
    source: ShardSource, entry: CheckpointEntry, *, time_limit: float = 120.0
) -> bytes:
    """One checkpoint's bytes; `CheckpointMissing` if Swarm cannot serve them."""
    try:
        data = await fetch_blob(source, entry.reference, "checkpoint", time_limit)
    except StorageError as exc:
        raise CheckpointMissing(f"checkpoint of step {entry.step} is missing: {exc}") from exc
    if keccak256(data) != entry.state_hash:
        raise CheckpointError(f"checkpoint of step {entry.step} does not hash to its state hash")
    return data
