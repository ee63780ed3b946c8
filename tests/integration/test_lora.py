"""LoRA adapters: real adapter GGUFs, written here, applied by llama.cpp on load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.config import AdapterConfig, ModelConfig
from agent.llm import ChatMessage, LLMCore, SamplingParams
from tests.integration.lora_files import N_EMBD, RANK, write_lora

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GREEDY = SamplingParams(temperature=0.0, max_tokens=24, repeat_penalty=1.0)
QUESTION = [ChatMessage("user", "Name three colours.")]


async def answer(model_path: Path, adapters: list[AdapterConfig]) -> str:
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=256), adapters=adapters) as core:
        return (await core.chat(QUESTION, params=GREEDY)).text


async def test_adapters_change_the_model_exactly_when_they_should(
    model_path: Path, tmp_path: Path
) -> None:
    zero = write_lora(tmp_path / "zero.gguf", b_scale=0.0)
    strong = write_lora(tmp_path / "strong.gguf", b_scale=0.5, seed=1)
    base = await answer(model_path, [])
    assert base.strip()
    # B = 0 adds nothing; neither does a strong adapter at scale 0.
    assert await answer(model_path, [AdapterConfig(str(zero))]) == base
    assert await answer(model_path, [AdapterConfig(str(strong), scale=0.0)]) == base
    # A strong adapter changes the answer, alone and stacked with another.
    changed = await answer(model_path, [AdapterConfig(str(strong))])
    assert changed != base
    stacked = await answer(model_path, [AdapterConfig(str(zero)), AdapterConfig(str(strong))])
    assert stacked == changed


async def test_adapter_for_another_shape_is_refused(model_path: Path, tmp_path: Path) -> None:
    import gguf

    from agent.errors import ModelLoadError

    path = tmp_path / "wrong.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 1.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((RANK, 100), np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((N_EMBD, RANK), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="LoRA adapter"):
        await LLMCore.load(model_path, adapters=[AdapterConfig(str(path))])
