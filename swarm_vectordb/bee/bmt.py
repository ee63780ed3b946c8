"""Keccak-256, the binary Merkle tree (BMT) of a chunk, and content-addressed chunks.

A content-addressed chunk (CAC) travels as ``span || payload``: an 8-byte
little-endian span and up to 4096 payload bytes. Its address is::

    keccak256(span || bmt_root(payload))

where ``bmt_root`` pads the payload with zeros to 4096 bytes, cuts it into 128
segments of 32 bytes and hashes neighbours pairwise up seven levels. Keccak is
the Ethereum one (padding byte 0x01), not SHA3-256.

Speed. A BMT is 127 Keccak calls on 64-byte inputs plus one for the address,
so the cost is per call, not per byte. Three things keep it down:

* zero padding is never hashed: the hash of an all-zero subtree of each height
  is computed once (``_ZERO_SUBTREE``), and a short payload only hashes the
  nodes that hold data;
* when pycryptodome runs on cffi (it does whenever ``cryptography`` is
  installed), each thread keeps one raw Keccak state and hashes a whole tree
  level in one tight loop, writing digests straight into a preallocated
  buffer. That is about 4x cheaper per node than ``Crypto.Hash.keccak.new``.
  If pycryptodome's internals ever differ from what this module expects, a
  self-check at import falls back to the public API: slower, never wrong;
* the nodes of one level are independent, so the optional C extension
  ``_keccak`` hashes them 8 (AVX-512) or 4 (AVX2) at a time, one Keccak state
  per vector lane. It is built at install where a compiler exists, checked
  against pycryptodome at import, and skipped (falling back to cffi) otherwise.

Each 64-byte node costs one full Keccak-f[1600] permutation, while a flat Keccak
over 4096 bytes needs 31: one state at a time, a BMT costs about four flat hashes
of the same bytes; eight at a time, under one (see ``bench/swarm_bmt.py``).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NewType, Protocol

from Crypto.Hash import keccak as _keccak

from swarm_vectordb.bee.errors import ChunkAddressMismatch, InvalidChunkError

__all__ = [
    "BRANCHES",
    "CHUNK_SIZE",
    "HASH_SIZE",
    "MAX_SPAN",
    "SEGMENT_SIZE",
    "SPAN_SIZE",
    "Chunk",
    "ChunkAddress",
    "bmt_root",
    "cac_address",
    "decode_span",
    "encode_span",
    "keccak256",
    "keccak256_each",
]

CHUNK_SIZE = 4096
"""Most payload bytes one chunk carries."""
SEGMENT_SIZE = 32
"""Bytes in one BMT leaf segment; also the size of a Keccak-256 digest."""
HASH_SIZE = 32
"""Bytes in a chunk address (a Keccak-256 digest)."""
BRANCHES = CHUNK_SIZE // SEGMENT_SIZE
"""Segments per chunk (128): also the most child references an intermediate chunk holds."""
SPAN_SIZE = 8
"""Bytes of the little-endian span that precedes the payload on the wire."""
MAX_SPAN = 2**64 - 1
"""Largest span a chunk can declare."""

_BMT_DEPTH = 7  # log2(BRANCHES): hash levels between the segments and the root

ChunkAddress = NewType("ChunkAddress", bytes)
"""32-byte address of a chunk: a CAC's keccak256(span || bmt_root), or a SOC's."""

_SPAN = struct.Struct("<Q")
_CFFI_BATCH = 256  # most digests one raw hash_each batch writes
_CFFI_IN_BUFFER = 16384  # bytes of input one raw hash_each batch reads


def encode_span(span: int) -> bytes:
    """Return ``span`` as the 8-byte little-endian prefix of a chunk."""
    if not 0 <= span <= MAX_SPAN:
        raise InvalidChunkError(f"span {span} is outside 0..2**64-1")
    return _SPAN.pack(span)


def decode_span(data: bytes) -> int:
    """Read the span from the first 8 bytes of ``span || payload``."""
    if len(data) < SPAN_SIZE:
        raise InvalidChunkError(f"{len(data)} bytes cannot hold an {SPAN_SIZE}-byte span")
    span: int = _SPAN.unpack_from(data)[0]
    return span


# --- Keccak-256 backends ---------------------------------------------------------------


class _KeccakBackend(Protocol):
    def digest(self, data: bytes) -> bytes:
        """Keccak-256 of ``data``."""
        ...

    def hash_each(self, blocks: bytes, size: int) -> bytes:
        """Hash each ``size``-byte slice of ``blocks``; return the digests concatenated."""
        ...


class _PublicKeccak:
    """Keccak-256 through pycryptodome's public API: portable, about 4 us a call."""

    def digest(self, data: bytes) -> bytes:
        return _keccak.new(data=data, digest_bits=256).digest()

    def hash_each(self, blocks: bytes, size: int) -> bytes:
        new = _keccak.new
        return b"".join(
            [
                new(data=blocks[i : i + size], digest_bits=256).digest()
                for i in range(0, len(blocks), size)
            ]
        )


