"""The Python step-log tree agrees with itself and with the contract's verifier."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.merkle import StepLogTree, verify_proof


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=33), st.data())
@settings(max_examples=60, deadline=None)
def test_every_leaf_proves_and_no_other_index_does(
    records: list[bytes], data: st.DataObject
) -> None:
    tree = StepLogTree(records)
    index = data.draw(st.integers(0, len(records) - 1))
    proof = tree.proof(index)
    assert verify_proof(records[index], index, proof, tree.root)
    other = data.draw(st.integers(0, (1 << len(proof)) - 1))
    if other != index and records[other % len(records)] != records[index]:
        assert not verify_proof(records[index], other, proof, tree.root)
    assert not verify_proof(records[index], index + (1 << len(proof)), proof, tree.root)


def test_out_of_range_proof_is_refused() -> None:
    with pytest.raises(IndexError):
        StepLogTree([b"a"]).proof(1)
    with pytest.raises(ValueError, match="at least one"):
        StepLogTree([])
