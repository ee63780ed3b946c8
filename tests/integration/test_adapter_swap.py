"""LoRA hot-swap: adapters loaded once, selected per request, the base model loaded once.

Greedy answers (temperature 0) are compared for the same prompt under different
adapter selections. Every answer compared here is generated right after a switch
(or on a fresh core), so each one evaluates its whole prompt: llama-cpp-python's
prefix reuse within one selection is not what these tests are about.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agent.adapters import AdapterRegistry, adapter_command, load_registered
from agent.config import AdapterConfig, ModelConfig
from agent.errors import AdapterError, ModelLoadError, ModelNotFoundError
from agent.llm import ChatMessage, LLMCore, SamplingParams
from tests.integration.lora_files import write_lora

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GREEDY = SamplingParams(temperature=0.0, max_tokens=20, repeat_penalty=1.0)
QUESTION = [ChatMessage("user", "Name three colours.")]
CFG = ModelConfig(n_ctx=256)


@pytest.fixture
def lora_a(tmp_path: Path) -> Path:
    return write_lora(tmp_path / "a.gguf", b_scale=0.5, seed=1)


@pytest.fixture
def lora_b(tmp_path: Path) -> Path:
    return write_lora(tmp_path / "b.gguf", b_scale=0.5, seed=2)


@pytest_asyncio.fixture
async def core(model_path: Path) -> AsyncIterator[LLMCore]:
    async with await LLMCore.load(model_path, CFG) as loaded:
        yield loaded


async def answer(core: LLMCore, adapters: Mapping[str, float] | None) -> str:
    return (await core.chat(QUESTION, params=GREEDY, adapters=adapters)).text


async def solo(model_path: Path, adapter: Path | None) -> str:
    """The answer of a fresh core that runs with `adapter` (or none) from the start."""
    async with await LLMCore.load(model_path, CFG) as fresh:
        if adapter is None:
            return await answer(fresh, {})
        await fresh.add_adapter("solo", adapter)
        return await answer(fresh, {"solo": 1.0})


def model_pointer(core: LLMCore) -> int | None:
    value: int | None = ctypes.cast(core._llm.model, ctypes.c_void_p).value
    return value


async def test_switching_changes_the_answer_and_switching_back_restores_it_exactly(
    model_path: Path, lora_a: Path, lora_b: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp

    constructed: list[str] = []
    real_init = llama_cpp.Llama.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        constructed.append(str(kwargs.get("model_path")))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(llama_cpp.Llama, "__init__", counting_init)
    async with await LLMCore.load(model_path, CFG) as core:
        pointer = model_pointer(core)
        base = await answer(core, None)
        await core.add_adapter("a", lora_a)
        await core.add_adapter("b", str(lora_b), 0.75)
        with_a = await answer(core, {"a": 1.0})
        with_b = await answer(core, {"b": 1.0})
        with_a_again = await answer(core, {"a": 1.0})
        without = await answer(core, {})
        assert [a.name for a in core.adapters] == ["a", "b"]
        assert core.adapters[1].scale == 0.75
        assert not core.adapters[1].default
        assert model_pointer(core) == pointer
    assert len({base, with_a, with_b}) == 3, "each adapter must change the greedy answer"
    assert with_a_again == with_a
    assert without == base
    assert constructed == [str(model_path)], "the base model must be loaded exactly once"


async def test_interleaved_requests_each_match_their_solo_run(
    model_path: Path, core: LLMCore, lora_a: Path
) -> None:
    alone_a = await solo(model_path, lora_a)
    alone_base = await solo(model_path, None)
    assert alone_a != alone_base
    await core.add_adapter("a", lora_a)
    # One after another: A, none, A. Without forgetting the KV cache and the cached
    # prompt on a switch, the second request would reuse A's prompt evaluation.
    assert await answer(core, {"a": 1.0}) == alone_a
    assert await answer(core, {}) == alone_base
    assert await answer(core, {"a": 1.0}) == alone_a
    # Submitted together: they queue on the one worker, each with its own selection.
    together = await asyncio.gather(
        answer(core, {}), answer(core, {"a": 1.0}), answer(core, {}), answer(core, {"a": 1.0})
    )
    assert list(together) == [alone_base, alone_a, alone_base, alone_a]


async def test_default_selection_comes_from_config_and_default_adapters(
    model_path: Path, lora_a: Path, lora_b: Path
) -> None:
    alone_a = await solo(model_path, lora_a)
    alone_base = await solo(model_path, None)
    configured = [AdapterConfig(str(lora_a))]
    async with await LLMCore.load(model_path, CFG, adapters=configured) as core:
        assert [(a.name, a.default) for a in core.adapters] == [("a", True)]
        assert core.default_adapters == {"a": 1.0}
        assert await answer(core, None) == alone_a
        assert await answer(core, {}) == alone_base
        await core.add_adapter("b", lora_b, default=True)
        assert core.default_adapters == {"a": 1.0, "b": 1.0}
        both_by_default = await answer(core, None)
        assert both_by_default not in (alone_a, alone_base)
        assert await answer(core, {}) == alone_base
        # named in another order, applied in load order: the same selection
        assert await answer(core, {"b": 1.0, "a": 1.0}) == both_by_default


async def test_removing_an_applied_adapter_returns_to_the_base_model(
    model_path: Path, core: LLMCore, lora_a: Path
) -> None:
    alone_base = await solo(model_path, None)
    await core.add_adapter("a", lora_a, default=True)
    assert await answer(core, None) != alone_base
    removed = await core.remove_adapter("a")
    assert removed.name == "a"
    assert not core.adapters
    assert await answer(core, None) == alone_base
    with pytest.raises(AdapterError, match="unknown adapter"):
        await answer(core, {"a": 1.0})
    with pytest.raises(AdapterError, match="no adapter named 'a'"):
        await core.remove_adapter("a")
    # the same file can come back under the same name
    await core.add_adapter("a", lora_a)
    assert [a.name for a in core.adapters] == ["a"]


async def test_bad_adapters_are_refused_and_change_nothing(
    model_path: Path, core: LLMCore, lora_a: Path, tmp_path: Path
) -> None:
    await core.add_adapter("a", lora_a)
    with_a = await answer(core, {"a": 1.0})
    before = core.adapters
    wide = write_lora(tmp_path / "wide.gguf", b_scale=0.5, width=960)
    deep = write_lora(tmp_path / "deep.gguf", b_scale=0.5, layers=31)
    refusals: list[tuple[type[Exception], str, Any]] = [
        (ModelNotFoundError, "not found", ("x", tmp_path / "missing.gguf")),
        (ModelLoadError, "general.type is 'model'", ("x", model_path)),
        (ModelLoadError, r"blk\.0\.attn_q\.weight is \[576, 576\]", ("x", wide)),
        (ModelLoadError, r"has no tensor blk\.30\.attn_q\.weight", ("x", deep)),
        (AdapterError, "already loaded", ("a", lora_a)),
        (AdapterError, "bad adapter name", ("Bad Name", lora_a)),
        (AdapterError, "bad adapter name", ("../a", lora_a)),
        (AdapterError, "scale", ("x", lora_a, float("nan"))),
        (AdapterError, "scale", ("x", lora_a, 11.0)),
    ]
    for error, message, args in refusals:
        with pytest.raises(error, match=message):
            await core.add_adapter(*args)
        assert core.adapters == before
    tokens = core.tokens_generated
    with pytest.raises(AdapterError, match=r"unknown adapter\(s\) nope \(loaded: a\)"):
        core.stream_chat(QUESTION, params=GREEDY, adapters={"nope": 1.0})
    with pytest.raises(AdapterError, match="scale"):
        core.stream_chat(QUESTION, params=GREEDY, adapters={"a": float("inf")})
    assert core.tokens_generated == tokens, "nothing may be generated for a refused request"
    await answer(core, {})  # switch away, so the next answer evaluates its whole prompt
    assert await answer(core, {"a": 1.0}) == with_a


async def test_llama_cpp_refusal_of_an_adapter_is_reported_with_its_reason(
    model_path: Path, tmp_path: Path
) -> None:
    """`model.adapters` go straight to llama.cpp; its own check names the problem."""
    wide = write_lora(tmp_path / "wide.gguf", b_scale=0.5, width=960)
    with pytest.raises(ModelLoadError, match=r"LoRA adapter .*wide\.gguf: .*shape"):
        await LLMCore.load(model_path, CFG, adapters=[AdapterConfig(str(wide))])


async def test_registered_adapters_load_into_the_core_and_changed_files_are_skipped(
    model_path: Path, core: LLMCore, lora_a: Path, lora_b: Path, tmp_path: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "home" / "adapters.json")
    registry.add("a", lora_a, default=True, base_model=model_path)
    registry.add("b", lora_b, scale=0.5)
    write_lora(lora_b, b_scale=0.5, seed=3)  # b's file changes after it was added
    assert await load_registered(core, registry) == ["a"]
    assert [(a.name, a.default) for a in core.adapters] == [("a", True)]
    assert await answer(core, None) == await solo(model_path, lora_a)
    assert await load_registered(core, registry) == []  # loaded ones are not loaded twice


async def test_chat_adapter_command_lists_selects_and_loads_on_first_use(
    model_path: Path, core: LLMCore, lora_a: Path, lora_b: Path, tmp_path: Path
) -> None:
    registry = AdapterRegistry(tmp_path / "home" / "adapters.json")
    registry.add("b", lora_b, scale=0.5, base_model=model_path)
    await core.add_adapter("a", lora_a, default=True)

    shown, selection = await adapter_command("", core, registry, None)
    assert selection is None
    lines = shown.splitlines()
    assert lines[0].startswith(" * a  scale 1 at 1  loaded")  # active: a default
    assert lines[1].startswith("   b  scale 0.5  registered")

    shown, selection = await adapter_command("b", core, registry, selection)
    assert selection == {"b": 0.5}  # b's own scale; loaded from the registry on first use
    assert [a.name for a in core.adapters] == ["a", "b"]
    assert shown == "adapters: b (0.5)\n"
    assert (
        (await adapter_command("", core, registry, selection))[0]
        .splitlines()[1]
        .startswith(" * b  scale 0.5 at 0.5  loaded")
    )
    _, selection = await adapter_command("a,b 0.25", core, registry, selection)
    assert selection == {"a": 0.25, "b": 0.25}
    _, selection = await adapter_command("off", core, registry, selection)
    assert selection == {}
    assert await answer(core, selection) == await solo(model_path, None)
    _, selection = await adapter_command("default", core, registry, selection)
    assert selection is None

    for arg, message in [
        ("nope", "no adapter named 'nope'"),
        ("Bad", "bad adapter name"),
        ("a x", "not a number"),
        ("a 99", "scale"),
        ("a 1 2", "usage"),
    ]:
        with pytest.raises(AdapterError, match=message):
            await adapter_command(arg, core, registry, {"a": 1.0})
    assert [a.name for a in core.adapters] == ["a", "b"]
