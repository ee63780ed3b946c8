"""Adapter export: llama.cpp's q/k row order, checked against an index-by-index oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.errors import ExportError
from trainer.export import export_adapter, rotary_permute
from trainer.model import LoraSpec
from trainer.state import TensorState, TrainerState


def oracle_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter, one row at a time: within each head, GGUF row 2*i + j is
    Hugging Face row j * half + i (the two rotary halves interleaved)."""
    head_dim = rows.shape[0] // n_head
    half = head_dim // 2
    out = np.empty_like(rows)
    for h in range(n_head):
        for i in range(half):
            for j in range(2):
                out[h * head_dim + 2 * i + j] = rows[h * head_dim + j * half + i]
    return out


@pytest.mark.parametrize(("n_head", "head_dim", "rank"), [(9, 64, 8), (3, 64, 4), (2, 6, 3)])
def test_rotary_permute_matches_the_row_by_row_oracle(
    n_head: int, head_dim: int, rank: int
) -> None:
    rows = np.random.default_rng(0).standard_normal((n_head * head_dim, rank)).astype(np.float32)
    assert np.array_equal(rotary_permute(rows, n_head), oracle_permute(rows, n_head))
    assert not np.array_equal(rotary_permute(rows, n_head), rows)


def test_rotary_permute_refuses_rows_that_do_not_split_into_heads() -> None:
    with pytest.raises(ExportError, match="rotary pairs"):
        rotary_permute(np.zeros((10, 2), np.float32), 3)


def test_exported_adapter_has_the_metadata_and_tensors_llama_cpp_reads(tmp_path: Path) -> None:
    import gguf

    g = torch.Generator().manual_seed(0)
    tensors = {}
    for proj, out in (("q_proj", 576), ("k_proj", 192)):
        a, b = torch.randn(4, 576, generator=g), torch.randn(out, 4, generator=g)
        tensors[f"layers.000.{proj}.lora_a"] = TensorState(a, a * 0, a * 0)
        tensors[f"layers.000.{proj}.lora_b"] = TensorState(b, b * 0, b * 0)
    state = TrainerState(tensors, updates=1)
    path = tmp_path / "adapter.gguf"
    digest = export_adapter(
        state,
        LoraSpec(rank=4, alpha=8.0, targets=("q_proj", "k_proj")),
        n_heads=9,
        n_kv_heads=3,
        path=path,
    )
    assert len(digest) == 32
    reader = gguf.GGUFReader(path)
    fields = {name: reader.fields[name] for name in reader.fields}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "llama"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 8.0
    by_name = {t.name: t for t in reader.tensors}
    assert set(by_name) == {
        "blk.0.attn_q.weight.lora_a",
        "blk.0.attn_q.weight.lora_b",
        "blk.0.attn_k.weight.lora_a",
        "blk.0.attn_k.weight.lora_b",
    }
    k_b = np.asarray(by_name["blk.0.attn_k.weight.lora_b"].data).reshape(192, 4)
    expected = oracle_permute(tensors["layers.000.k_proj.lora_b"].value.numpy(), 3)
    assert np.array_equal(k_b, expected)
    q_a = np.asarray(by_name["blk.0.attn_q.weight.lora_a"].data).reshape(4, 576)
    assert np.array_equal(q_a, tensors["layers.000.q_proj.lora_a"].value.numpy())
