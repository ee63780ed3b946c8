"""BMT and CAC addresses against Bee's check values and a naive oracle written here."""

from __future__ import annotations

import threading

import pytest
from Crypto.Hash import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_vectordb.bee import bmt
from swarm_vectordb.bee.bmt import (
    CHUNK_SIZE,
    Chunk,
    bmt_root,
    cac_address,
    decode_span,
    encode_span,
    keccak256,
    keccak256_each,
)
from swarm_vectordb.bee.errors import ChunkAddressMismatch, InvalidChunkError


def naive_keccak(data: bytes) -> bytes:
    return keccak.new(data=data, digest_bits=256).digest()


def naive_bmt_root(payload: bytes) -> bytes:
    """The definition, literally: pad to 4096, 128 segments, pairwise up to one."""
    padded = payload.ljust(CHUNK_SIZE, b"\0")
    level = [padded[i : i + 32] for i in range(0, CHUNK_SIZE, 32)]
    while len(level) > 1:
        level = [naive_keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def naive_cac_address(payload: bytes, span: int) -> bytes:
    return naive_keccak(span.to_bytes(8, "little") + naive_bmt_root(payload))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "b34ca8c22b9e982354f9c7f50b470d66db428d880c8a904d5fe4ec9713171526"),
        (b"hello world", "92672a471f4419b255d7cb0cf313474a6f5856fb347c5ece85fb706d644b630f"),
        (b"greaterthanspan", "27913f1bdb6e8e52cbd5a5fd4ab577c857287edf6969b41efe926b51de0f4f23"),
        # bee-js makeContentAddressedChunk('noosphere')
        (b"noosphere", "30f1cbc19830fb359fa3407d398f6ec705d0d8a1fd2cac0df32d6cdfa112c501"),
        # Bee's pkg/soc tests: the chunk wrapped by its SOC test vector
        (b"foo", "2387e8e7d8a48c2a9339c97c1dc3461a9a7aa07e994c5cb8b38fd7c1b3e6ea48"),
    ],
)
def test_cac_address_matches_bee_check_values(payload: bytes, expected: str) -> None:
    assert cac_address(payload).hex() == expected
    assert Chunk.create(payload).address.hex() == expected


def test_keccak256_is_ethereum_keccak_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"ab", b"c") == keccak256(b"abc") == naive_keccak(b"abc")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=CHUNK_SIZE))
def test_bmt_root_matches_naive_oracle(payload: bytes) -> None:
    assert bmt_root(payload) == naive_bmt_root(payload)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=CHUNK_SIZE).flatmap(
        lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.integers(0, 2**64 - 1))
    )
)
def test_cac_address_with_any_span_matches_naive_oracle(case: tuple[bytes, int]) -> None:
    payload, span = case
    assert cac_address(payload, span) == naive_cac_address(payload, span)


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 2047, 2048, 4095, 4096])
def test_bmt_root_at_segment_boundaries(size: int) -> None:
    payload = bytes((i * 7 + 3) % 256 for i in range(size))
    assert bmt_root(payload) == naive_bmt_root(payload)


def test_trailing_zeros_are_padding_but_span_is_not() -> None:
    # Zero padding makes the BMT root blind to trailing zeros; the span tells them apart.
    assert bmt_root(b"a") == bmt_root(b"a\0\0")
    assert cac_address(b"a") != cac_address(b"a\0\0")


def test_both_keccak_backends_agree() -> None:
    blocks = bytes(range(256)) * 100  # 25600 bytes: several raw batches for small block sizes
    public = bmt._PublicKeccak()
    assert public.hash_each(blocks, 64) == b"".join(
        naive_keccak(blocks[i : i + 64]) for i in range(0, len(blocks), 64)
    )
    fast = bmt._CffiKeccak()
    for size in (32, 40, 64, 100, len(blocks)):
        assert fast.hash_each(blocks, size) == public.hash_each(blocks, size), size
    assert fast.hash_each(blocks[:640], 64) == public.hash_each(blocks[:640], 64)
    assert fast.digest(b"x" * 1000) == public.digest(b"x" * 1000)


