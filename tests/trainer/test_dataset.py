"""Datasets: per-file shards, the Merkle root a DAO stores, verified fetches from Swarm."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from Crypto.Hash import keccak

from tests.trainer.conftest import Swarm, write_corpus
from trainer.dataset import (
    DatasetManifest,
    Shard,
    build_dataset,
    fetch_manifest,
    fetch_shard,
    swarm_reference,
    upload_dataset,
)
from trainer.errors import (
    DatasetError,
    InclusionProofError,
    MalformedShardError,
    ShardReferenceMismatch,
)
from trainer.tokenizer import GgufTokenizer

CORPUS = {
    "alpha.txt": "Alpha is the first letter. " * 40,
    "beta.md": "# Beta\n\nBeta follows alpha in the Greek alphabet. " * 30,
    "gamma.jsonl": "\n".join(json.dumps({"text": f"Gamma fact number {i}."}) for i in range(50)),
}


def k(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def test_shard_round_trips_and_rejects_non_canonical_bytes() -> None:
    shard = Shard("a.txt", bytes(range(32)), 3, np.arange(10, dtype=np.uint32))
    decoded = Shard.decode(shard.encode())
    assert decoded.source == "a.txt"
    assert decoded.part == 3
    assert decoded.tokens.tolist() == list(range(10))
    import msgpack

    loose = msgpack.packb(
        {"version": 1, "tokens": b"\0" * 8, "source": "a", "source_hash": b"\0" * 32, "part": 0}
    )
    with pytest.raises(MalformedShardError, match="canonical"):
        Shard.decode(loose)
    with pytest.raises(MalformedShardError, match="unexpected fields"):
        Shard.decode(
            msgpack.packb(
                {
                    "extra": 1,
                    "part": 0,
                    "source": "a",
                    "source_hash": b"\0" * 32,
                    "tokens": b"\0" * 4,
                    "version": 1,
                }
            )
        )
    with pytest.raises(MalformedShardError, match="uint32"):
        Shard.decode(
            msgpack.packb(
                {
                    "part": 0,
                    "source": "a",
                    "source_hash": b"\0" * 32,
                    "tokens": b"\0" * 5,
                    "version": 1,
                }
            )
        )


def test_tokens_decode_back_to_the_text(tokenizer: GgufTokenizer, tmp_path: Path) -> None:
    paths = write_corpus(tmp_path, {"one.txt": "The capital of Zorblax is Quintara."})
    built = build_dataset(paths, tokenizer, shard_tokens=64)
    shard = Shard.decode(built.shard_bytes[built.manifest.shards[0].reference])
    assert shard.tokens[-1] == tokenizer.eos
    assert tokenizer.decode(shard.tokens[:-1].tolist()) == "The capital of Zorblax is Quintara."


def test_root_is_the_contract_merkle_root_over_shard_references(
    tokenizer: GgufTokenizer, tmp_path: Path
) -> None:
    built = build_dataset(write_corpus(tmp_path, CORPUS), tokenizer, shard_tokens=128)
    refs = built.manifest.references
    assert len(refs) >= 3
    # Oracle: the same tree computed here from keccak alone (pad to a power of two).
    level = [k(b"\x00" + r) for r in refs]
    width = 1 << (len(level) - 1).bit_length()
    level += [bytes(32)] * (width - len(level))
    while len(level) > 1:
        level = [k(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    assert built.manifest.root == level[0]
    # Every reference is the Swarm content address of its shard's bytes.
    for ref in refs:
        assert swarm_reference(built.shard_bytes[ref]) == ref


def test_shards_depend_only_on_their_file_so_a_fork_shares_them(
    tokenizer: GgufTokenizer, tmp_path: Path
) -> None:
    base = build_dataset(write_corpus(tmp_path / "a", CORPUS), tokenizer, shard_tokens=128)
    more = dict(CORPUS, **{"delta.txt": "Delta is new in the fork. " * 50})
    fork = build_dataset(write_corpus(tmp_path / "b", more), tokenizer, shard_tokens=128)
    shared = set(base.manifest.references) & set(fork.manifest.references)
    assert shared == set(base.manifest.references)
    assert len(fork.manifest.references) > len(shared)
    assert fork.manifest.root != base.manifest.root
    # Argument order does not matter: the manifest is sorted by source and part.
    reordered = build_dataset(
        list(reversed(write_corpus(tmp_path / "c", CORPUS))), tokenizer, shard_tokens=128
    )
    assert reordered.manifest.root == base.manifest.root


def test_bad_inputs_are_refused_clearly(tokenizer: GgufTokenizer, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        build_dataset([tmp_path / "missing.txt"], tokenizer)
    bad = write_corpus(tmp_path, {"bad.jsonl": '{"text": "fine"}\n{"nope": 1}\n'})
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2"):
        build_dataset(bad, tokenizer)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DatasetError, match="UTF-8"):
        build_dataset([tmp_path / "bin.txt"], tokenizer)


def test_manifest_round_trips(tokenizer: GgufTokenizer, tmp_path: Path) -> None:
    built = build_dataset(write_corpus(tmp_path, CORPUS), tokenizer, shard_tokens=128)
    again = DatasetManifest.decode(built.manifest.encode())
    assert again == built.manifest
    assert again.root == built.manifest.root
    with pytest.raises(MalformedShardError):
        DatasetManifest.decode(built.manifest.encode()[:-3])


@pytest.mark.asyncio
async def test_upload_then_fetch_verifies_reference_and_proof(
    tokenizer: GgufTokenizer, tmp_path: Path, swarm: Swarm
) -> None:
    built = build_dataset(write_corpus(tmp_path / "a", CORPUS), tokenizer, shard_tokens=128)
    upload = await upload_dataset(swarm.client, swarm.batch, built)
    assert upload.uploaded == len(built.manifest.shards)
    assert upload.shared == 0
    manifest = await fetch_manifest(swarm.client, upload.manifest_reference)
    assert manifest.root == built.manifest.root
    for index, entry in enumerate(manifest.shards):
        shard = await fetch_shard(
            swarm.client,
            entry.reference,
            index=index,
            proof=manifest.proof(index),
            root=manifest.root,
        )
        assert shard.encode() == built.shard_bytes[entry.reference]

    # A fork uploads only its new shards and names the parent.
    more = dict(CORPUS, **{"delta.txt": "Delta is new in the fork. " * 50})
    fork = build_dataset(
        write_corpus(tmp_path / "b", more),
        tokenizer,
        shard_tokens=128,
        parent=upload.manifest_reference,
    )
    forked = await upload_dataset(swarm.client, swarm.batch, fork, parent=manifest)
    assert forked.shared == len(manifest.shards)
    assert forked.uploaded == len(fork.manifest.shards) - len(manifest.shards)
    assert (await fetch_manifest(swarm.client, forked.manifest_reference)).parent == (
        upload.manifest_reference
    )


@pytest.mark.asyncio
async def test_wrong_proof_is_refused_before_download(
    tokenizer: GgufTokenizer, tmp_path: Path, swarm: Swarm
) -> None:
    built = build_dataset(write_corpus(tmp_path, CORPUS), tokenizer, shard_tokens=128)
    await upload_dataset(swarm.client, swarm.batch, built)
    m = built.manifest
    ref = m.shards[0].reference
    with pytest.raises(InclusionProofError, match="not leaf 1"):
        await fetch_shard(swarm.client, ref, index=1, proof=m.proof(0), root=m.root)
    with pytest.raises(InclusionProofError):
        await fetch_shard(swarm.client, ref, index=0, proof=m.proof(1), root=m.root)
    other_root = bytes(32)
    with pytest.raises(InclusionProofError):
        await fetch_shard(swarm.client, ref, index=0, proof=m.proof(0), root=other_root)


class LyingSource:
    """A peer that serves another (valid, stored) shard's bytes for the reference asked."""

    def __init__(self, honest: Swarm, swap: dict[bytes, bytes]) -> None:
        self.honest = honest
        self.swap = swap

    async def download_bytes(self, reference: bytes, *, time_limit: float | None = None) -> bytes:
        return await self.honest.client.download_bytes(self.swap.get(reference, reference))


@pytest.mark.asyncio
async def test_bytes_for_another_reference_are_refused(
    tokenizer: GgufTokenizer, tmp_path: Path, swarm: Swarm
) -> None:
    built = build_dataset(write_corpus(tmp_path, CORPUS), tokenizer, shard_tokens=128)
    await upload_dataset(swarm.client, swarm.batch, built)
    m = built.manifest
    wanted, served = m.shards[0].reference, m.shards[1].reference
    liar = LyingSource(swarm, {wanted: served})
    with pytest.raises(ShardReferenceMismatch) as caught:
        await fetch_shard(liar, wanted, index=0, proof=m.proof(0), root=m.root)
    assert caught.value.expected == wanted
    assert caught.value.actual == served
