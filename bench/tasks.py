"""Benchmark: does a user get a right answer? Task success of `noosphere ask`.

    .venv/bin/python bench/tasks.py [--quick] [--raw] [--seed 1]

Runs `noosphere ask --json QUESTION` as a user would (one subprocess per question,
the bundled model, a fresh node home with a key, so chain questions start the
embedded chain) over questions of five kinds:

- arithmetic written in words or symbols (the exact value must appear);
- knowledge from a small corpus of invented facts the benchmark ingests first (the
  fact must appear in the answer text itself: the "Sources:" line added by code is
  cut off before checking, so a cited source alone does not count);
- Python (the program's printed result must appear);
- chain reads on the embedded chain (the value must appear);
- plain chat (a common fact must appear).

`--raw` asks the same questions with `ask --raw` (the bare model: the baseline);
`--quick` asks every third question. Progress goes to stderr; the last line of
stdout is JSON with task_success overall and by kind, and the median turn time
(wall time of the `ask` process, and the in-process time of the turn itself).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "bench tasks password"
SOURCES_LINE = re.compile(r"\n*Sources: .*\Z", re.DOTALL)

CORPUS = {
    "festival.md": """# The Zorblax festival

The Zorblax festival is held every March in the mountain town of Velmora.
Visitors bring copper lanterns, which are lit together on the last night.
The festival was founded by the weaver Tamsin Hale in 1874.
""",
    "bridge.md": """# Quenta bridge

The Quenta bridge is 742 metres long.
It was finished in 1911 by the engineer Ilse Marrow.
It crosses the river Doun between Arlo and Pesk, and carries a single railway line.
""",
    "recipe.md": """# Grandma Odile's plum cake

Grandma Odile's plum cake needs 350 grams of flour, four eggs and twelve plums.
The cake bakes for 55 minutes at 180 degrees.
Serve it cold with whipped cream.
""",
    "team.md": """# Team Heron

