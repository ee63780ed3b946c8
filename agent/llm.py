"""LLM core: one GGUF model behind an async, streaming, cancellable chat API.

llama.cpp is not thread-safe, so every call into it (load, tokenize, generate, close)
runs on one dedicated worker thread; requests queue behind each other in order.
Generated text crosses to the event loop through a bounded hand-off (the worker
blocks when the consumer falls `TOKEN_QUEUE_DEPTH` pieces behind).

Cancellation really stops the work: closing a stream sets a flag the worker checks
after every token, and llama.cpp's abort callback checks the same flag inside a
long prompt evaluation.

LoRA adapters are loaded once (`add_adapter`, or `model.adapters` at load) and
selected per request (`stream_chat(adapters=...)`; None: the default selection).
The worker applies a request's selection right before generating it, so a switch
is serialized with generation; on a switch it also forgets the KV cache and the
cached prompt prefix, so nothing computed under other adapters is reused. The base
weights are never reloaded.

The prompt is rendered with the GGUF's own chat template. When the conversation
does not fit the context window, the oldest turns are dropped and, if that is not
enough, the longest remaining message is cut in the middle; the result says so
(`ChatResult.trim`) and the trim is logged. Generation never runs past `n_ctx`.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import ctypes
import json
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from agent.adapter_files import (
    check_adapter_name,
    check_scale,
    file_sha256,
    inspect_adapter,
    name_for_path,
)
from agent.config import AdapterConfig, ModelConfig
from agent.errors import AdapterError, GenerationError, ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled"]
ToolChoice = Literal["auto", "required", "none"]

TOKEN_QUEUE_DEPTH = 64
TRIM_MARKER = "\n[... {n} characters trimmed to fit the context window ...]\n"
# Used when a GGUF carries no chat template: ChatML, which most instruct models know.
FALLBACK_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# Which adapters a request runs with, and their scales, in the order they were loaded.
AdapterSelection = tuple[tuple[str, float], ...]
_UNKNOWN_SELECTION: AdapterSelection = (("", 0.0),)  # equal to no request's ("" is no name)


@dataclass(frozen=True)
class LoadedAdapter:
    """A LoRA adapter the core holds, ready for any request to select."""

    name: str
    path: Path
    scale: float  # used when a selection names it without a scale, and by default
    sha256: str
    default: bool  # part of the selection of requests that make none (adapters=None)


@dataclass
class _Adapter:
    record: LoadedAdapter
    handle: Any  # llama_adapter_lora_p


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 512
    temperature: float = 0.3
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = -1  # -1: a fresh random seed per request

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> SamplingParams:
        return cls(
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            min_p=cfg.min_p,
            repeat_penalty=cfg.repeat_penalty,
            seed=cfg.seed,
        )

    def with_(self, **changes: Any) -> SamplingParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class ToolSpec:
    """What the model is told about a tool: MCP's name/description/inputSchema."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ContextTrim:
    """How a conversation was cut to fit the context window."""

    dropped_messages: int
    truncated_chars: int

    def describe(self) -> str:
        parts = []
        if self.dropped_messages:
            parts.append(f"dropped the {self.dropped_messages} oldest message(s)")
        if self.truncated_chars:
            parts.append(f"cut {self.truncated_chars} characters from the longest message")
        return "context window full: " + " and ".join(parts)


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # request to first generated token (includes queueing and prompt eval)
    total_s: float  # request to last generated token
    trim: ContextTrim | None = None
    tool_call: ToolCall | None = None

    @property
    def tokens_per_s(self) -> float:
        """Decode speed: tokens after the first over the time after the first."""
        span = self.total_s - self.ttft_s
        return (
            (self.completion_tokens - 1) / span if self.completion_tokens > 1 and span > 0 else 0.0
        )


