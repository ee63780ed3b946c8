"""The trainable state: LoRA tensors plus the optimizer's moments, as canonical bytes.

Everything a step reads and changes besides the frozen base weights lives here, so
"the state before step i" is one byte string: its keccak is the hash in the step
records and the same bytes are the checkpoint on Swarm. Canonical form: a msgpack
map (version, update count, and per tensor in name order: name, shape, and the
parameter, first and second Adam moments as little-endian float32 bytes). The
tensors may live on a GPU while training; the bytes always come from CPU copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from swarm_vectordb.bee import keccak256
from trainer import codec
from trainer.errors import CheckpointError

__all__ = ["STATE_VERSION", "TensorState", "TrainerState"]

STATE_VERSION = 1


@dataclass
class TensorState:
    """One trainable tensor and its Adam moments (all float32, same shape)."""

    value: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor


def _bytes(tensor: torch.Tensor) -> bytes:
    """Little-endian float32 bytes of a CPU copy (a no-op copy for CPU tensors)."""
    return tensor.detach().cpu().contiguous().numpy().astype("<f4", copy=False).tobytes()


def _tensor(raw: bytes, shape: list[int], what: str) -> torch.Tensor:
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != 4 * count:
        raise CheckpointError(f"checkpoint: {what} has {len(raw)} bytes for shape {shape}")
    return torch.from_numpy(np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape))


class TrainerState:
    """Trainable tensors by canonical name, their moments, and how many updates made them."""

    def __init__(self, tensors: Mapping[str, TensorState], updates: int) -> None:
        self.tensors = dict(sorted(tensors.items()))
        self.updates = updates

    @classmethod
    def initial(cls, parameters: Mapping[str, torch.Tensor]) -> TrainerState:
        return cls(
            {
                name: TensorState(
                    p.detach().clone(), torch.zeros_like(p.detach()), torch.zeros_like(p.detach())
                )
                for name, p in parameters.items()
            },
            updates=0,
        )

    def clone(self) -> TrainerState:
        return TrainerState(
            {
                n: TensorState(t.value.clone(), t.exp_avg.clone(), t.exp_avg_sq.clone())
                for n, t in self.tensors.items()
            },
            self.updates,
        )

    def encode(self) -> bytes:
        return codec.pack(
            {
                "version": STATE_VERSION,
                "updates": self.updates,
                "tensors": [
                    [
                        name,
                        list(t.value.shape),
                        _bytes(t.value),
                        _bytes(t.exp_avg),
                        _bytes(t.exp_avg_sq),
                    ]
                    for name, t in self.tensors.items()
                ],
            }
        )

    @property
    def hash(self) -> bytes:
        return keccak256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> TrainerState:
        doc = codec.unpack(
            data,
            what="checkpoint",
            version=STATE_VERSION,
            keys=frozenset({"updates", "tensors"}),
            error=CheckpointError,
        )
        tensors: dict[str, TensorState] = {}
        for item in doc.items("tensors", max_len=10_000):
            if (
                not isinstance(item, list)
                or len(item) != 5
                or not isinstance(item[0], str)
                or not isinstance(item[1], list)
                or not all(type(d) is int and 0 < d < 1 << 24 for d in item[1])
                or not all(isinstance(b, bytes) for b in item[2:])
            ):
                raise doc.fail(f"malformed tensor entry {str(item)[:80]}")
            name, shape = item[0], item[1]
            if name in tensors:
                raise doc.fail(f"tensor {name} appears twice")
            tensors[name] = TensorState(
                _tensor(item[2], shape, name),
                _tensor(item[3], shape, name),
                _tensor(item[4], shape, name),
            )
        return cls(tensors, doc.integer("updates"))

    def load_into(self, parameters: Mapping[str, torch.nn.Parameter]) -> None:
        """Copy the values into a model's LoRA parameters (names and shapes must match)."""
        if set(parameters) != set(self.tensors):
            raise CheckpointError(
                "checkpoint tensors do not match the model's LoRA tensors "
                f"({len(self.tensors)} vs {len(parameters)}); another rank or target set?"
            )
        with torch.no_grad():
            for name, param in parameters.items():
                value = self.tensors[name].value
                if param.shape != value.shape:
                    raise CheckpointError(
                        f"{name}: checkpoint shape {list(value.shape)}, "
                        f"model shape {list(param.shape)}"
                    )
                param.copy_(value)

    def move_to(self, device: torch.device) -> None:
        """Keep every tensor on `device` from now on (nothing moves if it is there already)."""
        for name, t in self.tensors.items():
            if t.value.device != device:
                self.tensors[name] = TensorState(
                    t.value.to(device), t.exp_avg.to(device), t.exp_avg_sq.to(device)
                )

    def parameter_bytes(self) -> int:
        return sum(4 * t.value.numel() for t in self.tensors.values())
