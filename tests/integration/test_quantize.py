"""Requantizing with llama.cpp's quantizer; the outputs must load and answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ModelConfig
from agent.errors import QuantizeError
from agent.llm import ChatMessage, LLMCore, SamplingParams
from agent.quantize import quantize

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.mark.parametrize("qtype", ["Q4_K_M", "Q2_K", "TQ2_0"])
async def test_quantized_model_loads_and_answers(
    model_path: Path, tmp_path: Path, qtype: str
) -> None:
    progress: list[tuple[int, int]] = []
    out = await quantize(
        model_path,
        tmp_path / f"m-{qtype}.gguf",
        qtype,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert out.read_bytes()[:4] == b"GGUF"
    assert progress, "no progress reported"
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert progress[-1][0] == progress[-1][1]
    assert not list(tmp_path.glob(".*partial"))
    async with await LLMCore.load(out, ModelConfig(n_ctx=256)) as core:
        file_type = int(core._llm.metadata["general.file_type"])
        result = await core.chat(
            [ChatMessage("user", "Say hi")], params=SamplingParams(temperature=0, max_tokens=16)
        )
    from agent.quantize import QUANT_TYPES

    assert file_type == QUANT_TYPES[qtype]
    assert result.completion_tokens > 0


async def test_bad_requests_are_refused_before_work(model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gguf"
    with pytest.raises(QuantizeError, match="unknown quantization type 'Q9'"):
        await quantize(model_path, out, "Q9")
    with pytest.raises(QuantizeError, match="importance matrix"):
        await quantize(model_path, out, "IQ2_XXS")
    with pytest.raises(QuantizeError, match="not found"):
        await quantize(tmp_path / "none.gguf", out, "Q8_0")
    text = tmp_path / "text.gguf"
    text.write_text("hello")
    with pytest.raises(QuantizeError, match="not a GGUF"):
        await quantize(text, out, "Q8_0")
    with pytest.raises(QuantizeError, match="must differ"):
        await quantize(model_path, model_path, "Q8_0")
    with pytest.raises(QuantizeError, match="does not exist"):
        await quantize(model_path, tmp_path / "no" / "dir.gguf", "Q8_0")
    out.write_bytes(b"keep me")
    with pytest.raises(QuantizeError, match="--force"):
        await quantize(model_path, out, "Q8_0")
    assert out.read_bytes() == b"keep me"


async def test_llama_cpp_failure_leaves_no_output(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    out = tmp_path / "out.gguf"
    with pytest.raises(QuantizeError, match=r"llama\.cpp failed"):
        await quantize(truncated, out, "Q8_0")
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial"))