The project lead of Team Heron is Marisol Okafor.
Team Heron meets every Thursday at 10:30 in room B12.
The team maintains the billing service and the invoice archive.
""",
}


@dataclass(frozen=True)
class Task:
    kind: str
    question: str
    expect: tuple[str, ...]  # every one must appear (case-insensitive) ...
    any_of: tuple[str, ...] = ()  # ... and, if given, at least one of these

    def passed(self, answer: str) -> bool:
        text = SOURCES_LINE.sub("", answer).lower()
        if not all(e.lower() in text for e in self.expect):
            return False
        return not self.any_of or any(a.lower() in text for a in self.any_of)


TASKS = [
    Task("arithmetic", "How much is 48 times 52?", ("2496",)),
    Task("arithmetic", "What is 7 to the power of 13?", ("96889010407",)),
    Task("arithmetic", "What is 2^64 minus 1?", ("18446744073709551615",)),
    Task("arithmetic", "What is 3/7 plus 2/5?", ("29/35",)),
    Task("arithmetic", "What is 15% of 80?", ("12",)),
    Task("arithmetic", "What is the square root of 2?", ("1.41421356",)),
    Task("arithmetic", "what is 12 divided by 5", ("2.4",)),
    Task("arithmetic", "What is nineteen times twenty-three?", ("437",)),
    Task("arithmetic", "Calculate 123456789 * 987654321", ("121932631112635269",)),
    Task("arithmetic", "What is 10 factorial?", ("3628800",)),
    Task("arithmetic", "Subtract 347 from 1000.", ("653",)),
    Task("arithmetic", "How much is 1,000,000 divided by 8?", ("125000",)),
    Task("knowledge", "When is the Zorblax festival held?", ("march",)),
    Task("knowledge", "In which town is the Zorblax festival held?", ("velmora",)),
    Task("knowledge", "What do visitors bring to the Zorblax festival?", ("lantern",)),
    Task("knowledge", "How long is the Quenta bridge?", ("742",)),
    Task("knowledge", "Who built the Quenta bridge?", ("marrow",)),
    Task("knowledge", "How much flour does Grandma Odile's plum cake need?", ("350",)),
    Task("knowledge", "How long does Grandma Odile's plum cake bake?", ("55",)),
    Task("knowledge", "Who is the project lead of Team Heron?", ("okafor",)),
    Task("knowledge", "On which day does Team Heron meet?", ("thursday",)),
    Task("python", "Use Python to print the first five square numbers.", ("16", "25")),
    Task("python", "Write Python code that prints the sum of 1 to 100.", ("5050",)),
    Task("python", "Use Python to reverse the string 'noosphere'.", ("erehpsoon",)),
    Task("python", "Use Python to print 2 to the power of 100.",
         ("1267650600228229401496703205376",)),
    Task("python", "Use Python to print 'hello world' in upper case.", ("HELLO WORLD",)),
    Task("python", "Write a Python script that prints the factorial of 12.", ("479001600",)),
    Task("python", "Use Python to count the letters in 'mississippi' and print the count.",
         ("11",)),
    Task("python", "Use Python to print the average of 4, 8 and 15.", ("9.0",)),
    Task("python", "Use Python to print the list [5, 3, 9, 1] sorted.", ("[1, 3, 5, 9]",)),
    Task("python", "Write Python code to print the product of the numbers 1 to 6.", ("720",)),
    Task("chain", "How many jobs are in the market?", ("0 job",)),
    Task("chain", "How many training jobs are there?", ("0 job",)),
    Task("chain", "List the training jobs.", ("0 job",)),
    Task("chain", "What is my stake?", ("staked 0 eth",)),
    Task("chain", "What is my balance?", ("balance 99.9",)),
    Task("chain", "How much ETH do I have?", ("99.9",)),
    Task("chain", "What is the latest block number?", ("latest block",)),
    Task("chain", "What is the balance of 0x000000000000000000000000000000000000dEaD?",
         ("balance 0 eth",)),
    Task("chain", "Is 0x000000000000000000000000000000000000dEaD registered as a peer?",
         ("not registered",)),
    Task("chat", "What is the capital of France?", ("paris",)),
    Task("chat", "Say hello.", ("hello",)),
    Task("chat", "What colour is the sky on a clear day?", ("blue",)),
    Task("chat", "What language is spoken in Spain?", ("spanish",)),
    Task("chat", "What is the opposite of hot?", ("cold",)),
    Task("chat", "What do bees make?", ("honey",)),
    Task("chat", "Name a primary colour.", (), ("red", "blue", "yellow")),
    Task("chat", "What is the largest planet in the solar system?", ("jupiter",)),
    Task("chat", "What animal says moo?", ("cow",)),
]  # fmt: skip


def noosphere(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    exe = Path(sys.executable).with_name("noosphere")
    done = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"noosphere {args[0]} failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description="task success of `noosphere ask`")
    parser.add_argument("--quick", action="store_true", help="every third question")
    parser.add_argument("--raw", action="store_true", help="the bare model (baseline)")
    parser.add_argument("--seed", type=int, default=1, help="sampling seed for every answer")
    args = parser.parse_args()
    tasks = TASKS[::3] if args.quick else TASKS
    with tempfile.TemporaryDirectory(prefix="noosphere-bench-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOOSPHERE_")}
        env.update(
            NOOSPHERE_HOME=str(root / "home"), NOOSPHERE_PASSWORD=PASSWORD, HF_HUB_OFFLINE="1"
        )
        noosphere(env, "init")
        corpus = root / "corpus"
        corpus.mkdir()
        for name, text in CORPUS.items():
            (corpus / name).write_text(text, encoding="utf-8")
        noosphere(env, "ingest", str(corpus))
        by_kind: dict[str, list[bool]] = {}
        wall_s: list[float] = []
        turn_ms: list[float] = []
        empty = 0
        for task in tasks:
            flags = ["--raw"] if args.raw else []
            started = time.perf_counter()
            out = noosphere(env, "ask", "--json", "--seed", str(args.seed), *flags, task.question)
            wall_s.append(time.perf_counter() - started)
            report = json.loads(out.strip().splitlines()[-1])
            answer = str(report.get("answer", ""))
            empty += not answer.strip()
            timings = report.get("timings", {})
            turn_ms.append(float(timings.get("total_ms", 0.0)))
            ok = task.passed(answer)
            by_kind.setdefault(task.kind, []).append(ok)
            shown = " ".join(answer.split())[:90]
            print(
                f"{'ok ' if ok else 'BAD'} {task.kind:<10} {wall_s[-1]:5.1f}s "
                f"{report.get('route', '?'):<11} {task.question[:44]:<44} -> {shown}",
                file=sys.stderr,
            )
    results = [ok for oks in by_kind.values() for ok in oks]
    print(
        json.dumps(
            {
                "bench": "tasks",
                "mode": "raw" if args.raw else "assistant",
                "questions": len(results),
                "task_success": round(sum(results) / len(results), 3),
                "by_kind": {k: round(sum(v) / len(v), 3) for k, v in by_kind.items()},
                "empty_answers": empty,
                "median_ask_wall_s": round(statistics.median(wall_s), 2),
                "median_turn_ms": round(statistics.median(turn_ms), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
