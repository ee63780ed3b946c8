"""The official `openai` client, unchanged, against the node's API and the real model.

Oracles: the LLM core's own greedy answer to the same messages, the embedder's own
vectors, `jsonschema` for schema-constrained answers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import numpy as np
import openai
import pytest

from agent.llm import ChatMessage, SamplingParams
from tests.api.conftest import Api

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

QUESTION = "Name three colours."
GREEDY = {"temperature": 0.0, "max_tokens": 40, "seed": 3}


def client(api: Api) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=api.url + "/v1", api_key=api.token, max_retries=0)


async def core_answer(
    api: Api, messages: list[ChatMessage], max_tokens: int = 40
) -> tuple[str, int, int]:
    """What the LLM core itself says, with the sampling the API requests below ask for.

    Asked twice: llama.cpp's greedy output for a prompt depends on what its KV cache
    held before (a fresh evaluation and one after a shorter or different answer to the
    same prompt can differ by a token). After one identical request, repeats agree,
    so the second answer is what the API's request, made next, must reproduce.
    """
    core = await api.backend.core()
    params = SamplingParams().with_(temperature=0.0, max_tokens=max_tokens, seed=3)
    await core.chat(messages, params=params)
    result = await core.chat(messages, params=params)
    return result.text, result.prompt_tokens, result.completion_tokens


async def test_chat_completion_equals_raw_llama_cpp_on_the_same_prompt(
    api: Api, model_path: Path
) -> None:
    from llama_cpp import Llama

    async with client(api) as oa:
        reply = await oa.chat.completions.create(
            model=api.backend.model_name,
            messages=[{"role": "user", "content": QUESTION}],
            **GREEDY,
        )
    core = await api.backend.core()
    prompt = await core.format_prompt([ChatMessage("user", QUESTION)])
    defaults = SamplingParams()
    raw = Llama(str(model_path), n_ctx=2048, verbose=False)
    try:  # a fresh llama.cpp, as the API's first request ran on a fresh core
        oracle = raw.create_completion(
            prompt, max_tokens=40, temperature=0.0, top_k=defaults.top_k,
            top_p=defaults.top_p, min_p=defaults.min_p, repeat_penalty=defaults.repeat_penalty,
        )  # fmt: skip
    finally:
        raw.close()
    assert reply.choices[0].message.content == oracle["choices"][0]["text"]
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason == oracle["choices"][0]["finish_reason"]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(prompt) == oracle["usage"]["prompt_tokens"]
    assert reply.usage.completion_tokens == oracle["usage"]["completion_tokens"]
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.model == api.backend.model_name


async def test_streamed_chunks_join_to_the_same_answer_and_usage_comes_last(api: Api) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": QUESTION},
    ]
    text, _, _ = await core_answer(api, [ChatMessage("system", "You are terse."),
                                         ChatMessage("user", QUESTION)])  # fmt: skip
    async with client(api) as oa:
        whole = await oa.chat.completions.create(
            model=api.backend.model_name,
            messages=messages,
            **GREEDY,
        )
        stream = await oa.chat.completions.create(
            model=api.backend.model_name,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
        chunks = [chunk async for chunk in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content == text
    assert content == text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


async def test_json_schema_answer_parses_and_validates(api: Api) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "colours": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue"]},
                "maxItems": 3,
            },
        },
        "required": ["name", "age", "colours"],
        "additionalProperties": False,
    }
    async with client(api) as oa:
        reply = await oa.chat.completions.create(
            model=api.backend.model_name,
            messages=[{"role": "user", "content": "Describe a person called Ada as JSON."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema, "strict": True},
            },
            temperature=0.7,
            seed=11,
            max_tokens=120,
        )
    answer = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(answer, schema)


async def test_json_object_answer_is_a_json_object(api: Api) -> None:
    async with client(api) as oa:
        reply = await oa.chat.completions.create(
            model=api.backend.model_name,
            messages=[{"role": "user", "content": "Give me a JSON object about the sea."}],
            response_format={"type": "json_object"},
            temperature=0.0,
            max_tokens=80,
        )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_tools_come_back_as_tool_calls(api: Api, stream: bool) -> None:
    tool_choice = {"type": "function", "function": {"name": "get_weather"}}
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with client(api) as oa:
        if stream:
            chunks = [
                c
                async for c in await oa.chat.completions.create(
                    model=api.backend.model_name, messages=messages,
                    tools=[WEATHER], tool_choice=tool_choice, stream=True,
                    temperature=0.0, max_tokens=60,
                )
            ]  # fmt: skip
            calls = [
                tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])
            ]
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert content == ""
            name, arguments = calls[0].function.name, calls[0].function.arguments
        else:
            reply = await oa.chat.completions.create(
                model=api.backend.model_name, messages=messages,
                tools=[WEATHER], tool_choice=tool_choice,
                temperature=0.0, max_tokens=60,
            )  # fmt: skip
            message = reply.choices[0].message
            assert message.content is None
            calls = message.tool_calls or []
            finish = reply.choices[0].finish_reason
            name, arguments = calls[0].function.name, calls[0].function.arguments
    assert len(calls) == 1
    assert finish == "tool_calls"
    assert name == "get_weather"
    jsonschema.validate(json.loads(arguments or ""), WEATHER["function"]["parameters"])


async def test_a_tool_result_conversation_is_accepted(api: Api) -> None:
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    async with client(api) as oa:
        reply = await oa.chat.completions.create(
            model=api.backend.model_name, messages=messages,
            tools=[WEATHER], tool_choice="none", temperature=0.0, max_tokens=40,
        )  # fmt: skip
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 20


async def test_stop_sequence_cuts_the_answer_where_the_core_would_continue(api: Api) -> None:
    question = "Count from 1 to 20, separated by commas."
    text, _, _ = await core_answer(api, [ChatMessage("user", question)], max_tokens=60)
    stop = "5"
    assert stop in text  # the oracle answer goes past the stop sequence
    async with client(api) as oa:
        reply = await oa.chat.completions.create(
            model=api.backend.model_name,
            messages=[{"role": "user", "content": question}],
            stop=[stop],
            temperature=0.0,
            seed=3,
            max_tokens=60,
        )
    assert reply.choices[0].message.content == text[: text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_embeddings_equal_the_embedders_own_vectors(api: Api, encoding: str) -> None:
    texts = ["Bees make honey.", "Swarm stores 4 KiB chunks."]
    knowledge = await api.node.knowledge()
    expected = (await knowledge.embedder.embed(texts)).vectors
    async with client(api) as oa:
        if encoding == "float":
            reply = await oa.embeddings.create(model=api.backend.embedder_id, input=texts)
            got = np.array([d.embedding for d in reply.data], dtype=np.float32)
            usage = reply.usage
        else:  # the client decodes base64 itself unless asked for it raw
            raw = await oa.embeddings.with_raw_response.create(
                model=api.backend.embedder_id, input=texts, encoding_format="base64"
            )
            body = json.loads(raw.text)
            got = np.stack(
                [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in body["data"]]
            )
            usage = raw.parse().usage
    assert got.shape == (2, 384)
    np.testing.assert_array_equal(got, expected)
    assert usage.prompt_tokens == knowledge.chunker.count_tokens(texts)


async def test_models_lists_the_base_model_the_loaded_adapters_and_the_embedder(
    api: Api, tmp_path: Path
) -> None:
    from tests.integration.lora_files import write_lora

    core = await api.backend.core()
    await core.add_adapter("pirate", write_lora(tmp_path / "pirate.gguf", b_scale=0.5), 0.5)
    async with client(api) as oa:
        ids = [m.id async for m in oa.models.list()]
    assert ids == [api.backend.model_name, "pirate", api.backend.embedder_id]


async def test_model_selects_a_loaded_lora_adapter_and_back(api: Api, tmp_path: Path) -> None:
    from tests.integration.lora_files import write_lora

    core = await api.backend.core()
    await core.add_adapter("strong", write_lora(tmp_path / "strong.gguf", b_scale=0.5, seed=1))
    messages = [{"role": "user", "content": QUESTION}]

    async def answer(oa: openai.AsyncOpenAI, model: str) -> str:
        reply = await oa.chat.completions.create(model=model, messages=messages, **GREEDY)
        return reply.choices[0].message.content or ""

    async with client(api) as oa:
        base = await answer(oa, api.backend.model_name)
        adapted = await answer(oa, "strong")
        again = await answer(oa, api.backend.model_name)
    assert base.strip()
    assert adapted != base
    assert again == base  # switching back restores the base model exactly
