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
import time
from pathlib import Path

from versus_raw import Run, compare, median, model_or_exit, raw_run, timed

from agent.ask import ask_messages
from agent.config import Config, ModelConfig
from agent.llm import LLMCore, SamplingParams


async def agent_run(core: LLMCore, cfg: Config, question: str, params: SamplingParams) -> Run:
    t0 = time.perf_counter()
    stamps: list[float] = []
    async with core.stream_chat(ask_messages(question, cfg), params=params) as stream:
        async for _ in stream:
            stamps.append(time.perf_counter())
    result = stream.result
    # Timed where the caller receives each piece, like the raw side: hand-off costs count.
    return timed(t0, stamps, result.completion_tokens, result.text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n-ctx", type=int, default=2048)
    args = parser.parse_args()

    from llama_cpp import Llama

    model_path = model_or_exit(args.model)
    cfg = Config(model=ModelConfig(n_ctx=args.n_ctx))
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, repeat_penalty=1.0)
    core = await LLMCore.load(model_path, cfg.model)
    raw = Llama(str(model_path), n_ctx=args.n_ctx, n_batch=cfg.model.n_batch, verbose=False)

    async def run_raw(question: str) -> Run:
        prompt = await core.format_prompt(ask_messages(question, cfg))
        return await asyncio.to_thread(raw_run, raw, prompt, params)

    try:
        agent_runs, raw_runs, same_output = await compare(
            args.reps, "agent", lambda question: agent_run(core, cfg, question, params), run_raw
        )
    finally:
        raw.close()
        await core.aclose()

    agent_tps = median(agent_runs, "tps")
    raw_tps = median(raw_runs, "tps")
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
                "ttft_ms": round(median(agent_runs, "ttft_ms"), 1),
                "raw_ttft_ms": round(median(raw_runs, "ttft_ms"), 1),
                "completion_tokens": median(agent_runs, "tokens"),
                "same_output": same_output,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
