"""One deterministic training step: batch plan, dropout seed and Adam update from (seed, step).

Nothing in a step depends on wall time, process state or a global RNG that the
job did not seed:

- the batch plan (which shard, which offset, per row) is drawn from
  keccak(seed, step, row), weighting shards by their token counts;
- the LoRA dropout masks come from torch's RNG seeded with keccak(seed, step);
- the update is Adam (bias-corrected, optional decoupled weight decay) written out
  here elementwise, so its arithmetic is part of the protocol, not of a library.

`Hyperparams` is the hyperparameter document a job references; its canonical
bytes are hashed into every step record.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from swarm_vectordb.bee import keccak256
from trainer import codec
from trainer.dataset import DatasetManifest, Shard
from trainer.errors import DatasetError, MalformedRecordError
from trainer.model import LoraModel, LoraSpec
from trainer.state import TrainerState

__all__ = [
    "HYPERPARAMS_VERSION",
    "BatchItem",
    "Hyperparams",
    "StepOutcome",
    "batch_plan",
    "build_batch",
    "dropout_seed",
    "float_bits",
    "run_step",
]

HYPERPARAMS_VERSION = 1
IGNORE = -100


@dataclass(frozen=True)
class Hyperparams:
    """What a job fixes about training (besides dataset, base model, seed and step count)."""

    rank: int = 8  # LoRA rank
    alpha: float = 16.0  # LoRA alpha: scaling alpha / rank
    targets: tuple[str, ...] = ("q_proj", "v_proj")  # attention projections with LoRA
    lora_dropout: float = 0.0  # dropout on the LoRA input; masks from (seed, step)
    learning_rate: float = 1e-3  # Adam step size
    beta1: float = 0.9  # Adam first-moment decay
    beta2: float = 0.999  # Adam second-moment decay
    eps: float = 1e-8  # Adam denominator guard
    weight_decay: float = 0.0  # decoupled (AdamW) weight decay
    batch_size: int = 4  # sequences per step
    seq_len: int = 128  # tokens per sequence (shorter shards are padded)
    checkpoint_every: int = 2  # a checkpoint before every K-th step: a replay re-runs <= K steps

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.seq_len < 2 or self.checkpoint_every < 1:
            raise ValueError("batch_size >= 1, seq_len >= 2 and checkpoint_every >= 1 required")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be positive")
        self.lora  # noqa: B018 - validates rank, targets and dropout

    @property
    def lora(self) -> LoraSpec:
        return LoraSpec(self.rank, self.alpha, self.targets, self.lora_dropout)

    def encode(self) -> bytes:
        body = asdict(self)
        body["targets"] = list(self.targets)
        return codec.pack({"version": HYPERPARAMS_VERSION, **body})

    @property
    def hash(self) -> bytes:
        return keccak256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Hyperparams:
        names = frozenset(cls.__dataclass_fields__)
        doc = codec.unpack(
            data,
            what="hyperparameters",
            version=HYPERPARAMS_VERSION,
            keys=names,
            error=MalformedRecordError,
        )
        values = {n: doc.raw(n) for n in names}
        if not isinstance(values["targets"], list) or not all(
            isinstance(t, str) for t in values["targets"]
        ):
            raise doc.fail("targets must be a list of strings")
        values["targets"] = tuple(values["targets"])
        for name, f in cls.__dataclass_fields__.items():
            want = {"int": int, "float": float}.get(str(f.type))
            if want is not None and type(values[name]) is not want:
                raise doc.fail(f"{name} must be of type {want.__name__}")
        try:
            return cls(**values)
        except ValueError as exc:
            raise doc.fail(str(exc)) from exc


@dataclass(frozen=True)
class BatchItem:
    """One row of a batch: `seq_len` tokens (or fewer) from shard `shard` at `offset`."""

    shard: int
    offset: int


def _draw(tag: bytes, seed: int, step: int, row: int = 0) -> int:
    digest = keccak256(
        tag + seed.to_bytes(8, "big") + step.to_bytes(8, "big") + row.to_bytes(4, "big")
    )
    return int.from_bytes(digest[:16], "big")


def dropout_seed(seed: int, step: int) -> int:
    return _draw(b"noosphere/dropout", seed, step) & (2**63 - 1)


def batch_plan(seed: int, step: int, manifest: DatasetManifest, hp: Hyperparams) -> list[BatchItem]:
    """Rows of step `step`: a token position drawn uniformly over the dataset, per row."""
    counts = np.asarray([s.tokens for s in manifest.shards], dtype=np.int64)
    ends = np.cumsum(counts)
    items = []
    for row in range(hp.batch_size):
        position = _draw(b"noosphere/batch", seed, step, row) % int(ends[-1])
        shard = int(np.searchsorted(ends, position, side="right"))
        start = position - (int(ends[shard]) - int(counts[shard]))
        offset = min(start, max(0, int(counts[shard]) - hp.seq_len))
        items.append(BatchItem(shard, offset))
    return items


def build_batch(
    plan: Sequence[BatchItem], shards: Mapping[int, Shard], hp: Hyperparams, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), right-padded to the longest row."""
    rows = []
    for item in plan:
        shard = shards.get(item.shard)
        if shard is None:
            raise DatasetError(f"shard {item.shard} of the batch was not loaded")
        rows.append(shard.tokens[item.offset : item.offset + hp.seq_len].astype(np.int64))
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        if row.size and int(row.max()) >= vocab_size:
            raise DatasetError(f"token id {int(row.max())} outside the model's vocabulary")
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def float_bits(value: float) -> int:
    """The IEEE-754 binary32 bits of a float32 value."""
    return int(struct.unpack("<I", struct.pack("<f", value))[0])


@dataclass(frozen=True)
class StepOutcome:
    loss: float  # float32 value (its bits go into the record)
    loss_bits: int


def loss_of(model: LoraModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross entropy over real (unpadded) positions."""
    logits = model.logits(ids, mask)
    labels = ids.masked_fill(mask == 0, IGNORE)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=IGNORE,
    )


def run_step(
    model: LoraModel,
    state: TrainerState,
    ids: torch.Tensor,
    mask: torch.Tensor,
    hp: Hyperparams,
    *,
    seed: int,
    step: int,
) -> StepOutcome:
    """One forward/backward/Adam update; mutates `state` in place."""
    state.load_into(model.parameters)
    model.train(True)
    for param in model.parameters.values():
        param.grad = None
    torch.manual_seed(dropout_seed(seed, step))
    loss = loss_of(model, ids, mask)
    loss.backward()  # type: ignore[no-untyped-call]
    t = state.updates + 1
    correction1 = 1.0 - hp.beta1**t
    correction2 = 1.0 - hp.beta2**t
    with torch.no_grad():
        for name, param in model.parameters.items():
            grad = param.grad
            if grad is None:
                raise DatasetError(f"no gradient reached {name}")
            tensor = state.tensors[name]
            tensor.exp_avg.mul_(hp.beta1).add_(grad, alpha=1.0 - hp.beta1)
            tensor.exp_avg_sq.mul_(hp.beta2).addcmul_(grad, grad, value=1.0 - hp.beta2)
            denom = (tensor.exp_avg_sq / correction2).sqrt_().add_(hp.eps)
            if hp.weight_decay:
                tensor.value.mul_(1.0 - hp.learning_rate * hp.weight_decay)
            tensor.value.addcdiv_(tensor.exp_avg, denom, value=-hp.learning_rate / correction1)
    state.updates = t
    value = float(loss.detach().to(torch.float32).item())
    return StepOutcome(value, float_bits(value))
