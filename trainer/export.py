"""The trained LoRA as a GGUF adapter that llama.cpp (and so the agent) loads.

Metadata: `general.type = adapter`, `general.architecture = llama`,
`adapter.type = lora`, `adapter.lora.alpha`. Tensors: `blk.N.<base>.weight.lora_a`
(rank x in) and `.lora_b` (out x rank), written as PEFT holds them; the writer
reverses the dimension order, which is what llama.cpp expects.

llama.cpp's converter permutes the rows of `attn_q` / `attn_k` into its rotary
layout (pairs of halves per head) and transformers undoes that on load, so a LoRA
trained in Hugging Face layout must get the same row permutation on `lora_b`
(the output side) before it can be added to the GGUF's weights. `lora_a` (input
side) is unchanged, as are `attn_v` and `attn_output`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from swarm_vectordb.bee import keccak256
from trainer.errors import ExportError
from trainer.model import LoraSpec
from trainer.state import TrainerState

__all__ = ["GGUF_NAMES", "adapter_bytes", "export_adapter", "rotary_permute"]

GGUF_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
}


def rotary_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order: per head, interleave the two rotary halves."""
    out = rows.shape[0]
    if out % (2 * n_head):
        raise ExportError(f"{out} rows do not split into {n_head} heads of rotary pairs")
    return (
        rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:])
        .swapaxes(1, 2)
        .reshape(rows.shape)
    )


def _tensors(state: TrainerState, n_heads: int, n_kv_heads: int) -> list[tuple[str, np.ndarray]]:
    tensors = []
    for name, tensor in state.tensors.items():
        parts = name.split(".")  # layers.NNN.q_proj.lora_a
        if len(parts) != 4 or parts[0] != "layers" or parts[2] not in GGUF_NAMES:
            raise ExportError(f"cannot map trainable tensor {name} to a GGUF tensor")
        layer, proj, side = int(parts[1]), parts[2], parts[3]
        array = tensor.value.detach().cpu().numpy().astype(np.float32)
        if side == "lora_b" and proj == "q_proj":
            array = rotary_permute(array, n_heads)
        elif side == "lora_b" and proj == "k_proj":
            array = rotary_permute(array, n_kv_heads)
        tensors.append(
            (f"blk.{layer}.{GGUF_NAMES[proj]}.weight.{side}", np.ascontiguousarray(array))
        )
    return tensors


def export_adapter(
    state: TrainerState, spec: LoraSpec, *, n_heads: int, n_kv_heads: int, path: Path
) -> bytes:
    """Write the adapter GGUF to `path`; keccak256 of its bytes (the job result's hash)."""
    import gguf

    try:
        writer = gguf.GGUFWriter(path, arch="llama")
        writer.add_type("adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(spec.alpha))
        for name, array in _tensors(state, n_heads, n_kv_heads):
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return keccak256(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot write the adapter to {path}: {exc}") from exc


def adapter_bytes(state: TrainerState, spec: LoraSpec, *, n_heads: int, n_kv_heads: int) -> bytes:
    """The adapter GGUF as bytes (for uploading to Swarm)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adapter.gguf"
        export_adapter(state, spec, n_heads=n_heads, n_kv_heads=n_kv_heads, path=path)
        return path.read_bytes()
