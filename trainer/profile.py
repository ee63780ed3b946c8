"""The execution profile: the settings under which a training step is bit-reproducible.

PyTorch promises no reproducibility across releases, CPU code paths, thread
counts or GPU models, so a job pins all of them and names the set by a hash that
goes into the job and into every step record. A replay under another profile is
refused with `ProfileMismatch`, never turned into an accusation.

Two devices:

- ``cpu`` (the tested path): torch version, ATen's CPU capability, threads, fp32,
  deterministic algorithms. `ATEN_CPU_CAPABILITY` is read by torch when it is
  imported, so a process can only report it.
- ``cuda``: the same plus the GPU's name, the CUDA and cuDNN versions torch runs,
  ``CUBLAS_WORKSPACE_CONFIG`` (cuBLAS is deterministic only with a fixed workspace,
  and reads it when CUDA initialises) and TF32 (off: fp32 is promised). These
  fields exist only in CUDA profiles: a CPU profile's document and hash are what
  they were before CUDA support, so older CPU jobs keep their profile hash.

`pin_profile` sets what can still be set (threads, deterministic algorithms, and on
CUDA the workspace, TF32 off, cuDNN deterministic) and returns the profile the
process now runs; `cuda_unavailable` says, in torch's words, why CUDA cannot be used.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import msgpack
import torch

from swarm_vectordb.bee import keccak256
from trainer.errors import DeviceUnavailable, ProfileMismatch

__all__ = [
    "CUBLAS_WORKSPACE",
    "CUDA_FIELDS",
    "PROFILE_VERSION",
    "ExecutionProfile",
    "cuda_unavailable",
    "current_profile",
    "pin_profile",
    "read_profile_file",
    "require_profile",
]

PROFILE_VERSION = 1
MAX_PROFILE_FILE = 64 * 1024  # a profile is a few hundred bytes
DEVICES = ("cpu", "cuda")
CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's documented setting for deterministic results
CUDA_FIELDS = ("gpu", "cuda_version", "cudnn_version", "cublas_workspace", "tf32")


@dataclass(frozen=True)
class ExecutionProfile:
    """Everything that changes a step's floating-point result on one machine."""

    torch_version: str  # e.g. "2.13.0+cpu": kernels change between releases
    cpu_capability: str  # ATen's kernel dispatch level ("AVX2", "AVX512", "DEFAULT")
    threads: int  # intra-op threads: reduction order depends on it
    dtype: str = "float32"  # the only training dtype we promise
    deterministic: bool = True  # torch.use_deterministic_algorithms(True)
    device: str = "cpu"  # "cpu" or "cuda": CUDA steps are never bit-equal to CPU ones
    # CUDA only (left at these defaults, and out of document and hash, on CPU):
    gpu: str = ""  # torch.cuda.get_device_name(): the kernels picked depend on the GPU
    cuda_version: str = ""  # torch.version.cuda, the CUDA runtime torch was built with
    cudnn_version: str = ""  # torch.backends.cudnn.version()
    cublas_workspace: str = ""  # CUBLAS_WORKSPACE_CONFIG when CUDA initialised
    tf32: bool = False  # TF32 matmuls or convolutions allowed (pinned off)

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.device == "cpu" and any(
            getattr(self, name) != _DEFAULTS[name] for name in CUDA_FIELDS
        ):
            raise ValueError(f"a cpu profile leaves the CUDA fields {CUDA_FIELDS} unset")

    def as_document(self) -> dict[str, Any]:
        """The fields as a plain map (what job documents and run manifests publish)."""
        document = asdict(self)
        if self.device == "cpu":
            for name in CUDA_FIELDS:
                del document[name]
        return document

    @classmethod
    def from_document(cls, raw: object) -> ExecutionProfile:
        """A profile from `as_document`'s map; `ValueError` naming what is wrong."""
        names = {f.name: f.type for f in fields(cls)}
        cpu_names = set(names) - set(CUDA_FIELDS)
        if not isinstance(raw, dict) or set(raw) not in (cpu_names, set(names)):
            raise ValueError(
                f"a profile must be a map with keys {sorted(cpu_names)} "
                f"(and {list(CUDA_FIELDS)} on cuda)"
            )
        kinds = {"str": str, "int": int, "bool": bool}
        for name in raw:
            kind = names[name]
            if type(raw[name]) is not kinds[str(kind)]:
                raise ValueError(f"{name} must be of type {kind}")
        if (raw["device"] == "cuda") != (set(raw) == set(names)):
            raise ValueError("the CUDA fields appear exactly when the device is cuda")
        return cls(**raw)

    def describe(self) -> str:
        """One line for people: torch 2.13.0+cpu, AVX2, 2 threads, float32, deterministic, cpu."""
        determinism = "deterministic" if self.deterministic else "non-deterministic"
        line = (
            f"torch {self.torch_version}, {self.cpu_capability}, {self.threads} threads, "
            f"{self.dtype}, {determinism}, {self.device}"
        )
        if self.device == "cuda":
            tf32 = "TF32 on" if self.tf32 else "TF32 off"
            line += (
                f" ({self.gpu}, CUDA {self.cuda_version}, cuDNN {self.cudnn_version}, "
                f"CUBLAS_WORKSPACE_CONFIG={self.cublas_workspace or 'unset'}, {tf32})"
            )
        return line

    def as_json(self) -> dict[str, Any]:
        """What `noosphere train profile --json` prints and `job post --profile` reads."""
        return {"hash": self.hash.hex(), "describe": self.describe(), "profile": self.as_document()}

    def encode(self) -> bytes:
        """Canonical bytes: a msgpack map with sorted keys and a version."""
        body = {"version": PROFILE_VERSION, **self.as_document()}
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


