"""Benchmark: cold start of the client commands, in-process (no node running).

    .venv/bin/python bench/startup.py [--runs 5] [--no-ask] [--no-throughput]

Each command runs as a user runs it, a fresh interpreter per run, against a temporary
node home whose index holds this repository's README.md (ingested first, through the
embedded dev node). Rounds alternate the commands so machine noise hits all alike:

- `python`: `python -c pass`, the interpreter's own start: the baseline;
- `import_cli`: `import agent.cli`;
- `help`: `noosphere --help`;
- `search`: `noosphere search --json "..."` (embed the query, search the local index);
- `ask_raw`: `noosphere ask --raw --json --max-tokens 1 "..."` (load the model, one token);
- `ask`: `noosphere ask --json --max-tokens 1 "..."` (the agent turn: routing, retrieval).

For each: the first run (`first_s`, the coldest: a new interpreter's files may not be
in the page cache yet) and the median wall and CPU seconds of the later runs. Wall time
on a busy machine overstates; CPU time (user + system of the child) does not.

The throughput section compares the two embedding runtimes on the README's chunks
(`numpy`, the default for the bundled model, against `sentence-transformers`): the
numpy runtime must not make ingestion much slower.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SEARCH = "who pays for storage and how are stamps bought?"
QUESTION = "What does the node use Swarm for?"
RUN_CLI = "import sys; sys.argv[0] = 'noosphere'; from agent.cli import main; main()"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def commands(ask: bool) -> dict[str, list[str]]:
    cli = [sys.executable, "-c", RUN_CLI]
    out = {
        "python": [sys.executable, "-c", "pass"],
        "import_cli": [sys.executable, "-c", "import agent.cli"],
        "help": [*cli, "--help"],
        "search": [*cli, "search", "--json", "--k", "5", SEARCH],
    }
    if ask:
        out["ask_raw"] = [*cli, "ask", "--raw", "--json", "--max-tokens", "1", QUESTION]
        out["ask"] = [*cli, "ask", "--json", "--max-tokens", "1", QUESTION]
    return out


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float, str | None]:
    """(wall seconds, child CPU seconds, error or None) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=REPO
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    error = None
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return wall, cpu, error


def ingest(env: dict[str, str]) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "ingest", "--json", str(REPO / "README.md")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=True,
        cwd=REPO,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"chunks": report["chunks_in_index"], "ingest_s": round(time.perf_counter() - start, 2)}


def startup(runs: int, ask: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="noosphere-startup-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
        env.update(NOOSPHERE_HOME=str(Path(tmp) / "home"), HF_HUB_OFFLINE="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        index = ingest(env)
        say(f"ingested README.md: {index}")
        cmds = commands(ask)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
        errors: dict[str, str] = {}
        for round_no in range(runs):
            for name, argv in cmds.items():
                if name in errors:
                    continue
                wall, cpu, error = timed(argv, env)
                if error is not None:
                    errors[name] = error
                    say(f"{name}: failed: {error}")
                    continue
                samples[name].append((wall, cpu))
                say(f"round {round_no + 1}/{runs} {name}: {wall:.2f} s wall, {cpu:.2f} s cpu")
    out: dict[str, Any] = {"runs": runs, **index}
    for name, got in samples.items():
        if name in errors:
            out[name] = {"error": errors[name]}
            continue
        later = got[1:] or got
        out[name] = {
            "first_s": round(got[0][0], 3),
            "median_s": round(statistics.median(w for w, _ in later), 3),
            "cpu_median_s": round(statistics.median(c for _, c in later), 3),
        }
    python = out["python"]["median_s"]
    for name in ("search", "ask"):
        if "median_s" in out.get(name, {}):
            out[f"{name}_over_python_s"] = round(out[name]["median_s"] - python, 3)
    return out


async def throughput(reps: int) -> dict[str, Any]:
    from swarm_vectordb.chunking import Chunker, read_document
    from swarm_vectordb.embedding import Embedder, resolve_model

    model_dir, _ = resolve_model("all-MiniLM-L6-v2")
    chunker = Chunker.for_model_dir(model_dir)
    texts = [c.text for c in chunker.chunk(read_document(REPO / "README.md"))]
    loaded = {
        "numpy": await Embedder.load(runtime="numpy"),
        "sentence_transformers": await Embedder.load(runtime="sentence-transformers"),
    }
    rates: dict[str, list[float]] = {name: [] for name in loaded}
    try:
        for embedder in loaded.values():
            embedder.embed_sync(texts[:8])  # warm-up
        for _ in range(reps):
            for name, embedder in loaded.items():
                start = time.perf_counter()
                embedder.embed_sync(texts)
                rates[name].append(len(texts) / (time.perf_counter() - start))
    finally:
        for embedder in loaded.values():
            await embedder.aclose()
    medians = {name: statistics.median(r) for name, r in rates.items()}
    out = {
        "texts": len(texts),
        "numpy_chunks_per_s": round(medians["numpy"], 1),
        "sentence_transformers_chunks_per_s": round(medians["sentence_transformers"], 1),
        "numpy_ratio": round(medians["numpy"] / medians["sentence_transformers"], 3),
    }
    say(f"embedding throughput: {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="cold start of the client commands")
    parser.add_argument("--runs", type=int, default=5, help="runs per command (first is cold)")
    parser.add_argument("--no-ask", action="store_true", help="skip the two ask commands")
    parser.add_argument("--no-throughput", action="store_true", help="skip runtime throughput")
    parser.add_argument("--reps", type=int, default=3, help="throughput repetitions")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    out = startup(max(2, args.runs), ask=not args.no_ask)
    if not args.no_throughput:
        out["embed_throughput"] = asyncio.run(throughput(args.reps))
    out["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
