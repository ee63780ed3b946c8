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
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from versus_raw import Run, compare, median, model_or_exit, raw_run, timed

from agent.api.discovery import read_token, token_path
from agent.api.server import start_api
from agent.config import ApiConfig, ModelConfig
from agent.home import NodeHome
from agent.llm import ChatMessage, LLMCore, SamplingParams


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

    async def search(
        self,
        text: str,
        *,
        k: int,
        network: bool,
        fan_out: int | None = None,
        deadline_s: float | None = None,
    ) -> Any:
        raise NotImplementedError

    async def ingest_paths(self, paths: list[Path]) -> Any:
        raise NotImplementedError

    async def ingest_text(self, name: str, text: str) -> Any:
        raise NotImplementedError

    async def ask(self, question: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def ask_peer(self, address: bytes, question: str) -> Any:
        raise NotImplementedError


def api_run(url: str, token: str, body: dict[str, Any]) -> Run:
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
    return timed(t0, stamps, usage.get("completion_tokens", len(stamps)), "".join(text))


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

    model_path = model_or_exit(args.model)
    cfg = ModelConfig(n_ctx=args.n_ctx)
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, repeat_penalty=1.0)
    core = await LLMCore.load(model_path, cfg)
    raw = Llama(str(model_path), n_ctx=args.n_ctx, n_batch=cfg.n_batch, verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        home = NodeHome(Path(tmp) / "home")
        server = await start_api(
            CoreBackend(core, model_path.name), home, settings=ApiConfig(port=0), params=params
        )
        token = read_token(token_path(home.root))

        async def run_api(question: str) -> Run:
            body = {
                "model": server.state.backend.model_name,
                "messages": [{"role": "user", "content": question}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0.0,
                "max_tokens": args.max_tokens,
            }
            return await asyncio.to_thread(api_run, server.url, token, body)

        async def run_raw(question: str) -> Run:
            prompt = await core.format_prompt([ChatMessage("user", question)])
            return await asyncio.to_thread(raw_run, raw, prompt, params)

        try:
            api_runs, raw_runs, same_output = await compare(args.reps, "api", run_api, run_raw)
        finally:
            await server.aclose()
            raw.close()
            await core.aclose()

    api_tps = median(api_runs, "tps")
    raw_tps = median(raw_runs, "tps")
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
                "api_ttft_ms": round(median(api_runs, "ttft_ms"), 1),
                "raw_ttft_ms": round(median(raw_runs, "ttft_ms"), 1),
                "completion_tokens": median(api_runs, "tokens"),
                "same_output": same_output,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
