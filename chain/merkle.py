"""The step-log Merkle tree that `TrainingMarket.challenge` verifies.

Leaf i is `keccak256(0x00 || record_i)`; an inner node is `keccak256(0x01 || left ||
right)` (the prefixes keep a leaf from posing as a node); the leaf count is padded to
a power of two with 32 zero bytes. A proof lists the siblings from the leaf up, and
the leaf's index picks the side at each level, exactly as the contract walks it.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

EMPTY_LEAF = bytes(32)


def leaf_hash(record: bytes) -> bytes:
    return bytes(keccak(b"\x00" + record))


def node_hash(left: bytes, right: bytes) -> bytes:
    return bytes(keccak(b"\x01" + left + right))


class StepLogTree:
    """All levels of the tree over a sequence of step records."""

    def __init__(self, records: Sequence[bytes]) -> None:
        if not records:
            raise ValueError("a step log needs at least one record")
        leaves = [leaf_hash(r) for r in records]
        width = 1 << (len(leaves) - 1).bit_length()
        leaves += [EMPTY_LEAF] * (width - len(leaves))
        self._levels = [leaves]
        while len(self._levels[-1]) > 1:
            below = self._levels[-1]
            self._levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below), 2)]
            )
        self.size = len(records)

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        """Siblings of leaf `index`, from the bottom level up."""
        if not 0 <= index < self.size:
            raise IndexError(f"step {index} not in a log of {self.size}")
        path = []
        for level in self._levels[:-1]:
            path.append(level[index ^ 1])
            index >>= 1
        return path


def verify_proof(record: bytes, index: int, proof: Sequence[bytes], root: bytes) -> bool:
    """The same check the contract makes."""
    node = leaf_hash(record)
    for sibling in proof:
        node = node_hash(node, sibling) if index & 1 == 0 else node_hash(sibling, node)
        index >>= 1
    return index == 0 and node == root
