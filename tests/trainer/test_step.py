"""Hyperparameters, batch plans and execution profiles: pure functions of the job."""

from __future__ import annotations

import dataclasses
from collections import Counter

import msgpack
import pytest

from trainer.dataset import DatasetManifest, ShardEntry
from trainer.errors import MalformedRecordError, ProfileMismatch
from trainer.profile import ExecutionProfile, current_profile
from trainer.step import Hyperparams, batch_plan, dropout_seed, float_bits


def manifest(counts: list[int]) -> DatasetManifest:
    return DatasetManifest(
        tokenizer=bytes(32),
        shard_tokens=max(counts),
        shards=tuple(ShardEntry(bytes([i + 1]) * 32, f"f{i}", n) for i, n in enumerate(counts)),
    )


def test_hyperparams_round_trip_and_every_field_changes_the_hash() -> None:
    hp = Hyperparams()
    assert Hyperparams.decode(hp.encode()) == hp
    changed = {
        dataclasses.replace(hp, learning_rate=2e-3).hash,
        dataclasses.replace(hp, rank=4).hash,
        dataclasses.replace(hp, targets=("q_proj",)).hash,
        dataclasses.replace(hp, seq_len=64).hash,
    }
    assert hp.hash not in changed
    assert len(changed) == 4


def test_hyperparams_with_wrong_types_are_refused() -> None:
    doc = msgpack.unpackb(Hyperparams().encode(), raw=False)
    doc["rank"] = 8.0
    with pytest.raises(MalformedRecordError, match="rank must be of type int"):
        Hyperparams.decode(msgpack.packb(dict(sorted(doc.items()))))
    doc["rank"] = 0
    with pytest.raises(MalformedRecordError, match="rank"):
        Hyperparams.decode(msgpack.packb(dict(sorted(doc.items()))))


def test_batch_plan_is_a_function_of_seed_and_step_within_bounds() -> None:
    m = manifest([500, 40, 300])
    hp = Hyperparams(batch_size=8, seq_len=64)
    plan = batch_plan(5, 3, m, hp)
    assert plan == batch_plan(5, 3, m, hp)
    assert plan != batch_plan(5, 4, m, hp)
    assert plan != batch_plan(6, 3, m, hp)
    for step in range(50):
        for item in batch_plan(5, step, m, hp):
            tokens = m.shards[item.shard].tokens
            assert 0 <= item.offset <= max(0, tokens - hp.seq_len)


def test_batch_plan_draws_shards_in_proportion_to_their_tokens() -> None:
    m = manifest([900, 100])
    hp = Hyperparams(batch_size=10, seq_len=16)
    counts = Counter(item.shard for s in range(200) for item in batch_plan(1, s, m, hp))
    share = counts[0] / (counts[0] + counts[1])
    assert 0.86 < share < 0.94


def test_dropout_seed_and_float_bits() -> None:
    assert dropout_seed(1, 2) == dropout_seed(1, 2) != dropout_seed(1, 3)
    assert 0 <= dropout_seed(2**64 - 1, 2**32) < 2**63
    assert float_bits(1.0) == 0x3F800000
    assert float_bits(-2.0) == 0xC0000000


def test_profile_hash_names_every_setting_and_mismatch_is_a_refusal() -> None:
    here = current_profile()
    assert here.hash == ExecutionProfile(**dataclasses.asdict(here)).hash
    other = dataclasses.replace(here, threads=here.threads + 1, cpu_capability="DEFAULT")
    assert other.hash != here.hash
    here.require(here.hash)
    with pytest.raises(ProfileMismatch) as caught:
        here.require(other.hash, other)
    message = str(caught.value)
    assert "threads" in message
    assert "cpu_capability" in message
    assert "not evidence" in message