def test_the_fast_backends_are_in_use() -> None:
    # The C extension builds wherever there is a compiler, and cffi comes with
    # `cryptography`; losing either silently would cost ~4x.
    backend = bmt._backend()
    assert isinstance(backend, bmt._NativeKeccak)
    assert isinstance(backend._general, bmt._CffiKeccak)


@settings(max_examples=50, deadline=None)
@given(blocks=st.integers(min_value=0, max_value=21), seed=st.binary(min_size=8, max_size=8))
def test_native_extension_matches_pycryptodome(blocks: int, seed: bytes) -> None:
    from Crypto.Hash import keccak

    from swarm_vectordb.bee import _keccak

    data = (seed * (8 * blocks + 1))[: 64 * blocks]  # covers 4-way groups and the tail
    expected = b"".join(
        keccak.new(data=data[i : i + 64], digest_bits=256).digest() for i in range(0, len(data), 64)
    )
    assert _keccak.keccak256_64(data) == expected
    assert _keccak.keccak256_64(memoryview(data)) == expected
    with pytest.raises(ValueError, match="multiple of 64"):
        _keccak.keccak256_64(data + b"x")


@pytest.mark.parametrize("path", ["avx512", "avx2", "none"])
def test_every_vector_path_matches_pycryptodome(path: str) -> None:
    """Each SIMD path (chosen at import, so in a child process) against the oracle."""
    import os
    import subprocess
    import sys

    script = (
        "import os\n"
        "from Crypto.Hash import keccak\n"
        "from swarm_vectordb.bee import _keccak\n"
        "for n in (1, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 31, 64, 127):\n"
        "    data = os.urandom(64 * n)\n"
        "    want = b''.join(keccak.new(data=data[i:i + 64], digest_bits=256).digest()\n"
        "                    for i in range(0, len(data), 64))\n"
        "    assert _keccak.keccak256_64(data) == want, n\n"
        "print(_keccak.simd())\n"
    )
    env = dict(os.environ, NOOSPHERE_KECCAK_SIMD=path)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    used = done.stdout.strip()
    order = ["none", "avx2", "avx512"]
    assert order.index(used) <= order.index(path)  # capped, or lower where the CPU lacks it
    if path == "none":
        assert used == "none"


def test_keccak256_each_rejects_ragged_input() -> None:
    with pytest.raises(ValueError, match="do not split"):
        keccak256_each(b"abc", 2)


def test_hashing_is_thread_safe() -> None:
    payloads = [bytes([i]) * (100 + 37 * i) for i in range(16)]
    expected = [naive_bmt_root(p) for p in payloads]
    results: dict[int, list[bytes]] = {}

    def work(worker: int) -> None:
        results[worker] = [bmt_root(p) for _ in range(20) for p in payloads][-len(payloads) :]

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[w] == expected for w in range(4))


def test_span_round_trip_and_bounds() -> None:
    assert encode_span(4096) == bytes.fromhex("0010000000000000")
    assert decode_span(encode_span(2**64 - 1) + b"rest") == 2**64 - 1
    with pytest.raises(InvalidChunkError):
        encode_span(2**64)
    with pytest.raises(InvalidChunkError):
        encode_span(-1)
    with pytest.raises(InvalidChunkError):
        decode_span(b"1234567")


def test_chunk_parse_round_trip_and_verification() -> None:
    chunk = Chunk.create(b"hello world")
    assert chunk.data == encode_span(11) + b"hello world"
    assert chunk.is_leaf
    assert Chunk.parse(chunk.data, chunk.address) == chunk
    tampered = chunk.data[:-1] + b"D"
    with pytest.raises(ChunkAddressMismatch) as caught:
        Chunk.parse(tampered, chunk.address)
    assert caught.value.expected == chunk.address


def test_chunk_rejects_bad_sizes() -> None:
    with pytest.raises(InvalidChunkError):
        Chunk.create(bytes(CHUNK_SIZE + 1))
    with pytest.raises(InvalidChunkError):
        bmt_root(bytes(CHUNK_SIZE + 1))
    with pytest.raises(InvalidChunkError):
        Chunk.parse(b"short")
    with pytest.raises(InvalidChunkError):
        Chunk.parse(bytes(8 + CHUNK_SIZE + 1))
    with pytest.raises(InvalidChunkError):
        Chunk(span=0, payload=b"", address=bmt.ChunkAddress(b"\0" * 31))
