"""Building a step engine on (a copy of) the bundled model for tests."""

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
