"""Step records and the log tree: canonical bytes, the contract's leaf hashing, hostile input."""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest
import torch
from Crypto.Hash import keccak

from tests.trainer.conftest import Swarm
from trainer import codec
from trainer.errors import (
    CheckpointError,
    CheckpointMissing,
    InclusionProofError,
    MalformedRecordError,
    StepLogError,
)
from trainer.profile import ExecutionProfile, current_profile
from trainer.state import TensorState, TrainerState
from trainer.steplog import (
    BatchEntry,
    CheckpointEntry,
    RunManifest,
    StepLog,
    StepRecord,
    fetch_checkpoint,
    fetch_run,
    first_malformed,
    raw_records,
    upload_run,
)


def k(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def record(index: int, *, post: bytes | None = None) -> StepRecord:
    return StepRecord(
        index=index,
        batch=(BatchEntry(k(b"shard%d" % index), 2, 17, (k(b"a"), k(b"b"))),),
        seed=42,
        hyperparams=k(b"hp"),
        pre_state=k(b"state%d" % index),
        post_state=post or k(b"state%d" % (index + 1)),
        loss_bits=0x40490FDB,
        profile=k(b"profile"),
    )


def test_record_round_trips_byte_exactly() -> None:
    r = record(3)
    assert StepRecord.decode(r.encode()) == r
    assert StepRecord.decode(r.encode()).encode() == r.encode()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("loss_bits"), "missing fields"),
        (lambda d: d.update(extra=1), "unexpected fields"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(pre_state=b"short"), "pre_state must be 32 bytes"),
        (lambda d: d.update(index=-1), "index must be an integer"),
        (lambda d: d.update(loss_bits=2**32), "loss_bits"),
        (lambda d: d.update(batch=[]), "empty batch"),
        (lambda d: d.update(batch=[[b"x" * 32, 0, 0, [b"short"]]]), "malformed batch row"),
        (lambda d: d.update(seed=1.5), "seed must be an integer"),
    ],
)
def test_malformed_records_are_refused_with_the_field_named(mutate, message) -> None:  # type: ignore[no-untyped-def]
    doc = msgpack.unpackb(record(0).encode(), raw=False)
    mutate(doc)
    data = msgpack.packb(dict(sorted(doc.items())), use_bin_type=True)
    with pytest.raises(MalformedRecordError, match=message):
        StepRecord.decode(data)


def test_garbage_and_non_canonical_records_are_refused() -> None:
    with pytest.raises(MalformedRecordError, match="not msgpack"):
        StepRecord.decode(b"\xc1\xc1")
    with pytest.raises(MalformedRecordError, match="expected a map"):
        StepRecord.decode(msgpack.packb([1, 2]))
    doc = msgpack.unpackb(record(0).encode(), raw=False)
    unsorted = msgpack.packb(dict(reversed(sorted(doc.items()))), use_bin_type=True)
    with pytest.raises(MalformedRecordError, match="canonical"):
        StepRecord.decode(unsorted)
    with pytest.raises(MalformedRecordError):
        StepRecord.decode(record(0).encode()[:-1])


def test_log_root_uses_the_contract_leaf_and_node_hashing() -> None:
    records = [record(i) for i in range(3)]
    log = StepLog(records)
    leaves = [k(b"\x00" + r.encode()) for r in records] + [bytes(32)]
    expected = k(b"\x01" + k(b"\x01" + leaves[0] + leaves[1]) + k(b"\x01" + leaves[2] + leaves[3]))
    assert log.root == expected
    step, data, proof = log.challenge_args(2)
    assert StepLog.verify_record(data, step, proof, log.root) == records[2]
    with pytest.raises(InclusionProofError):
        StepLog.verify_record(data, 1, proof, log.root)
    with pytest.raises(InclusionProofError):
        StepLog.verify_record(records[1].encode(), 2, proof, log.root)


def test_log_refuses_records_out_of_order_and_round_trips() -> None:
    with pytest.raises(StepLogError, match="claims step 2"):
        StepLog([record(0), record(2)])
    log = StepLog([record(0), record(1)])
    assert StepLog.decode(log.encode()).root == log.root


def small_state(seed: int) -> TrainerState:
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(4, 3, generator=g)
    return TrainerState(
        {"layers.000.q_proj.lora_a": TensorState(value, value * 0.5, value.abs())}, updates=seed
    )


def test_state_bytes_are_canonical_and_hash_changes_with_one_bit() -> None:
    state = small_state(1)
    again = TrainerState.decode(state.encode())
    assert again.encode() == state.encode()
    assert again.hash == state.hash
    flipped = state.clone()
    raw = flipped.tensors["layers.000.q_proj.lora_a"].value.numpy().view(np.uint32)
    raw[0, 0] ^= 1
    assert flipped.hash != state.hash
    with pytest.raises(CheckpointError):
        TrainerState.decode(state.encode()[:-4])


