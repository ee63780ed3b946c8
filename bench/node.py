"""The long-running node against one-shot commands, measured in the same run.

    python bench/node.py [--runs N] [--quick]

In a fresh node home (embedded Swarm, the bundled model and embedder) with a small
corpus ingested:

1. baseline, no node running: `noosphere search` and `noosphere ask` as one-shot
   processes that load everything themselves (wall time; ask's time to first token
   from its JSON report);
2. `noosphere node --api-port 0` started once: the same `search` (cold: the first
   call; warm: the median of the rest) and `ask` as thin clients, plus the time to
   the first streamed token of an ask through the API (a question the model answers,
   32 tokens at most both ways; the one-shot figure is from `ask --json`'s timings,
   which start after the model has loaded).

Prints one line per measurement and, last, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXE = str(Path(sys.executable).with_name("noosphere"))
PASSWORD = "bench password"
QUERY = "who pays for storage on Swarm?"
QUESTION = "Say hello to a new user in one short sentence."  # answered by the model
CORPUS = [
    f"Note {i}: postage batches pay for storage on Swarm; a batch has a depth and an "
    f"amount, and chunk {i} is stamped with it before upload."
    for i in range(20)
] + [f"Note {20 + i}: honey bees visit flower {i} for nectar and pollen." for i in range(20)]


def run(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [EXE, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"noosphere {' '.join(args)} failed: {done.stderr}")
    return elapsed, done


def start_node(env: dict[str, str], home: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [EXE, "node", "--api-port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 300)
    if not ready or not process.stdout.readline().startswith("0x"):
        process.kill()
        raise SystemExit("the node did not start")
    while not (home / "node.json").exists():
        time.sleep(0.05)
    return process


def ask_ttft_through_api(home: Path) -> float:
    from agent.api.client import NodeClient

    client = NodeClient.discover(home)
    if client is None:
        raise SystemExit("no node found")
    started = time.perf_counter()
    events = client.ask_stream(QUESTION)
    try:
        for event, _ in events:
            if event in ("token", "report"):
                return time.perf_counter() - started
    finally:
        events.close()
    raise SystemExit("the node streamed nothing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 runs of each")
    args = parser.parse_args()
    runs = 3 if args.quick else max(2, args.runs)

    with tempfile.TemporaryDirectory(prefix="noosphere-bench-node-") as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
        env.update(
            NOOSPHERE_HOME=str(home),
            NOOSPHERE_PASSWORD=PASSWORD,
            NOOSPHERE_MODEL_MAX_TOKENS="32",  # the same short answers both ways
            HF_HUB_OFFLINE="1",
        )
        run(env, "init")
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for i, text in enumerate(CORPUS):
            (docs / f"note{i:02}.txt").write_text(text)
        run(env, "ingest", str(docs))

        one_shot_search = [run(env, "search", QUERY)[0] for _ in range(runs)]
        print(f"one-shot search: median {statistics.median(one_shot_search):.2f} s", flush=True)
        one_shot_ask = []
        one_shot_ttft = []
        for _ in range(runs):
            wall, done = run(env, "ask", "--json", QUESTION)
            one_shot_ask.append(wall)
            one_shot_ttft.append(json.loads(done.stdout)["timings"]["ttft_ms"] / 1000)
        print(f"one-shot ask: median {statistics.median(one_shot_ask):.2f} s", flush=True)

        started = time.perf_counter()
        node = start_node(env, home)
        node_start = time.perf_counter() - started
        try:
            thin_search = [run(env, "search", QUERY)[0] for _ in range(runs + 1)]
            cold, warm = thin_search[0], statistics.median(thin_search[1:])
            print(f"search through the node: cold {cold:.2f} s, warm {warm:.2f} s", flush=True)
            thin_ask = [run(env, "ask", QUESTION)[0] for _ in range(runs)]
            ttft = [ask_ttft_through_api(home) for _ in range(runs)]
            print(
                f"ask through the node: median {statistics.median(thin_ask):.2f} s wall, "
                f"first token {statistics.median(ttft) * 1000:.0f} ms",
                flush=True,
            )
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)

    result = {
        "bench": "node",
        "runs": runs,
        "node_start_s": round(node_start, 3),
        "one_shot_search_s": round(statistics.median(one_shot_search), 3),
        "node_search_cold_s": round(cold, 3),
        "node_search_warm_s": round(warm, 3),
        "search_speedup": round(statistics.median(one_shot_search) / warm, 2),
        "one_shot_ask_s": round(statistics.median(one_shot_ask), 3),
        "node_ask_s": round(statistics.median(thin_ask), 3),
        "node_ask_ttft_ms": round(statistics.median(ttft) * 1000, 1),
        "one_shot_ask_ttft_ms": round(statistics.median(one_shot_ttft) * 1000, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
