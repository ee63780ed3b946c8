"""Split data of any length into Bee's chunk tree, and join it back.

Splitting (Bee's ``hashtrie`` writer): data is cut into 4096-byte leaf chunks
(the last may be shorter). Their references are collected on level 1; whenever
a level holds 128 references it is wrapped into an intermediate chunk whose
payload is the concatenated references and whose span is the total data below,
and that chunk's reference goes one level up. At the end, bottom-up, a level
with two or more references is wrapped the same way, and a level with exactly
one reference hands it up unchanged (no wrapper chunk). The one reference left
on top is the root. Empty data is the single empty chunk.

Every chunk is final the moment it is made, so ``ChunkTreeSplitter`` hands
chunks out as it goes and holds at most 4095 data bytes plus one partial
level of references per height: 100 MB never needs to be in memory at once.
The root chunk is always the last one produced (a parent is made after all of
its children).

Joining walks the tree depth-first from a root reference with a caller's
chunk getter (sync or async), checks every chunk against the address it was
asked for, and checks that the spans add up, so a peer that answers with the
wrong bytes raises ``ChunkAddressMismatch`` instead of corrupting the data.
Only plain 32-byte references are supported, not Bee's 64-byte encrypted ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from swarm_vectordb.bee.bmt import BRANCHES, CHUNK_SIZE, HASH_SIZE, Chunk, ChunkAddress
from swarm_vectordb.bee.errors import InvalidChunkError

__all__ = [
    "AsyncChunkGetter",
    "ChunkGetter",
    "ChunkTree",
    "ChunkTreeSplitter",
    "iter_chunks",
    "iter_join",
    "iter_join_async",
    "join",
    "join_async",
    "split",
]

_PIECE = 32 * CHUNK_SIZE  # bytes iter_chunks hands the splitter at a time

ChunkGetter = Callable[[ChunkAddress], bytes]
"""Returns the wire form ``span || payload`` of the chunk at an address."""
AsyncChunkGetter = Callable[[ChunkAddress], Awaitable[bytes]]
"""Async ``ChunkGetter``."""


@dataclass(frozen=True, slots=True)
class _Ref:
    span: int
    address: ChunkAddress


@dataclass(frozen=True, slots=True)
class ChunkTree:
    """A whole split held in memory: the root reference and every chunk, root last."""

    root: ChunkAddress
    chunks: tuple[Chunk, ...]


class ChunkTreeSplitter:
    """Incremental splitter: ``write`` data as it arrives, then ``finish``.

    Both return the chunks completed by that call, in the order Bee makes them
    (children before their parent). After ``finish``, ``root`` is the reference.
    """

    def __init__(self) -> None:
        self._pending = bytearray()  # data not yet filling a whole leaf
        self._levels: list[list[_Ref]] = [[]]  # _levels[0] holds leaf references
        self._size = 0
        self._root: ChunkAddress | None = None

    @property
    def size(self) -> int:
        """Data bytes written so far."""
        return self._size

    @property
    def root(self) -> ChunkAddress:
        """Root reference of the tree; only after ``finish``."""
        if self._root is None:
            raise RuntimeError("the splitter has no root before finish()")
        return self._root

    def write(self, data: bytes | bytearray | memoryview) -> list[Chunk]:
        """Add ``data``; return the chunks it completed."""
        if self._root is not None:
            raise RuntimeError("write() after finish()")
        self._size += len(data)
        out: list[Chunk] = []
        view = memoryview(data)
        offset = 0
        if self._pending:
            offset = CHUNK_SIZE - len(self._pending)
            self._pending += view[:offset]
            if len(self._pending) < CHUNK_SIZE:
                return out
            self._add_leaf(bytes(self._pending), out)
            self._pending.clear()
        while len(view) - offset >= CHUNK_SIZE:
            self._add_leaf(bytes(view[offset : offset + CHUNK_SIZE]), out)
            offset += CHUNK_SIZE
        self._pending += view[offset:]
        return out

    def finish(self) -> list[Chunk]:
        """Close the tree; return the last chunks, the root chunk (if new) last."""
        if self._root is not None:
            raise RuntimeError("finish() called twice")
        out: list[Chunk] = []
        if self._pending or self._size == 0:
            self._add_leaf(bytes(self._pending), out)
            self._pending.clear()
        height = 0
        while True:
            refs = self._levels[height]
            top = height == len(self._levels) - 1
            if top and len(refs) == 1:
                self._root = refs[0].address
                return out
            if len(refs) == 1:
                self._levels[height] = []
                self._push(height + 1, refs[0], out)  # a lone reference moves up unchanged
            elif refs:
                self._wrap(height, out)
            height += 1

    def _add_leaf(self, payload: bytes, out: list[Chunk]) -> None:
        chunk = Chunk.create(payload)
        out.append(chunk)
        self._push(0, _Ref(chunk.span, chunk.address), out)

    def _push(self, height: int, ref: _Ref, out: list[Chunk]) -> None:
        if height == len(self._levels):
            self._levels.append([])
        level = self._levels[height]
        level.append(ref)
        if len(level) == BRANCHES:
            self._wrap(height, out)

    def _wrap(self, height: int, out: list[Chunk]) -> None:
        refs = self._levels[height]
        self._levels[height] = []
        chunk = Chunk.create(b"".join(r.address for r in refs), sum(r.span for r in refs))
        out.append(chunk)
        self._push(height + 1, _Ref(chunk.span, chunk.address), out)


def iter_chunks(source: bytes | Iterable[bytes]) -> Iterator[Chunk]:
    """Yield the chunks of ``source`` (bytes, or an iterable of byte pieces); root last.

    Chunks come out as the data goes in, so a generator of pieces is split in
    constant memory.
    """
    splitter = ChunkTreeSplitter()
    if isinstance(source, bytes | bytearray):
        view = memoryview(source)
        pieces: Iterable[bytes | memoryview] = (
            view[i : i + _PIECE] for i in range(0, len(view), _PIECE)
        )
    else:
        pieces = source
    for piece in pieces:
        yield from splitter.write(piece)
    yield from splitter.finish()


def split(data: bytes) -> ChunkTree:
    """Split ``data`` in memory; for large inputs prefer ``iter_chunks``."""
    splitter = ChunkTreeSplitter()
    chunks = splitter.write(data)
    chunks += splitter.finish()
    return ChunkTree(root=splitter.root, chunks=tuple(chunks))


# --- joining -------------------------------------------------------------------------------


def _child_capacity(span: int) -> int:
    """Most data one child of an intermediate chunk of ``span`` bytes can cover.

    Every child but the last of a Bee intermediate chunk is a full subtree, so
    the children of a node spanning S bytes cover at most the largest
    4096 * 128**k below S. This bounds the depth of a hostile tree.
    """
    capacity = CHUNK_SIZE
    while capacity * BRANCHES < span:
        capacity *= BRANCHES
    return capacity


def _child_refs(chunk: Chunk) -> list[tuple[ChunkAddress, int]]:
    """References of an intermediate chunk, each with the most data its subtree may span."""
    payload = chunk.payload
    if not payload or len(payload) % HASH_SIZE:
        raise InvalidChunkError(
            f"intermediate chunk {chunk.address.hex()} has {len(payload)} payload bytes, "
            f"not a positive multiple of {HASH_SIZE}"
        )
    capacity = _child_capacity(chunk.span)
    return [
        (ChunkAddress(payload[i : i + HASH_SIZE]), capacity)
        for i in range(0, len(payload), HASH_SIZE)
    ]


def _checked(data: bytes, address: ChunkAddress, max_span: int) -> Chunk:
    chunk = Chunk.parse(data, address)
    if chunk.span > max_span:
        raise InvalidChunkError(
            f"chunk {address.hex()} spans {chunk.span} bytes where at most {max_span} fit"
        )
    if chunk.is_leaf and len(chunk.payload) != chunk.span:
        raise InvalidChunkError(
            f"leaf chunk {address.hex()} has {len(chunk.payload)} bytes but spans {chunk.span}"
        )
    return chunk


def _check_total(chunk: Chunk, produced: int) -> None:
    if produced != chunk.span:
        raise InvalidChunkError(
            f"chunk {chunk.address.hex()} spans {chunk.span} bytes but its children hold {produced}"
        )


def iter_join(root: bytes, get_chunk: ChunkGetter) -> Iterator[bytes]:
    """Yield the data under ``root`` piece by piece (leaf payloads, in order)."""
    address = ChunkAddress(bytes(root))
    yield from _iter_node(_checked(get_chunk(address), address, 2**64 - 1), get_chunk)


def _iter_node(chunk: Chunk, get_chunk: ChunkGetter) -> Iterator[bytes]:
    if chunk.is_leaf:
        yield chunk.payload
        return
    produced = 0
    for address, capacity in _child_refs(chunk):
        child = _checked(get_chunk(address), address, capacity)
        for piece in _iter_node(child, get_chunk):
            produced += len(piece)
            yield piece
    _check_total(chunk, produced)


def join(root: bytes, get_chunk: ChunkGetter) -> bytes:
    """The data under ``root``, every chunk verified against its address."""
    return b"".join(iter_join(root, get_chunk))


async def iter_join_async(
    root: bytes, get_chunk: AsyncChunkGetter, *, concurrency: int = 16
) -> AsyncIterator[bytes]:
    """Async ``iter_join``: fetches up to ``concurrency`` sibling chunks at once."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    address = ChunkAddress(bytes(root))
    chunk = _checked(await get_chunk(address), address, 2**64 - 1)
    async for piece in _iter_node_async(chunk, get_chunk, concurrency):
        yield piece


async def _fetch(get_chunk: AsyncChunkGetter, address: ChunkAddress) -> bytes:
    return await get_chunk(address)


async def _iter_node_async(
    chunk: Chunk, get_chunk: AsyncChunkGetter, concurrency: int
) -> AsyncIterator[bytes]:
    if chunk.is_leaf:
        yield chunk.payload
        return
    refs = _child_refs(chunk)
    produced = 0
    for start in range(0, len(refs), concurrency):
        window = refs[start : start + concurrency]
        async with asyncio.TaskGroup() as group:
            fetches = [group.create_task(_fetch(get_chunk, address)) for address, _ in window]
        for (address, capacity), fetch in zip(window, fetches, strict=True):
            child = _checked(fetch.result(), address, capacity)
            async for piece in _iter_node_async(child, get_chunk, concurrency):
                produced += len(piece)
                yield piece
    _check_total(chunk, produced)


async def join_async(root: bytes, get_chunk: AsyncChunkGetter, *, concurrency: int = 16) -> bytes:
    """Async ``join``."""
    return b"".join(
        [piece async for piece in iter_join_async(root, get_chunk, concurrency=concurrency)]
    )
