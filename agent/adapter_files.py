"""LoRA adapter files: names, scales, hashes, and whether a file is a LoRA for a model.

- `check_adapter_name`, `check_scale`, `name_for_path`: adapter names are
  `[a-z0-9][a-z0-9._-]{0,63}` (requests select adapters by name); scales are finite
  and within ±10, as `model.adapters[].scale` allows.
- `inspect_adapter(path, base_model=None)`: the file exists (after `~`), is a GGUF with
  `general.type = adapter` and `adapter.type = lora`, its tensors come in `.lora_a` /
  `.lora_b` pairs, and, given the base model, each pair targets a tensor the base has
  with shapes that fit it (headers only, read by `agent.gguf_header`). llama.cpp checks
  the same when it loads the adapter; this lets `noosphere adapter add` refuse a wrong
  file without loading the model, and gives the reason.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import AdapterError, ModelLoadError, ModelNotFoundError
from agent.gguf_header import read_gguf_header

__all__ = [
    "ADAPTER_NAME",
    "MAX_SCALE",
    "AdapterFile",
    "check_adapter_name",
    "check_scale",
    "file_sha256",
    "inspect_adapter",
    "name_for_path",
]

ADAPTER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_SCALE = 10.0  # as `model.adapters[].scale` allows

# ---------------------------------------------------------------- names and scales


def check_adapter_name(name: str) -> str:
    if not ADAPTER_NAME.fullmatch(name):
        raise AdapterError(
            f"bad adapter name {name!r}: 1-64 of a-z 0-9 . _ -, starting with a letter or digit"
        )
    return name


def check_scale(scale: float, name: str) -> float:
    if not (math.isfinite(scale) and -MAX_SCALE <= scale <= MAX_SCALE):
        raise AdapterError(f"adapter {name}: scale {scale} is not within ±{MAX_SCALE:g}")
    return float(scale)


def name_for_path(path: Path, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A valid, unused adapter name from a file name (`model.adapters` are named so)."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")[:60] or "adapter"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    return name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- adapter files


@dataclass(frozen=True)
class AdapterFile:
    """A checked LoRA adapter GGUF."""

    path: Path  # absolute, `~` expanded
    architecture: str
    alpha: float | None
    targets: tuple[str, ...]  # base tensors it changes, e.g. blk.0.attn_q.weight
    rank: int
    size: int  # bytes


def inspect_adapter(path: str | os.PathLike[str], base_model: Path | None = None) -> AdapterFile:
    """Check that `path` is a LoRA adapter (for `base_model`, when given); see the module doc.

    Raises ModelNotFoundError for a missing file and ModelLoadError for anything else.
    """
    where = Path(path).expanduser().absolute()
    if not where.is_file():
        raise ModelNotFoundError(f"LoRA adapter not found: {where}")

    def refuse(problem: str) -> ModelLoadError:
        return ModelLoadError(f"{where} is not a usable LoRA adapter: {problem}")

    try:
        header = read_gguf_header(where)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise refuse(str(exc)) from None
    meta = header.metadata
    if meta.get("general.type") != "adapter":
        raise refuse(f"general.type is {meta.get('general.type')!r}, not 'adapter'")
    if meta.get("adapter.type") != "lora":
        raise refuse(f"adapter.type is {meta.get('adapter.type')!r}, not 'lora'")
    pairs: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, dims in header.tensors.items():
        base, dot, side = name.rpartition(".")
        if not dot or side not in ("lora_a", "lora_b"):
            raise refuse(f"tensor {name} is not a .lora_a or .lora_b tensor")
        pairs.setdefault(base, {})[side] = dims
    if not pairs:
        raise refuse("it holds no tensors")
    ranks = set()
    for base, sides in pairs.items():
        if set(sides) != {"lora_a", "lora_b"}:
            raise refuse(f"{base} has only {', '.join(sides)}")
        a, b = sides["lora_a"], sides["lora_b"]
        if len(a) != 2 or len(b) != 2 or a[1] != b[0]:
            raise refuse(f"{base}: lora_a {list(a)} and lora_b {list(b)} do not multiply")
        ranks.add(a[1])
    architecture = str(meta.get("general.architecture", ""))
    if base_model is not None:
        _check_against_base(pairs, architecture, base_model, refuse)
    alpha = meta.get("adapter.lora.alpha")
    return AdapterFile(
        path=where,
        architecture=architecture,
        alpha=float(alpha) if isinstance(alpha, int | float) else None,
        targets=tuple(pairs),
        rank=max(ranks),
        size=where.stat().st_size,
    )


def _check_against_base(
    pairs: dict[str, dict[str, tuple[int, ...]]],
    architecture: str,
    base_model: Path,
    refuse: Any,
) -> None:
    try:
        base = read_gguf_header(base_model)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot read the base model {base_model}: {exc}") from None
    base_arch = base.metadata.get("general.architecture")
    if architecture and base_arch and architecture != base_arch:
        raise refuse(f"it is for {architecture}, the base model is {base_arch}")
    for name, sides in pairs.items():
        target = base.tensors.get(name)
        if target is None:
            raise refuse(f"the base model {base_model.name} has no tensor {name}")
        # ggml order: base [n_in, n_out]; lora_a [n_in, rank]; lora_b [rank, n_out]
        if len(target) != 2 or (sides["lora_a"][0], sides["lora_b"][1]) != target:
            raise refuse(
                f"{name} is {list(target)} in the base model; the adapter's pair makes "
                f"{[sides['lora_a'][0], sides['lora_b'][1]]}"
            )