@dataclass
class _Job:
    """One generation request as the worker sees it."""

    messages: list[ChatMessage]
    params: SamplingParams
    grammar: str | None
    tools: Sequence[ToolSpec]
    tool_choice: ToolChoice
    adapters: AdapterSelection
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | BaseException | ChatResult]
    started: float = field(default_factory=time.perf_counter)
    cancel: threading.Event = field(default_factory=threading.Event)
    credits: threading.Semaphore = field(
        default_factory=lambda: threading.Semaphore(TOKEN_QUEUE_DEPTH)
    )


class ChatStream:
    """Streamed pieces of one answer. Use as `async with core.stream_chat(...) as s`.

    Iterating yields text pieces as they are generated; afterwards `result` holds
    the `ChatResult`. Leaving the `async with` early (break, exception, task
    cancellation) stops generation and waits until the worker is free.
    """

    def __init__(self, core: LLMCore, job: _Job) -> None:
        self._core = core
        self._job = job
        self._future: asyncio.Future[None] | None = None
        self._result: ChatResult | None = None

    async def __aenter__(self) -> ChatStream:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._future is None:
            self._future = self._core._submit(self._core._run_job, self._job)

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    async def __aiter__(self) -> AsyncIterator[str]:
        self._start()
        while self._result is None:
            item = await self._job.queue.get()
            if isinstance(item, ChatResult):
                self._result = item
            elif isinstance(item, BaseException):
                raise item
            else:
                self._job.credits.release()
                yield item

    async def aclose(self) -> None:
        """Stop generating (if still running) and wait for the worker to let go."""
        self._job.cancel.set()
        if self._future is not None:
            await asyncio.shield(self._future)
        if self._result is None:
            while not self._job.queue.empty():
                item = self._job.queue.get_nowait()
                if isinstance(item, ChatResult):
                    self._result = item


