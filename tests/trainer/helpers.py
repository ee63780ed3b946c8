"""Building a step engine on (a copy of) the bundled model for tests, and the small job
most trainer tests train: `HP` over `CORPUS`."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from trainer.dataset import BuiltDataset, Shard, build_dataset
from trainer.engine import JobPlan, StepEngine
from trainer.profile import pin_profile
from trainer.step import Hyperparams
from trainer.tokenizer import GgufTokenizer

THREADS = 2

HP = Hyperparams(  # a LoRA small enough to train a few steps in seconds
    rank=4,
    alpha=8.0,
    targets=("q_proj", "v_proj"),
    lora_dropout=0.1,
    learning_rate=1e-3,
    batch_size=2,
    seq_len=24,
    checkpoint_every=2,
)
CORPUS = {  # file name -> text; two documents, a few 64-token shards
    "a.txt": "Rivers carry water from mountains to the sea. " * 12,
    "b.txt": "Bees collect nectar and make honey in their hives. " * 12,
}


def engine_for(
    base: nn.Module,
    tokenizer: GgufTokenizer,
    paths: list[Path],
    hp: Hyperparams,
    *,
    seed: int,
    steps: int,
    shard_tokens: int = 256,
) -> tuple[StepEngine, BuiltDataset]:
    built = build_dataset(paths, tokenizer, shard_tokens=shard_tokens)
    shards = {
        i: Shard.decode(built.shard_bytes[entry.reference])
        for i, entry in enumerate(built.manifest.shards)
    }
    plan = JobPlan(built.manifest, hp, seed, steps, pin_profile(THREADS))
    return StepEngine(copy.deepcopy(base), plan, shards), built
