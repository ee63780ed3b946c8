"""Datasets on Swarm: files -> tokenized shards -> a manifest whose Merkle root a DAO stores.

A shard is a run of at most `shard_tokens` token ids cut from one source file, in a
canonical msgpack document (format version, source name, keccak of the source
bytes, part number, token ids as little-endian uint32 bytes). Its Swarm reference is
the content address of those bytes, so a shard depends only on its file: a fork that
adds files keeps every old shard and its reference.

The manifest lists the shards (reference, source, token count) sorted by source
and part; its `root` is the Merkle root over the 32-byte references with
`chain.merkle`'s hashing, the value a `DatasetDAO` stores. A shard fetched for
training is trusted only after its inclusion proof reaches the root and its bytes
hash to its reference (`fetch_shard`).

Text and markdown files are one document each; a `.jsonl` file is one document per
line (`{"text": ...}`). Documents are tokenized with the base model's own GGUF
tokenizer (the one llama.cpp uses at inference) and each ends with the EOS token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from chain.merkle import StepLogTree, verify_proof
from swarm_vectordb.bee import (
    BatchId,
    ChunkAddressMismatch,
    SwarmError,
    keccak256,
    split,
)
from trainer import codec
from trainer.errors import (
    DatasetError,
    InclusionProofError,
    MalformedShardError,
    ShardReferenceMismatch,
    StorageError,
)
from trainer.tokenizer import GgufTokenizer

__all__ = [
    "DEFAULT_SHARD_TOKENS",
    "BuiltDataset",
    "DatasetManifest",
    "DatasetUpload",
    "Shard",
    "ShardEntry",
    "ShardSink",
    "ShardSource",
    "build_dataset",
    "check_inclusion",
    "fetch_manifest",
    "fetch_shard",
    "file_shards",
    "swarm_reference",
    "upload_dataset",
]

logger = logging.getLogger(__name__)

SHARD_VERSION = 1
MANIFEST_VERSION = 1
DEFAULT_SHARD_TOKENS = 2048
MAX_SHARD_TOKENS = 1 << 20
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".jsonl"})


class ShardSource(Protocol):
    """Where shard and manifest bytes come from (a `BeeClient` is one)."""

    async def download_bytes(self, reference: bytes, *, time_limit: float | None = None) -> bytes:
        """The bytes under a Swarm reference."""
        ...


class ShardSink(Protocol):
    """Where they go (a `BeeClient` is one)."""

    async def upload_bytes(self, data: bytes, batch: BatchId) -> bytes:
        """Store bytes; their Swarm reference."""
        ...


def swarm_reference(data: bytes) -> bytes:
    """The Swarm content address (BMT chunk-tree root) of `data`, computed locally."""
    return bytes(split(data).root)


@dataclass(frozen=True)
class Shard:
    """Token ids cut from one source file: part `part` of the file `source`."""

    source: str
    source_hash: bytes
    part: int
    tokens: np.ndarray  # uint32, 1-D

    def encode(self) -> bytes:
        return codec.pack(
            {
                "version": SHARD_VERSION,
                "source": self.source,
                "source_hash": self.source_hash,
                "part": self.part,
                "tokens": self.tokens.astype("<u4").tobytes(),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Shard:
        doc = codec.unpack(
            data,
            what="shard",
            version=SHARD_VERSION,
            keys=frozenset({"source", "source_hash", "part", "tokens"}),
            error=MalformedShardError,
        )
        raw = doc.blob("tokens")
        if not raw or len(raw) % 4 or len(raw) // 4 > MAX_SHARD_TOKENS:
            raise doc.fail(f"tokens must be 1 to {MAX_SHARD_TOKENS} uint32 values")
        return cls(
            source=doc.text("source"),
            source_hash=doc.blob("source_hash", size=32),
            part=doc.integer("part"),
            tokens=np.frombuffer(raw, dtype="<u4").astype(np.uint32),
        )


@dataclass(frozen=True)
class ShardEntry:
    """A manifest line: a shard's reference, its source file and its token count."""

    reference: bytes
    source: str
    tokens: int