_DEFAULTS = {f.name: f.default for f in fields(ExecutionProfile)}


def cuda_unavailable() -> str | None:
    """Why this process cannot train on CUDA, as torch reports it; None when it can."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    if torch.cuda.is_available():
        return None
    try:
        torch.cuda.init()  # type: ignore[no-untyped-call]
    except (RuntimeError, AssertionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU: {reason}"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) reports no usable GPU"


def current_profile(device: str = "cpu") -> ExecutionProfile:
    """The profile this process runs now on `device` (without changing anything).

    `DeviceUnavailable` for ``cuda`` when torch cannot use a GPU.
    """
    common: dict[str, Any] = {
        "torch_version": str(torch.__version__),  # a plain str, not torch's TorchVersion
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
    if device == "cpu":
        return ExecutionProfile(**common)
    if device != "cuda":
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    reason = cuda_unavailable()
    if reason is not None:
        raise DeviceUnavailable(f"CUDA is not usable here: {reason}")
    return ExecutionProfile(
        **common,
        device="cuda",
        gpu=torch.cuda.get_device_name(),
        cuda_version=str(torch.version.cuda),
        cudnn_version=str(torch.backends.cudnn.version() or "none"),  # type: ignore[no-untyped-call]
        cublas_workspace=os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
        tf32=bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32),
    )


def read_profile_file(path: os.PathLike[str] | str) -> ExecutionProfile:
    """The profile in a JSON file: `as_json`'s object or the bare profile map.

    `ValueError` naming what is wrong: unreadable, too large, not JSON, not a profile,
    or a ``hash`` that is not the profile's own (a hand-edited field).
    """
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_PROFILE_FILE + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PROFILE_FILE:
        raise ValueError(f"{path} is larger than {MAX_PROFILE_FILE} bytes: not a profile")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    claimed = None
    if isinstance(document, dict) and "profile" in document:
        claimed = document.get("hash")
        document = document["profile"]
    try:
        profile = ExecutionProfile.from_document(document)
    except ValueError as exc:
        raise ValueError(f"{path} is not an execution profile: {exc}") from None
    if not profile.deterministic or profile.dtype != "float32" or not 1 <= profile.threads <= 256:
        raise ValueError(
            f"{path}: a job's profile is float32, deterministic, 1 to 256 threads; "
            f"this one is {profile.describe()}"
        )
    if claimed is not None and claimed != profile.hash.hex():
        raise ValueError(
            f"{path}: hash {str(claimed)[:80]} is not the profile's own ({profile.hash.hex()}): "
            "was a field edited?"
        )
    return profile


def _pin_cuda() -> None:
    """Deterministic CUDA settings; the workspace must be set before CUDA initialises."""
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        if os.environ.get("CUBLAS_WORKSPACE_CONFIG") != CUBLAS_WORKSPACE:
            raise DeviceUnavailable(
                "CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set to "
                f"{CUBLAS_WORKSPACE}: start a fresh process (or export it)"
            )
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    reason = cuda_unavailable()
    if reason is not None:
        raise DeviceUnavailable(f"CUDA is not usable here: {reason}")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def pin_profile(threads: int | None = None, device: str = "cpu") -> ExecutionProfile:
    """Fix thread count and deterministic algorithms (and CUDA's settings on ``cuda``);
    the resulting profile.

    `threads` defaults to the current torch thread count. `DeviceUnavailable` when
    ``cuda`` is asked for and torch cannot use a GPU.
    """
    if threads is None:
        threads = torch.get_num_threads()
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda":
        _pin_cuda()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    return current_profile(device)


def require_profile(pinned: ExecutionProfile) -> ExecutionProfile:
    """This process's profile on `pinned`'s device; `ProfileMismatch` unless it is `pinned`.

    A device this process cannot use (a CUDA job on a machine without a usable GPU)
    is a mismatch too, naming the device and torch's reason: a refusal, not evidence.
    """
    try:
        here = current_profile(pinned.device)
    except DeviceUnavailable as exc:
        here = current_profile()
        raise ProfileMismatch(
            pinned.hash, here.hash, [*pinned.differences(here), str(exc)]
        ) from exc
    here.require(pinned.hash, pinned)
    return here
