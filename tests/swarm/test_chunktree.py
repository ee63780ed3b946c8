"""Chunk trees against Bee's own file vectors, plus split/join round trips and tampering."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from swarm_vectordb.bee.bmt import CHUNK_SIZE, Chunk, ChunkAddress, encode_span
from swarm_vectordb.bee.chunktree import (
    ChunkTreeSplitter,
    iter_chunks,
    iter_join,
    join,
    join_async,
    split,
)
from swarm_vectordb.bee.errors import ChunkAddressMismatch, InvalidChunkError

C = CHUNK_SIZE

# Bee pkg/file/testing/vector.go: data[i] = i % 255, expected root references.
BEE_FILE_VECTORS = [
    (31, "ece86edb20669cc60d142789d464d57bdf5e33cb789d443f608cbd81cfa5697d"),
    (32, "0be77f0bb7abc9cd0abed640ee29849a3072ccfd1020019fe03658c38f087e02"),
    (33, "3463b46d4f9d5bfcbf9a23224d635e51896c1daef7d225b86679db17c5fd868e"),
    (63, "95510c2ff18276ed94be2160aed4e69c9116573b6f69faaeed1b426fea6a3db8"),
    (64, "490072cc55b8ad381335ff882ac51303cc069cbcb8d8d3f7aa152d9c617829fe"),
    (65, "541552bae05e9a63a6cb561f69edf36ffe073e441667dbf7a0e9a3864bb744ea"),
    (C, "c10090961e7682a10890c334d759a28426647141213abda93b096b892824d2ef"),
    (C + 31, "91699c83ed93a1f87e326a29ccd8cc775323f9e7260035a5f014c975c5f3cd28"),
    (C + 32, "73759673a52c1f1707cbb61337645f4fcbd209cdc53d7e2cedaaa9f44df61285"),
    (C + 63, "db1313a727ffc184ae52a70012fbbf7235f551b9f2d2da04bf476abe42a3cb42"),
    (C + 64, "ade7af36ac0c7297dc1c11fd7b46981b629c6077bce75300f85b02a6153f161b"),
    (C * 2, "29a5fb121ce96194ba8b7b823a1f9c6af87e1791f824940a53b5a7efe3f790d9"),
    (C * 2 + 32, "61416726988f77b874435bdd89a419edc3861111884fd60e8adf54e2f299efd6"),
    (C * 128, "3047d841077898c26bbe6be652a2ec590a5d9bd7cd45d290ea42511b48753c09"),
    (C * 128 + 31, "e5c76afa931e33ac94bce2e754b1bb6407d07f738f67856783d93934ca8fc576"),
    (C * 128 + 32, "485a526fc74c8a344c43a4545a5987d17af9ab401c0ef1ef63aefcc5c2c086df"),
    (C * 128 + 64, "624b2abb7aefc0978f891b2a56b665513480e5dc195b4a66cd8def074a6d2e94"),
    (C * 129, "b8e1804e37a064d28d161ab5f256cc482b1423d5cd0a6b30fde7b0f51ece9199"),
    (C * 130, "59de730bf6c67a941f3b2ffa2f920acfaa1713695ad5deea12b4a121e5f23fa1"),
    (C * 128 * 128, "522194562123473dcfd7a457b18ee7dee8b7db70ed3cfa2b73f348a992fdfd3b"),
    (C * 128 * 128 + 32, "ed0cc44c93b14fef2d91ab3a3674eeb6352a42ac2f0bbe524711824aae1e7bcc"),
]

_MOD_255 = bytes(range(255))


def bee_vector_data(length: int) -> bytes:
    return (_MOD_255 * (length // 255 + 1))[:length]


def random_data(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


def store_of(chunks: tuple[Chunk, ...] | list[Chunk]) -> dict[bytes, bytes]:
    return {chunk.address: chunk.data for chunk in chunks}


@pytest.mark.parametrize(
    ("length", "expected"), BEE_FILE_VECTORS, ids=[str(n) for n, _ in BEE_FILE_VECTORS]
)
def test_root_matches_bee_file_vectors(length: int, expected: str) -> None:
    splitter = ChunkTreeSplitter()
    # Feed in uneven pieces to exercise the incremental path, not one big write.
    data = bee_vector_data(length)
    view = memoryview(data)
    offset, step = 0, 1_000_003
    while offset < length:
        splitter.write(bytes(view[offset : offset + step]))
        offset += step
    splitter.finish()
    assert splitter.root.hex() == expected
    assert splitter.size == length


def test_empty_data_is_the_empty_chunk() -> None:
    tree = split(b"")
    assert tree.root.hex() == "b34ca8c22b9e982354f9c7f50b470d66db428d880c8a904d5fe4ec9713171526"
    assert len(tree.chunks) == 1
    assert join(tree.root, store_of(tree.chunks).__getitem__) == b""


BOUNDARY_SIZES = [
    0,
    1,
    C - 1,
    C,
    C + 1,
    2 * C,
    C * 127,
    C * 127 + 1,
    C * 128 - 1,
    C * 128,
    C * 128 + 1,
    C * 129,
    C * 128 * 2,
    C * 128 * 2 + 1,
]


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_split_join_round_trip_at_boundaries(size: int) -> None:
    data = random_data(size, seed=size)
    tree = split(data)
    assert tree.chunks[-1].address == tree.root  # the root chunk comes last
    assert len(set(store_of(tree.chunks))) == len(tree.chunks)
    assert join(tree.root, store_of(tree.chunks).__getitem__) == data


def test_random_sizes_and_piece_sizes_agree_with_one_shot_split() -> None:
    rng = random.Random(7)
    for _ in range(12):
        size = rng.choice([rng.randrange(0, 3 * C), rng.randrange(C * 126, C * 131)])
        data = rng.randbytes(size)
        expected = split(data)
        splitter = ChunkTreeSplitter()
        chunks: list[Chunk] = []
        offset = 0
        while offset < size:
            step = rng.choice([1, 7, C - 1, C, C + 1, 50_000])
            chunks += splitter.write(data[offset : offset + step])
            offset += step
        chunks += splitter.finish()
        assert splitter.root == expected.root
        assert tuple(chunks) == expected.chunks


def test_iter_chunks_streams_an_iterable_of_pieces() -> None:
    data = random_data(C * 300 + 5, seed=1)
    pieces = (data[i : i + 10_000] for i in range(0, len(data), 10_000))
    chunks = list(iter_chunks(pieces))
    assert chunks[-1].address == split(data).root
    # 301 leaves, 2 full intermediates + 1 of 45 refs, 1 root over the 3 intermediates
    assert len(chunks) == 301 + 3 + 1
    assert list(iter_chunks(data)) == chunks  # bytes are fed in pieces too


def test_iter_chunks_yields_before_the_input_is_consumed() -> None:
    consumed = 0

    def pieces() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(1000):
            consumed += 1
            yield bytes(C)

    first = next(iter_chunks(pieces()))
    assert first.payload == bytes(C)
    assert consumed == 1


def test_lone_last_reference_moves_up_unwrapped() -> None:
    data = random_data(C * 129, seed=3)
    tree = split(data)
    root = tree.chunks[-1]
    # Root holds [full 128-leaf intermediate, the 129th leaf itself]: no wrapper chunk.
    assert root.span == len(data)
    assert root.payload[32:] == Chunk.create(data[C * 128 :]).address
    assert len(tree.chunks) == 129 + 1 + 1


def test_splitter_misuse_raises() -> None:
    splitter = ChunkTreeSplitter()
    with pytest.raises(RuntimeError):
        _ = splitter.root
    splitter.finish()
    with pytest.raises(RuntimeError):
        splitter.write(b"x")
    with pytest.raises(RuntimeError):
        splitter.finish()


def test_iter_join_yields_leaf_payloads_in_order() -> None:
    data = random_data(3 * C + 10, seed=5)
    tree = split(data)
    pieces = list(iter_join(tree.root, store_of(tree.chunks).__getitem__))
    assert [len(p) for p in pieces] == [C, C, C, 10]


def test_join_detects_a_tampered_leaf() -> None:
    data = random_data(C * 5, seed=9)
    tree = split(data)
    store = store_of(tree.chunks)
    victim = tree.chunks[2].address
    store[victim] = store[victim][:-1] + bytes([store[victim][-1] ^ 1])
    with pytest.raises(ChunkAddressMismatch) as caught:
        join(tree.root, store.__getitem__)
    assert caught.value.expected == victim


def test_join_detects_a_swapped_chunk() -> None:
    tree = split(random_data(C * 2, seed=11))
    store = store_of(tree.chunks)
    first, second = tree.chunks[0].address, tree.chunks[1].address
    store[first], store[second] = store[second], store[first]
    with pytest.raises(ChunkAddressMismatch):
        join(tree.root, store.__getitem__)


def test_join_rejects_spans_that_do_not_add_up() -> None:
    leaf = Chunk.create(b"a" * 100)
    # A well-hashed intermediate chunk that lies about how much data is below it.
    liar = Chunk.create(leaf.address + leaf.address, span=C + 1)
    store = {leaf.address: leaf.data, liar.address: liar.data}
    with pytest.raises(InvalidChunkError, match="children hold 200"):
        join(liar.address, store.__getitem__)


def test_join_rejects_a_leaf_shorter_than_its_span() -> None:
    chunk = Chunk.create(b"abc", span=10)
    with pytest.raises(InvalidChunkError, match="spans 10"):
        join(chunk.address, {chunk.address: chunk.data}.__getitem__)


def test_join_bounds_the_depth_of_a_hostile_tree() -> None:
    # Each level claims the full span of its parent: never a Bee tree, and a depth bomb.
    leaf = Chunk.create(b"x" * C)
    store = {leaf.address: leaf.data}
    node = Chunk.create(leaf.address + leaf.address, span=2 * C)
    store[node.address] = node.data
    wrapper = Chunk.create(node.address + leaf.address, span=3 * C)
    store[wrapper.address] = wrapper.data
    with pytest.raises(InvalidChunkError, match="at most 4096 fit"):
        join(wrapper.address, store.__getitem__)


def test_join_rejects_a_ragged_intermediate_payload() -> None:
    chunk = Chunk.create(b"z" * 33, span=2 * C)
    with pytest.raises(InvalidChunkError, match="multiple of 32"):
        join(chunk.address, {chunk.address: chunk.data}.__getitem__)


def test_missing_chunk_propagates_the_getters_error() -> None:
    tree = split(random_data(C * 3, seed=2))
    store = store_of(tree.chunks)
    del store[tree.chunks[1].address]
    with pytest.raises(KeyError):
        join(tree.root, store.__getitem__)


@pytest.mark.asyncio
async def test_join_async_round_trip_with_concurrent_fetches() -> None:
    data = random_data(C * 300 + 123, seed=13)
    tree = split(data)
    store = store_of(tree.chunks)
    in_flight = 0
    peak = 0

    async def get_chunk(address: ChunkAddress) -> bytes:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return store[address]

    assert await join_async(tree.root, get_chunk, concurrency=8) == data
    assert 1 < peak <= 8


@pytest.mark.asyncio
async def test_join_async_detects_tampering() -> None:
    tree = split(random_data(C * 4, seed=17))
    store = store_of(tree.chunks)
    victim = tree.chunks[0].address
    store[victim] = encode_span(C) + bytes(C)

    async def get_chunk(address: ChunkAddress) -> bytes:
        return store[address]

    with pytest.raises(ChunkAddressMismatch):
        await join_async(tree.root, get_chunk)