@dataclass(frozen=True)
class DatasetManifest:
    """The list of shards; `root` is what a DatasetDAO stores."""

    tokenizer: bytes  # keccak of the tokenizer vocabulary the ids refer to
    shard_tokens: int
    shards: tuple[ShardEntry, ...]
    parent: bytes | None = None  # the manifest this one was forked from, if any
    _tree: StepLogTree = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.shards:
            raise DatasetError("a dataset needs at least one shard")
        object.__setattr__(self, "_tree", StepLogTree([s.reference for s in self.shards]))

    @property
    def root(self) -> bytes:
        return self._tree.root

    def proof(self, index: int) -> list[bytes]:
        """Inclusion proof of shard `index`'s reference under `root`."""
        return self._tree.proof(index)

    @property
    def references(self) -> list[bytes]:
        return [s.reference for s in self.shards]

    def encode(self) -> bytes:
        return codec.pack(
            {
                "version": MANIFEST_VERSION,
                "tokenizer": self.tokenizer,
                "shard_tokens": self.shard_tokens,
                "parent": self.parent or b"",
                "shards": [[s.reference, s.source, s.tokens] for s in self.shards],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> DatasetManifest:
        doc = codec.unpack(
            data,
            what="dataset manifest",
            version=MANIFEST_VERSION,
            keys=frozenset({"tokenizer", "shard_tokens", "parent", "shards"}),
            error=MalformedShardError,
        )
        parent = doc.blob("parent")
        if parent and len(parent) != 32:
            raise doc.fail("parent must be empty or a 32-byte reference")
        entries = []
        for item in doc.items("shards", max_len=1_000_000):
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not isinstance(item[0], bytes)
                or len(item[0]) != 32
                or not isinstance(item[1], str)
                or type(item[2]) is not int
                or item[2] < 1
            ):
                raise doc.fail(f"malformed shard entry {item!r:.80}")
            entries.append(ShardEntry(item[0], item[1], item[2]))
        if not entries:
            raise doc.fail("no shards")
        return cls(
            tokenizer=doc.blob("tokenizer", size=32),
            shard_tokens=doc.integer("shard_tokens", low=1, high=MAX_SHARD_TOKENS),
            shards=tuple(entries),
            parent=parent or None,
        )


@dataclass(frozen=True)
class BuiltDataset:
    """A manifest and the bytes of each of its shards, by reference."""

    manifest: DatasetManifest
    shard_bytes: dict[bytes, bytes]


def _documents(path: Path, data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from exc
    if path.suffix.lower() != ".jsonl":
        return [text] if text.strip() else []
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise DatasetError(f'{path}:{number}: expected an object with a "text" string')
        documents.append(item["text"])
    return documents


def _source_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
            )
        elif path.is_file():
            files.append(path)
        else:
            raise DatasetError(f"{path}: no such file or directory")
    return files


def file_shards(
    name: str, data: bytes, tokenizer: GgufTokenizer, shard_tokens: int, *, path: Path
) -> list[Shard]:
    """The shards of one file: a function of its name, bytes and the tokenizer only."""
    ids: list[int] = []
    for document in _documents(path, data):
        ids += tokenizer.encode(document)
        ids.append(tokenizer.eos)
    tokens = np.asarray(ids, dtype=np.uint32)
    digest = keccak256(data)
    return [
        Shard(name, digest, part, tokens[start : start + shard_tokens])
        for part, start in enumerate(range(0, len(tokens), shard_tokens))
    ]


def build_dataset(
    paths: Sequence[Path],
    tokenizer: GgufTokenizer,
    *,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    parent: bytes | None = None,
) -> BuiltDataset:
    """Tokenize and shard files (directories: their text files); nothing leaves the machine.

    A file's source name is its base name; two files with the same base name are
    an error (their shards would be indistinguishable).
    """
    if not 1 <= shard_tokens <= MAX_SHARD_TOKENS:
        raise DatasetError(f"shard_tokens must be in [1, {MAX_SHARD_TOKENS}]")
    shards: list[Shard] = []
    seen: dict[str, Path] = {}
    for path in _source_files(paths):
        if path.name in seen:
            raise DatasetError(f"two source files named {path.name!r}: {seen[path.name]}, {path}")
        seen[path.name] = path
        shards += file_shards(path.name, path.read_bytes(), tokenizer, shard_tokens, path=path)
    if not shards:
        raise DatasetError("no text in the given files")
    shards.sort(key=lambda s: (s.source, s.part))
    encoded = [s.encode() for s in shards]
    references = [swarm_reference(b) for b in encoded]
    manifest = DatasetManifest(
        tokenizer=tokenizer.vocabulary_hash,
        shard_tokens=shard_tokens,
        shards=tuple(
            ShardEntry(r, s.source, len(s.tokens)) for r, s in zip(references, shards, strict=True)
        ),
        parent=parent,
    )
    return BuiltDataset(manifest, dict(zip(references, encoded, strict=True)))


@dataclass(frozen=True)
class DatasetUpload:
    manifest_reference: bytes
    uploaded: int  # shards sent to Swarm
    shared: int  # shards already in the parent manifest (not sent again)


async def upload_dataset(
    sink: ShardSink,
    batch: BatchId,
    built: BuiltDataset,
    *,
    parent: DatasetManifest | None = None,
    concurrency: int = 8,
) -> DatasetUpload:
    """Upload the shards the parent lacks, then the manifest; the manifest's reference."""
    known = set(parent.references) if parent is not None else set()
    fresh = [r for r in built.manifest.references if r not in known]
    gate = asyncio.Semaphore(concurrency)

    async def send(reference: bytes, data: bytes) -> None:
        async with gate:
            returned = await sink.upload_bytes(data, batch)
        if bytes(returned) != reference:
            raise ShardReferenceMismatch(reference, bytes(returned))

    try:
        async with asyncio.TaskGroup() as group:
            for reference in dict.fromkeys(fresh):
                group.create_task(send(reference, built.shard_bytes[reference]))
        manifest_ref = bytes(await sink.upload_bytes(built.manifest.encode(), batch))
    except* SwarmError as group_error:
        raise StorageError(f"uploading the dataset failed: {group_error.exceptions[0]}") from (
            group_error.exceptions[0]
        )
    except* ShardReferenceMismatch as group_error:
        raise group_error.exceptions[0] from None
    logger.info(
        "dataset %s: %d shards, %d uploaded, %d shared with the parent",
        built.manifest.root.hex(),
        len(built.manifest.shards),
        len(fresh),
        len(built.manifest.shards) - len(fresh),
    )
    return DatasetUpload(manifest_ref, len(fresh), len(built.manifest.shards) - len(fresh))


async def _download(source: ShardSource, reference: bytes, time_limit: float) -> bytes:
    """Bytes under `reference`, recomputing their content address here whatever the source."""
    try:
        data = await source.download_bytes(reference, time_limit=time_limit)
    except ChunkAddressMismatch as exc:
        # whichever side of the mismatch is not the reference asked for is what was served
        served = bytes(exc.expected) if bytes(exc.actual) == bytes(reference) else exc.actual
        raise ShardReferenceMismatch(reference, bytes(served)) from exc
    except SwarmError as exc:
        raise StorageError(f"fetching {reference.hex()} from Swarm failed: {exc}") from exc
    actual = swarm_reference(data)
    if actual != reference:
        raise ShardReferenceMismatch(reference, actual)
    return data


async def fetch_manifest(
    source: ShardSource, reference: bytes, *, time_limit: float = 120.0
) -> DatasetManifest:
    """A manifest from Swarm, its bytes checked against `reference`."""
    return DatasetManifest.decode(await _download(source, reference, time_limit))


async def fetch_shard(
    source: ShardSource,
    reference: bytes,
    *,
    index: int,
    proof: Sequence[bytes],
    root: bytes,
    time_limit: float = 120.0,
) -> Shard:
    """A shard trusted only if `proof` puts `reference` at `index` under `root` and the
    bytes served hash to `reference`; `InclusionProofError` / `ShardReferenceMismatch`
    otherwise (the proof is checked before anything is downloaded)."""
    check_inclusion(reference, index, proof, root)
    return Shard.decode(await _download(source, reference, time_limit))


def check_inclusion(reference: bytes, index: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise `InclusionProofError` unless `reference` is leaf `index` under `root`."""
    if len(reference) != 32 or any(len(p) != 32 for p in proof):
        raise InclusionProofError("references and proof nodes are 32 bytes each")
    if not verify_proof(reference, index, proof, root):
        raise InclusionProofError(
            f"shard {reference.hex()} is not leaf {index} of dataset root {root.hex()}"
        )
