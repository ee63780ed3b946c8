"""Real LoRA adapter GGUFs for the bundled SmolLM2-135M, written with the `gguf` package."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_LAYERS, N_EMBD, RANK = 30, 576, 4  # SmolLM2-135M: attn_q.weight is 576 x 576


def write_lora(
    path: Path,
    *,
    b_scale: float,
    seed: int = 0,
    alpha: float = 4.0,
    width: int = N_EMBD,
    layers: int = N_LAYERS,
) -> Path:
    """A LoRA on every layer's attn_q: delta W = (alpha / rank) * B @ A.

    `width` other than 576 makes an adapter for another model shape (e.g. 960 for
    SmolLM2-360M), which the 135M model must refuse.
    """
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for layer in range(layers):
        base = f"blk.{layer}.attn_q.weight"
        a = rng.standard_normal((RANK, width)).astype(np.float32)  # ggml ne = [width, rank]
        b = (rng.standard_normal((width, RANK)) * b_scale).astype(np.float32)  # [rank, width]
        writer.add_tensor(f"{base}.lora_a", a)
        writer.add_tensor(f"{base}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
