"""The `ask` path: one question, one answer.

By default a question goes through the same assistant turn as a chat line
(`agent.assistant`: routing, retrieval, tools, citations). `raw=True` keeps the
bare model: the question and the system prompt, nothing else (the baseline the
task benchmark compares against).

The answer streams to stdout as it is generated; what tools were called goes to
stderr. With `as_json` nothing streams and one JSON object is printed instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import prompts
from agent.config import Config
from agent.llm import ChatMessage, ChatResult, LLMCore, SamplingParams
from agent.loop import TurnEvent
from tools import ToolContext
from tools.base import Confirm

if TYPE_CHECKING:
    from agent.node import IdentitySource


def system_prompt(cfg: Config) -> str:
    return cfg.model.system_prompt or prompts.load("assistant")


def ask_messages(question: str, cfg: Config) -> list[ChatMessage]:
    """The conversation `noosphere ask --raw` sends to the model."""
    return [ChatMessage("system", system_prompt(cfg)), ChatMessage("user", question)]


@dataclasses.dataclass(frozen=True)
class AskRequest:
    question: str
    model_path: Path
    model_name: str
    params: SamplingParams
    as_json: bool = False
    network: bool = False


def _stream_event(event: TurnEvent) -> None:
    if event.kind == "token":
        sys.stdout.write(event.text)
        sys.stdout.flush()
    elif event.kind == "tool_call" and event.call is not None:
        args = json.dumps(event.call.arguments)[:200]
        sys.stderr.write(f"[{event.call.name} {args}]\n")
    elif event.kind == "notice":
        sys.stderr.write(f"[{event.text}]\n")


async def _terminal_confirm(summary: str) -> bool:
    sys.stderr.write(f"\n{summary}\nProceed? [y/N] ")
    sys.stderr.flush()
    line = await asyncio.to_thread(sys.stdin.readline)
    return line.strip().lower() in ("y", "yes")


async def ask_assistant(
    cfg: Config,
    home: Path,
    request: AskRequest,
    *,
    identity: IdentitySource = lambda: None,
) -> dict[str, Any]:
    """Answer through the assistant turn in this process; the JSON report (also when
    streaming)."""
    from agent.home import NodeHome
    from agent.node import Node

    loop = asyncio.get_running_loop()
    started = loop.time()
    confirm: Confirm | None = _terminal_confirm if sys.stdin.isatty() else None
    async with await Node.open(
        cfg, NodeHome(home), identity=identity, model_path=request.model_path,
        preload=("assistant",),
    ) as node:  # fmt: skip
        load_ms = (loop.time() - started) * 1000
        report = await node.ask(
            request.question,
            context=ToolContext(local_owner=True, confirm=confirm),
            on_event=None if request.as_json else _stream_event,
            network=request.network,
        )
    if not request.as_json:
        sys.stdout.write("\n")
        trim = report.result.generation.trim if report.result.generation else None
        if trim is not None:
            sys.stderr.write(f"note: {trim.describe()}\n")
    out = report.to_json()
    out["model"] = request.model_name
    out["model_path"] = str(request.model_path)
    out["timings"] = {"load_ms": round(load_ms, 1), **out["timings"]}
    return out


async def ask_raw(cfg: Config, request: AskRequest) -> tuple[ChatResult, float]:
    """The bare model's answer (streamed unless JSON) and the load time in seconds."""
    started = asyncio.get_running_loop().time()
    async with await LLMCore.load(request.model_path, cfg.model) as core:
        load_s = asyncio.get_running_loop().time() - started
        messages = ask_messages(request.question, cfg)
        async with core.stream_chat(messages, params=request.params) as stream:
            async for piece in stream:
                if not request.as_json:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
        result = stream.result
    if not request.as_json:
        sys.stdout.write("\n")
    return result, load_s


def raw_json(result: ChatResult, load_s: float, request: AskRequest) -> dict[str, Any]:
    return {
        "answer": result.text,
        "route": "raw",
        "model": request.model_name,
        "model_path": str(request.model_path),
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "timings": {
            "load_ms": round(load_s * 1000, 1),
            "ttft_ms": round(result.ttft_s * 1000, 1),
            "total_ms": round(result.total_s * 1000, 1),
            "tokens_per_s": round(result.tokens_per_s, 2),
        },
        "trimmed": dataclasses.asdict(result.trim) if result.trim else None,
    }
