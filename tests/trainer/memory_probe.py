"""A worker's training run in a fresh process, reporting its peak resident memory.

    python -m tests.trainer.memory_probe MODEL.gguf RANK BATCH SEQ_LEN [STEPS]

Does what `noosphere train worker` does for one job (load the base model once, train
on a deep copy of it) on seeded random tokens, then prints one JSON line:
``peak_bytes`` (VmHWM: the process's peak resident set, imports included) and
``estimate_bytes`` (`trainer.jobspec.estimate_memory` for the same model and
hyperparameters).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np

from trainer.dataset import DatasetManifest, Shard, ShardEntry, swarm_reference
from trainer.engine import JobPlan, StepEngine
from trainer.jobspec import estimate_memory
from trainer.model import load_base_model
from trainer.profile import pin_profile
from trainer.step import Hyperparams


def peak_rss() -> int:
    """VmHWM of this process in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def synthetic_dataset(vocab: int, tokens: int) -> tuple[DatasetManifest, dict[int, Shard]]:
    """Two shards of seeded random token ids (no tokenizer: llama.cpp is not loaded,
    as in a worker, which trains on shards fetched from Swarm)."""
    rng = np.random.default_rng(5)
    shards = {
        i: Shard(f"part{i}", bytes(32), 0, rng.integers(0, vocab, tokens, dtype=np.uint32))
        for i in range(2)
    }
    entries = tuple(
        ShardEntry(swarm_reference(s.encode()), s.source, len(s.tokens)) for s in shards.values()
    )
    return DatasetManifest(bytes(32), tokens, entries), shards


def main(argv: list[str]) -> None:
    model = Path(argv[0])
    rank, batch, seq_len = (int(a) for a in argv[1:4])
    steps = int(argv[4]) if len(argv) > 4 else 2
    hp = Hyperparams(
        rank=rank, alpha=2.0 * rank, batch_size=batch, seq_len=seq_len, checkpoint_every=2
    )
    base = load_base_model(model)  # the worker keeps this and trains on a copy
    manifest, shards = synthetic_dataset(int(base.config.vocab_size), 4 * seq_len)
    plan = JobPlan(manifest, hp, seed=5, steps=steps, profile=pin_profile(2))
    engine = StepEngine(copy.deepcopy(base), plan, shards)
    engine.train()
    line = {"peak_bytes": peak_rss(), "estimate_bytes": estimate_memory(model, hp)}
    sys.stdout.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