class _CffiKeccak:
    """One reusable raw Keccak state of pycryptodome's C library, driven through cffi.

    Not thread-safe (cffi releases the GIL inside each call, so two threads
    would interleave on the state): ``_backend()`` gives every thread its own.
    """

    def __init__(self) -> None:
        from Crypto.Util import _raw_api

        if _raw_api.backend != "cffi":
            raise RuntimeError("pycryptodome is not running on cffi")
        lib: Any = _keccak._raw_keccak_lib  # type: ignore[attr-defined]
        ffi: Any = _raw_api.ffi
        state = _raw_api.VoidPointer()
        if lib.keccak_init(state.address_of(), 64, 24):  # capacity 512 bits, 24 rounds
            raise RuntimeError("keccak_init failed")
        # SmartPointer frees the C state when this object is collected.
        self._owner = _raw_api.SmartPointer(state.get(), lib.keccak_destroy)
        self._state = self._owner.get()
        self._reset: Callable[..., int] = lib.keccak_reset
        self._absorb: Callable[..., int] = lib.keccak_absorb
        self._squeeze: Callable[..., int] = lib.keccak_digest
        self._from_buffer: Callable[[bytes], Any] = ffi.from_buffer
        self._memmove: Callable[[Any, bytes, int], None] = ffi.memmove
        # Fixed input and output buffers, and pointers into them computed once: in the
        # hot loop each hash is then three C calls and nothing else.
        self._in = ffi.new("uint8_t[]", _CFFI_IN_BUFFER)
        self._out = ffi.new("uint8_t[]", 32 * _CFFI_BATCH)
        self._out_view = ffi.buffer(self._out)
        self._out_slots = [self._out + 32 * i for i in range(_CFFI_BATCH)]
        self._in_slots: dict[int, list[Any]] = {}

    def digest(self, data: bytes) -> bytes:
        state, out = self._state, self._out
        self._reset(state)
        self._absorb(state, self._from_buffer(data), len(data))
        self._squeeze(state, out, 32, 0x01)  # 0x01: Keccak padding, not SHA3's 0x06
        return bytes(self._out_view[:32])

    def hash_each(self, blocks: bytes, size: int) -> bytes:
        if size > _CFFI_IN_BUFFER:
            return b"".join(
                [self.digest(blocks[i : i + size]) for i in range(0, len(blocks), size)]
            )
        per_batch = min(_CFFI_BATCH, _CFFI_IN_BUFFER // size)
        step = size * per_batch
        if len(blocks) > step:
            return b"".join(
                [self.hash_each(blocks[i : i + step], size) for i in range(0, len(blocks), step)]
            )
        slots = self._in_slots.get(size)
        if slots is None:
            slots = self._in_slots[size] = [self._in + size * i for i in range(per_batch)]
        count = len(blocks) // size
        self._memmove(self._in, blocks, size * count)
        state, inputs, outputs = self._state, slots, self._out_slots
        reset, absorb, squeeze = self._reset, self._absorb, self._squeeze
        for i in range(count):
            reset(state)
            absorb(state, inputs[i], size)
            squeeze(state, outputs[i], 32, 0x01)
        return bytes(self._out_view[: 32 * count])


_EMPTY_KECCAK = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
_PAIR_PROBE = bytes(range(128))


class _NativeKeccak:
    """BMT nodes through the `_keccak` C extension (4-way AVX2 when the CPU has it).

    It only hashes 64-byte blocks, which is all a BMT needs; other sizes and single
    digests go to `general`.
    """

    def __init__(self, general: _KeccakBackend) -> None:
        from swarm_vectordb.bee import _keccak

        self._pairs = _keccak.keccak256_64
        self._general = general

    def digest(self, data: bytes) -> bytes:
        return self._general.digest(data)

    def hash_each(self, blocks: bytes, size: int) -> bytes:
        if size == 64:
            return self._pairs(blocks)
        return self._general.hash_each(blocks, size)


def _fastest_backend() -> _KeccakBackend:
    """The fastest backend that builds and agrees with pycryptodome's public API.

    Preference: the C extension for BMT nodes (over cffi or the public API for the
    rest), then cffi, then the public API. Each candidate must reproduce the public
    API's digests at import, or it is not used.
    """
    reference = _PublicKeccak()
    general: _KeccakBackend = reference
    try:
        fast = _CffiKeccak()
        pairs_agree = fast.hash_each(_PAIR_PROBE, 64) == reference.hash_each(_PAIR_PROBE, 64)
        if pairs_agree and fast.digest(b"") == _EMPTY_KECCAK:
            general = fast
    except Exception:  # any surprise in pycryptodome's internals means: use the public API
        pass
    try:
        native = _NativeKeccak(general)
        probe = _PAIR_PROBE * 5  # 10 blocks: the 4-way path and the scalar tail
        if native.hash_each(probe, 64) == reference.hash_each(probe, 64):
            return native
    except ImportError:  # built without a C compiler: the extension is optional
        pass
    return general


class _PerThread(threading.local):
    backend: _KeccakBackend | None = None


_per_thread = _PerThread()


def _backend() -> _KeccakBackend:
    backend = _per_thread.backend
    if backend is None:
        backend = _per_thread.backend = _fastest_backend()
    return backend


def keccak256(*parts: bytes) -> bytes:
    """Keccak-256 (Ethereum's, padding 0x01) of the concatenated ``parts``."""
    return _backend().digest(parts[0] if len(parts) == 1 else b"".join(parts))


def keccak256_each(blocks: bytes, size: int) -> bytes:
    """Keccak-256 of each ``size``-byte slice of ``blocks``, digests concatenated.

    One call for many equal-sized hashes (a tree level, a batch of mining
    candidates) saves most of the per-hash Python overhead.
    """
    if size <= 0 or len(blocks) % size:
        raise ValueError(f"{len(blocks)} bytes do not split into {size}-byte blocks")
    return _backend().hash_each(blocks, size)


# --- BMT ----------------------------------------------------------------------------------


def _zero_subtrees(backend: _KeccakBackend) -> tuple[bytes, ...]:
    """Root of an all-zero subtree of 2**h segments, for h = 0..7."""
    roots = [bytes(SEGMENT_SIZE)]
    for _ in range(_BMT_DEPTH):
        roots.append(backend.digest(roots[-1] * 2))
    return tuple(roots)


_ZERO_SUBTREE = _zero_subtrees(_PublicKeccak())


def bmt_root(payload: bytes) -> bytes:
    """BMT root of a chunk payload of at most 4096 bytes (zero-padded to 4096)."""
    size = len(payload)
    if size > CHUNK_SIZE:
        raise InvalidChunkError(f"payload of {size} bytes exceeds {CHUNK_SIZE}")
    if size == 0:
        return _ZERO_SUBTREE[_BMT_DEPTH]
    hash_each = _backend().hash_each
    # Hash only the pairs of segments that hold data; the rest of each level is the
    # matching all-zero subtree, appended when the level has an odd node count.
    level = hash_each(payload + bytes(-size % 64) if size % 64 else payload, 64)
    for height in range(1, _BMT_DEPTH):
        if len(level) % 64:
            level += _ZERO_SUBTREE[height]
        level = hash_each(level, 64)
    return level


def cac_address(payload: bytes, span: int | None = None) -> ChunkAddress:
    """Address of the content-addressed chunk; ``span`` defaults to ``len(payload)``."""
    root = bmt_root(payload)
    return ChunkAddress(keccak256(encode_span(len(payload) if span is None else span), root))


# --- chunks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """A content-addressed chunk: ``span || payload`` under ``keccak256(span || bmt_root)``.

    Build one with ``Chunk.create`` (computes the address) or ``Chunk.parse``
    (verifies it). The plain constructor checks sizes only and trusts the
    address, for code that has just computed it.
    """

    span: int
    """Data bytes below this chunk: ``len(payload)`` for a leaf, the subtree total otherwise."""
    payload: bytes
    """0..4096 bytes: data for a leaf, concatenated child references for an intermediate chunk."""
    address: ChunkAddress

    def __post_init__(self) -> None:
        if len(self.payload) > CHUNK_SIZE:
            raise InvalidChunkError(f"payload of {len(self.payload)} bytes exceeds {CHUNK_SIZE}")
        if not 0 <= self.span <= MAX_SPAN:
            raise InvalidChunkError(f"span {self.span} is outside 0..2**64-1")
        if len(self.address) != HASH_SIZE:
            raise InvalidChunkError(f"chunk address must be {HASH_SIZE} bytes")

    @classmethod
    def create(cls, payload: bytes, span: int | None = None) -> Chunk:
        """Chunk of ``payload``; ``span`` defaults to ``len(payload)`` (a leaf)."""
        actual_span = len(payload) if span is None else span
        return cls(actual_span, bytes(payload), cac_address(payload, actual_span))

    @classmethod
    def parse(cls, data: bytes, address: bytes | None = None) -> Chunk:
        """Chunk from its wire form ``span || payload``.

        With ``address`` given, raise ``ChunkAddressMismatch`` unless the
        content hashes to it.
        """
        if not SPAN_SIZE <= len(data) <= SPAN_SIZE + CHUNK_SIZE:
            raise InvalidChunkError(f"{len(data)} bytes is not span(8) || payload(0..4096)")
        chunk = cls.create(bytes(data[SPAN_SIZE:]), decode_span(data))
        if address is not None and chunk.address != address:
            raise ChunkAddressMismatch(expected=bytes(address), actual=chunk.address)
        return chunk

    @property
    def data(self) -> bytes:
        """Wire form: ``span || payload``."""
        return encode_span(self.span) + self.payload

    @property
    def is_leaf(self) -> bool:
        """True when the chunk carries data, not child references (span <= 4096)."""
        return self.span <= CHUNK_SIZE
