"""The LLM core against the real bundled GGUF, with raw llama-cpp-python as the oracle."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from agent.config import AdapterConfig, ModelConfig
from agent.errors import GenerationError, ModelLoadError, ModelNotFoundError
from agent.llm import ChatMessage, LLMCore, SamplingParams, ToolSpec, _schema_grammar

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GREEDY = SamplingParams(temperature=0.0, max_tokens=48, repeat_penalty=1.0)
QUESTION = [ChatMessage("user", "Name three colours.")]


async def test_streamed_pieces_equal_raw_llama_cpp_greedy_output(model_path: Path) -> None:
    from llama_cpp import Llama

    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        prompt = await core.format_prompt(QUESTION)
        pieces: list[str] = []
        async with core.stream_chat(QUESTION, params=GREEDY) as stream:
            async for piece in stream:
                pieces.append(piece)
        result = stream.result
    assert "".join(pieces) == result.text
    assert result.text.strip()
    assert result.prompt_tokens == len(prompt)
    assert result.completion_tokens > 0
    assert 0 < result.ttft_s <= result.total_s

    raw = Llama(str(model_path), n_ctx=512, verbose=False)
    try:
        oracle = raw.create_completion(
            prompt, max_tokens=48, temperature=0.0, repeat_penalty=1.0, top_k=40, top_p=0.95
        )
    finally:
        raw.close()
    assert oracle["choices"][0]["text"] == result.text
    assert oracle["usage"]["completion_tokens"] == result.completion_tokens


async def test_prompt_uses_the_gguf_chat_template(model_path: Path) -> None:
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        assert "<|im_start|>" in core.chat_template
        tokens = await core.format_prompt([ChatMessage("user", "hi")])
        text = core._llm.detokenize(tokens, special=True).decode()
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


async def test_cancellation_mid_stream_stops_generation(model_path: Path) -> None:
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=2048)) as core:
        params = SamplingParams(temperature=0.8, max_tokens=1500, seed=1)
        story = [ChatMessage("user", "Tell me a very long story about a dragon.")]
        seen: list[str] = []
        got_three = asyncio.Event()

        async def consume() -> None:
            async with core.stream_chat(story, params=params) as stream:
                async for piece in stream:
                    seen.append(piece)
                    if len(seen) == 3:
                        got_three.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_three.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The stream's exit waited for the worker: generation has already stopped.
        stopped_at = core.tokens_generated
        assert stopped_at < 3 + TOKEN_SLACK
        await asyncio.sleep(0.3)
        assert core.tokens_generated == stopped_at
        # and the model is free for the next request at once
        after = await core.chat(QUESTION, params=GREEDY)
        assert after.finish_reason in ("stop", "length")


TOKEN_SLACK = 70  # pieces the worker may have produced ahead of a slow consumer (queue depth)


async def test_cancellation_aborts_a_long_prompt_evaluation(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llama_cpp")
    words = " ".join(f"word{i}" for i in range(400))  # about 1,500 tokens
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=4096, n_batch=64)) as core:
        params = SamplingParams(temperature=0.0, max_tokens=4)
        t0 = time.perf_counter()
        full = await core.chat([ChatMessage("user", "A: " + words)], params=params)
        full_s = time.perf_counter() - t0
        assert full.prompt_tokens > 1000
        assert full.trim is None
        # A different prompt (no KV-cache reuse), cancelled shortly after it starts.
        stream = core.stream_chat([ChatMessage("user", "B: " + words)], params=params)
        t0 = time.perf_counter()
        async with stream:
            consumer = asyncio.create_task(anext(aiter(stream), None))
            await asyncio.sleep(full_s * 0.1)
            consumer.cancel()
        cancelled_s = time.perf_counter() - t0
        assert stream.result.finish_reason == "cancelled"
        assert stream.result.completion_tokens == 0
        assert cancelled_s < full_s * 0.6, (cancelled_s, full_s)
        aborted = [r for r in caplog.records if "failed to decode" in r.getMessage()]
        assert aborted, "llama.cpp's eval was not aborted"
        assert all(r.levelno == logging.DEBUG for r in aborted)
        again = await core.chat(QUESTION, params=GREEDY)
        assert again.text.strip()


async def test_long_history_is_trimmed_and_said(model_path: Path) -> None:
    n_ctx = 256
    history: list[ChatMessage] = [ChatMessage("system", "Be brief.")]
    for i in range(30):
        history.append(ChatMessage("user", f"Question {i}: what is {i} plus {i}?"))
        history.append(ChatMessage("assistant", f"It is {2 * i}."))
    history.append(ChatMessage("user", "What did I ask last?"))
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=n_ctx)) as core:
        result = await core.chat(history, params=GREEDY.with_(max_tokens=64))
    assert result.trim is not None
    assert result.trim.dropped_messages > 0
    assert "dropped" in result.trim.describe()
    assert result.prompt_tokens + result.completion_tokens <= n_ctx


async def test_one_giant_message_is_cut_in_the_middle(model_path: Path) -> None:
    giant = "start " + "lorem ipsum dolor sit amet " * 2000 + " finish"
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        result = await core.chat(
            [ChatMessage("system", "x " * 2000), ChatMessage("user", giant)],
            params=GREEDY.with_(max_tokens=32),
        )
    assert result.trim is not None
    assert result.trim.truncated_chars > 0
    assert result.prompt_tokens + result.completion_tokens <= 512


async def test_generation_never_runs_past_the_context(model_path: Path) -> None:
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=128)) as core:
        result = await core.chat(
            [ChatMessage("user", "Count from 1 to 1000, one number per line.")],
            grammar='root ::= ("ab "){400}',  # the model may not stop before the window is full
            params=SamplingParams(temperature=0.0, max_tokens=5000),
        )
        n_ctx = core.n_ctx  # llama.cpp rounds the requested size up (here to 256)
    assert 128 <= n_ctx < 5000
    assert result.prompt_tokens + result.completion_tokens == n_ctx
    assert result.finish_reason == "length"


async def test_json_schema_constrains_output(model_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        result = await core.chat(
            [ChatMessage("user", "Describe a person as JSON.")],
            json_schema=schema,
            params=SamplingParams(temperature=0.7, max_tokens=96, seed=3),
        )
    value = json.loads(result.text)
    assert isinstance(value["name"], str)
    assert isinstance(value["age"], int)


async def test_huge_schema_bounds_do_not_crash_llama_cpp(model_path: Path) -> None:
    # maxLength 100000 once became an 800 KB grammar that overflowed llama.cpp's stack.
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "maxLength": 100_000},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10_000},
        },
        "required": ["text", "tags"],
    }
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        result = await core.chat(
            [ChatMessage("user", "Describe bees as JSON.")],
            json_schema=schema,
            params=SamplingParams(temperature=0.0, max_tokens=64),
        )
    value = json.loads(result.text) if result.finish_reason == "stop" else None
    if value is not None:
        assert isinstance(value["text"], str)
        assert isinstance(value["tags"], list)
    huge_enum = {"enum": [f"choice-{i}-" + "x" * 100 for i in range(3000)]}
    with pytest.raises(ValueError, match="too complex"):
        _schema_grammar(huge_enum)


async def test_required_tool_call_matches_the_tool_schema(model_path: Path) -> None:
    calculator = ToolSpec(
        name="calculator",
        description="Evaluate an arithmetic expression exactly.",
        input_schema={
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    )
    clock = ToolSpec("clock", "Tell the time.", {"type": "object", "properties": {}})
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=1024)) as core:
        result = await core.chat(
            [ChatMessage("user", "What is 12 * 34?")],
            tools=[calculator, clock],
            tool_choice="required",
            params=SamplingParams(temperature=0.0, max_tokens=96),
        )
    assert result.tool_call is not None, result.text
    assert result.tool_call.name in ("calculator", "clock")
    if result.tool_call.name == "calculator":
        assert isinstance(result.tool_call.arguments["expression"], str)


async def test_gbnf_grammar_and_invalid_grammar(model_path: Path) -> None:
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        result = await core.chat(
            [ChatMessage("user", "Is the sky blue?")],
            grammar='root ::= "yes" | "no"',
            params=GREEDY,
        )
        assert result.text in ("yes", "no")
        with pytest.raises(GenerationError, match="invalid GBNF"):
            await core.chat(QUESTION, grammar="root ::= (", params=GREEDY)
        assert (await core.chat(QUESTION, params=GREEDY)).text.strip()


async def test_concurrent_requests_queue_and_match_sequential(model_path: Path) -> None:
    other = [ChatMessage("user", "Name three animals.")]
    async with await LLMCore.load(model_path, ModelConfig(n_ctx=512)) as core:
        a, b = await asyncio.gather(
            core.chat(QUESTION, params=GREEDY), core.chat(other, params=GREEDY)
        )
        assert a.text == (await core.chat(QUESTION, params=GREEDY)).text
        assert b.text == (await core.chat(other, params=GREEDY)).text


async def test_bad_arguments() -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        await LLMCore.load(Path("/nonexistent/model.gguf"))


async def test_missing_and_garbage_model_files(model_path: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(ModelLoadError, match="could not load"):
        await LLMCore.load(garbage)
    with pytest.raises(ModelNotFoundError, match="adapter not found"):
        await LLMCore.load(model_path, adapters=[AdapterConfig(str(tmp_path / "none.gguf"))])
    with pytest.raises(ModelLoadError, match="LoRA adapter"):
        await LLMCore.load(model_path, adapters=[AdapterConfig(str(garbage))])


async def test_argument_validation_and_close(model_path: Path) -> None:
    core = await LLMCore.load(model_path, ModelConfig(n_ctx=256))
    with pytest.raises(ValueError, match="no messages"):
        core.stream_chat([])
    with pytest.raises(ValueError, match="at most one"):
        core.stream_chat(QUESTION, grammar='root ::= "a"', json_schema={"type": "string"})
    with pytest.raises(ValueError, match="needs tools"):
        core.stream_chat(QUESTION, tool_choice="required")
    await core.aclose()
    await core.aclose()  # idempotent
    with pytest.raises(GenerationError, match="closed"):
        await core.chat(QUESTION)


async def test_the_same_greedy_request_gets_the_same_answer_every_time(model_path: Path) -> None:
    """Without prompt reuse every answer starts from a fully evaluated prompt."""
    question = [ChatMessage("user", "Count from 1 to 20, one number per line.")]
    other = [ChatMessage("user", "Name three colours.")]
    answers = []
    async with await LLMCore.load(model_path, ModelConfig()) as core:
        for _ in range(3):  # the same request, alone and after another one
            answers.append((await core.chat(question, params=GREEDY)).text)
            await core.chat(other, params=GREEDY)
    async with await LLMCore.load(model_path, ModelConfig()) as fresh:
        first = (await fresh.chat(question, params=GREEDY)).text
    assert answers == [first] * 3


async def test_prompt_reuse_is_opt_in_and_still_answers(model_path: Path) -> None:
    question = [ChatMessage("user", "Count from 1 to 20, one number per line.")]
    async with await LLMCore.load(model_path, ModelConfig(prompt_cache=True)) as core:
        first = await core.chat(question, params=GREEDY)
        again = await core.chat(question, params=GREEDY)
    assert first.completion_tokens > 0
    assert again.completion_tokens > 0
    assert again.prompt_tokens == first.prompt_tokens
