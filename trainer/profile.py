"""The execution profile: the settings under which a training step is bit-reproducible.

PyTorch promises no reproducibility across releases, CPU code paths or thread
counts, so a job pins all of them and names the set by a hash that goes into the
job and into every step record. A replay under another profile is refused with
`ProfileMismatch`, never turned into an accusation.

`ATEN_CPU_CAPABILITY` is read by torch when it is imported, so a process can only
report it; `pin_profile` sets what can still be set (threads, deterministic
algorithms) and returns the profile the process now runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import msgpack
import torch

from swarm_vectordb.bee import keccak256
from trainer.errors import ProfileMismatch

__all__ = ["PROFILE_VERSION", "ExecutionProfile", "current_profile", "pin_profile"]

PROFILE_VERSION = 1


@dataclass(frozen=True)
class ExecutionProfile:
    """Everything that changes a step's floating-point result on one machine."""

    torch_version: str  # e.g. "2.13.0+cpu": kernels change between releases
    cpu_capability: str  # ATen's kernel dispatch level ("AVX2", "AVX512", "DEFAULT")
    threads: int  # intra-op threads: reduction order depends on it
    dtype: str = "float32"  # the only training dtype we promise
    deterministic: bool = True  # torch.use_deterministic_algorithms(True)
    device: str = "cpu"  # CUDA steps are not promised bit-exact against CPU ones

    def as_document(self) -> dict[str, Any]:
        """The fields as a plain map (what job documents and run manifests publish)."""
        return asdict(self)

    @classmethod
    def from_document(cls, raw: object) -> ExecutionProfile:
        """A profile from `as_document`'s map; `ValueError` naming what is wrong."""
        names = {f.name: f.type for f in fields(cls)}
        if not isinstance(raw, dict) or set(raw) != set(names):
            raise ValueError(f"a profile must be a map with keys {sorted(names)}")
        kinds = {"str": str, "int": int, "bool": bool}
        for name, kind in names.items():
            if type(raw[name]) is not kinds[str(kind)]:
                raise ValueError(f"{name} must be of type {kind}")
        return cls(**raw)

    def describe(self) -> str:
        """One line for people: torch 2.13.0+cpu, AVX2, 2 threads, float32, deterministic, cpu."""
        determinism = "deterministic" if self.deterministic else "non-deterministic"
        return (
            f"torch {self.torch_version}, {self.cpu_capability}, {self.threads} threads, "
            f"{self.dtype}, {determinism}, {self.device}"
        )

    def encode(self) -> bytes:
        """Canonical bytes: a msgpack map with sorted keys and a version."""
        body = {"version": PROFILE_VERSION, **asdict(self)}
        return bytes(msgpack.packb(dict(sorted(body.items())), use_bin_type=True))

    @property
    def hash(self) -> bytes:
        return keccak256(self.encode())

    def differences(
        self, other: ExecutionProfile, *, here: str = "here", there: str = "pinned"
    ) -> list[str]:
        """`field: <other's> here, <ours> pinned` for every field that differs."""
        return [
            f"{f.name}: {getattr(other, f.name)!r} {here}, {getattr(self, f.name)!r} {there}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def require(self, pinned_hash: bytes, pinned: ExecutionProfile | None = None) -> None:
        """Raise `ProfileMismatch` unless this profile hashes to `pinned_hash`.

        `pinned`, when the caller knows the full pinned profile, makes the message
        name the fields that differ.
        """
        if self.hash == pinned_hash:
            return
        differences = pinned.differences(self) if pinned is not None else []
        raise ProfileMismatch(pinned_hash, self.hash, differences)


def current_profile() -> ExecutionProfile:
    """The profile this process runs now (without changing anything)."""
    return ExecutionProfile(
        torch_version=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        deterministic=torch.are_deterministic_algorithms_enabled(),
    )


def pin_profile(threads: int | None = None) -> ExecutionProfile:
    """Fix thread count and deterministic algorithms for this process; the resulting profile.

    `threads` defaults to the current torch thread count.
    """
    if threads is None:
        threads = torch.get_num_threads()
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return current_profile()