class LLMCore:
    """A loaded GGUF model. Create with `await LLMCore.load(...)`; close with `aclose()`."""

    def __init__(self, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self._executor = executor
        self._llm: Any = None
        # In load order. Replaced, never mutated, by the worker: the loop reads it freely.
        self._adapters: dict[str, _Adapter] = {}
        self._prompt_cache = False  # model.prompt_cache, set on load
        self._applied: AdapterSelection = ()  # what the llama context runs with now
        self._formatter: Any = None
        self._vocab: Any = None
        self._active: _Job | None = None
        self._abort_cb: Any = None
        self._closed = False
        self.model_path: Path = Path()
        self.n_ctx = 0
        self.chat_template = ""
        self.tokens_generated = 0  # over the core's lifetime; tests use it to see work stop

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def load(
        cls,
        model_path: Path,
        cfg: ModelConfig | None = None,
        *,
        adapters: Sequence[AdapterConfig] | None = None,
    ) -> LLMCore:
        """Load `model_path` (and LoRA `adapters`) on a fresh worker thread."""
        cfg = cfg or ModelConfig()
        adapters = list(cfg.adapters if adapters is None else adapters)
        if not model_path.is_file():
            raise ModelNotFoundError(f"model file not found: {model_path}")
        for adapter in adapters:
            if not Path(adapter.path).expanduser().is_file():
                raise ModelNotFoundError(f"LoRA adapter not found: {adapter.path}")
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llm")
        core = cls(executor)
        try:
            await core._submit(core._load, model_path, cfg, adapters)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        return core

    async def aclose(self) -> None:
        """Free the model; idempotent. Waits for a running generation to stop."""
        if self._closed:
            return
        self._closed = True
        if self._active is not None:
            self._active.cancel.set()
        await asyncio.wrap_future(self._executor.submit(self._free))
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> LLMCore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        if self._closed:
            raise GenerationError("the model is closed")
        return asyncio.wrap_future(self._executor.submit(fn, *args))

    # ------------------------------------------------------------ public API

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        params: SamplingParams | None = None,
        grammar: str | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        adapters: Mapping[str, float] | None = None,
    ) -> ChatStream:
        """Start answering `messages`; see `ChatStream`.

        `grammar` (GBNF) or `json_schema` constrain the output. With `tools` and
        `tool_choice="required"` the output is forced to one JSON tool call
        `{"name": ..., "arguments": {...}}` matching that tool's input schema.
        `adapters` maps loaded adapter names to scales (`{}`: the base model alone;
        None: `default_adapters`); an unknown name is an AdapterError, raised here.
        """
        if not messages:
            raise ValueError("no messages")
        selection = self._select(adapters)
        constraints = sum(x is not None for x in (grammar, json_schema)) + (
            tool_choice == "required"
        )
        if constraints > 1:
            raise ValueError("use at most one of grammar, json_schema, tool_choice='required'")
        if tool_choice == "required" and not tools:
            raise ValueError("tool_choice='required' needs tools")
        if json_schema is not None:
            grammar = _schema_grammar(json_schema)
        elif tool_choice == "required":
            grammar = _schema_grammar(tool_call_schema(tools))
        job = _Job(
            messages=list(messages),
            params=params or SamplingParams(),
            grammar=grammar,
            tools=tools if tool_choice != "none" else (),
            tool_choice=tool_choice,
            adapters=selection,
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(),
        )
        return ChatStream(self, job)

    async def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResult:
        """Answer `messages` in one piece; arguments as `stream_chat`."""
        async with self.stream_chat(messages, **kwargs) as stream:
            async for _ in stream:
                pass
        return stream.result

    async def count_tokens(self, text: str) -> int:
        tokens: list[int] = await self._submit(
            lambda: self._llm.tokenize(text.encode(), add_bos=False, special=False)
        )
        return len(tokens)

    async def format_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The exact prompt tokens a request for `messages` evaluates (no trimming)."""
        tokens: list[int] = await self._submit(self._encode, list(messages), ())
        return tokens

    # ------------------------------------------------------------ adapters

    @property
    def adapters(self) -> tuple[LoadedAdapter, ...]:
        """The loaded LoRA adapters, in load order."""
        return tuple(a.record for a in self._adapters.values())

    @property
    def default_adapters(self) -> dict[str, float]:
        """The selection of a request that makes none: the adapters marked default."""
        return {a.record.name: a.record.scale for a in self._adapters.values() if a.record.default}

    async def add_adapter(
        self,
        name: str,
        path: str | os.PathLike[str],
        scale: float = 1.0,
        *,
        default: bool = False,
        sha256: str | None = None,
    ) -> LoadedAdapter:
        """Load the GGUF LoRA at `path` (`~` expanded) as `name`, once; nothing is applied
        until a request selects it (or, with `default`, selects nothing itself).

        AdapterError: bad or taken name, bad scale. ModelNotFoundError: no such file.
        ModelLoadError: not a LoRA adapter for this model, or not the file whose
        `sha256` the caller expects. On error nothing changes.
        """
        check_adapter_name(name)
        check_scale(scale, name)
        if name in self._adapters:
            raise AdapterError(f"an adapter named {name!r} is already loaded")
        where = Path(path).expanduser().absolute()
        checked = await asyncio.to_thread(inspect_adapter, where, self.model_path)
        digest = await asyncio.to_thread(file_sha256, checked.path)
        if sha256 is not None and digest != sha256:
            raise ModelLoadError(
                f"{where} changed since it was added (sha256 {digest[:12]}, expected "
                f"{sha256[:12]}); add it again if the new file is the one to use"
            )
        record = LoadedAdapter(name, checked.path, float(scale), digest, default)
        await self._submit(self._load_adapter, record)
        log.info("LoRA adapter %s loaded from %s", name, where)
        return record

    async def remove_adapter(self, name: str) -> LoadedAdapter:
        """Unload `name`; requests already queued that select it fail with AdapterError."""
        if name not in self._adapters:
            raise AdapterError(f"no adapter named {name!r} is loaded")
        record: LoadedAdapter = await self._submit(self._drop_adapter, name)
        log.info("LoRA adapter %s removed", name)
        return record

    def _select(self, adapters: Mapping[str, float] | None) -> AdapterSelection:
        """A request's adapters, checked, in load order; None: the default selection."""
        if adapters is None:
            return tuple(self.default_adapters.items())
        loaded = self._adapters
        unknown = [n for n in adapters if n not in loaded]
        if unknown:
            names = ", ".join(loaded) or "none"
            raise AdapterError(f"unknown adapter(s) {', '.join(unknown)} (loaded: {names})")
        chosen = {n: check_scale(s, n) for n, s in adapters.items()}
        return tuple((n, chosen[n]) for n in loaded if n in chosen)

    # ------------------------------------------------------------ worker side

    def _load(self, model_path: Path, cfg: ModelConfig, adapters: list[AdapterConfig]) -> None:
        # llama.cpp's CPU backend runs on OpenMP, whose idle threads spin by default: on a
        # busy 2-core machine a 600-token prompt took 18-35 s instead of 7 s. Must be set
        # before libgomp loads, i.e. before the first `import llama_cpp`.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        _route_llama_logs()
        self._prompt_cache = cfg.prompt_cache
        try:
            llm = llama_cpp.Llama(
                model_path=str(model_path),
                n_ctx=cfg.n_ctx,
                n_batch=min(cfg.n_batch, cfg.n_ctx),
                n_threads=cfg.n_threads or None,
                n_gpu_layers=cfg.n_gpu_layers,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {model_path}: {exc}") from None
        self._llm = llm
        self.model_path = model_path
        self.n_ctx = llm.n_ctx()
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        try:  # `model.adapters`: named by file stem, all in the default selection
            for adapter in adapters:
                where = Path(adapter.path).expanduser().absolute()
                name = name_for_path(where, set(self._adapters))
                record = LoadedAdapter(name, where, adapter.scale, file_sha256(where), True)
                self._load_adapter(record)
            self._apply_adapters(tuple(self.default_adapters.items()))
        except (ModelLoadError, GenerationError, AdapterError, OSError) as exc:
            self._free()
            if isinstance(exc, OSError):
                raise ModelLoadError(f"cannot read a LoRA adapter: {exc}") from None
            raise

        def should_abort(_: ctypes.c_void_p) -> bool:
            job = self._active
            if job is not None and job.cancel.is_set():
                _llama_thread.aborting = True  # the errors llama.cpp logs next are ours
                return True
            return False

        self._abort_cb = llama_cpp.ggml_abort_callback(should_abort)
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_cb, None)

        self.chat_template = llm.metadata.get("tokenizer.chat_template") or FALLBACK_CHAT_TEMPLATE
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=self.chat_template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
        )
        log.info("loaded %s (n_ctx=%d, %d adapter(s))", model_path, self.n_ctx, len(adapters))

    def _free(self) -> None:
        import llama_cpp

        if self._applied and self._llm is not None:
            llama_cpp.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
            self._applied = ()
        for adapter in self._adapters.values():
            llama_cpp.llama_adapter_lora_free(adapter.handle)
        self._adapters = {}
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def _load_adapter(self, record: LoadedAdapter) -> None:
        import llama_cpp

        if record.name in self._adapters:
            raise AdapterError(f"an adapter named {record.name!r} is already loaded")
        _llama_thread.last_error = ""
        handle = llama_cpp.llama_adapter_lora_init(self._llm.model, str(record.path).encode())
        if not handle:
            why = _llama_thread.last_error or "see the log (-vv)"
            raise ModelLoadError(f"llama.cpp could not load LoRA adapter {record.path}: {why}")
        self._adapters = {**self._adapters, record.name: _Adapter(record, handle)}

    def _drop_adapter(self, name: str) -> LoadedAdapter:
        import llama_cpp

        adapter = self._adapters.get(name)
        if adapter is None:
            raise AdapterError(f"no adapter named {name!r} is loaded")
        if any(n == name for n, _ in self._applied):  # the context must let go of it first
            self._apply_adapters(tuple((n, s) for n, s in self._applied if n != name))
        self._adapters = {n: a for n, a in self._adapters.items() if n != name}
        llama_cpp.llama_adapter_lora_free(adapter.handle)
        return adapter.record

    def _apply_adapters(self, selection: AdapterSelection) -> None:
        """Worker: run the context with `selection`; on a change, forget cached state."""
        import llama_cpp

        if selection == self._applied:
            return
        missing = [n for n, _ in selection if n not in self._adapters]
        if missing:
            raise AdapterError(f"adapter(s) {', '.join(missing)} were removed")
        n = len(selection)
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * n)(
            *(self._adapters[name].handle for name, _ in selection)
        )
        scales = (ctypes.c_float * n)(*(scale for _, scale in selection))
        if llama_cpp.llama_set_adapters_lora(self._llm.ctx, handles, n, scales):
            self._applied = _UNKNOWN_SELECTION  # whatever it holds now, set it next time
            self._llm.reset()
            raise GenerationError("llama.cpp could not apply the LoRA adapters")
        self._applied = selection
        # Keys and values in the KV cache, and the prompt prefix llama-cpp-python would
        # reuse, were computed with the old weights.
        self._forget_prompt()
        log.debug("adapters now: %s", ", ".join(f"{n}={s:g}" for n, s in selection) or "none")

    def _forget_prompt(self) -> None:
        """Worker: nothing of an earlier evaluation is reused by the next one.

        `Llama.generate` matches a new prompt against the tokens it evaluated last
        (`_input_ids`) and keeps the KV cells of the common prefix. `reset()` zeroes its
        token count, so no prefix matches; clearing the memory drops the cells.
        """
        import llama_cpp

        self._llm.reset()
        memory = llama_cpp.llama_get_memory(self._llm.ctx)
        if memory:
            llama_cpp.llama_memory_clear(memory, True)

    def _encode(self, messages: list[ChatMessage], tools: Sequence[ToolSpec]) -> list[int]:
        rendered = [{"role": m.role, "content": m.content} for m in messages]
        tool_defs = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                },
            }
            for t in tools
        ]
        if tools and "tools" not in self.chat_template:
            rendered = _describe_tools_in_system(rendered, tools)
        try:
            prompt = self._formatter(messages=rendered, tools=tool_defs or None).prompt
        except Exception as exc:  # jinja2 errors from a model-supplied template
            raise GenerationError(f"the model's chat template failed: {exc}") from None
        tokens: list[int] = self._llm.tokenize(prompt.encode(), add_bos=False, special=True)
        return tokens

    def _fit(self, job: _Job) -> tuple[list[int], ContextTrim | None]:
        """Encode the conversation, trimming it until prompt + reply room fits n_ctx."""
        reserve = max(1, min(job.params.max_tokens, self.n_ctx // 2))
        limit = self.n_ctx - reserve
        messages = list(job.messages)
        tokens = self._encode(messages, job.tools)
        if len(tokens) <= limit:
            return tokens, None
        dropped = truncated = 0
        first = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
        # Drop the oldest turns, always keeping system messages and the newest message;
        # never leave the conversation starting with an assistant or tool turn.
        while len(tokens) > limit and len(messages) - first > 1:
            del messages[first]
            dropped += 1
            while len(messages) - first > 1 and messages[first].role in ("assistant", "tool"):
                del messages[first]
                dropped += 1
            tokens = self._encode(messages, job.tools)
        # Then cut the longest message in the middle, keeping its head and tail.
        for _ in range(16):
            if len(tokens) <= limit:
                break
            idx = max(range(len(messages)), key=lambda i: len(messages[i].content))
            content = messages[idx].content
            excess_tokens = len(tokens) - limit
            chars_per_token = max(1.0, len(content) / max(1, len(tokens)))
            cut = min(len(content), int(excess_tokens * chars_per_token * 1.2) + 64)
            head = (len(content) - cut) // 2
            tail = len(content) - cut - head
            marker = TRIM_MARKER.format(n=cut)
            new_content = content[:head] + marker + (content[-tail:] if tail else "")
            messages[idx] = ChatMessage(messages[idx].role, new_content)
            truncated += cut
            tokens = self._encode(messages, job.tools)
        if len(tokens) > limit:
            raise GenerationError("the prompt cannot be trimmed to fit the context window")
        trim = ContextTrim(dropped_messages=dropped, truncated_chars=truncated)
        log.info("%s (%d prompt tokens, n_ctx=%d)", trim.describe(), len(tokens), self.n_ctx)
        return tokens, trim

    def _run_job(self, job: _Job) -> None:
        """Worker: generate for `job`, handing pieces to the loop. Never raises."""
        self._active = job
        try:
            result = self._generate(job)
        except Exception as exc:
            self._emit(job, exc)
        else:
            self._emit(job, result)
        finally:
            self._active = None
            _llama_thread.aborting = False

    def _generate(self, job: _Job) -> ChatResult:
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        llm = self._llm
        p = job.params
        self._apply_adapters(job.adapters)
        if not self._prompt_cache:
            # Evaluating only the new suffix of a prompt gives slightly different logits
            # from evaluating all of it (other batch shapes, other rounding), enough to
            # change a greedy answer: by default every answer starts from scratch, so the
            # same request always gets the same answer.
            self._forget_prompt()
        prompt, trim = self._fit(job)
        budget = min(p.max_tokens, self.n_ctx - len(prompt))
        grammar = None
        if job.grammar is not None:
            self._check_grammar(job.grammar)
            grammar = LlamaGrammar.from_string(job.grammar, verbose=False)
        llm.set_seed(p.seed if p.seed >= 0 else random.randrange(1 << 31))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        completion = 0
        finish: FinishReason = "length"
        first_at: float | None = None
        generator = llm.generate(
            prompt,
            top_k=p.top_k,
            top_p=p.top_p,
            min_p=p.min_p,
            temp=p.temperature,
            repeat_penalty=p.repeat_penalty,
            grammar=grammar,
        )
        try:
            while completion < budget:
                if job.cancel.is_set():
                    finish = "cancelled"
                    break
                try:
                    token = next(generator)
                except RuntimeError as exc:
                    if job.cancel.is_set():  # llama.cpp aborted the eval for us
                        finish = "cancelled"
                        break
                    raise GenerationError(f"llama.cpp failed: {exc}") from None
                if first_at is None:
                    first_at = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                completion += 1
                self.tokens_generated += 1
                text = decoder.decode(llm.detokenize([token]))
                if text:
                    pieces.append(text)
                    if not self._emit_piece(job, text):
                        finish = "cancelled"
                        break
        finally:
            generator.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            self._emit_piece(job, tail)
        now = time.perf_counter()
        text = "".join(pieces)
        return ChatResult(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=completion,
            ttft_s=(first_at or now) - job.started,
            total_s=now - job.started,
            trim=trim,
            tool_call=_parse_tool_call(text, job.tools) if job.tools else None,
        )

    def _check_grammar(self, grammar: str) -> None:
        """llama.cpp crashes on a grammar it cannot parse, so parse it once first."""
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root")
        if not sampler:
            raise GenerationError("invalid GBNF grammar (llama.cpp could not parse it)")
        llama_cpp.llama_sampler_free(sampler)

    def _emit_piece(self, job: _Job, text: str) -> bool:
        """Hand a piece to the loop, waiting for room; False if the stream was closed."""
        while not job.credits.acquire(timeout=0.05):
            if job.cancel.is_set() or job.loop.is_closed():
                return False
        if job.cancel.is_set():
            return False
        self._emit(job, text)
        return True

    @staticmethod
    def _emit(job: _Job, item: str | BaseException | ChatResult) -> None:
        try:
            job.loop.call_soon_threadsafe(job.queue.put_nowait, item)
        except RuntimeError:  # the loop is gone; nobody is listening
            job.cancel.set()


# ---------------------------------------------------------------- helpers


def tool_call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """JSON schema of one call to any of `tools`: {"name": <const>, "arguments": <schema>}."""
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": t.input_schema},
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


MAX_GRAMMAR_CHARS = 200_000
# Bounds the GBNF converter can expand without blowing up: it writes `maxLength: N` as N
# nested optional rules, and llama.cpp overflows its stack on a grammar that deep.
MAX_GRAMMAR_LENGTH_BOUND = 256
MAX_GRAMMAR_ITEMS_BOUND = 32
_LENGTH_KEYS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties")


def grammar_schema(schema: Any) -> Any:
    """`schema` with length/count bounds too large to spell out in a grammar removed.

    Decoding then allows any length; whoever consumes the output (a tool validating
    its arguments) still enforces the real bounds.
    """
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _LENGTH_KEYS and isinstance(value, int):
            limit = MAX_GRAMMAR_LENGTH_BOUND if "Length" in key else MAX_GRAMMAR_ITEMS_BOUND
            if value > limit:
                continue
        out[key] = value if key in ("const", "enum", "default") else grammar_schema(value)
    return out


def _schema_grammar(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = str(json_schema_to_gbnf(json.dumps(grammar_schema(schema))))
    except Exception as exc:  # the converter raises bare Exceptions on what it cannot do
        raise ValueError(f"unsupported JSON schema: {exc}") from None
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise ValueError(f"JSON schema too complex for constrained decoding ({len(grammar)} chars)")
    return grammar


def _parse_tool_call(text: str, tools: Sequence[ToolSpec]) -> ToolCall | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    names = {t.name for t in tools}
    if (
        isinstance(value, dict)
        and value.get("name") in names
        and isinstance(value.get("arguments"), dict)
    ):
        return ToolCall(name=value["name"], arguments=value["arguments"])
    return None


def _describe_tools_in_system(
    messages: list[dict[str, str]], tools: Sequence[ToolSpec]
) -> list[dict[str, str]]:
    """For templates that ignore `tools`: list them in the system message instead."""
    listing = "\n".join(
        f"- {t.name}: {t.description} Arguments schema: {json.dumps(t.input_schema)}" for t in tools
    )
    note = (
        "You can call a tool by answering with only a JSON object "
        '{"name": <tool name>, "arguments": {...}}. Tools:\n' + listing
    )
    if messages and messages[0]["role"] == "system":
        return [
            {"role": "system", "content": messages[0]["content"] + "\n\n" + note},
            *messages[1:],
        ]
    return [{"role": "system", "content": note}, *messages]


_llama_log_callback: Any = None  # llama.cpp's logger is process-wide; so is its callback
# .aborting: we asked llama.cpp to stop this thread's eval; .last_error: its last error line
_llama_thread = threading.local()
# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line
_LLAMA_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


def _route_llama_logs() -> None:
    """Send llama.cpp's own log lines to the `llama_cpp` logger instead of stderr."""
    global _llama_log_callback
    if _llama_log_callback is not None:
        return
    import llama_cpp

    llama_log = logging.getLogger("llama_cpp")

    def callback(level: int, text: bytes, _: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        if not line:
            return
        # Level 5 continues a line: DEBUG is good enough. Errors from an abort we asked
        # for ("failed to decode, ret = 2") are expected, not worth the user's attention.
        lvl = _LLAMA_LEVELS.get(level, logging.DEBUG)
        if getattr(_llama_thread, "aborting", False):
            lvl = logging.DEBUG
        elif lvl >= logging.ERROR:  # the reason a call that returns only NULL failed
            _llama_thread.last_error = line
        llama_log.log(lvl, "%s", line)

    _llama_log_callback = llama_cpp.llama_log_callback(callback)
    llama_cpp.llama_log_set(_llama_log_callback, ctypes.c_void_p(0))