@pytest.mark.asyncio
async def test_run_upload_and_fetch_with_missing_and_wrong_checkpoints(swarm: Swarm) -> None:
    log = StepLog([record(i) for i in range(4)])
    checkpoints = {0: small_state(0).encode(), 4: small_state(4).encode()}
    ref, manifest, sent = await upload_run(
        swarm.client, swarm.batch, log, checkpoints, b"GGUF adapter bytes"
    )
    assert sent > sum(len(c) for c in checkpoints.values())
    fetched, fetched_log = await fetch_run(swarm.client, ref)
    assert fetched == manifest
    assert fetched_log.root == log.root
    entry = fetched.nearest_checkpoint(3)
    assert entry.step == 0
    assert await fetch_checkpoint(swarm.client, entry) == checkpoints[0]
    with pytest.raises(CheckpointMissing, match="step 0 is missing"):
        await fetch_checkpoint(
            swarm.client, CheckpointEntry(0, entry.state_hash, k(b"never uploaded"))
        )
    with pytest.raises(CheckpointError, match="does not hash"):
        await fetch_checkpoint(
            swarm.client, CheckpointEntry(0, k(b"another state"), entry.reference)
        )
    no_early = dataclasses.replace(fetched, checkpoints=fetched.checkpoints[1:])
    with pytest.raises(CheckpointMissing, match="no checkpoint at or before step 3"):
        no_early.nearest_checkpoint(3)


@pytest.mark.asyncio
async def test_a_log_on_swarm_with_a_malformed_record_is_refused(swarm: Swarm) -> None:
    log = StepLog([record(0), record(1)])
    ref, manifest, _ = await upload_run(swarm.client, swarm.batch, log, {}, b"adapter")
    bad_log = msgpack.packb(
        {"records": [record(0).encode(), b"\x81\xa5index\x01"], "version": 1}, use_bin_type=True
    )
    bad_ref = await swarm.client.upload_bytes(bad_log, swarm.batch)
    forged = dataclasses.replace(manifest, log_reference=bytes(bad_ref))
    forged_ref = await swarm.client.upload_bytes(forged.encode(), swarm.batch)
    with pytest.raises(MalformedRecordError, match="step record"):
        await fetch_run(swarm.client, bytes(forged_ref))
    # A well-formed log that is not the one the manifest's root commits is refused too.
    other = StepLog([record(0), record(1, post=k(b"elsewhere"))])
    other_ref = await swarm.client.upload_bytes(other.encode(), swarm.batch)
    swapped = dataclasses.replace(manifest, log_reference=bytes(other_ref))
    swapped_ref = await swarm.client.upload_bytes(swapped.encode(), swarm.batch)
    with pytest.raises(StepLogError, match="does not match the run manifest"):
        await fetch_run(swarm.client, bytes(swapped_ref))
    assert (await fetch_run(swarm.client, ref))[1].root == log.root


@pytest.mark.asyncio
async def test_the_run_manifest_publishes_the_full_execution_profile(swarm: Swarm) -> None:
    log = StepLog([record(0), record(1)])
    made_under = ExecutionProfile("2.0.0+cpu", "AVX512", 7, deterministic=True)
    ref, manifest, _ = await upload_run(
        swarm.client, swarm.batch, log, {}, b"adapter", profile=made_under
    )
    fetched, _ = await fetch_run(swarm.client, ref)
    assert fetched.profile == made_under
    assert fetched.profile.describe() == (
        "torch 2.0.0+cpu, AVX512, 7 threads, float32, deterministic, cpu"
    )
    # The default is the profile this process runs.
    _, default, _ = await upload_run(swarm.client, swarm.batch, log, {}, b"adapter")
    assert default.profile == current_profile()
    # Its fields are part of the committed bytes: a manifest with a profile of the
    # wrong shape does not decode, and names the field.
    doc = msgpack.unpackb(manifest.encode(), raw=False)
    doc["profile"]["threads"] = "7"
    with pytest.raises(StepLogError, match="profile: threads must be of type int"):
        RunManifest.decode(codec.pack(doc))
    del doc["profile"]["threads"]
    with pytest.raises(StepLogError, match="profile: a profile must be a map"):
        RunManifest.decode(codec.pack(doc))


def test_first_malformed_names_the_committed_record_that_does_not_decode() -> None:
    good = [record(i).encode() for i in range(3)]
    assert first_malformed(good) is None
    log_bytes = codec.pack({"version": 1, "records": [good[0], b"\x81\xa5index\x01", good[2]]})
    raw = raw_records(log_bytes)
    assert raw[1] == b"\x81\xa5index\x01"
    found = first_malformed(raw)
    assert found is not None
    assert found[0] == 1
    assert "step record" in found[1]
    # A well-formed record at the wrong position is just as unusable.
    shuffled = first_malformed([good[0], good[2], good[1]])
    assert shuffled == (1, "record at position 1 claims step 2")
    with pytest.raises(MalformedRecordError, match="records must be byte strings"):
        raw_records(codec.pack({"version": 1, "records": [good[0], 5]}))
